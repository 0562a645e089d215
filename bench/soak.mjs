// Driver for bench/soak: mixed traffic against a running host, an SMS webhook receiver for the
// codes, per-minute figures, and a consistency check at the end. Node 20, no packages.
//
// Every user is driven by one request at a time, and each user's state is modelled from the API's
// rules (docs/api.md), so every request has exactly one expected status and, for writes, one
// expected sequence. Codes come from the host's real SMS path: the composed artifact's webhook
// provider posts them (signed) to the receiver here.
//
// Environment (set by bench/soak): BASE_URL, TOKENS_FILE, FOREIGN_TOKEN, RECEIVER_PORT,
// SMS_WEBHOOK_SIGNING_KEY, HOST_PID, DURATION (e.g. 10m, 90s), CONNECTIONS, SUMMARY_FILE.
import { createHmac, timingSafeEqual } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`bench/soak.mjs: ${name} is not set`);
  return value;
};
const BASE_URL = env("BASE_URL");
const TOKENS = readFileSync(env("TOKENS_FILE"), "utf8").split("\n").filter(Boolean);
const FOREIGN_TOKEN = env("FOREIGN_TOKEN");
const RECEIVER_PORT = Number(env("RECEIVER_PORT"));
const SIGNING_KEY = env("SMS_WEBHOOK_SIGNING_KEY");
const HOST_PID = env("HOST_PID");
const CONNECTIONS = Number(env("CONNECTIONS", "8"));
const SUMMARY_FILE = process.env.SUMMARY_FILE;
const MAX_ATTEMPTS = 5; // PHONE_CODE_MAX_ATTEMPTS default
const SMS_TIMEOUT_MS = 30_000;
const PHONE_PATH = "/auth/v1/users/me/phone";

function parseDuration(text) {
  const match = /^(\d+)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw new Error(`DURATION ${JSON.stringify(text)} is not like 10m, 90s, 1h`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? "s"];
  return Number(match[1]) * unit;
}
const DURATION_MS = parseDuration(env("DURATION", "10m"));

function rssKiB() {
  try {
    const line = readFileSync(`/proc/${HOST_PID}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
    return line ? Number(line.split(/\s+/)[1]) : NaN;
  } catch {
    return NaN;
  }
}
const mib = (kib) => (kib / 1024).toFixed(1);

// ---- the model of each user ---------------------------------------------------------------

/** @typedef {{code: string, recipient: string}} Sms */
const users = TOKENS.map((token, i) => ({
  name: `bench-user-${i + 1}`,
  token,
  phone: null, // E.164 of the stored number, or null
  verified: false,
  code: null, // the pending code (from the SMS), or null when there is none
  attempts: 0, // failed attempts on the pending code
  seq: 0, // the record's sequence as the rules predict it
  seen: 0, // the highest sequence any answer showed
  numbers: 0, // how many numbers this user has set (makes each PUT a new number)
  issuing: false, // a code-issuing request or its SMS is outstanding
  inbox: /** @type {Sms[]} */ ([]),
  smsWaiter: null,
  quarantined: null, // why the model stopped being trusted for this user
}));
const byName = new Map(users.map((u) => [u.name, u]));

// ---- figures ------------------------------------------------------------------------------

const started = { at: 0 };
const minutes = []; // per minute: { statuses: {}, latencies: [] }
const totals = {}; // kind -> status -> count
const problems = { unexpected: [], sequence: [], backwards: [], sms: [], final: [] };
const counts = { unexpected: 0, sequence: 0, backwards: 0, sms: 0, final: 0, smsReceived: 0, smsExpected: 0 };
const rss = { start: NaN, perMinute: [] };

function note(kind, status, ms) {
  // Requests still in flight at the deadline count in the last minute.
  const last = Math.ceil(DURATION_MS / 60_000) - 1;
  const minute = Math.min(last, Math.floor((performance.now() - started.at) / 60_000));
  while (minutes.length <= minute) minutes.push({ statuses: {}, latencies: [] });
  const bucket = minutes[minute];
  bucket.statuses[status] = (bucket.statuses[status] ?? 0) + 1;
  bucket.latencies.push(ms);
  totals[kind] ??= {};
  totals[kind][status] = (totals[kind][status] ?? 0) + 1;
}

function problem(list, text) {
  counts[list] = (counts[list] ?? 0) + 1;
  if (problems[list].length < 20) problems[list].push(text);
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function minuteLine(index) {
  const bucket = minutes[index] ?? { statuses: {}, latencies: [] };
  const sorted = Float64Array.from(bucket.latencies).sort();
  const statuses = Object.entries(bucket.statuses).sort().map(([s, n]) => `${s}:${n}`).join(" ");
  const kib = rssKiB();
  rss.perMinute.push(kib);
  // Other work on a shared machine moves latency: the 1-minute load average says how busy it was.
  const load = readFileSync("/proc/loadavg", "utf8").split(" ")[0];
  // The last minute may be partial.
  const seconds = Math.min(60, Math.max(1, (performance.now() - started.at) / 1000 - index * 60));
  const row = {
    minute: index + 1,
    requests: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    statuses: bucket.statuses,
    rssKiB: kib,
    load: Number(load),
  };
  console.log(
    `minute ${String(row.minute).padStart(2)}  ${String(row.requests).padStart(6)} req ` +
      `(${(row.requests / seconds).toFixed(0).padStart(4)}/s)  p50 ${row.p50.toFixed(1).padStart(6)} ms  ` +
      `p99 ${row.p99.toFixed(1).padStart(6)} ms  rss ${mib(kib)} MiB  load ${load}  ${statuses}`,
  );
  return row;
}

// ---- the SMS receiver ---------------------------------------------------------------------

function signatureOk(header, body) {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? "");
  if (!match) return false;
  const mac = createHmac("sha256", SIGNING_KEY).update(`${match[1]}.`).update(body).digest();
  return timingSafeEqual(mac, Buffer.from(match[2], "hex"));
}

let messageIds = 0;
const receiver = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    counts.smsReceived++;
    let payload;
    try {
      payload = JSON.parse(body.toString("utf8"));
    } catch {
      payload = null;
    }
    if (!signatureOk(req.headers["zitadel-signature"], body)) {
      problem("sms", `SMS with a bad signature: ${req.headers["zitadel-signature"]}`);
    }
    const user = byName.get(payload?.args?.userID);
    const code = payload?.args?.code;
    const recipient = payload?.contextInfo?.recipientPhoneNumber;
    if (!user || typeof code !== "string" || typeof recipient !== "string") {
      problem("sms", `SMS not understood: ${body.toString("utf8").slice(0, 200)}`);
    } else if (!user.issuing) {
      problem("sms", `SMS for ${user.name} when none was due (code ${code})`);
    } else {
      user.inbox.push({ code, recipient });
      user.smsWaiter?.();
    }
    res.writeHead(200, { "content-type": "application/json", "x-message-id": `soak-${++messageIds}` });
    res.end("{}");
  });
});

/** The SMS for the code the user's last request issued; null when none came in time. */
function takeSms(user) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      user.smsWaiter = null;
      resolve(user.inbox.shift() ?? null);
    };
    const timer = setTimeout(done, SMS_TIMEOUT_MS);
    if (user.inbox.length > 0) done();
    else user.smsWaiter = done;
  });
}

// ---- free users: each is driven by one request (and its SMS) at a time ---------------------

const free = [...users];
const freeWaiters = [];
function release(user) {
  if (user.quarantined) return;
  const waiter = freeWaiters.shift();
  if (waiter) waiter(user);
  else free.push(user);
}
/** A free user, or null once `deadline` passed with none free. */
function acquire(deadline) {
  if (free.length > 0) {
    // A random free user, so users interleave differently every run.
    const i = Math.floor(Math.random() * free.length);
    return Promise.resolve(free.splice(i, 1)[0]);
  }
  return new Promise((resolve) => {
    const waiter = (user) => {
      clearTimeout(timer);
      resolve(user);
    };
    const timer = setTimeout(() => {
      freeWaiters.splice(freeWaiters.indexOf(waiter), 1);
      resolve(null);
    }, Math.max(0, deadline - performance.now()));
    freeWaiters.push(waiter);
  });
}

// ---- requests -----------------------------------------------------------------------------

async function call(kind, method, token, body) {
  const headers = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const path = {
    get: PHONE_PATH, put: PHONE_PATH, put_same: PHONE_PATH, remove: PHONE_PATH,
    verify_right: `${PHONE_PATH}/_verify`, verify_wrong: `${PHONE_PATH}/_verify`,
    resend: `${PHONE_PATH}/_resend_verification`,
  }[kind] ?? PHONE_PATH;
  const t0 = performance.now();
  let status, text;
  try {
    const response = await fetch(BASE_URL + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    text = await response.text();
    status = response.status;
  } catch (err) {
    status = "error";
    text = String(err?.cause ?? err);
  }
  const ms = performance.now() - t0;
  note(kind, status, ms);
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // Not JSON: only matters when an answer's fields are checked.
  }
  return { status, text, json };
}

function answeredSequence(json) {
  const text = json?.details?.sequence;
  // protojson omits a zero sequence.
  return text === undefined ? 0 : Number(text);
}

function newNumber(user) {
  user.numbers++;
  const index = TOKENS.length * user.numbers + users.indexOf(user);
  const digits = String(index % 10_000_000).padStart(7, "0");
  return { input: `+41 71 ${digits.slice(0, 3)} ${digits.slice(3, 5)} ${digits.slice(5)}`, e164: `+4171${digits}` };
}

function wrongCode(code) {
  if (!code) return "ZZZZZZ";
  const first = code[0] === "Z" ? "Y" : "Z";
  return first + code.slice(1);
}

/** Picks what to do next for `user`, weighted, among requests that make sense. */
function pick(user) {
  const choices = [
    ["get", 30],
    ["put", 18],
    ["put_same", user.phone ? 2 : 0],
    ["verify_right", user.code ? 10 : 1],
    ["verify_wrong", 12],
    ["resend", 7],
    ["remove", 4],
    ["bad_token", 12],
  ];
  let roll = Math.random() * choices.reduce((sum, [, w]) => sum + w, 0);
  for (const [kind, weight] of choices) {
    roll -= weight;
    if (roll < 0) return kind;
  }
  return "get";
}

function quarantine(user, why) {
  user.quarantined = why;
  if (users.every((u) => u.quarantined)) {
    // Nobody left to drive: stop now rather than idle until the deadline.
    for (const waiter of freeWaiters.splice(0)) waiter(null);
    stopped.now = true;
  }
}
const stopped = { now: false };

function checkSequence(user, kind, got, expected) {
  if (got < user.seen) {
    problem("backwards", `${user.name} ${kind}: sequence ${got} after ${user.seen}`);
  }
  user.seen = Math.max(user.seen, got);
  if (got !== expected) {
    problem("sequence", `${user.name} ${kind}: sequence ${got}, expected ${expected}`);
    quarantine(user, `sequence ${got} != ${expected} after ${kind}`);
    return false;
  }
  return true;
}

/**
 * Runs one request for `user`, checks its answer against the model, updates the model. Answers
 * `{ sms }` (settles once the code's SMS is in) after a request that sent a code, otherwise null.
 */
async function step(user) {
  const kind = pick(user);
  const pendingCode = user.phone && !user.verified && user.code !== null;
  const notFound = !user.phone || user.verified || user.code === null;
  let expected, onOk = () => {};
  let request, issues = false;
  switch (kind) {
    case "get":
      request = ["GET", user.token];
      expected = 200;
      onOk = (json) => {
        const phone = json?.phone ?? {};
        const want = user.phone ? { phone: user.phone, verified: user.verified } : { phone: undefined, verified: undefined };
        if (phone.phone !== want.phone || (user.phone && Boolean(phone.isPhoneVerified) !== want.verified)) {
          problem("sequence", `${user.name} get: ${JSON.stringify(phone)}, expected ${JSON.stringify(want)}`);
          quarantine(user, "GET state differs");
          return;
        }
        checkSequence(user, kind, answeredSequence(json), user.seq);
      };
      break;
    case "put": {
      const number = newNumber(user);
      request = ["PUT", user.token, { phone: number.input }];
      expected = 200;
      issues = true;
      onOk = (json) => {
        user.seq += 2;
        Object.assign(user, { phone: number.e164, verified: false, attempts: 0, code: null });
        checkSequence(user, kind, answeredSequence(json), user.seq);
      };
      break;
    }
    case "put_same":
      request = ["PUT", user.token, { phone: user.phone }];
      expected = 400; // COMMAND-wF94r, nothing written
      break;
    case "verify_right":
    case "verify_wrong": {
      const right = kind === "verify_right" && pendingCode;
      request = ["POST", user.token, { code: right ? user.code.toLowerCase() : wrongCode(user.code) }];
      if (notFound) expected = 404;
      else if (user.attempts >= MAX_ATTEMPTS) expected = 400; // void code: no event
      else if (right) {
        expected = 200;
        onOk = (json) => {
          user.seq += 1;
          Object.assign(user, { verified: true, code: null, attempts: 0 });
          checkSequence(user, kind, answeredSequence(json), user.seq);
        };
      } else {
        expected = 400;
        onOk = () => {
          user.attempts += 1;
          // A failed attempt is an event; the one that voids the code adds a second.
          user.seq += user.attempts >= MAX_ATTEMPTS ? 2 : 1;
        };
      }
      break;
    }
    case "resend":
      request = ["POST", user.token, {}];
      if (!user.phone) expected = 404;
      else if (user.verified) expected = 400;
      else {
        expected = 200;
        issues = true;
        onOk = (json) => {
          user.seq += 1;
          Object.assign(user, { attempts: 0, code: null });
          checkSequence(user, kind, answeredSequence(json), user.seq);
        };
      }
      break;
    case "remove":
      request = ["DELETE", user.token];
      if (!user.phone) expected = 404;
      else {
        expected = 200;
        onOk = (json) => {
          user.seq += 1;
          Object.assign(user, { phone: null, verified: false, code: null, attempts: 0 });
          checkSequence(user, kind, answeredSequence(json), user.seq);
        };
      }
      break;
    case "bad_token": {
      const variant = Math.floor(Math.random() * 3);
      let token = FOREIGN_TOKEN; // right issuer and kid, another key
      if (variant === 1) token = "not.a.jwt";
      if (variant === 2) {
        // The user's own token with one signature character changed.
        const dot = user.token.lastIndexOf(".");
        const i = dot + 1 + Math.floor((user.token.length - dot - 1) / 2);
        token = user.token.slice(0, i) + (user.token[i] === "A" ? "B" : "A") + user.token.slice(i + 1);
      }
      request = ["GET", token];
      expected = 401;
      break;
    }
  }
  if (issues) user.issuing = true;
  const [method, token, body] = request;
  const answer = await call(kind, method, token, body);
  if (answer.status !== expected) {
    problem("unexpected", `${user.name} ${kind}: ${answer.status} (expected ${expected}): ${answer.text.slice(0, 200)}`);
    quarantine(user, `${kind} answered ${answer.status}, expected ${expected}`);
    user.issuing = false;
    return null;
  }
  onOk(answer.json);
  // Wrapped: an async function returning a promise would wait for it.
  return issues ? { sms: awaitCode(user, kind) } : null;
}

/** Waits for the SMS a successful PUT or resend sent, and learns the code from it. */
async function awaitCode(user, kind) {
  counts.smsExpected++;
  const sms = await takeSms(user);
  user.issuing = false;
  if (sms === null) {
    problem("sms", `${user.name}: no SMS within ${SMS_TIMEOUT_MS / 1000} s after ${kind}`);
    quarantine(user, "SMS missing");
  } else if (sms.recipient !== user.phone) {
    problem("sms", `${user.name}: SMS to ${sms.recipient}, phone is ${user.phone}`);
    quarantine(user, "SMS to the wrong number");
  } else {
    user.code = sms.code;
  }
  if (user.inbox.length > 0) problem("sms", `${user.name}: more than one SMS for one code`);
}

// ---- the run ------------------------------------------------------------------------------

const awaitingSms = new Set();

async function worker(deadline) {
  for (;;) {
    const user = await acquire(deadline);
    if (user === null) return;
    if (performance.now() >= deadline || stopped.now) {
      release(user);
      return;
    }
    const due = await step(user);
    if (due === null) {
      release(user);
    } else {
      const smsDue = due.sms;
      // The user stays busy until its SMS is in; the worker moves on to another user.
      awaitingSms.add(smsDue);
      smsDue.then(() => {
        awaitingSms.delete(smsDue);
        release(user);
      });
    }
  }
}

async function main() {
  await new Promise((resolve, reject) => {
    receiver.once("error", reject);
    receiver.listen(RECEIVER_PORT, "127.0.0.1", resolve);
  });
  rss.start = rssKiB();
  console.log(
    `soak: ${users.length} users, ${CONNECTIONS} connections, ${DURATION_MS / 1000} s; host RSS at start ${mib(rss.start)} MiB`,
  );
  started.at = performance.now();
  const deadline = started.at + DURATION_MS;
  const rows = [];
  let printed = 0;
  const lastMinute = Math.ceil(DURATION_MS / 60_000) - 1;
  const ticker = setInterval(() => {
    // The last minute waits for the requests in flight at the deadline.
    if (printed < lastMinute) rows.push(minuteLine(printed++));
  }, 60_000);
  await Promise.all(Array.from({ length: CONNECTIONS }, () => worker(deadline)));
  await Promise.all([...awaitingSms]);
  clearInterval(ticker);
  while (printed < minutes.length) rows.push(minuteLine(printed++));
  const rssEnd = rssKiB();

  // Consistency: each user's stored state is what the answers said it would be.
  let consistent = 0;
  for (const user of users) {
    if (user.quarantined) continue;
    const answer = await call("final_get", "GET", user.token);
    const phone = answer.json?.phone ?? {};
    const seq = answeredSequence(answer.json);
    const ok =
      answer.status === 200 &&
      (phone.phone ?? null) === user.phone &&
      (user.phone === null || Boolean(phone.isPhoneVerified) === user.verified) &&
      seq === user.seq &&
      seq >= user.seen;
    if (ok) consistent++;
    else problem("final", `${user.name}: ${answer.status} ${answer.text.slice(0, 200)}; expected phone ${user.phone}, verified ${user.verified}, sequence ${user.seq}`);
  }
  receiver.close();

  const quarantined = users.filter((u) => u.quarantined);
  console.log(`\nhost RSS: start ${mib(rss.start)} MiB, end ${mib(rssEnd)} MiB (${(((rssEnd - rss.start) / rss.start) * 100).toFixed(1)} %)`);
  if (rss.perMinute.length >= 3) {
    const second = rss.perMinute[1];
    console.log(`host RSS after minute 2: ${mib(second)} MiB; growth from there to the end ${(((rssEnd - second) / second) * 100).toFixed(1)} %`);
  }
  const p99s = rows.filter((r) => r.requests > 0).map((r) => r.p99);
  console.log(`per-minute p99: ${Math.min(...p99s).toFixed(1)}–${Math.max(...p99s).toFixed(1)} ms`);
  console.log("statuses by request kind:");
  for (const [kind, statuses] of Object.entries(totals)) {
    console.log(`  ${kind.padEnd(13)} ${Object.entries(statuses).sort().map(([s, n]) => `${s}:${n}`).join(" ")}`);
  }
  console.log(`SMS: ${counts.smsExpected} expected, ${counts.smsReceived} received`);
  const verdicts = [
    ["unexpected statuses", counts.unexpected],
    ["wrong sequences or states", counts.sequence],
    ["sequences going backwards", counts.backwards],
    ["SMS problems", counts.sms],
    ["final GETs differing from the last write", counts.final],
  ];
  for (const [what, n] of verdicts) console.log(`${what}: ${n}`);
  for (const [list, texts] of Object.entries(problems)) for (const text of texts) console.log(`  ${list}: ${text}`);
  console.log(`consistency: ${consistent}/${users.length} users match their last successful write` + (quarantined.length ? ` (${quarantined.length} dropped after a problem)` : ""));
  const passed = verdicts.every(([, n]) => n === 0) && consistent === users.length;
  console.log(passed ? "soak: PASS" : "soak: FAIL");
  if (SUMMARY_FILE) {
    writeFileSync(SUMMARY_FILE, JSON.stringify({ rows, rss: { start: rss.start, end: rssEnd, perMinute: rss.perMinute }, totals, counts, consistent, users: users.length, passed }, null, 1));
  }
  process.exitCode = passed ? 0 : 1;
}

main().catch((err) => {
  console.error(`bench/soak.mjs: ${err?.stack ?? err}`);
  process.exit(2);
});

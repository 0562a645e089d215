// The Deno edge target end to end: Deno.serve -> the transpiled component -> Deno KV (a
// SQLite file in a temp dir) and fetch. Run by ../test, which transpiles the component first.
// Only loopback addresses; every wait is bounded so a hang fails the test instead.

import { instantiate } from "../gen/set-my-phone.js";
import { createHost } from "../../glue/host.js";
import { keyValue } from "../src/keyvalue.js";

const GEN = new URL("../gen/", import.meta.url);
const ISSUER = "https://issuer.test";
const ORG = "org-1";
const CODE_SECRET = "a-code-secret-of-32-bytes-length";
const PHONE_URL = "/auth/v1/users/me/phone";
const STEP_MS = 30_000;

function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}
function assertEquals(actual, expected, message) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${message}: expected ${e}, got ${a}`);
}

/** Fails after `ms` instead of waiting forever; clears its timer either way. */
async function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// --- tokens: an Ed25519 key published as an inline JWKS, EdDSA JWTs signed with WebCrypto ---

const b64url = (bytes) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
const b64urlText = (text) => b64url(new TextEncoder().encode(text));

const keyPair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
const publicJwk = await crypto.subtle.exportKey("jwk", keyPair.publicKey);
const JWKS = JSON.stringify({
  keys: [{ kty: "OKP", crv: "Ed25519", x: publicJwk.x, kid: "ed", use: "sig", alg: "EdDSA" }],
});

async function token(user) {
  const now = Math.floor(Date.now() / 1000);
  const header = b64urlText(JSON.stringify({ alg: "EdDSA", typ: "JWT", kid: "ed" }));
  const claims = b64urlText(JSON.stringify({
    iss: ISSUER,
    sub: user,
    iat: now,
    exp: now + 3600,
    "urn:zitadel:iam:user:resourceowner:id": ORG,
  }));
  const signature = await crypto.subtle.sign(
    { name: "Ed25519" },
    keyPair.privateKey,
    new TextEncoder().encode(`${header}.${claims}`),
  );
  return `${header}.${claims}.${b64url(signature)}`;
}

// --- one served host per test, on its own Deno KV file ---

function baseEnv(extra = {}) {
  return {
    AUTH_ISSUER: ISSUER,
    AUTH_JWKS: JWKS,
    PHONE_CODE_SECRET: CODE_SECRET,
    PHONE_RESEND_COOLDOWN: "0",
    PHONE_CODES_PER_HOUR: "0",
    PHONE_CODES_PER_NUMBER_PER_HOUR: "0",
    PHONE_CODES_PER_NUMBER_PER_DAY: "0",
    PHONE_CODES_PER_RANGE_PER_HOUR: "0",
    PHONE_PUMPING_MIN_VERIFIED: "0",
    ...extra,
  };
}

async function serve(env) {
  const dir = await Deno.makeTempDir({ prefix: "set-my-phone-deno-" });
  const kv = await Deno.openKv(`${dir}/kv.sqlite3`);
  const logs = [];
  const host = createHost({
    instantiate,
    compileCore: async (name) => WebAssembly.compile(await Deno.readFile(new URL(name, GEN))),
    keyvalue: keyValue(kv),
    env: () => env,
    log: (line) => logs.push(line),
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, host.handle);
  const base = `http://127.0.0.1:${server.addr.port}`;
  return {
    host,
    kv,
    logs,
    base,
    async call(method, path, { user = "user-1", body } = {}) {
      const response = await fetch(base + path, {
        method,
        headers: {
          authorization: `Bearer ${await token(user)}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(STEP_MS),
      });
      const text = await response.text();
      let json;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: response.status, json, text };
    },
    async close() {
      await within(STEP_MS, "calls in progress to return", host.settled());
      await server.shutdown();
      kv.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const options = { sanitizeOps: false, sanitizeResources: false };

Deno.test("SetMyPhone then GetMyPhone (JSON) round trip", options, async () => {
  const app = await serve(baseEnv());
  try {
    const set = await within(STEP_MS, "PUT", app.call("PUT", PHONE_URL, {
      body: { phone: "+41 71 000 00 00" },
    }));
    assertEquals(set.status, 200, `PUT status (${set.text}; logs: ${app.logs.join(" | ")})`);
    assertEquals(set.json.details.sequence, "2", "sequence after the first set");
    assertEquals(set.json.details.resourceOwner, ORG, "resourceOwner");
    assert(/^\d{4}-\d\d-\d\dT.*Z$/.test(set.json.details.changeDate), "changeDate is RFC 3339");

    const get = await within(STEP_MS, "GET", app.call("GET", PHONE_URL));
    assertEquals(get.status, 200, `GET status (${get.text})`);
    assertEquals(get.json.phone, { phone: "+41710000000", isPhoneVerified: false }, "phone");
    assertEquals(get.json.details.sequence, "2", "GET sequence");

  } finally {
    await app.close();
  }
});

Deno.test("browsers on another origin: preflights and answers carry CORS headers", options, async () => {
  const app = await serve({ ...baseEnv(), CORS_ALLOWED_ORIGINS: "https://*.example.com" });
  try {
    const preflight = (origin) =>
      within(STEP_MS, "OPTIONS", fetch(app.base + PHONE_URL, {
        method: "OPTIONS",
        headers: {
          origin,
          "access-control-request-method": "PUT",
          "access-control-request-headers": "authorization, content-type",
        },
      }));
    const allowed = await preflight("https://app.example.com");
    await allowed.body?.cancel();
    assertEquals(allowed.status, 204, "preflight status");
    assertEquals(allowed.headers.get("access-control-allow-origin"), "https://app.example.com", "allowed origin");
    assertEquals(allowed.headers.get("access-control-allow-credentials"), "true", "credentials");
    const refused = await preflight("https://example.org");
    await refused.body?.cancel();
    assertEquals(refused.headers.get("access-control-allow-origin"), null, "refused origin");
    const get = await within(STEP_MS, "GET", fetch(app.base + PHONE_URL, {
      headers: { origin: "https://app.example.com" },
    }));
    await get.body?.cancel();
    assertEquals(get.status, 401, "GET without a token");
    assertEquals(get.headers.get("access-control-allow-origin"), "https://app.example.com", "error answer");
    assert(get.headers.get("access-control-expose-headers").includes("grpc-status"), "exposed headers");
  } finally {
    await app.close();
  }
});

Deno.test("limits across accounts on their defaults: six accounts, five codes to one number", options, async () => {
  const app = await serve({ AUTH_ISSUER: ISSUER, AUTH_JWKS: JWKS, PHONE_CODE_SECRET: CODE_SECRET });
  try {
    const statuses = [];
    for (let i = 0; i < 6; i++) {
      const set = await within(STEP_MS, "PUT", app.call("PUT", PHONE_URL, {
        user: `bomber-${i}`,
        body: { phone: "+41 79 555 00 00" },
      }));
      statuses.push(set.status);
      if (i === 5) {
        assertEquals(set.json.code, 8, `refusal code (${set.text})`);
        assertEquals(set.json.details[0].id, "SMP-RATE3", "refusal id");
      }
    }
    assertEquals(statuses, [200, 200, 200, 200, 200, 429], "statuses");
  } finally {
    await app.close();
  }
});

Deno.test("settings in lower case reach the component through wasi:config; upper case wins", options, async () => {
  // Every setting in Spin's spelling, and one also in the environment's spelling (which wins).
  const lower = Object.fromEntries(
    Object.entries(baseEnv({ PHONE_DEFAULT_REGION: "DE" })).map(([k, v]) => [k.toLowerCase(), v]),
  );
  const app = await serve({ ...lower, PHONE_DEFAULT_REGION: "CH" });
  try {
    const set = await within(STEP_MS, "PUT", app.call("PUT", PHONE_URL, {
      user: "config-user",
      body: { phone: "071 000 00 09" },
    }));
    assertEquals(set.status, 200, `PUT status (${set.text}; logs: ${app.logs.join(" | ")})`);
    const get = await within(STEP_MS, "GET", app.call("GET", PHONE_URL, { user: "config-user" }));
    assertEquals(get.json.phone.phone, "+41710000009", "a national number read in CH, not DE");
  } finally {
    await app.close();
  }
});

/** One gRPC-Web frame (flag byte, 4-byte big-endian length, payload), base64 as text mode sends it. */
function textFrame(payload) {
  const bytes = new Uint8Array(5 + payload.length);
  new DataView(bytes.buffer).setUint32(1, payload.length);
  bytes.set(payload, 5);
  return btoa(String.fromCharCode(...bytes));
}

/** Splits a decoded gRPC-Web body into its message payloads and trailer text. */
function unframe(bytes) {
  const messages = [];
  let trailers = "";
  for (let at = 0; at < bytes.length;) {
    const length = new DataView(bytes.buffer, bytes.byteOffset + at + 1, 4).getUint32(0);
    const payload = bytes.subarray(at + 5, at + 5 + length);
    if (bytes[at] & 0x80) trailers += new TextDecoder().decode(payload);
    else messages.push(payload);
    at += 5 + length;
  }
  return { messages, trailers };
}

Deno.test("gRPC-Web text mode and JSON sent without a JSON content type", options, async () => {
  const app = await serve(baseEnv());
  try {
    // curl -d without -H sends a form content type; upstream's gateway reads the body as JSON.
    const form = await within(STEP_MS, "PUT as a form", fetch(app.base + PHONE_URL, {
      method: "PUT",
      headers: {
        authorization: `Bearer ${await token("text-user")}`,
        "content-type": "application/x-www-form-urlencoded",
      },
      body: JSON.stringify({ phone: "+41 71 000 00 07" }),
      signal: AbortSignal.timeout(STEP_MS),
    }));
    assertEquals(form.status, 200, `form-typed PUT (${await form.text()})`);

    // SetMyPhoneRequest { phone = 1 } in protobuf, sent base64 in two separately padded chunks
    // (one per frame half), as a text-mode client streaming its body may.
    const phone = new TextEncoder().encode("+41 71 000 00 08");
    const message = new Uint8Array([0x0a, phone.length, ...phone]);
    const whole = Uint8Array.from(atob(textFrame(message)), (c) => c.charCodeAt(0));
    const toBase64 = (part) => btoa(String.fromCharCode(...part));
    const body = toBase64(whole.subarray(0, 7)) + toBase64(whole.subarray(7));
    const call = async (method, text) => {
      const response = await within(STEP_MS, method, fetch(
        `${app.base}/zitadel.auth.v1.AuthService/${method}`,
        {
          method: "POST",
          headers: {
            authorization: `Bearer ${await token("text-user")}`,
            "content-type": "application/grpc-web-text",
            "x-grpc-web": "1",
          },
          body: text,
          signal: AbortSignal.timeout(STEP_MS),
        },
      ));
      const answer = await response.text();
      assertEquals(response.status, 200, `${method} HTTP status (${answer})`);
      assertEquals(
        response.headers.get("content-type"),
        "application/grpc-web-text+proto",
        `${method} content type`,
      );
      return unframe(Uint8Array.from(atob(answer), (c) => c.charCodeAt(0)));
    };
    const set = await call("SetMyPhone", body);
    assert(/grpc-status:\s*0\r\n/.test(set.trailers), `SetMyPhone trailers: ${set.trailers}`);
    assertEquals(set.messages.length, 1, "one SetMyPhone answer message");

    const get = await call("GetMyPhone", textFrame(new Uint8Array()));
    assert(/grpc-status:\s*0\r\n/.test(get.trailers), `GetMyPhone trailers: ${get.trailers}`);
    const text = new TextDecoder().decode(get.messages[0]);
    assert(text.includes("+41710000008"), `GetMyPhone answer holds the text-mode number: ${text}`);

    const bad = await call("GetMyPhone", "not base64!");
    assert(/grpc-status:\s*3\r\n/.test(bad.trailers), `bad base64 is code 3: ${bad.trailers}`);
  } finally {
    await app.close();
  }
});

Deno.test("50 concurrent first-time SetMyPhone calls for one user lose nothing", options, async () => {
  const app = await serve(baseEnv());
  try {
    const numbers = Array.from({ length: 50 }, (_, i) => `+41 71 000 00 ${String(i).padStart(2, "0")}`);
    const answers = await within(
      120_000,
      "50 concurrent PUTs",
      Promise.all(numbers.map((phone) => app.call("PUT", PHONE_URL, { user: "racer", body: { phone } }))),
    );
    const winners = [];
    answers.forEach((answer, i) => {
      if (answer.status === 200) {
        winners.push({ sequence: Number(answer.json.details.sequence), number: numbers[i] });
      } else {
        assertEquals(answer.status, 409, `answer ${i} (${answer.text})`);
        assertEquals(answer.json.code, 10, `answer ${i} code`);
      }
    });
    assert(winners.length >= 1, "at least one call succeeds");
    const sequences = winners.map((w) => w.sequence);
    assertEquals(new Set(sequences).size, sequences.length, `distinct sequences ${sequences}`);
    const last = winners.reduce((a, b) => (b.sequence > a.sequence ? b : a));

    await within(STEP_MS, "work after answering", app.host.settled());
    const get = await within(STEP_MS, "GET", app.call("GET", PHONE_URL, { user: "racer" }));
    assertEquals(get.status, 200, `GET status (${get.text})`);
    assertEquals(Number(get.json.details.sequence), last.sequence, "stored sequence is the highest");
    assertEquals(
      get.json.phone.phone,
      last.number.replace(/ /g, ""),
      "stored number is the highest-sequence winner's",
    );
    console.log(
      `${winners.length} of 50 succeeded (sequences ${sequences.sort((a, b) => a - b)}), ` +
        `${app.host.instances} component instances`,
    );
  } finally {
    await app.close();
  }
});

Deno.test("the signed webhook SMS reaches a local receiver, and its code verifies", options, async () => {
  const signingKey = "webhook-signing-key";
  let answered;
  const putAnswered = new Promise((resolve) => (answered = resolve));
  let delivered;
  const delivery = new Promise((resolve) => (delivered = resolve));
  const receiver = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const body = await request.text();
    delivered({ url: request.url, headers: request.headers, body });
    // Answer only once the client has its PUT answer: the component must respond first.
    await within(STEP_MS, "the PUT answer before the SMS is answered", putAnswered).catch(() => {});
    return new Response("{}", { headers: { "x-message-id": "msg-1" } });
  });
  const app = await serve(baseEnv({
    SMS_PROVIDER: "webhook",
    SMS_WEBHOOK_URL: `http://127.0.0.1:${receiver.addr.port}/sms/hook`,
    SMS_WEBHOOK_SIGNING_KEY: signingKey,
  }));
  try {
    const set = await within(STEP_MS, "PUT (answered before the SMS is delivered)", app.call("PUT", PHONE_URL, {
      user: "sms-user",
      body: { phone: "+41 71 000 00 00" },
    }));
    answered();
    assertEquals(set.status, 200, `PUT status (${set.text}; logs: ${app.logs.join(" | ")})`);

    const sms = await within(STEP_MS, "the webhook to be called", delivery);
    assertEquals(new URL(sms.url).pathname, "/sms/hook", "webhook path");
    const signature = sms.headers.get("zitadel-signature");
    const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(signature ?? "");
    assert(match, `ZITADEL-Signature header: ${signature}`);
    const [, t, v1] = match;
    assert(Math.abs(Number(t) - Date.now() / 1000) < 60, "signature time is now");
    const hmacKey = await crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(signingKey),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    const expected = new Uint8Array(
      await crypto.subtle.sign("HMAC", hmacKey, new TextEncoder().encode(`${t}.${sms.body}`)),
    );
    assertEquals(v1, Array.from(expected, (b) => b.toString(16).padStart(2, "0")).join(""), "v1");
    const payload = JSON.parse(sms.body);
    assertEquals(payload.contextInfo.recipientPhoneNumber, "+41710000000", "recipient");
    assertEquals(payload.args.userID, "sms-user", "args.userID");
    assertEquals(payload.args.orgID, ORG, "args.orgID");
    const code = payload.args.code;
    assert(typeof code === "string" && code.length >= 4, `args.code: ${code}`);

    await within(STEP_MS, "delivery to be recorded", app.host.settled());
    const verify = await within(STEP_MS, "verify", app.call("POST", `${PHONE_URL}/_verify`, {
      user: "sms-user",
      body: { code },
    }));
    assertEquals(verify.status, 200, `verify status (${verify.text})`);
    const get = await within(STEP_MS, "GET", app.call("GET", PHONE_URL, { user: "sms-user" }));
    assertEquals(get.json.phone, { phone: "+41710000000", isPhoneVerified: true }, "verified phone");
  } finally {
    answered();
    await app.close();
    await receiver.shutdown();
  }
});

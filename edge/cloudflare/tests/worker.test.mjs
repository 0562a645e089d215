// The Cloudflare Worker end to end on the local runtime: `wrangler dev` (workerd with Durable
// Objects, storage persisted in a temp dir) -> the transpiled component -> Durable Objects and
// fetch. Run by ../test, which transpiles the component first. Loopback only; every wait is
// bounded so a hang fails the test instead.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createHmac, webcrypto as crypto } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { start, stop } from "./wrangler.mjs";

const ISSUER = "https://issuer.test";
const ORG = "org-1";
const PHONE_URL = "/auth/v1/users/me/phone";
const STEP_MS = 30_000;
const SIGNING_KEY = "webhook-signing-key";

// --- tokens: an Ed25519 key published as an inline JWKS, EdDSA JWTs signed with WebCrypto ---
const b64url = (bytes) => Buffer.from(bytes).toString("base64url");
const keyPair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
const publicJwk = await crypto.subtle.exportKey("jwk", keyPair.publicKey);
const JWKS = JSON.stringify({ keys: [{ kty: "OKP", crv: "Ed25519", x: publicJwk.x, kid: "ed", alg: "EdDSA" }] });

async function token(user) {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: "EdDSA", typ: "JWT", kid: "ed" }));
  const claims = b64url(JSON.stringify({
    iss: ISSUER, sub: user, iat: now, exp: now + 3600, "urn:zitadel:iam:user:resourceowner:id": ORG,
  }));
  const signature = await crypto.subtle.sign({ name: "Ed25519" }, keyPair.privateKey, Buffer.from(`${header}.${claims}`));
  return `${header}.${claims}.${b64url(signature)}`;
}

// --- a webhook receiver standing in for the SMS provider ---
const deliveries = [];
const receiver = createServer((request, response) => {
  let body = "";
  request.on("data", (chunk) => (body += chunk));
  request.on("end", () => {
    deliveries.push({ path: request.url, headers: request.headers, body });
    response.setHeader("x-message-id", `msg-${deliveries.length}`);
    response.end("{}");
  });
});
await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));

const settings = {
  AUTH_ISSUER: ISSUER,
  AUTH_JWKS: JWKS,
  PHONE_CODE_SECRET: "a-code-secret-of-32-bytes-length",
  PHONE_RESEND_COOLDOWN: "0",
  PHONE_CODES_PER_HOUR: "0",
  PHONE_CODES_PER_NUMBER_PER_HOUR: "0",
  PHONE_CODES_PER_NUMBER_PER_DAY: "0",
  PHONE_CODES_PER_RANGE_PER_HOUR: "0",
  PHONE_PUMPING_MIN_VERIFIED: "0",
  SMS_PROVIDER: "webhook",
  SMS_WEBHOOK_URL: `http://127.0.0.1:${receiver.address().port}/sms/hook`,
  SMS_WEBHOOK_SIGNING_KEY: SIGNING_KEY,
};

const state = mkdtempSync(join(tmpdir(), "set-my-phone-cloudflare-"));
let worker;

async function startWorker() {
  return start({ settings, state });
}

async function stopWorker() {
  if (!worker) return;
  await stop(worker);
  worker = undefined;
}

async function call(method, path, { user = "user-1", body, headers = {} } = {}) {
  const response = await fetch(worker.base + path, {
    method,
    headers: {
      authorization: `Bearer ${await token(user)}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...headers,
    },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(STEP_MS),
  });
  const text = await response.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: response.status, headers: response.headers, json, text };
}

/** The code of the `n`th SMS delivered (1-based), waiting for it. */
async function codeOf(n) {
  const deadline = Date.now() + STEP_MS;
  while (deliveries.length < n) {
    assert.ok(Date.now() < deadline, `SMS ${n} was not delivered`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return deliveries[n - 1];
}

before(async () => {
  worker = await startWorker();
});

after(async () => {
  await stopWorker();
  receiver.close();
  rmSync(state, { recursive: true, force: true });
});

test("SetMyPhone, the signed webhook SMS, VerifyMyPhone and GetMyPhone (JSON)", async () => {
  const set = await call("PUT", PHONE_URL, { user: "sms-user", body: { phone: "+41 71 000 00 00" } });
  assert.equal(set.status, 200, set.text);
  assert.equal(set.json.details.sequence, "2");
  assert.equal(set.json.details.resourceOwner, ORG);

  const sms = await codeOf(1);
  assert.equal(sms.path, "/sms/hook");
  const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(sms.headers["zitadel-signature"] ?? "") ?? [];
  assert.ok(t, `signature header ${sms.headers["zitadel-signature"]}`);
  assert.equal(v1, createHmac("sha256", SIGNING_KEY).update(`${t}.${sms.body}`).digest("hex"));
  const payload = JSON.parse(sms.body);
  assert.equal(payload.contextInfo.recipientPhoneNumber, "+41710000000");
  assert.equal(payload.args.userID, "sms-user");

  const wrong = await call("POST", `${PHONE_URL}/_verify`, { user: "sms-user", body: { code: "WRONG1" } });
  assert.equal(wrong.status, 400, wrong.text);
  const verify = await call("POST", `${PHONE_URL}/_verify`, { user: "sms-user", body: { code: payload.args.code } });
  assert.equal(verify.status, 200, verify.text);
  const get = await call("GET", PHONE_URL, { user: "sms-user" });
  assert.equal(get.status, 200, get.text);
  assert.deepEqual(get.json.phone, { phone: "+41710000000", isPhoneVerified: true });
});

/** A gRPC-Web frame: flag, big-endian length, message. */
function frame(message) {
  const out = new Uint8Array(5 + message.length);
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, 5);
  return out;
}

test("gRPC-Web (binary) sets and reads a phone", async () => {
  const phone = Buffer.from("+41 71 000 00 08");
  const set = await fetch(`${worker.base}/zitadel.auth.v1.AuthService/SetMyPhone`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${await token("grpc-user")}`,
      "content-type": "application/grpc-web+proto",
      "x-grpc-web": "1",
    },
    body: frame(Uint8Array.from([0x0a, phone.length, ...phone])),
    signal: AbortSignal.timeout(STEP_MS),
  });
  assert.equal(set.status, 200);
  assert.equal(set.headers.get("content-type"), "application/grpc-web+proto");
  const setBody = Buffer.from(await set.arrayBuffer()).toString("latin1");
  assert.match(setBody, /grpc-status:\s*0\r\n/);
  const get = await fetch(`${worker.base}/zitadel.auth.v1.AuthService/GetMyPhone`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${await token("grpc-user")}`,
      "content-type": "application/grpc-web+proto",
      "x-grpc-web": "1",
    },
    body: frame(new Uint8Array()),
    signal: AbortSignal.timeout(STEP_MS),
  });
  const getBody = Buffer.from(await get.arrayBuffer()).toString("latin1");
  assert.match(getBody, /\+41710000008/);
  assert.match(getBody, /grpc-status:\s*0\r\n/);
});

test("50 concurrent first SetMyPhone calls for one user: distinct sequences, one record", async () => {
  const numbers = Array.from({ length: 50 }, (_, i) => `+41 71 000 01 ${String(i).padStart(2, "0")}`);
  const answers = await Promise.all(numbers.map((phone) => call("PUT", PHONE_URL, { user: "racer", body: { phone } })));
  const winners = [];
  answers.forEach((answer, i) => {
    if (answer.status === 200) winners.push({ sequence: Number(answer.json.details.sequence), number: numbers[i] });
    else {
      assert.equal(answer.status, 409, `answer ${i}: ${answer.text}`);
      assert.equal(answer.json.code, 10);
    }
  });
  assert.ok(winners.length >= 1);
  const sequences = winners.map((w) => w.sequence);
  assert.equal(new Set(sequences).size, sequences.length, `distinct sequences ${sequences}`);
  const last = winners.reduce((a, b) => (b.sequence > a.sequence ? b : a));
  const get = await call("GET", PHONE_URL, { user: "racer" });
  assert.equal(Number(get.json.details.sequence), last.sequence);
  assert.equal(get.json.phone.phone, last.number.replace(/ /g, ""));
  // One record: its creation date is the same in every answer.
  const created = new Set(answers.filter((a) => a.status === 200).map((a) => a.json.details.creationDate));
  assert.ok(created.size <= 1, `one record created: ${[...created]}`);
  console.log(`${winners.length} of 50 succeeded, sequences ${sequences.sort((a, b) => a - b)}`);
});

test("a restart of the local runtime keeps the data (persisted Durable Object storage)", async () => {
  const set = await call("PUT", PHONE_URL, { user: "restart-user", body: { phone: "+41 71 000 00 09" } });
  assert.equal(set.status, 200, set.text);
  await stopWorker();
  worker = await startWorker();
  const get = await call("GET", PHONE_URL, { user: "restart-user" });
  assert.equal(get.status, 200, get.text);
  assert.deepEqual(get.json.phone, { phone: "+41710000009", isPhoneVerified: false });
  assert.equal(get.json.details.sequence, set.json.details.sequence);
});

// Local rates on `wrangler dev`: the hello-world component (bench/hello) and GetMyPhone, each
// served through the same glue, the same way, in the same run, so the ratio shows what the
// service costs beyond the glue and the local runtime. Not a figure for Cloudflare's network.
//   node bench.mjs [seconds per row, default 10]   (after ./test has installed the packages)
// Builds: target/wasm32-wasip2/release/set_my_phone_bench_hello.wasm (bench/run builds it) and
// target/artifacts/set-my-phone.wasm.

import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { webcrypto as crypto } from "node:crypto";
import { start, stop } from "./tests/wrangler.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "../..");
const seconds = Number(process.argv[2] ?? 10);
const CONNECTIONS = 8;
const hello = join(root, "target/wasm32-wasip2/release/set_my_phone_bench_hello.wasm");
const service = join(root, "target/artifacts/set-my-phone.wasm");
for (const file of [hello, service]) {
  if (!existsSync(file)) {
    console.error(`bench.mjs: ${file} is missing (bench/run or scripts/build-artifacts builds it)`);
    process.exit(1);
  }
}

const b64url = (bytes) => Buffer.from(bytes).toString("base64url");
const keyPair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
const { x } = await crypto.subtle.exportKey("jwk", keyPair.publicKey);
const now = Math.floor(Date.now() / 1000);
const header = b64url(JSON.stringify({ alg: "EdDSA", typ: "JWT", kid: "ed" }));
const claims = b64url(JSON.stringify({
  iss: "https://issuer.test", sub: "bench-user", iat: now, exp: now + 3600,
  "urn:zitadel:iam:user:resourceowner:id": "org-1",
}));
const signature = await crypto.subtle.sign({ name: "Ed25519" }, keyPair.privateKey, Buffer.from(`${header}.${claims}`));
const token = `${header}.${claims}.${b64url(signature)}`;
const settings = {
  AUTH_ISSUER: "https://issuer.test",
  AUTH_JWKS: JSON.stringify({ keys: [{ kty: "OKP", crv: "Ed25519", x, kid: "ed" }] }),
};

/** Requests/s and p99 ms of `CONNECTIONS` loops sending `request()` for `seconds`. */
async function load(request) {
  const latencies = [];
  const until = Date.now() + seconds * 1000;
  let failed = 0;
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    while (Date.now() < until) {
      const started = performance.now();
      const response = await request();
      await response.arrayBuffer();
      if (!response.ok) failed++;
      latencies.push(performance.now() - started);
    }
  }));
  latencies.sort((a, b) => a - b);
  return {
    rate: latencies.length / seconds,
    p99: latencies[Math.floor(latencies.length * 0.99)] ?? NaN,
    failed,
  };
}

async function served(component, body) {
  execFileSync("node", [join(here, "build.mjs"), component], { stdio: "ignore" });
  const state = mkdtempSync(join(tmpdir(), "set-my-phone-cloudflare-bench-"));
  const worker = await start({ settings, state });
  try {
    return await body(worker.base);
  } finally {
    await stop(worker);
    rmSync(state, { recursive: true, force: true });
  }
}

const helloRow = await served(hello, (base) => load(() => fetch(`${base}/`)));
const getRow = await served(service, async (base) => {
  const url = `${base}/auth/v1/users/me/phone`;
  const headers = { authorization: `Bearer ${token}` };
  const put = await fetch(url, { method: "PUT", headers, body: JSON.stringify({ phone: "+41 71 000 00 00" }) });
  if (!put.ok) throw new Error(`PUT answered ${put.status}: ${await put.text()}`);
  return load(() => fetch(url, { headers }));
});
// Leave gen/ as the tests expect it.
execFileSync("node", [join(here, "build.mjs"), service], { stdio: "ignore" });

const row = (name, r) =>
  `${name.padEnd(6)} ${r.rate.toFixed(0).padStart(7)} req/s   p99 ${r.p99.toFixed(1).padStart(6)} ms   non-2xx ${r.failed}`;
console.log(`wrangler dev, ${CONNECTIONS} connections, ${seconds} s per row (same run):`);
console.log(row("hello", helloRow));
console.log(row("GET", getRow));
console.log(`GET / hello: ${(getRow.rate / helloRow.rate).toFixed(2)}x`);

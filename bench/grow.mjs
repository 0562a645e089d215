// Gives every user of a tokens file a history before bench/run measures them: PUTS SetMyPhone
// calls per user (two events each, alternating two numbers so that each is a change), or with
// PUTS=0 one GetMyPhone, which creates the user's record with no event. Each user is served by
// one caller at a time, so no compare-and-swap conflicts; CONCURRENCY callers run at once.
//
//   node bench/grow.mjs URL TOKENS_FILE PUTS [CONCURRENCY]
//
// Exits 1 on any answer but 200 (after printing it), 0 when every user has its calls.
import { readFileSync } from "node:fs";
import http from "node:http";

const [url, tokensFile, putsArg, concurrencyArg = "8"] = process.argv.slice(2);
const puts = Number(putsArg);
const concurrency = Number(concurrencyArg);
if (!url || !tokensFile || !Number.isInteger(puts) || puts < 0 || !(concurrency > 0)) {
  console.error("usage: node bench/grow.mjs URL TOKENS_FILE PUTS [CONCURRENCY]");
  process.exit(2);
}
const tokens = readFileSync(tokensFile, "utf8").split("\n").filter(Boolean);
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const target = new URL("/auth/v1/users/me/phone", url);

function call(method, token, body) {
  return new Promise((resolve, reject) => {
    const request = http.request(
      target,
      {
        method,
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body ? { "content-type": "application/json" } : {}),
        },
      },
      (answer) => {
        const chunks = [];
        answer.on("data", (chunk) => chunks.push(chunk));
        answer.on("end", () => resolve({ status: answer.statusCode, body: Buffer.concat(chunks).toString() }));
      },
    );
    request.on("error", reject);
    request.end(body);
  });
}

// Caller c serves users c, c + concurrency, ...: each user's calls one after another.
let done = 0;
const total = tokens.length * Math.max(puts, 1);
async function caller(first) {
  for (let user = first; user < tokens.length; user += concurrency) {
    for (let i = 0; i < Math.max(puts, 1); i++) {
      const answer =
        puts === 0
          ? await call("GET", tokens[user])
          : await call("PUT", tokens[user], `{"phone":"+41 71 000 50 0${i % 2}"}`);
      if (answer.status !== 200) {
        console.error(`grow.mjs: user ${user + 1}, call ${i + 1}: ${answer.status} ${answer.body.slice(0, 300)}`);
        process.exit(1);
      }
      done++;
    }
  }
}

const started = Date.now();
await Promise.all(Array.from({ length: Math.min(concurrency, tokens.length) }, (_, c) => caller(c)));
agent.destroy();
const seconds = (Date.now() - started) / 1000;
console.error(`grow.mjs: ${done} of ${total} calls for ${tokens.length} users in ${seconds.toFixed(1)} s`);

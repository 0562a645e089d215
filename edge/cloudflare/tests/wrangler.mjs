// Starts and stops `wrangler dev` (the local Workers runtime, workerd, with Durable Objects) for
// the tests and the benchmark: on loopback, a free port, settings as --var, storage persisted in
// `state` so that a restart keeps it.

import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

export async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}


/** Resolves once the Worker answers on `{ base }`; rejects with its output if it does not. */
export async function start({ settings, state }) {
  const port = await freePort();
  const args = ["dev", "--ip", "127.0.0.1", "--port", String(port), "--persist-to", state, "--log-level", "warn"];
  for (const [name, value] of Object.entries(settings)) args.push("--var", `${name}:${value}`);
  const child = spawn(join(here, "../node_modules/.bin/wrangler"), args, {
    cwd: join(here, ".."),
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited: ${output}`);
    try {
      await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) });
      break;
    } catch {
      if (Date.now() > deadline) {
        await stop({ child });
        throw new Error(`wrangler dev did not answer in 120 s: ${output}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  return { child, base, output: () => output };
}

/** Stops the process group (wrangler and the workerd it started). */
export async function stop({ child }) {
  const exited = new Promise((resolve) => child.once("exit", resolve));
  try {
    process.kill(-child.pid, "SIGTERM");
  } catch {}
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {}
}

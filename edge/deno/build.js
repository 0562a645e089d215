// Transpiles the shipped component (target/artifacts/set-my-phone.wasm, or the path given as
// the first argument) with jco into ./gen/, for main.js and the tests:
//   node_modules/.bin/deno run --allow-read --allow-write --allow-run build.js [component.wasm]
// jco must have been installed (npm ci). The arguments (JSPI, the imports that wait) are the
// glue's, shared with the Cloudflare target (../glue/transpile.js).

import { transpileArgs } from "../glue/transpile.js";

const here = new URL(".", import.meta.url).pathname;
const component = Deno.args[0] ?? `${here}../../target/artifacts/set-my-phone.wasm`;
const jco = `${here}node_modules/.bin/jco`;
const out = `${here}gen`;

try {
  await Deno.stat(component);
} catch {
  console.error(
    `build.js: ${component} is missing; build it first with scripts/build-artifacts (repository root)`,
  );
  Deno.exit(1);
}

async function run(args) {
  const result = await new Deno.Command(jco, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder();
  if (!result.success) {
    console.error(text.decode(result.stderr) + text.decode(result.stdout));
    throw new Error(`jco ${args[0]} failed`);
  }
  return text.decode(result.stdout);
}

const args = await transpileArgs(run, component, out);
await Deno.remove(out, { recursive: true }).catch(() => {});
await run(args);
console.error(`build.js: transpiled ${component} into ${out}/`);

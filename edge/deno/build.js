// Transpiles the shipped component (target/artifacts/set-my-phone.wasm, or the path given as
// the first argument) with jco into ./gen/, for main.js and the tests:
//   node_modules/.bin/deno run --allow-read --allow-write --allow-run build.js [component.wasm]
// jco must have been installed (npm ci). The list of imports that wait (JSPI) lives in
// ../glue/imports.js; their versions are taken from the component's own imports.

import { ASYNC_EXPORTS, ASYNC_IMPORTS } from "../glue/imports.js";

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

// `jco wit` prints the component's world: `import wasi:io/poll@0.2.4;` and so on.
const wit = await run(["wit", component]);
const versions = new Map();
for (const [, iface, version] of wit.matchAll(/(?:import|export) ([a-z0-9-]+:[a-z0-9-]+\/[a-z0-9-]+)@([0-9A-Za-z.+-]+);/g)) {
  versions.set(iface, version);
}
const versioned = (names) =>
  names.flatMap((name) => {
    const [iface, fn] = name.split("#");
    return versions.has(iface) ? [`${iface}@${versions.get(iface)}#${fn}`] : [];
  });

await Deno.remove(out, { recursive: true }).catch(() => {});
await run([
  "transpile", component,
  "--out-dir", out,
  "--name", "set-my-phone",
  "--instantiation", "async",
  "--async-mode", "jspi",
  "--async-imports", ...versioned(ASYNC_IMPORTS),
  "--async-exports", ...versioned(ASYNC_EXPORTS),
  "--quiet",
]);
console.error(`build.js: transpiled ${component} into ${out}/`);

// The jco transpilation both edge targets make of the shipped artifact: instantiation async,
// JSPI, and the imports that wait (ASYNC_IMPORTS) and the export that is awaited, each named with
// the version the component itself uses. `run(args)` runs jco and answers its stdout (Deno and
// Node each have their own way to run a program).

import { ASYNC_EXPORTS, ASYNC_IMPORTS } from "./imports.js";

/** jco's arguments to transpile `component` into `out`; asks jco for the component's world. */
export async function transpileArgs(run, component, out) {
  // `jco wit` prints the component's world: `import wasi:io/poll@0.2.4;` and so on.
  const wit = await run(["wit", component]);
  const versions = new Map();
  for (const [, iface, version] of wit.matchAll(
    /(?:import|export) ([a-z0-9-]+:[a-z0-9-]+\/[a-z0-9-]+)@([0-9A-Za-z.+-]+);/g,
  )) {
    versions.set(iface, version);
  }
  const versioned = (names) =>
    names.flatMap((name) => {
      const [iface, fn] = name.split("#");
      return versions.has(iface) ? [`${iface}@${versions.get(iface)}#${fn}`] : [];
    });
  return [
    "transpile", component,
    "--out-dir", out,
    "--name", "set-my-phone",
    "--instantiation", "async",
    "--async-mode", "jspi",
    "--async-imports", ...versioned(ASYNC_IMPORTS),
    "--async-exports", ...versioned(ASYNC_EXPORTS),
    "--quiet",
  ];
}

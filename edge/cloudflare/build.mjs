// Transpiles the shipped component (target/artifacts/set-my-phone.wasm, or the path given) with
// the pinned jco into ./gen/ for the Worker, and writes gen/modules.js, which imports each core
// module so that wrangler bundles it compiled (Workers compile no WebAssembly at run time).
//   node build.mjs [component.wasm]
// The transpilation's arguments are the glue's (../glue/transpile.js), as for Deno.

import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { transpileArgs } from "../glue/transpile.js";

const here = dirname(fileURLToPath(import.meta.url));
const component = process.argv[2] ?? join(here, "../../target/artifacts/set-my-phone.wasm");
const jco = join(here, "node_modules/.bin/jco");
const out = join(here, "gen");
if (!existsSync(component)) {
  console.error(`build.mjs: ${component} is missing; build it with scripts/build-artifacts first`);
  process.exit(1);
}
const run = (args) => execFileSync(jco, args, { encoding: "utf8" });

const args = await transpileArgs(async (a) => run(a), component, out);
rmSync(out, { recursive: true, force: true });
run(args);
// jco inlines small helper modules (JSPI's conditional suspending) as bytes compiled at load
// time, which Workers refuse ("Wasm code generation disallowed by embedder"): write each to a
// file and import it instead, compiled by the bundler like the core modules.
const glue = join(out, "set-my-phone.js");
let code = readFileSync(glue, "utf8");
const inlined = [];
code = code.replace(
  /new WebAssembly\.Module\(new Uint8Array\(\[([0-9a-fx,\s]+)\]\)\)/g,
  (_, list) => {
    const bytes = list.split(",").map((b) => b.trim()).filter(Boolean).map(Number);
    const name = `inline${inlined.length}.wasm`;
    writeFileSync(join(out, name), Uint8Array.from(bytes));
    inlined.push(name);
    return `inline${inlined.length - 1}`;
  },
);
code = inlined.map((name, i) => `import inline${i} from "./${name}";\n`).join("") + code;
writeFileSync(glue, code);
const cores = readdirSync(out)
  .filter((name) => name.endsWith(".wasm") && !name.startsWith("inline"))
  .sort();
writeFileSync(
  join(out, "modules.js"),
  cores.map((name, i) => `import m${i} from "./${name}";`).join("\n") +
    `\nexport default {\n${cores.map((name, i) => `  ${JSON.stringify(name)}: m${i},`).join("\n")}\n};\n`,
);
console.error(`build.mjs: transpiled ${component} into ${out}/ (${cores.length} core modules)`);

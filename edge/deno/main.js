// set-my-phone on Deno (and Deno Deploy): serves the transpiled component (./gen, made by
// build.js) with Deno.serve, its key-value store on Deno KV.
//
//   deno run --unstable-kv --allow-read --allow-env --allow-net main.js
//
// Settings come from the environment, upper case (AUTH_*, PHONE_*, SMS_*, TWILIO_*, CORS_*, KV_STORE) or
// lower case (auth_issuer…, read through wasi:config; upper case wins); see the
// repository's docs/configuration.md). DENO_KV_PATH picks a local Deno KV file (default: Deno's own
// default, which on Deno Deploy is the project's database); PORT the local port (8000).

import { instantiate } from "./gen/set-my-phone.js";
import { createHost } from "../glue/host.js";
import { keyValue } from "./src/keyvalue.js";

const gen = new URL("./gen/", import.meta.url);
const kv = await Deno.openKv(Deno.env.get("DENO_KV_PATH") || undefined);
const host = createHost({
  instantiate,
  compileCore: async (name) => WebAssembly.compile(await Deno.readFile(new URL(name, gen))),
  keyvalue: keyValue(kv),
  env: () => Deno.env.toObject(),
  maxInstances: Number(Deno.env.get("SET_MY_PHONE_INSTANCES") || 16),
});

Deno.serve({ port: Number(Deno.env.get("PORT") || 8000) }, host.handle);

// set-my-phone on Cloudflare Workers: serves the jco-transpiled shipped artifact (./gen, made by
// build.mjs) through the glue Deno uses too (../../glue), its key-value store on Durable Objects
// (./keyvalue.js). Settings and secrets are the Worker's environment bindings (wrangler.toml
// [vars], `wrangler secret put`), read under either spelling as on every host.

import { instantiate } from "../gen/set-my-phone.js";
import modules from "../gen/modules.js";
import { createHost } from "../../glue/host.js";
import { keyValue } from "./keyvalue.js";

export { KeyValueObject } from "./keyvalue.js";

/** The string bindings: settings (the Durable Object namespace and others are not). */
function settings(env) {
  return Object.fromEntries(Object.entries(env).filter(([, value]) => typeof value === "string"));
}

let host;

export default {
  async fetch(request, env, ctx) {
    host ??= createHost({
      instantiate,
      // Workers compile no code at run time: the core modules are bundled, compiled already.
      compileCore: async (name) => modules[name],
      keyvalue: keyValue(env.KEYVALUE),
      env: () => settings(env),
      maxInstances: Number(env.SET_MY_PHONE_INSTANCES || 8),
      isolatedRequests: true,
    });
    // The component goes on after answering (it sends the SMS): the Worker stays alive for it.
    return host.handle(request, { waitUntil: (work) => ctx.waitUntil(work) });
  },
};

// Serves a jco-transpiled set-my-phone component on a web platform (Deno, Cloudflare Workers):
// one web Request in, one
// wasi:http/incoming-handler call, the web Response out as soon as the component sets it.
//
// A component instance runs one request at a time (it is suspended, not finished, while it
// waits on Deno KV or fetch, and a component instance must not be re-entered), so the host
// keeps a pool of instances and reuses idle ones, as `wasmtime serve
// --max-instance-reuse-count` does. After answering, the component goes on (it delivers the
// SMS); the instance returns to the pool only when its call has returned.

import { IncomingRequest, ResponseOutparam } from "./http.js";
import { makeImports, serviceEnvironment, serviceConfig } from "./imports.js";

function errorResponse(status, code, message) {
  return new Response(JSON.stringify({ code, message, details: [] }), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/**
 * @param {object} options
 * @param {Function} options.instantiate the `instantiate` export of the transpiled component
 * @param {(name: string) => Promise<WebAssembly.Module>} options.compileCore loads a core
 *   module of the transpiled output by file name
 * @param {{store: object, atomics: object}} options.keyvalue the platform's wasi:keyvalue
 * @param {() => Record<string,string>} options.env the service's settings, read per call
 * @param {typeof fetch} [options.fetch]
 * @param {number} [options.maxInstances] instances running at once (others queue)
 * @param {(line: string) => void} [options.log]
 * @param {object} [options.extraImports] interfaces beyond wasi:* (see makeImports)
 * @param {boolean} [options.isolatedRequests] each request may only wait on what it started
 *   itself (Cloudflare Workers cancels a request that waits on a promise another request
 *   resolves): a queued request then polls for an idle instance on its own timer
 */
export function createHost({
  instantiate,
  compileCore,
  keyvalue,
  env,
  fetch,
  maxInstances = 16,
  log = (line) => console.error(line),
  extraImports,
  isolatedRequests = false,
}) {
  const environment = () => serviceEnvironment(env());
  const config = () => serviceConfig(env());
  const imports = makeImports({ keyvalue, environment, config, fetch, log, extra: extraImports });
  const modules = new Map();
  const getCoreModule = (name) => {
    if (!modules.has(name)) modules.set(name, compileCore(name));
    return modules.get(name);
  };

  const idle = [];
  const waiters = [];
  const background = new Set();
  let running = 0;

  async function acquire() {
    if (idle.length) return idle.pop();
    if (running >= maxInstances && isolatedRequests) {
      while (!idle.length && running >= maxInstances) {
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      if (idle.length) return idle.pop();
    } else if (running >= maxInstances) {
      await new Promise((resolve) => waiters.push(resolve));
      if (idle.length) return idle.pop();
    }
    running++;
    try {
      return await instantiate(getCoreModule, imports);
    } catch (error) {
      running--;
      throw error;
    }
  }

  function release(instance, healthy) {
    if (healthy) idle.push(instance);
    else running--;
    const next = waiters.shift();
    if (next) next();
  }

  function handlerOf(instance) {
    return instance.incomingHandler ?? instance["wasi:http/incoming-handler@0.2.4"] ??
      Object.entries(instance).find(([k]) => k.startsWith("wasi:http/incoming-handler"))?.[1];
  }

  /**
   * The platform's fetch handler: a web Request in, a web Response out. `waitUntil` (a
   * Worker's `ctx.waitUntil`) is given this request's work after answering.
   */
  async function handle(request, { waitUntil } = {}) {
    let instance;
    try {
      instance = await acquire();
    } catch (error) {
      log(`set-my-phone: instantiating the component failed: ${error?.stack ?? error}`);
      return errorResponse(500, 13, "the component could not be started");
    }
    const outparam = new ResponseOutparam();
    const call = (async () => {
      try {
        await handlerOf(instance).handle(new IncomingRequest(request), outparam);
        release(instance, true);
      } catch (error) {
        // A trap leaves the instance unusable: drop it.
        log(`set-my-phone: the component failed: ${error?.stack ?? error}`);
        release(instance, false);
        throw error;
      }
    })();
    const done = call.then(() => undefined, () => undefined);
    waitUntil?.(done);
    background.add(done);
    done.finally(() => background.delete(done));

    const answer = await Promise.race([
      outparam.response,
      call.then(() => null, () => null),
    ]);
    if (answer?.ok) return answer.ok;
    if (answer?.error) {
      log(`set-my-phone: the component answered an error: ${JSON.stringify(answer.error)}`);
      return errorResponse(500, 13, "internal error");
    }
    return errorResponse(500, 13, "the component did not answer");
  }

  return {
    handle,
    /** Resolves when every call in progress (including work after answering) has returned. */
    async settled() {
      while (background.size) await Promise.all([...background]);
    },
    /** Instances created so far and still usable (for tests). */
    get instances() {
      return running;
    },
  };
}

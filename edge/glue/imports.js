// The import object for the transpiled component (jco `--instantiation async`): every
// wasi:* interface the shipped artifact imports, over web APIs that Deno and Cloudflare
// Workers share; the key-value store is each platform's own (edge/deno/src/keyvalue.js,
// edge/cloudflare/src/keyvalue.js), passed in as `keyvalue`.

import {
  consoleSink,
  emptyInputStream,
  InputStream,
  IoError,
  OutputStream,
  Pollable,
  poll,
  timerPollable,
} from "./io.js";
import {
  Fields,
  FutureIncomingResponse,
  FutureTrailers,
  httpErrorCode,
  IncomingBody,
  IncomingRequest,
  IncomingResponse,
  OutgoingBody,
  outgoingHandler,
  OutgoingRequest,
  OutgoingResponse,
  RequestOptions,
  ResponseOutparam,
} from "./http.js";

/**
 * Imports that wait, so jco must wrap them in WebAssembly.Suspending (`--async-imports`);
 * the `handle` export is made promising (`--async-exports`). Versions are filled in by
 * ./build from the component's own imports.
 */
export const ASYNC_IMPORTS = [
  "wasi:io/poll#poll",
  "wasi:io/poll#[method]pollable.block",
  "wasi:io/streams#[method]input-stream.blocking-read",
  "wasi:io/streams#[method]input-stream.blocking-skip",
  "wasi:io/streams#[method]output-stream.blocking-splice",
  "wasi:keyvalue/store#[method]bucket.get",
  "wasi:keyvalue/store#[method]bucket.set",
  "wasi:keyvalue/store#[method]bucket.delete",
  "wasi:keyvalue/store#[method]bucket.exists",
  "wasi:keyvalue/store#[method]bucket.list-keys",
  "wasi:keyvalue/atomics#[static]cas.new",
  "wasi:keyvalue/atomics#increment",
  "wasi:keyvalue/atomics#swap",
];
export const ASYNC_EXPORTS = ["wasi:http/incoming-handler#handle"];

/** The environment variables the service reads (docs/configuration.md). */
export function serviceEnvironment(all) {
  return Object.entries(all)
    .filter(([name]) => /^(AUTH|PHONE|SMS|TWILIO|CORS|ZITADEL)_/.test(name) || name === "KV_STORE" || name === "KV_CREATE")
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * What wasi:config/store offers (Deno Deploy keeps secrets as environment variables): every
 * setting in `all` under its lower-case name, whichever case it was set in, and `kv_create`. The
 * component lets its environment (serviceEnvironment) win over these.
 */
export function serviceConfig(all) {
  const config = Object.entries(all)
    .map(([name, value]) => [name.toLowerCase(), value])
    .filter(([name]) => /^(auth|phone|sms|twilio|cors|zitadel)_[a-z0-9_]+$/.test(name) || name === "kv_store" || name === "kv_create");
  // What the glue declares: Deno KV's atomic check and a Durable Object both swap from absent
  // exactly, so records are created by one swap (docs/storage.md); a KV_CREATE set wins.
  if (!config.some(([name]) => name === "kv_create")) config.push(["kv_create", "swap"]);
  return config.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

const random = {
  getRandomBytes(len) {
    const bytes = new Uint8Array(Number(len));
    for (let at = 0; at < bytes.length; at += 65536) {
      crypto.getRandomValues(bytes.subarray(at, at + 65536));
    }
    return bytes;
  },
  getRandomU64() {
    return crypto.getRandomValues(new BigUint64Array(1))[0];
  },
};

class ComponentExit extends Error {}

/**
 * @param {object} options
 * @param {{store: object, atomics: object}} options.keyvalue wasi:keyvalue/store and
 *   wasi:keyvalue/atomics on the platform's store
 * @param {() => [string, string][]} options.environment what wasi:cli/environment returns
 * @param {() => [string, string][]} [options.config] what wasi:config/store holds (a throw,
 *   such as `{ tag: "io", val: "why" }`, is the store's error)
 * @param {typeof fetch} [options.fetch] for wasi:http/outgoing-handler
 * @param {(line: string) => void} [options.log] component stderr/stdout lines
 * @param {object} [options.extra] more interfaces by name (e.g. a JS `set-my-phone:sms/sender`
 *   for the bare core)
 */
export function makeImports({
  keyvalue,
  environment,
  config = () => [],
  fetch,
  log = (line) => console.error(line),
  extra = {},
}) {
  const stderr = consoleSink(log);
  const interfaces = {
    "wasi:io/error": { Error: IoError },
    "wasi:io/poll": { Pollable, poll },
    "wasi:io/streams": { InputStream, OutputStream },
    "wasi:clocks/wall-clock": {
      now() {
        const ms = Date.now();
        return { seconds: BigInt(Math.floor(ms / 1000)), nanoseconds: (ms % 1000) * 1_000_000 };
      },
      resolution() {
        return { seconds: 0n, nanoseconds: 1_000_000 };
      },
    },
    "wasi:clocks/monotonic-clock": {
      now() {
        return BigInt(Math.floor(performance.now() * 1_000_000));
      },
      resolution() {
        return 1_000n;
      },
      subscribeDuration(ns) {
        return timerPollable(Number(ns) / 1_000_000);
      },
      subscribeInstant(instant) {
        return timerPollable((Number(instant) - performance.now() * 1_000_000) / 1_000_000);
      },
    },
    "wasi:random/random": random,
    "wasi:random/insecure": {
      getInsecureRandomBytes: random.getRandomBytes,
      getInsecureRandomU64: random.getRandomU64,
    },
    "wasi:random/insecure-seed": {
      insecureSeed() {
        return [random.getRandomU64(), random.getRandomU64()];
      },
    },
    "wasi:cli/environment": {
      getEnvironment: environment,
      getArguments() {
        return [];
      },
      initialCwd() {
        return undefined;
      },
    },
    // result<_, error> is a return value or a throw for jco; option's none is undefined.
    "wasi:config/store": {
      get(key) {
        return config().find(([name]) => name === key)?.[1];
      },
      getAll() {
        return config();
      },
    },
    "wasi:cli/exit": {
      exit(status) {
        throw new ComponentExit(`the component exited (${status.tag})`);
      },
    },
    "wasi:cli/stdin": { getStdin: () => emptyInputStream() },
    "wasi:cli/stdout": { getStdout: () => new OutputStream(stderr) },
    "wasi:cli/stderr": { getStderr: () => new OutputStream(stderr) },
    "wasi:cli/terminal-input": { TerminalInput: class TerminalInput {} },
    "wasi:cli/terminal-output": { TerminalOutput: class TerminalOutput {} },
    "wasi:cli/terminal-stdin": { getTerminalStdin: () => undefined },
    "wasi:cli/terminal-stdout": { getTerminalStdout: () => undefined },
    "wasi:cli/terminal-stderr": { getTerminalStderr: () => undefined },
    "wasi:filesystem/preopens": { getDirectories: () => [] },
    "wasi:http/types": {
      Fields,
      IncomingRequest,
      IncomingBody,
      FutureTrailers,
      OutgoingResponse,
      OutgoingBody,
      ResponseOutparam,
      RequestOptions,
      OutgoingRequest,
      IncomingResponse,
      FutureIncomingResponse,
      httpErrorCode,
    },
    "wasi:http/outgoing-handler": outgoingHandler({ fetch }),
    "wasi:keyvalue/store": keyvalue.store,
    "wasi:keyvalue/atomics": keyvalue.atomics,
    ...extra,
  };
  // jco looks imports up by the name the component uses, with or without its version.
  return new Proxy(interfaces, {
    get(target, name) {
      if (typeof name !== "string") return undefined;
      return target[name] ?? target[name.replace(/@[^/#]*$/, "")];
    },
    has(target, name) {
      return typeof name === "string" && (name in target || name.replace(/@[^/#]*$/, "") in target);
    },
  });
}

export { InputStream, OutputStream };

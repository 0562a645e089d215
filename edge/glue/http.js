// wasi:http (types, outgoing-handler) over the web Request/Response/fetch APIs (Deno, Workers).

import {
  emptyInputStream,
  OutputStream,
  Pollable,
  readableInputStream,
} from "./io.js";

const dispose = Symbol.dispose ?? Symbol.for("dispose");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

// RFC 9110 token characters.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function checkName(name) {
  if (!TOKEN.test(name)) throw { tag: "invalid-syntax" };
}
function checkValue(value) {
  for (const byte of value) {
    if (byte === 0 || byte === 10 || byte === 13) throw { tag: "invalid-syntax" };
  }
}

/** wasi:http/types `fields`: an ordered multimap; names compare case-insensitively. */
export class Fields {
  #entries = [];
  #immutable = false;

  constructor() {}

  static fromList(entries) {
    const fields = new Fields();
    for (const [name, value] of entries) {
      checkName(name);
      checkValue(value);
      fields.#entries.push([name, value.slice()]);
    }
    return fields;
  }

  /** Immutable fields with these entries (used for what the host hands the component). */
  static frozen(entries) {
    const fields = new Fields();
    fields.#entries = entries.map(([n, v]) => [n, v]);
    fields.#immutable = true;
    return fields;
  }

  #mutable() {
    if (this.#immutable) throw { tag: "immutable" };
  }

  get(name) {
    const lower = name.toLowerCase();
    return this.#entries.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v.slice());
  }
  has(name) {
    const lower = name.toLowerCase();
    return this.#entries.some(([n]) => n.toLowerCase() === lower);
  }
  set(name, values) {
    this.#mutable();
    checkName(name);
    values.forEach(checkValue);
    this.delete(name);
    for (const value of values) this.#entries.push([name, value.slice()]);
  }
  delete(name) {
    this.#mutable();
    checkName(name);
    const lower = name.toLowerCase();
    this.#entries = this.#entries.filter(([n]) => n.toLowerCase() !== lower);
  }
  append(name, value) {
    this.#mutable();
    checkName(name);
    checkValue(value);
    this.#entries.push([name, value.slice()]);
  }
  entries() {
    return this.#entries.map(([n, v]) => [n, v.slice()]);
  }
  clone() {
    const copy = new Fields();
    copy.#entries = this.entries();
    return copy;
  }
  /** A frozen copy, as `headers()` of a request or response returns. */
  snapshot() {
    return Fields.frozen(this.entries());
  }
  /** As web Headers (values decoded as Latin-1 compatible UTF-8). */
  toHeaders() {
    const headers = new Headers();
    for (const [name, value] of this.#entries) headers.append(name, decoder.decode(value));
    return headers;
  }
}

function headersToEntries(headers) {
  const entries = [];
  for (const [name, value] of headers) entries.push([name, encoder.encode(value)]);
  return entries;
}

const METHODS = new Set(["get", "head", "post", "put", "delete", "connect", "options", "trace", "patch"]);

function methodFromString(method) {
  const lower = method.toLowerCase();
  return METHODS.has(lower) && method === method.toUpperCase()
    ? { tag: lower }
    : { tag: "other", val: method };
}

function methodToString(method) {
  return method.tag === "other" ? method.val : method.tag.toUpperCase();
}

function schemeToString(scheme) {
  if (!scheme) return "https";
  if (scheme.tag === "HTTP") return "http";
  if (scheme.tag === "HTTPS") return "https";
  return scheme.val;
}

/** wasi:http/types `incoming-request`, made by the host from a Deno `Request`. */
export class IncomingRequest {
  #request;
  #url;
  #headers;
  #consumed = false;
  constructor(request) {
    this.#request = request;
    this.#url = new URL(request.url);
    this.#headers = headersToEntries(request.headers);
  }
  method() {
    return methodFromString(this.#request.method);
  }
  pathWithQuery() {
    return this.#url.pathname + this.#url.search;
  }
  scheme() {
    return this.#url.protocol === "https:" ? { tag: "HTTPS" } : { tag: "HTTP" };
  }
  authority() {
    return this.#url.host;
  }
  headers() {
    return Fields.frozen(this.#headers);
  }
  consume() {
    if (this.#consumed) throw undefined;
    this.#consumed = true;
    return new IncomingBody(this.#request.body);
  }
}

/** wasi:http/types `incoming-body`. */
export class IncomingBody {
  #readable;
  #taken = false;
  constructor(readable) {
    this.#readable = readable;
  }
  stream() {
    if (this.#taken) throw undefined;
    this.#taken = true;
    return this.#readable ? readableInputStream(this.#readable) : emptyInputStream();
  }
  static finish(_body) {
    return new FutureTrailers();
  }
}

/** wasi:http/types `future-trailers`: bodies from Deno have none. */
export class FutureTrailers {
  #taken = false;
  subscribe() {
    return new Pollable();
  }
  get() {
    if (this.#taken) return { tag: "err", val: undefined };
    this.#taken = true;
    return { tag: "ok", val: { tag: "ok", val: undefined } };
  }
}

/**
 * wasi:http/types `outgoing-body`: collects what the component writes into `sink`
 * (`write(bytes)`, `close()`, `abort(reason)`).
 */
export class OutgoingBody {
  #sink;
  #stream = null;
  #finished = false;
  constructor(sink) {
    this.#sink = sink;
  }
  write() {
    if (this.#stream) throw undefined;
    this.#stream = new OutputStream(this.#sink);
    return this.#stream;
  }
  static finish(body, trailers) {
    if (body.#finished) throw { tag: "internal-error", val: "body already finished" };
    body.#finished = true;
    if (trailers && trailers.entries().length) {
      // Deno.serve and fetch cannot send HTTP trailers.
      body.#sink.trailersDropped?.(trailers);
    }
    body.#sink.close();
  }
  [dispose]() {
    if (!this.#finished) {
      this.#finished = true;
      this.#sink.abort(new Error("the component dropped the body without finishing it"));
    }
  }
}

/** A sink feeding a web ReadableStream (the body of the Response Deno sends). */
function streamSink() {
  let controller;
  let closed = false;
  const readable = new ReadableStream({
    start(c) {
      controller = c;
    },
    cancel() {
      closed = true;
    },
  });
  return {
    readable,
    closed: () => closed,
    write(bytes) {
      if (closed) throw new Error("the client went away");
      controller.enqueue(bytes);
    },
    close() {
      if (!closed) {
        closed = true;
        controller.close();
      }
    },
    abort(reason) {
      if (!closed) {
        closed = true;
        controller.error(reason);
      }
    },
    trailersDropped() {
      console.warn("set-my-phone (deno): HTTP trailers are not supported here; dropped");
    },
  };
}

/** A sink that buffers a request body for fetch; `done` resolves to the bytes. */
function bufferSink() {
  const chunks = [];
  let settle;
  const done = new Promise((resolve, reject) => {
    settle = { resolve, reject };
  });
  done.catch(() => {});
  let closed = false;
  return {
    done,
    closed: () => closed,
    write(bytes) {
      chunks.push(bytes);
    },
    close() {
      if (closed) return;
      closed = true;
      const length = chunks.reduce((n, c) => n + c.length, 0);
      const all = new Uint8Array(length);
      let at = 0;
      for (const chunk of chunks) {
        all.set(chunk, at);
        at += chunk.length;
      }
      settle.resolve(all);
    },
    abort(reason) {
      if (closed) return;
      closed = true;
      settle.reject(reason);
    },
    trailersDropped() {
      console.warn("set-my-phone (deno): request trailers are not supported; dropped");
    },
  };
}

const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

/** wasi:http/types `outgoing-response`. */
export class OutgoingResponse {
  #status = 200;
  #headers;
  #sink = null;
  #body = null;
  constructor(headers) {
    this.#headers = headers;
  }
  statusCode() {
    return this.#status;
  }
  setStatusCode(status) {
    if (status < 100 || status > 599) throw undefined;
    this.#status = status;
  }
  headers() {
    return this.#headers.snapshot();
  }
  body() {
    if (this.#body) throw undefined;
    this.#sink = streamSink();
    this.#body = new OutgoingBody(this.#sink);
    return this.#body;
  }
  /** The web Response to send; its body streams what the component writes. */
  toResponse() {
    const nullBody = NULL_BODY_STATUS.has(this.#status);
    if (!this.#sink) this.body();
    if (nullBody) this.#sink.readable.cancel().catch(() => {});
    return new Response(nullBody ? null : this.#sink.readable, {
      status: this.#status,
      headers: this.#headers.toHeaders(),
    });
  }
}

/**
 * wasi:http/types `response-outparam`: the host's side is `response` (a promise of the
 * web Response, or of an error code) and `isSet()`.
 */
export class ResponseOutparam {
  #resolve;
  #set = false;
  response;
  constructor() {
    this.response = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }
  isSet() {
    return this.#set;
  }
  static set(param, response) {
    if (param.#set) return;
    param.#set = true;
    if (response.tag === "ok") {
      try {
        param.#resolve({ ok: response.val.toResponse() });
      } catch (error) {
        param.#resolve({ error: { tag: "internal-error", val: String(error?.message ?? error) } });
      }
    } else {
      param.#resolve({ error: response.val });
    }
  }
}

/** wasi:http/types `request-options` (timeouts in nanoseconds). */
export class RequestOptions {
  #connect;
  #firstByte;
  #betweenBytes;
  constructor() {}
  connectTimeout() {
    return this.#connect;
  }
  setConnectTimeout(ns) {
    this.#connect = ns;
  }
  firstByteTimeout() {
    return this.#firstByte;
  }
  setFirstByteTimeout(ns) {
    this.#firstByte = ns;
  }
  betweenBytesTimeout() {
    return this.#betweenBytes;
  }
  setBetweenBytesTimeout(ns) {
    this.#betweenBytes = ns;
  }
}

/** wasi:http/types `outgoing-request`. */
export class OutgoingRequest {
  #method = { tag: "get" };
  #pathWithQuery;
  #scheme;
  #authority;
  #headers;
  #sink = null;
  #body = null;
  constructor(headers) {
    this.#headers = headers;
  }
  method() {
    return this.#method;
  }
  setMethod(method) {
    if (method.tag === "other" && !TOKEN.test(method.val)) throw undefined;
    this.#method = method;
  }
  pathWithQuery() {
    return this.#pathWithQuery;
  }
  setPathWithQuery(path) {
    if (path !== undefined && !path.startsWith("/") && path !== "*") throw undefined;
    this.#pathWithQuery = path;
  }
  scheme() {
    return this.#scheme;
  }
  setScheme(scheme) {
    if (scheme?.tag === "other" && !/^[A-Za-z][A-Za-z0-9+.-]*$/.test(scheme.val)) throw undefined;
    this.#scheme = scheme;
  }
  authority() {
    return this.#authority;
  }
  setAuthority(authority) {
    if (authority !== undefined && /[\s/?#@]/.test(authority)) throw undefined;
    this.#authority = authority;
  }
  headers() {
    return this.#headers.snapshot();
  }
  body() {
    if (this.#body) throw undefined;
    this.#sink = bufferSink();
    this.#body = new OutgoingBody(this.#sink);
    return this.#body;
  }
  /** What fetch needs; throws an error-code for a request that cannot be sent. */
  prepare() {
    const scheme = schemeToString(this.#scheme);
    if (scheme !== "http" && scheme !== "https") throw { tag: "HTTP-protocol-error" };
    if (!this.#authority) throw { tag: "HTTP-request-URI-invalid" };
    let url;
    try {
      url = new URL(`${scheme}://${this.#authority}${this.#pathWithQuery ?? "/"}`);
    } catch {
      throw { tag: "HTTP-request-URI-invalid" };
    }
    const method = methodToString(this.#method);
    const headers = this.#headers.toHeaders();
    // fetch sets these itself and refuses some of them.
    for (const name of ["content-length", "host", "connection", "transfer-encoding"]) {
      headers.delete(name);
    }
    const body = this.#sink ? this.#sink.done : Promise.resolve(null);
    return { url, method, headers, body };
  }
}

/** wasi:http/types `incoming-response`, made from a fetch Response. */
export class IncomingResponse {
  #response;
  #consumed = false;
  constructor(response) {
    this.#response = response;
  }
  status() {
    return this.#response.status;
  }
  headers() {
    return Fields.frozen(headersToEntries(this.#response.headers));
  }
  consume() {
    if (this.#consumed) throw undefined;
    this.#consumed = true;
    return new IncomingBody(this.#response.body);
  }
  [dispose]() {
    if (!this.#consumed) this.#response.body?.cancel().catch(() => {});
  }
}

/** wasi:http/types `future-incoming-response`. */
export class FutureIncomingResponse {
  #result;
  #taken = false;
  #settled;
  constructor(promise) {
    this.#settled = promise.then(
      (response) => {
        this.#result = { tag: "ok", val: new IncomingResponse(response) };
      },
      (error) => {
        this.#result = { tag: "err", val: error };
      },
    );
  }
  subscribe() {
    return this.#result ? new Pollable() : new Pollable(this.#settled);
  }
  get() {
    if (!this.#result) return undefined;
    if (this.#taken) return { tag: "err", val: undefined };
    this.#taken = true;
    return { tag: "ok", val: this.#result };
  }
}

function fetchErrorCode(error, timedOut) {
  if (timedOut) return { tag: "connection-timeout" };
  // fetch throws "fetch failed"; the reason (refused, DNS) is in the chain of causes.
  const reasons = [];
  for (let e = error; e !== undefined && e !== null && reasons.length < 8; e = e.cause) {
    reasons.push(String(e?.message ?? e));
  }
  const message = reasons.join(": ");
  if (/refused/i.test(message)) return { tag: "connection-refused" };
  if (/dns|lookup|resolve/i.test(message)) {
    return { tag: "DNS-error", val: { rcode: undefined, infoCode: undefined } };
  }
  return { tag: "internal-error", val: message };
}

function nsToMs(ns, fallback) {
  return ns === undefined ? fallback : Math.max(1, Number(ns / 1_000_000n));
}

/**
 * wasi:http/outgoing-handler `handle` over `fetchImpl`. The body is buffered: fetch starts
 * when the component finishes it. `allow(url)` may refuse destinations.
 */
export function outgoingHandler({ fetch: fetchImpl = globalThis.fetch, allow } = {}) {
  return {
    handle(request, options) {
      const { url, method, headers, body } = request.prepare();
      if (allow && !allow(url)) throw { tag: "destination-not-found" };
      const timeoutMs = nsToMs(options?.firstByteTimeout(), 30_000);
      const response = body.then(async (bytes) => {
        const controller = new AbortController();
        let timedOut = false;
        const timer = setTimeout(() => {
          timedOut = true;
          controller.abort();
        }, timeoutMs);
        try {
          return await fetchImpl(url, {
            method,
            headers,
            body: method === "GET" || method === "HEAD" ? undefined : bytes ?? undefined,
            signal: controller.signal,
            redirect: "manual",
          });
        } catch (error) {
          throw fetchErrorCode(error, timedOut);
        } finally {
          clearTimeout(timer);
        }
      }, (error) => {
        throw { tag: "internal-error", val: `request body: ${error?.message ?? error}` };
      });
      return new FutureIncomingResponse(response);
    },
  };
}

/** wasi:http/types `http-error-code`: the host's io errors carry none. */
export function httpErrorCode(_error) {
  return undefined;
}

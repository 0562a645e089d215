// wasi:io (error, poll, streams) for a component transpiled by jco with JSPI.
//
// Every call that has to wait (`pollable.block`, `poll`, `blocking-read`, ...) returns a
// Promise; jco wraps those imports in `WebAssembly.Suspending` (see ASYNC_IMPORTS in
// imports.js), so the component's stack is suspended while Deno goes on serving.

const dispose = Symbol.dispose ?? Symbol.for("dispose");

/** wasi:io/error `error`. */
export class IoError {
  constructor(message) {
    this.message = String(message);
  }
  toDebugString() {
    return this.message;
  }
}

/** The `stream-error` a failed operation throws (jco turns it into the `err` case). */
function failed(message) {
  return { tag: "last-operation-failed", val: new IoError(message) };
}
const CLOSED = Object.freeze({ tag: "closed" });

/**
 * wasi:io/poll `pollable`: ready once `promise` settles (at once without one). `cancel`
 * runs when the component drops it first (timers are cleared so nothing lingers).
 */
export class Pollable {
  #ready = false;
  #promise;
  #cancel;
  constructor(promise, cancel) {
    if (promise === undefined) {
      this.#ready = true;
      this.#promise = Promise.resolve();
    } else {
      const settle = () => {
        this.#ready = true;
        this.#cancel = undefined;
      };
      this.#promise = Promise.resolve(promise).then(settle, settle);
      this.#cancel = cancel;
    }
  }
  ready() {
    return this.#ready;
  }
  /** Async import: resolves when ready. */
  block() {
    return this.#ready ? undefined : this.#promise;
  }
  get settled() {
    return this.#promise;
  }
  [dispose]() {
    const cancel = this.#cancel;
    this.#cancel = undefined;
    if (cancel && !this.#ready) cancel();
  }
}

/** A pollable that is ready after `ms` milliseconds; dropping it clears the timer. */
export function timerPollable(ms) {
  if (!(ms > 0)) return new Pollable();
  let timer;
  let resolve;
  const promise = new Promise((r) => {
    resolve = r;
    timer = setTimeout(r, Math.min(ms, 0x7fffffff));
  });
  return new Pollable(promise, () => {
    clearTimeout(timer);
    resolve();
  });
}

function readyIndices(list) {
  const ready = [];
  for (let i = 0; i < list.length; i++) {
    if (list[i].ready()) ready.push(i);
  }
  return new Uint32Array(ready);
}

/** wasi:io/poll `poll` (async import): waits until at least one pollable is ready. */
export async function poll(list) {
  if (list.length === 0) throw new Error("poll: empty list");
  if (!list.some((p) => p.ready())) {
    await Promise.race(list.map((p) => p.settled));
  }
  return readyIndices(list);
}

/**
 * wasi:io/streams `input-stream` over a pull source: `pull()` resolves to the next chunk
 * (Uint8Array) or null at the end; it may reject on failure.
 */
export class InputStream {
  #source;
  #buffer = null;
  #done = false;
  #error = null;
  #pending = null;
  constructor(source) {
    this.#source = source;
  }

  #fill() {
    if ((this.#buffer && this.#buffer.length) || this.#done) return undefined;
    if (!this.#pending) {
      this.#pending = Promise.resolve()
        .then(() => this.#source.pull())
        .then(
          (chunk) => {
            if (chunk === null || chunk === undefined) this.#done = true;
            else this.#buffer = chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk);
          },
          (error) => {
            this.#error = error;
            this.#done = true;
          },
        )
        .finally(() => {
          this.#pending = null;
        });
    }
    return this.#pending;
  }

  #take(len) {
    const want = Number(len);
    if (this.#buffer && this.#buffer.length) {
      const chunk = this.#buffer.subarray(0, want);
      this.#buffer = want >= this.#buffer.length ? null : this.#buffer.subarray(want);
      return chunk.slice();
    }
    if (this.#error) throw failed(this.#error?.message ?? String(this.#error));
    if (this.#done) throw CLOSED;
    return new Uint8Array(0);
  }

  read(len) {
    if (len === 0n) return new Uint8Array(0);
    const result = this.#take(len);
    if (result.length === 0) this.#fill();
    return result;
  }

  /** Async import. */
  async blockingRead(len) {
    if (len === 0n) return new Uint8Array(0);
    while (!(this.#buffer && this.#buffer.length) && !this.#done) await this.#fill();
    return this.#take(len);
  }

  skip(len) {
    return BigInt(this.read(len).length);
  }

  /** Async import. */
  async blockingSkip(len) {
    return BigInt((await this.blockingRead(len)).length);
  }

  subscribe() {
    const waiting = this.#fill();
    return waiting ? new Pollable(waiting) : new Pollable();
  }

  [dispose]() {
    this.#source.cancel?.();
  }
}

/** An input stream that is at its end at once. */
export function emptyInputStream() {
  return new InputStream({ pull: () => null });
}

/** An input stream over a web ReadableStream (request or response bodies). */
export function readableInputStream(readable) {
  if (!readable) return emptyInputStream();
  const reader = readable.getReader();
  return new InputStream({
    async pull() {
      const { value, done } = await reader.read();
      return done ? null : value;
    },
    cancel() {
      reader.cancel().catch(() => {});
    },
  });
}

/**
 * wasi:io/streams `output-stream` over a sink: `write(bytes)` takes a copy synchronously
 * (buffers grow as needed, so the stream always has room), `close()` is optional.
 */
export class OutputStream {
  #sink;
  #open = true;
  constructor(sink) {
    this.#sink = sink;
  }
  #check() {
    if (!this.#open || this.#sink.closed?.()) throw CLOSED;
  }
  checkWrite() {
    this.#check();
    return 65536n;
  }
  write(contents) {
    this.#check();
    try {
      this.#sink.write(contents.slice());
    } catch (error) {
      throw failed(error?.message ?? String(error));
    }
  }
  blockingWriteAndFlush(contents) {
    this.write(contents);
  }
  flush() {
    this.#check();
  }
  blockingFlush() {
    this.#check();
  }
  subscribe() {
    return new Pollable();
  }
  writeZeroes(len) {
    this.write(new Uint8Array(Number(len)));
  }
  blockingWriteZeroesAndFlush(len) {
    this.write(new Uint8Array(Number(len)));
  }
  splice(src, len) {
    const bytes = src.read(len);
    this.write(bytes);
    return BigInt(bytes.length);
  }
  /** Async import. */
  async blockingSplice(src, len) {
    const bytes = await src.blockingRead(len);
    this.write(bytes);
    return BigInt(bytes.length);
  }
  [dispose]() {
    this.#open = false;
  }
}

/** A sink that writes lines to the console (component stderr/stdout). */
export function consoleSink(log) {
  const decoder = new TextDecoder();
  let pending = "";
  return {
    write(bytes) {
      pending += decoder.decode(bytes, { stream: true });
      let newline;
      while ((newline = pending.indexOf("\n")) >= 0) {
        log(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
      }
      if (pending.length > 65536) {
        log(pending);
        pending = "";
      }
    },
  };
}

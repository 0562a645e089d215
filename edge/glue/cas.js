// The `cas` resource of wasi:keyvalue/atomics@0.2.0-draft2 over any store that can read a key
// with a stamp (a version, a versionstamp) and write it only if the stamp is unchanged: the
// handle remembers what it read; `swap` writes if the key still has that stamp, and a lost
// swap answers `cas-failed` with a fresh handle. Each platform's keyvalue.js says how to read
// and write (Deno KV, Durable Objects).

const dispose = Symbol.dispose ?? Symbol.for("dispose");

/**
 * @param {object} store
 * @param {(bucket, key) => Promise<{value: Uint8Array|undefined, stamp: unknown}>} store.read
 *   the value (undefined when absent) and its stamp; throws a store error
 * @param {(bucket, key, stamp, value: Uint8Array) => Promise<boolean>} store.writeIf writes
 *   `value` if the key still has `stamp`; throws a store error
 */
export function casResource({ read, writeIf }) {
  return class Cas {
    #bucket;
    #key;
    #value;
    #stamp;
    constructor(bucket, key, value, stamp) {
      this.#bucket = bucket;
      this.#key = key;
      this.#value = value;
      this.#stamp = stamp;
    }

    /** Reads the key now; the handle remembers what it saw. */
    static async new(bucket, key) {
      const { value, stamp } = await read(bucket, key);
      return new Cas(bucket, key, value, stamp);
    }

    current() {
      return this.#value?.slice();
    }

    async swap(value) {
      let written;
      try {
        written = await writeIf(this.#bucket, this.#key, this.#stamp, value.slice());
      } catch (error) {
        throw { tag: "store-error", val: error };
      }
      if (!written) {
        let fresh;
        try {
          fresh = await Cas.new(this.#bucket, this.#key);
        } catch (error) {
          throw { tag: "store-error", val: error };
        }
        throw { tag: "cas-failed", val: fresh };
      }
    }

    [dispose]() {}
  };
}

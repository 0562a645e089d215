// wasi:keyvalue/{store,atomics}@0.2.0-draft2 on Deno KV.
//
// A bucket's key `k` lives at the Deno KV key [PREFIX, bucket label, k]. Values are stored as
// Uint8Array; counters (`increment`) as bigint. Every operation that reaches Deno KV is
// async, so these are async imports for jco (see ASYNC_IMPORTS in imports.js).
//
// compare-and-swap: a `cas` handle remembers the versionstamp it read (null when the key was
// absent); `swap` commits only if the key still has that versionstamp, so a swap from
// "absent" is exclusive (one creator wins), and a failed swap returns a fresh handle.

import { casResource } from "../../glue/cas.js";

export const PREFIX = "set-my-phone";
const encoder = new TextEncoder();

/** Deno KV's limit on a value, as a clear error rather than an exception. */
const MAX_VALUE_BYTES = 65536;
const LIST_PAGE = 1000;

function storeError(error) {
  return { tag: "other", val: `deno kv: ${error?.message ?? error}` };
}

/** The bytes the component sees for a stored value. */
function asBytes(value) {
  if (value === null || value === undefined) return undefined;
  if (value instanceof Uint8Array) return value;
  if (typeof value === "bigint") return encoder.encode(value.toString());
  if (value instanceof Deno.KvU64) return encoder.encode(value.value.toString());
  return encoder.encode(JSON.stringify(value));
}

export function keyValue(kv, { labels } = {}) {
  const kvKey = (bucket, key) => [PREFIX, bucket.label, key];

  class Bucket {
    constructor(label) {
      this.label = label;
    }

    async get(key) {
      try {
        return asBytes((await kv.get(kvKey(this, key))).value);
      } catch (error) {
        throw storeError(error);
      }
    }

    async set(key, value) {
      if (value.length > MAX_VALUE_BYTES) {
        throw { tag: "other", val: `value of ${value.length} bytes is over Deno KV's 64 KiB` };
      }
      try {
        await kv.set(kvKey(this, key), value.slice());
      } catch (error) {
        throw storeError(error);
      }
    }

    async delete(key) {
      try {
        await kv.delete(kvKey(this, key));
      } catch (error) {
        throw storeError(error);
      }
    }

    async exists(key) {
      try {
        return (await kv.get(kvKey(this, key))).versionstamp !== null;
      } catch (error) {
        throw storeError(error);
      }
    }

    async listKeys(cursor) {
      try {
        const iter = kv.list({ prefix: [PREFIX, this.label] }, { limit: LIST_PAGE, cursor });
        const keys = [];
        for await (const entry of iter) keys.push(String(entry.key[2]));
        return { keys, cursor: keys.length === LIST_PAGE ? iter.cursor : undefined };
      } catch (error) {
        throw storeError(error);
      }
    }
  }

  const Cas = casResource({
    async read(bucket, key) {
      let entry;
      try {
        entry = await kv.get(kvKey(bucket, key));
      } catch (error) {
        throw storeError(error);
      }
      return { value: asBytes(entry.value), stamp: entry.versionstamp };
    },
    async writeIf(bucket, key, versionstamp, value) {
      if (value.length > MAX_VALUE_BYTES) {
        throw { tag: "other", val: "value over Deno KV's 64 KiB" };
      }
      const at = kvKey(bucket, key);
      try {
        return (await kv.atomic().check({ key: at, versionstamp }).set(at, value).commit()).ok;
      } catch (error) {
        throw storeError(error);
      }
    },
  });

  /** Atomic add: retries a check-and-set until no one else wrote in between. */
  async function increment(bucket, key, delta) {
    const at = kvKey(bucket, key);
    for (let attempt = 0; attempt < 1000; attempt++) {
      let entry;
      try {
        entry = await kv.get(at);
      } catch (error) {
        throw storeError(error);
      }
      let current;
      if (entry.value === null) current = 0n;
      else if (typeof entry.value === "bigint") current = entry.value;
      else throw { tag: "other", val: `${key} does not hold a counter` };
      const next = current + delta;
      if (next > 0x7fffffffffffffffn || next < -0x8000000000000000n) {
        throw { tag: "other", val: `${key}: counter overflow` };
      }
      let result;
      try {
        result = await kv.atomic().check(entry).set(at, next).commit();
      } catch (error) {
        throw storeError(error);
      }
      if (result.ok) return next;
      // Someone else won this round: back off a little (random, up to 2^attempt ms, max 50).
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 ** attempt)));
    }
    throw { tag: "other", val: `${key}: increment kept conflicting` };
  }

  return {
    store: {
      Bucket,
      open(identifier) {
        if (labels && !labels.includes(identifier)) throw { tag: "no-such-store" };
        return new Bucket(identifier);
      },
    },
    atomics: {
      Cas,
      increment,
      swap(cas, value) {
        return cas.swap(value);
      },
    },
  };
}

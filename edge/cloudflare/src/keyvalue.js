// wasi:keyvalue/{store,atomics}@0.2.0-draft2 on Cloudflare Durable Objects.
//
// One Durable Object per key (named by bucket and key): a Durable Object handles one call at a
// time and its storage is transactional, so a compare-and-swap checked and written inside one
// call is exact, and so is an increment. Workers KV would not do: it is eventually consistent,
// and a compare-and-swap over it cannot be correct. A key's object keeps its value and a
// version that grows with every write; a `cas` handle remembers the version it read (0: the key
// was absent), and `swap` writes only if the object still holds that version, so a swap from
// "absent" is exclusive (one creator wins). The core never lists keys (docs/storage.md), and
// objects cannot be listed cheaply: `list-keys` answers an error.

import { DurableObject } from "cloudflare:workers";
import { casResource } from "../../glue/cas.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The object that holds one key. */
export class KeyValueObject extends DurableObject {
  async read() {
    const [value, version] = await Promise.all([
      this.ctx.storage.get("value"),
      this.ctx.storage.get("version"),
    ]);
    return { value: value ?? null, version: version ?? 0 };
  }

  async write(value) {
    const version = ((await this.ctx.storage.get("version")) ?? 0) + 1;
    await this.ctx.storage.put({ value, version });
    return version;
  }

  async remove() {
    // The version stays: a handle read before the removal must not match "absent" again.
    const version = ((await this.ctx.storage.get("version")) ?? 0) + 1;
    await this.ctx.storage.delete("value");
    await this.ctx.storage.put("version", version);
  }

  /** Writes `value` if the key still has `expected` (0 = absent); answers whether it did. */
  async swap(expected, value) {
    const { version, value: current } = await this.read();
    const unchanged = expected === 0 ? current === null : current !== null && version === expected;
    if (!unchanged) return false;
    await this.ctx.storage.put({ value, version: version + 1 });
    return true;
  }

  /** Adds `delta` to the decimal counter held (absent = 0); answers the new value. */
  async increment(delta) {
    const { value } = await this.read();
    const text = value === null ? "0" : decoder.decode(value);
    if (!/^-?[0-9]+$/.test(text)) throw new Error("the key does not hold a counter");
    const next = BigInt(text) + BigInt(delta);
    if (next > 0x7fffffffffffffffn || next < -0x8000000000000000n) {
      throw new Error("counter overflow");
    }
    await this.write(encoder.encode(next.toString()));
    return next.toString();
  }
}

function storeError(error) {
  return { tag: "other", val: `durable object: ${error?.message ?? error}` };
}

/** @param {DurableObjectNamespace} namespace the binding of KeyValueObject */
export function keyValue(namespace, { labels } = {}) {
  const object = (bucket, key) => namespace.get(namespace.idFromName(`${bucket.label}\n${key}`));

  class Bucket {
    constructor(label) {
      this.label = label;
    }

    async get(key) {
      try {
        return (await object(this, key).read()).value ?? undefined;
      } catch (error) {
        throw storeError(error);
      }
    }

    async set(key, value) {
      try {
        await object(this, key).write(value.slice());
      } catch (error) {
        throw storeError(error);
      }
    }

    async delete(key) {
      try {
        await object(this, key).remove();
      } catch (error) {
        throw storeError(error);
      }
    }

    async exists(key) {
      return (await this.get(key)) !== undefined;
    }

    listKeys() {
      throw { tag: "other", val: "list-keys is not offered on Durable Objects (one object per key)" };
    }
  }

  const Cas = casResource({
    async read(bucket, key) {
      let seen;
      try {
        seen = await object(bucket, key).read();
      } catch (error) {
        throw storeError(error);
      }
      // Version 0 stands for "absent", whatever version a removed key's object has reached.
      return { value: seen.value ?? undefined, stamp: seen.value === null ? 0 : seen.version };
    },
    async writeIf(bucket, key, version, value) {
      try {
        return await object(bucket, key).swap(version, value);
      } catch (error) {
        throw storeError(error);
      }
    },
  });

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
      async increment(bucket, key, delta) {
        try {
          return BigInt(await object(bucket, key).increment(delta.toString()));
        } catch (error) {
          throw storeError(error);
        }
      },
      swap(cas, value) {
        return cas.swap(value);
      },
    },
  };
}

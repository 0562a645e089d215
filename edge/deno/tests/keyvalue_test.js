// The draft2 key-value on Deno KV directly: the guarantees the core's record creation relies
// on (atomic increment, exclusive swap from absent, fresh handle on a failed swap).

import { keyValue } from "../src/keyvalue.js";

function assertEquals(actual, expected, message) {
  const a = JSON.stringify(actual, (_, v) => (typeof v === "bigint" ? `${v}n` : v));
  const e = JSON.stringify(expected, (_, v) => (typeof v === "bigint" ? `${v}n` : v));
  if (a !== e) throw new Error(`${message}: expected ${e}, got ${a}`);
}

async function withStore(test) {
  const dir = await Deno.makeTempDir({ prefix: "set-my-phone-kv-" });
  const kv = await Deno.openKv(`${dir}/kv.sqlite3`);
  try {
    await test(keyValue(kv));
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const bytes = (text) => new TextEncoder().encode(text);
const text = (value) => (value === undefined ? undefined : new TextDecoder().decode(value));

Deno.test("bucket get/set/delete/exists/list-keys", () =>
  withStore(async ({ store }) => {
    const bucket = store.open("default");
    const other = store.open("other");
    assertEquals(await bucket.get("a"), undefined, "absent");
    assertEquals(await bucket.exists("a"), false, "absent exists");
    await bucket.set("a", bytes("1"));
    await bucket.set("b", bytes("2"));
    await other.set("c", bytes("3"));
    assertEquals(text(await bucket.get("a")), "1", "get");
    assertEquals(await bucket.exists("a"), true, "exists");
    assertEquals((await bucket.listKeys(undefined)).keys, ["a", "b"], "keys of one bucket");
    await bucket.delete("a");
    assertEquals(await bucket.get("a"), undefined, "deleted");
    assertEquals(text(await other.get("c")), "3", "buckets are separate");
  }));

Deno.test("increment is atomic under 50 concurrent callers", () =>
  withStore(async ({ store, atomics }) => {
    const bucket = store.open("default");
    assertEquals(await atomics.increment(bucket, "n", 0n), 0n, "absent counts as 0");
    const results = await Promise.all(
      Array.from({ length: 50 }, () => atomics.increment(bucket, "n", 1n)),
    );
    assertEquals(new Set(results.map(String)).size, 50, "every caller got its own value");
    assertEquals(await atomics.increment(bucket, "n", 0n), 50n, "final count");
    assertEquals(await atomics.increment(bucket, "n", -5n), 45n, "negative delta");
  }));

Deno.test("a swap from absent is exclusive; a failed swap hands back a fresh cas", () =>
  withStore(async ({ store, atomics }) => {
    const bucket = store.open("default");
    const handles = await Promise.all(
      Array.from({ length: 20 }, () => atomics.Cas.new(bucket, "rec")),
    );
    handles.forEach((h) => assertEquals(h.current(), undefined, "all read absent"));
    const outcomes = await Promise.all(handles.map((h, i) =>
      atomics.swap(h, bytes(`v${i}`)).then(() => ({ won: i }), (e) => ({ e }))
    ));
    const winners = outcomes.filter((o) => "won" in o);
    assertEquals(winners.length, 1, "exactly one creator wins");
    const stored = text(await bucket.get("rec"));
    assertEquals(stored, `v${winners[0].won}`, "the winner's value is stored");
    for (const { e } of outcomes.filter((o) => "e" in o)) {
      assertEquals(e.tag, "cas-failed", "losers get cas-failed");
      assertEquals(text(e.val.current()), stored, "with a fresh read");
    }
    // The fresh handle swaps from the value it read.
    const fresh = outcomes.find((o) => "e" in o).e.val;
    await atomics.swap(fresh, bytes("next"));
    assertEquals(text(await bucket.get("rec")), "next", "swap from a fresh handle");
  }));

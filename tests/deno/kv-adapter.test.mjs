// Deno only (needs --unstable-kv): DenoKVAdapter, the JS adapter over Deno.Kv that the JSR
// package adds (SPEC §1, §5). It runs the same parameterised adapter suite as the native
// adapters, through the native SessionStore (so through the FFI binding's JS request protocol).
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { pkg, tmpDir, removeTmpDirs, uniq } from "../target.mjs";
import { adapterSuite } from "../adapter-suite.mjs";

const { DenoKVAdapter, SessionStore, AdapterError } = pkg;

after(() => removeTmpDirs());

assert.equal(typeof DenoKVAdapter, "function", "run with SLICES_SESSION_MODULE=jsr/mod.ts");

adapterSuite("DenoKVAdapter (:memory:)", async () => {
  const adapter = await DenoKVAdapter.open(":memory:");
  return { adapter, close: () => adapter.close() };
});

adapterSuite("DenoKVAdapter (file, custom prefix)", async () => {
  const adapter = await DenoKVAdapter.open(join(tmpDir(), "sessions.kv"), { prefix: ["app", "sessions"] });
  return { adapter, close: () => adapter.close() };
});

const rec = (id, over = {}) => {
  const now = Date.now();
  return { sessionId: id, userId: "u", isAuthenticated: true, createdAt: now, expiresAt: now + 60000, lastAccessedAt: now, ...over };
};

describe("DenoKVAdapter specifics", () => {
  test("a Deno.Kv given by the caller stays open after close(); the adapter refuses further calls", async () => {
    const kv = await Deno.openKv(":memory:");
    try {
      const adapter = new DenoKVAdapter(kv);
      await adapter.set("a", rec("a"));
      await adapter.close();
      await adapter.close(); // idempotent
      await assert.rejects(() => adapter.get("a"), (e) => e instanceof AdapterError && /closed/.test(e.message));
      // The database is still usable, and holds the record under the default prefix.
      assert.equal((await kv.get(["slices-session", "session", "a"])).value.userId, "u");
    } finally {
      kv.close();
    }
  });

  test("through a store, a closed adapter's failure is an AdapterError", async () => {
    const adapter = await DenoKVAdapter.open(":memory:");
    const store = new SessionStore({ adapter, cleanupInterval: 0 });
    try {
      await adapter.close();
      await assert.rejects(() => store.createSession("u"), (e) => e instanceof AdapterError && /closed/.test(e.message));
    } finally {
      await store.close();
    }
  });

  test("two prefixes in one database are separate session spaces", async () => {
    const kv = await Deno.openKv(":memory:");
    try {
      const a = new DenoKVAdapter(kv, { prefix: ["a"] });
      const b = new DenoKVAdapter(kv, { prefix: ["b"] });
      await a.set("same-id", rec("same-id", { userId: "in-a" }));
      assert.equal(await b.get("same-id"), null);
      assert.equal(await b.cleanup(Number.MAX_SAFE_INTEGER), 0);
      assert.equal((await a.get("same-id")).userId, "in-a");
    } finally {
      kv.close();
    }
  });

  test("index entries follow the record: a changed user or expiry leaves nothing behind", async () => {
    const kv = await Deno.openKv(":memory:");
    try {
      const adapter = new DenoKVAdapter(kv);
      await adapter.set("s", rec("s", { userId: "old", expiresAt: 1000 }));
      assert.equal(await adapter.update("s", { userId: "new", expiresAt: 5000 }), true);
      assert.deepEqual(await adapter.listByUser("old"), []);
      assert.equal((await adapter.listByUser("new")).length, 1);
      assert.equal(await adapter.cleanup(2000), 0, "the old expiry index entry is gone");
      assert.equal(await adapter.cleanup(6000), 1);
      const left = [];
      for await (const entry of kv.list({ prefix: [] })) left.push(entry.key);
      assert.deepEqual(left, []);
    } finally {
      kv.close();
    }
  });

  test("large data is split across values and removed with the record", async () => {
    const kv = await Deno.openKv(":memory:");
    try {
      const adapter = new DenoKVAdapter(kv);
      const data = { blob: "é".repeat(150000) };
      await adapter.set("big", rec("big", { data }));
      assert.deepEqual((await adapter.get("big")).data, data);
      await adapter.update("big", { data: { small: true } });
      assert.deepEqual((await adapter.get("big")).data, { small: true });
      await adapter.delete("big");
      const left = [];
      for await (const entry of kv.list({ prefix: [] })) left.push(entry.key);
      assert.deepEqual(left, []);
    } finally {
      kv.close();
    }
  });

  test("concurrent updates of one session through two stores all land (versionstamp retries)", async () => {
    const adapter = await DenoKVAdapter.open(":memory:");
    const s1 = new SessionStore({ adapter, cleanupInterval: 0 });
    const s2 = new SessionStore({ adapter, cleanupInterval: 0 });
    try {
      const id = await s1.createSession(uniq("kv"), "h");
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 ? s1 : s2).updateSession(id, { handle: `h${i}` })),
      );
      assert.deepEqual(results, results.map(() => true));
      assert.match((await s1.getSession(id)).handle, /^h\d+$/);
    } finally {
      await s1.close();
      await s2.close();
      await adapter.close();
    }
  });
});

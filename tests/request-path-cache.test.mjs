// The request path of synchronous stores (memory, SQLite) answers "same record as last time,
// new timestamps" instead of the whole record when it can (core/src/reply.rs, the SessionReader
// in npm/session.js). These tests prove that what callers see never differs from a full read:
// every change made by any path shows on the next read, every returned object is the caller's
// own, and the bounds of the cache do not lose anything. Runs under Node and Deno.
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { pkg, tmpDir, removeTmpDirs } from "./target.mjs";

after(() => removeTmpDirs());

const request = (id) => ({ headers: { cookie: `_ga=GA1.2.3; slice-session=${id}; lang=en-GB` } });

function sqliteFile() {
  return join(tmpDir("slices-reply-"), "sessions.db");
}

const kinds = {
  MemoryAdapter: () => ({ adapter: new pkg.MemoryAdapter() }),
  SQLiteAdapter: () => {
    const file = sqliteFile();
    return { adapter: new pkg.SQLiteAdapter(file), file };
  },
};

for (const [kind, make] of Object.entries(kinds)) {
  describe(`request path replies on ${kind}`, () => {
    async function setup(options = {}) {
      const { adapter, file } = make();
      const store = new pkg.SessionStore({ adapter, cleanupInterval: 0, ...options });
      const close = async () => {
        await store.close();
        await adapter.close?.();
      };
      return { adapter, store, file, close };
    }

    test("every read returns the caller's own object, data included", async () => {
      const { store, close } = await setup();
      const id = await store.createSession("did:plc:a", "a.test", { prefs: { theme: "dark" }, tags: ["x"] });
      const first = await store.getSessionFromRequest(request(id));
      const second = await store.getSessionFromRequest(request(id));
      assert.notEqual(first, second);
      assert.notEqual(first.data, second.data);
      first.data.prefs.theme = "light";
      first.data.tags.push("y");
      first.handle = "changed.test";
      delete first.userId;
      for (const read of [() => store.getSessionFromRequest(request(id)), () => store.getSession(id)]) {
        const again = await read();
        assert.deepEqual(again.data, { prefs: { theme: "dark" }, tags: ["x"] });
        assert.equal(again.handle, "a.test");
        assert.equal(again.userId, "did:plc:a");
      }
      await close();
    });

    test("a read after any change shows the change", async () => {
      const { store, adapter, close } = await setup();
      const id = await store.createSession("did:plc:a", "a.test", { n: 1 });
      const other = new pkg.SessionStore({ adapter, cleanupInterval: 0 });
      const reads = [() => store.getSessionFromRequest(request(id)), () => store.getSession(id)];
      for (const read of reads) assert.deepEqual((await read()).data, { n: 1 });

      const changes = [
        [() => store.updateSession(id, { data: { n: 2 } }), (s) => assert.deepEqual(s.data, { n: 2 })],
        [() => other.updateSession(id, { handle: "b.test" }), (s) => assert.equal(s.handle, "b.test")],
        [() => adapter.update(id, { userId: "did:plc:b" }), (s) => assert.equal(s.userId, "did:plc:b")],
        [() => store.updateSession(id, { isAuthenticated: false }), (s) => assert.equal(s.isAuthenticated, false)],
        [() => store.updateSession(id, { data: undefined }), (s) => assert.equal("data" in s, false)],
        [() => store.updateSession(id, { handle: undefined }), (s) => assert.equal("handle" in s, false)],
        [() => store.updateSession(id, { createdAt: 1234 }), (s) => assert.equal(s.createdAt, 1234)],
        [() => store.updateSession(id, { expiresAt: Date.now() + 5000 }), (s) => assert.ok(s.expiresAt <= Date.now() + 5000)],
      ];
      for (const [change, check] of changes) {
        await change();
        for (const read of reads) check(await read());
      }

      const set = await adapter.get(id);
      await adapter.set(id, { ...set, data: { n: 3 }, handle: "c.test" });
      for (const read of reads) {
        const s = await read();
        assert.deepEqual(s.data, { n: 3 });
        assert.equal(s.handle, "c.test");
      }

      await store.deleteSession(id);
      for (const read of reads) assert.equal(await read(), null);
      await adapter.set(id, { ...set, data: { n: 4 } });
      for (const read of reads) assert.deepEqual((await read()).data, { n: 4 });
      await other.close();
      await close();
    });

    test("timestamps are the stored ones on every read", async () => {
      const { store, adapter, close } = await setup({ rolling: true, sessionTTL: 60_000 });
      const id = await store.createSession("did:plc:a");
      let last = 0;
      for (let i = 0; i < 5; i++) {
        const read = i % 2 ? await store.getSession(id) : await store.getSessionFromRequest(request(id));
        const stored = await adapter.get(id);
        assert.equal(read.lastAccessedAt, stored.lastAccessedAt);
        assert.equal(read.expiresAt, stored.expiresAt);
        assert.ok(read.lastAccessedAt >= last);
        last = read.lastAccessedAt;
        await new Promise((resolve) => setTimeout(resolve, 3));
      }
      const after = await store.getSessionFromRequest(request(id));
      assert.ok(after.lastAccessedAt > (await adapter.get(id)).createdAt);
      assert.equal(after.expiresAt, after.lastAccessedAt + 60_000);
      await close();
    });

    test("an expired session reads as null, also after cached reads", async () => {
      const { store, adapter, close } = await setup({ sessionTTL: 40 });
      const id = await store.createSession("did:plc:a", undefined, { n: 1 });
      assert.deepEqual((await store.getSessionFromRequest(request(id))).data, { n: 1 });
      await new Promise((resolve) => setTimeout(resolve, 60));
      assert.equal(await store.getSessionFromRequest(request(id)), null);
      assert.equal(await store.getSession(id), null);
      assert.equal(await adapter.exists(id), false);
      await close();
    });

    test("more sessions than the cache keeps, a key-like data shape, big data, odd headers", async () => {
      const { store, close } = await setup();
      const ids = [];
      // More than the reader keeps per key space (16 384, npm/session.js READER_CAPACITY).
      for (let i = 0; i < 16_500; i++) ids.push(await store.createSession(`did:plc:u${i}`, undefined, { i }));
      for (let round = 0; round < 2; round++) {
        for (let i = 0; i < ids.length; i += 1) {
          const s = await store.getSessionFromRequest(request(ids[i]));
          assert.equal(s.userId, `did:plc:u${i}`);
          assert.deepEqual(s.data, { i });
        }
      }
      const proto = await store.createSession("did:plc:p", undefined, JSON.parse('{"__proto__": {"polluted": true}, "a": [1, {"b": null}]}'));
      for (let i = 0; i < 2; i++) {
        const s = await store.getSessionFromRequest(request(proto));
        assert.equal(Object.getPrototypeOf(s.data), Object.prototype);
        assert.deepEqual(Object.keys(s.data), ["__proto__", "a"]);
        assert.deepEqual(s.data.a, [1, { b: null }]);
        assert.equal({}.polluted, undefined);
      }
      // Nesting: shallow enough to be kept, and far deeper than a copy should recurse.
      for (const depth of [60, 70, 3_900]) {
        const deep = JSON.parse("[".repeat(depth) + "]".repeat(depth));
        const deepId = await store.createSession("did:plc:deep", undefined, { deep });
        // (compared as JSON text: assert.deepEqual itself recurses too deep for 3 900 levels)
        for (let i = 0; i < 3; i++) {
          assert.equal(JSON.stringify((await store.getSessionFromRequest(request(deepId))).data), JSON.stringify({ deep }));
        }
      }
            const big = { text: "é".repeat(20_000), list: Array.from({ length: 500 }, (_, i) => i) };
      const bigId = await store.createSession("did:plc:big", "big.test", big);
      for (let i = 0; i < 3; i++) assert.deepEqual((await store.getSessionFromRequest(request(bigId))).data, big);
      const longHeader = { headers: { cookie: `pad=${"x".repeat(6000)}; slice-session=${ids[0]}` } };
      for (let i = 0; i < 3; i++) assert.equal((await store.getSessionFromRequest(longHeader)).userId, "did:plc:u0");
      // Headers around the binding's 2 KiB stack buffer, cut (were they cut) inside a 2- or
      // 3-byte character: the session cookie at the end must still be found.
      for (let bytes = 2030; bytes <= 2060; bytes++) {
        for (const wide of ["é", "€"]) {
          const width = wide === "é" ? 2 : 3;
          const n = Math.floor(bytes / (2 * width));
          const pad = "x".repeat(bytes - n * width) + wide.repeat(n);
          const header = { headers: { cookie: `pad=${pad}; slice-session=${ids[1]}` } };
          assert.equal((await store.getSessionFromRequest(header))?.userId, "did:plc:u1", `${bytes} bytes of ${wide}`);
        }
      }
            assert.equal(await store.getSessionFromRequest({ headers: {} }), null);
      assert.equal(await store.getSessionFromRequest({ headers: { cookie: "other=1" } }), null);
      assert.equal(await store.getSessionFromRequest(request("no-such-id")), null);
      await close();
    });

    test("hashIds: cached reads still carry the caller's id", async () => {
      const { store, close } = await setup({ hashIds: true });
      const id = await store.createSession("did:plc:a", undefined, { n: 1 });
      for (let i = 0; i < 3; i++) {
        assert.equal((await store.getSessionFromRequest(request(id))).sessionId, id);
        assert.equal((await store.getSession(id)).sessionId, id);
      }
      await close();
    });

    test("a closed store rejects reads that were cached", async () => {
      const { store, close } = await setup();
      const id = await store.createSession("did:plc:a");
      await store.getSessionFromRequest(request(id));
      await store.close();
      await assert.rejects(store.getSessionFromRequest(request(id)), pkg.SessionStoreClosedError);
      await assert.rejects(store.getSession(id), pkg.SessionStoreClosedError);
      await close();
    });
  });
}

test("SQLite: a change written through another connection to the file shows on the next read", async () => {
  const file = sqliteFile();
  const adapter = new pkg.SQLiteAdapter(file);
  const store = new pkg.SessionStore({ adapter, cleanupInterval: 0 });
  const id = await store.createSession("did:plc:a", "a.test", { n: 1 });
  assert.deepEqual((await store.getSessionFromRequest(request(id))).data, { n: 1 });
  const writer = new pkg.SQLiteAdapter(file);
  await writer.update(id, { data: { n: 2 }, handle: "b.test" });
  const s = await store.getSessionFromRequest(request(id));
  assert.deepEqual(s.data, { n: 2 });
  assert.equal(s.handle, "b.test");
  await writer.delete(id);
  assert.equal(await store.getSessionFromRequest(request(id)), null);
  await writer.close();
  await store.close();
  await adapter.close();
});

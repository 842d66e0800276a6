// SPEC §5 custom adapters and §7 faults: what the native store hands a JS adapter, what it
// accepts back, and how a failing adapter is reported (AdapterError, never a crash).
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { pkg, isAdapterError, sleep } from "./target.mjs";
import { MapAdapter, FullMapAdapter } from "./custom-adapters.mjs";

const { SessionStore, SessionError } = pkg;

const stores = [];
const mk = (adapter, opts = {}) => {
  const s = new SessionStore({ adapter, cleanupInterval: 0, ...opts });
  stores.push(s);
  return s;
};
after(async () => {
  for (const s of stores) await s.close();
});

describe("what the store hands a custom adapter", () => {
  test("createSession calls set(id, record) with the original's record shape (data as an object)", async () => {
    const adapter = new MapAdapter();
    const store = mk(adapter, { generateId: () => "fixed-id" });
    const before = Date.now();
    assert.equal(await store.createSession("u1", "h1", { a: [1, { b: 2 }] }), "fixed-id");
    const stored = adapter.rows.get("fixed-id");
    assert.ok(stored, "set must have been called with the new id");
    assert.ok(stored.createdAt >= before);
    assert.deepStrictEqual(stored, {
      sessionId: "fixed-id",
      userId: "u1",
      handle: "h1",
      isAuthenticated: true,
      data: { a: [1, { b: 2 }] },
      createdAt: stored.createdAt,
      expiresAt: stored.createdAt + 2592000000,
      lastAccessedAt: stored.createdAt,
    });
    for (const k of ["createdAt", "expiresAt", "lastAccessedAt"]) assert.equal(typeof stored[k], "number");
    assert.deepStrictEqual(adapter.calls.filter((c) => c[0] === "set"), [["set", "fixed-id"]]);
  });

  test("without handle/data, the record handed to set has them undefined", async () => {
    const adapter = new MapAdapter();
    const store = mk(adapter, { generateId: () => "bare" });
    await store.createSession("u");
    const stored = adapter.rows.get("bare");
    assert.equal(stored.handle, undefined);
    assert.equal(stored.data, undefined);
  });

  test("updateSession hands update(id, partial) the changes", async () => {
    const adapter = new MapAdapter();
    const store = mk(adapter, { generateId: () => "upd" });
    await store.createSession("u", "h", { a: 1 });
    assert.equal(await store.updateSession("upd", { handle: "h2", data: { z: true } }), true);
    assert.deepStrictEqual(adapter.calls.filter((c) => c[0] === "update"), [["update", "upd"]]);
    assert.equal(adapter.rows.get("upd").handle, "h2");
    assert.deepStrictEqual(adapter.rows.get("upd").data, { z: true });
  });

  test("store.cleanup() calls adapter.cleanup(now) and resolves to its count", async () => {
    const adapter = new MapAdapter();
    const store = mk(adapter);
    const now = Date.now();
    for (const id of ["e1", "e2"]) adapter.rows.set(id, { sessionId: id, userId: "u", isAuthenticated: true, createdAt: 1, expiresAt: now - 100, lastAccessedAt: 1 });
    adapter.rows.set("live", { sessionId: "live", userId: "u", isAuthenticated: true, createdAt: 1, expiresAt: now + 100000, lastAccessedAt: 1 });
    const before = Date.now();
    assert.equal(await store.cleanup(), 2);
    const after_ = Date.now();
    const call = adapter.calls.find((c) => c[0] === "cleanup");
    assert.equal(typeof call[1], "number");
    assert.ok(call[1] >= before && call[1] <= after_, `cleanup(${call[1]}) with now in [${before}, ${after_}]`);
    assert.deepStrictEqual([...adapter.rows.keys()], ["live"]);
  });

  test("getSession of an expired record calls delete(id)", async () => {
    const adapter = new MapAdapter();
    const store = mk(adapter);
    adapter.rows.set("old", { sessionId: "old", userId: "u", isAuthenticated: true, createdAt: 1, expiresAt: Date.now() - 1, lastAccessedAt: 1 });
    assert.equal(await store.getSession("old"), null);
    assert.ok(adapter.calls.some((c) => c[0] === "delete" && c[1] === "old"));
    assert.equal(adapter.rows.has("old"), false);
  });

  test("deleteUserSessions passes except to deleteByUser", async () => {
    const adapter = new FullMapAdapter();
    const store = mk(adapter);
    const a = await store.createSession("du");
    const b = await store.createSession("du");
    assert.equal(await store.deleteUserSessions("du", { except: b }), 1);
    assert.deepStrictEqual(adapter.calls.filter((c) => c[0] === "deleteByUser"), [["deleteByUser", "du", b]]);
    assert.equal(adapter.rows.has(a), false);
    assert.equal(adapter.rows.has(b), true);
  });

  test("null handle/data from a custom adapter come out as absent keys", async () => {
    const adapter = new MapAdapter();
    const store = mk(adapter);
    const now = Date.now();
    adapter.rows.set("nulls", { sessionId: "nulls", userId: "u", handle: null, data: null, isAuthenticated: true, createdAt: now, expiresAt: now + 60000, lastAccessedAt: now });
    const s = await store.getSession("nulls");
    assert.equal("handle" in s, false, `handle: ${JSON.stringify(s.handle)}`);
    assert.equal("data" in s, false, `data: ${JSON.stringify(s.data)}`);
  });

  test("a plain object literal (not a class) works as an adapter", async () => {
    const rows = new Map();
    const adapter = {
      get: async (id) => (rows.has(id) ? structuredClone(rows.get(id)) : null),
      set: async (id, d) => void rows.set(id, structuredClone(d)),
      update: async (id, d) => (rows.has(id) ? (rows.set(id, { ...rows.get(id), ...d }), true) : false),
      delete: async (id) => void rows.delete(id),
      cleanup: async () => 0,
      exists: async (id) => rows.has(id),
    };
    const store = mk(adapter);
    const id = await store.createSession("lit", "h");
    assert.equal((await store.getSession(id)).handle, "h");
  });
});

describe("a failing custom adapter", () => {
  class ThrowingAdapter extends MapAdapter {
    get() {
      throw new Error("sync-get-boom");
    }
    async set() {
      throw new Error("async-set-boom");
    }
    update() {
      return Promise.reject(new Error("update-boom"));
    }
    async delete() {
      throw new Error("delete-boom");
    }
    async cleanup() {
      throw new Error("cleanup-boom");
    }
    exists() {
      throw new Error("exists-boom");
    }
  }

  const expectAdapterError = (fragment) => (e) => {
    isAdapterError(e);
    assert.ok(e.message.includes(fragment), `message ${JSON.stringify(e.message)} should contain ${JSON.stringify(fragment)}`);
    return true;
  };

  test("a synchronous throw in get: getSession rejects with AdapterError carrying the message", async () => {
    const store = mk(new ThrowingAdapter());
    const p = store.getSession("x");
    assert.ok(p instanceof Promise);
    await assert.rejects(p, expectAdapterError("sync-get-boom"));
  });

  test("a rejection in set: createSession rejects with AdapterError", async () => {
    // createSession asks exists(id) first (a new id never overwrites a session), then set.
    class SetThrowingAdapter extends ThrowingAdapter {
      async exists() {
        return false;
      }
    }
    await assert.rejects(() => mk(new SetThrowingAdapter()).createSession("u"), expectAdapterError("async-set-boom"));
  });

  test("a rejection in exists: createSession rejects with AdapterError and writes nothing", async () => {
    await assert.rejects(() => mk(new ThrowingAdapter()).createSession("u"), expectAdapterError("exists-boom"));
  });

  test("a rejection in update: updateSession rejects with AdapterError", async () => {
    await assert.rejects(() => mk(new ThrowingAdapter()).updateSession("x", { handle: "h" }), expectAdapterError("update-boom"));
  });

  test("a rejection in delete: deleteSession rejects with AdapterError", async () => {
    await assert.rejects(() => mk(new ThrowingAdapter()).deleteSession("x"), expectAdapterError("delete-boom"));
  });

  test("a rejection in cleanup: store.cleanup() rejects with AdapterError", async () => {
    await assert.rejects(() => mk(new ThrowingAdapter()).cleanup(), expectAdapterError("cleanup-boom"));
  });

  test("getSessionFromRequest and getCurrentUser propagate the adapter failure as AdapterError", async () => {
    const store = mk(new ThrowingAdapter());
    const req = { headers: { cookie: "slice-session=abc" } };
    await assert.rejects(() => store.getSessionFromRequest(req), expectAdapterError("sync-get-boom"));
  });

  test("a rejection with a non-Error value is still an AdapterError naming it", async () => {
    class StringRejecter extends MapAdapter {
      get() {
        return Promise.reject("plain-string-reason");
      }
    }
    await assert.rejects(() => mk(new StringRejecter()).getSession("x"), expectAdapterError("plain-string-reason"));
  });

  test("an adapter returning something that is not a record gives AdapterError", async () => {
    class Garbage extends MapAdapter {
      async get() {
        return 42;
      }
    }
    await assert.rejects(() => mk(new Garbage()).getSession("x"), isAdapterError);
    class BadRecord extends MapAdapter {
      async get(id) {
        return { sessionId: id, userId: 7, isAuthenticated: "yes", createdAt: "soon" };
      }
    }
    await assert.rejects(() => mk(new BadRecord()).getSession("x"), isAdapterError);
  });

  test("an adapter missing a required method is rejected (at construction or on use) with a clear error", async () => {
    const incomplete = { get: async () => null };
    let store;
    try {
      store = new SessionStore({ adapter: incomplete, cleanupInterval: 0 });
    } catch (e) {
      assert.ok(e instanceof TypeError, `expected TypeError, got ${e?.constructor?.name}`);
      assert.match(e.message, /adapter/);
      return;
    }
    stores.push(store);
    await assert.rejects(() => store.createSession("u"), (e) => e instanceof SessionError || e instanceof TypeError);
  });

  test("a slow adapter is awaited (no premature resolution)", async () => {
    class Slow extends MapAdapter {
      async get(id) {
        await sleep(100);
        return super.get(id);
      }
    }
    const adapter = new Slow();
    const store = mk(adapter);
    const id = await store.createSession("slow-user");
    const started = Date.now();
    const s = await store.getSession(id);
    assert.ok(Date.now() - started >= 90);
    assert.equal(s.userId, "slow-user");
  });

  test("the process keeps running and a healthy store still works", async () => {
    const store = mk(new FullMapAdapter());
    const id = await store.createSession("healthy");
    assert.equal((await store.getSession(id)).userId, "healthy");
  });
});

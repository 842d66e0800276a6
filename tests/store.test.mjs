// SPEC §3 and §7: SessionStore defaults, ids, argument validation, close(), getCurrentUser.
// Behaviour that depends on the storage (getSession, updateSession, ...) is in the
// parameterised adapter suite (adapter-suite.mjs), run on every adapter.
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { pkg, UUID_V4_RE, DEFAULT_TTL } from "./target.mjs";

const { SessionStore, MemoryAdapter, SessionError, SessionStoreClosedError } = pkg;

// Each describe block owns the stores it makes and closes them in its own `after` (a store made
// while another block's tests run must not be closed by that block).
function storeMaker() {
  const stores = [];
  const mk = (opts = {}) => {
    const adapter = opts.adapter ?? new MemoryAdapter();
    const store = new SessionStore({ cleanupInterval: 0, ...opts, adapter });
    stores.push(store);
    return { store, adapter };
  };
  const closeAll = async () => {
    for (const s of stores) await s.close();
  };
  return { mk, closeAll };
}

const reqWith = (cookie) => new Request("http://localhost/", { headers: { cookie } });

describe("SessionStore defaults", () => {
  const { mk, closeAll } = storeMaker();
  after(closeAll);

  test("createSession: record shape, default TTL of 30 days", async () => {
    const { store, adapter } = mk();
    const before = Date.now();
    const id = await store.createSession("user-1", "alice.test", { theme: "dark" });
    const after_ = Date.now();
    assert.equal(typeof id, "string");
    const rec = await adapter.get(id);
    assert.ok(rec.createdAt >= before && rec.createdAt <= after_, `createdAt ${rec.createdAt} in [${before}, ${after_}]`);
    assert.deepStrictEqual(rec, {
      sessionId: id,
      userId: "user-1",
      handle: "alice.test",
      isAuthenticated: true,
      data: { theme: "dark" },
      createdAt: rec.createdAt,
      expiresAt: rec.createdAt + DEFAULT_TTL,
      lastAccessedAt: rec.createdAt,
    });
  });

  test("createSession without handle and data: the keys are absent", async () => {
    const { store, adapter } = mk();
    const id = await store.createSession("user-2");
    const rec = await adapter.get(id);
    assert.equal("handle" in rec, false);
    assert.equal("data" in rec, false);
    assert.deepStrictEqual(Object.keys(rec).sort(), ["createdAt", "expiresAt", "isAuthenticated", "lastAccessedAt", "sessionId", "userId"]);
    const got = await store.getSession(id);
    assert.equal("handle" in got, false);
    assert.equal("data" in got, false);
  });

  test("createSession with data but no handle", async () => {
    const { store } = mk();
    const id = await store.createSession("user-3", undefined, { a: 1 });
    const got = await store.getSession(id);
    assert.equal("handle" in got, false);
    assert.deepStrictEqual(got.data, { a: 1 });
  });

  test("default ids are lower-case hyphenated v4 UUIDs, unique", async () => {
    const { store } = mk();
    const ids = await Promise.all(Array.from({ length: 200 }, (_, i) => store.createSession(`u${i}`)));
    for (const id of ids) assert.match(id, UUID_V4_RE);
    assert.equal(new Set(ids).size, 200);
  });

  test("generateId is used for new ids", async () => {
    let n = 0;
    const { store, adapter } = mk({ generateId: () => `custom-${++n}` });
    assert.equal(await store.createSession("u"), "custom-1");
    assert.equal(await store.createSession("u"), "custom-2");
    assert.equal((await adapter.get("custom-2")).sessionId, "custom-2");
  });

  test("a throwing generateId rejects createSession (no crash, nothing stored)", async () => {
    const adapter = new MemoryAdapter();
    const { store } = mk({
      adapter,
      generateId: () => {
        throw new Error("no ids today");
      },
    });
    await assert.rejects(() => store.createSession("u"), (e) => e instanceof Error && e.message.includes("no ids today"));
    assert.equal(adapter.size(), 0);
  });

  test("custom sessionTTL", async () => {
    const { store, adapter } = mk({ sessionTTL: 5000 });
    const id = await store.createSession("u");
    const rec = await adapter.get(id);
    assert.equal(rec.expiresAt - rec.createdAt, 5000);
  });

  test("getCurrentUser with a session: sessionId, sub, handle, isAuthenticated", async () => {
    const { store } = mk();
    const id = await store.createSession("did:plc:abc", "alice.test", { x: 1 });
    assert.deepStrictEqual(await store.getCurrentUser(reqWith(`slice-session=${id}`)), {
      sessionId: id,
      sub: "did:plc:abc",
      handle: "alice.test",
      isAuthenticated: true,
    });
  });

  test("getCurrentUser omits handle when absent", async () => {
    const { store } = mk();
    const id = await store.createSession("did:plc:nohandle");
    const user = await store.getCurrentUser(reqWith(`slice-session=${id}`));
    assert.deepStrictEqual(user, { sessionId: id, sub: "did:plc:nohandle", isAuthenticated: true });
    assert.equal("handle" in user, false);
  });

  test("getCurrentUser reports the session's isAuthenticated", async () => {
    const { store } = mk();
    const id = await store.createSession("u-anon", "h");
    assert.equal(await store.updateSession(id, { isAuthenticated: false }), true);
    assert.deepStrictEqual(await store.getCurrentUser(reqWith(`slice-session=${id}`)), {
      sessionId: id,
      sub: "u-anon",
      handle: "h",
      isAuthenticated: false,
    });
  });

  test("getCurrentUser without a valid session is exactly { isAuthenticated: false }", async () => {
    const { store, adapter } = mk();
    assert.deepStrictEqual(await store.getCurrentUser(new Request("http://localhost/")), { isAuthenticated: false });
    assert.deepStrictEqual(await store.getCurrentUser(reqWith("slice-session=nope")), { isAuthenticated: false });
    assert.deepStrictEqual(await store.getCurrentUser(reqWith("other=1")), { isAuthenticated: false });
    assert.deepStrictEqual(await store.getCurrentUser({ headers: {} }), { isAuthenticated: false });
    const now = Date.now();
    await adapter.set("expired-1", {
      sessionId: "expired-1",
      userId: "u",
      isAuthenticated: true,
      createdAt: now - 10000,
      expiresAt: now - 1,
      lastAccessedAt: now - 10000,
    });
    assert.deepStrictEqual(await store.getCurrentUser(reqWith("slice-session=expired-1")), { isAuthenticated: false });
  });

  test("getCurrentUser uses the custom cookieName", async () => {
    const { store } = mk({ cookieName: "sid" });
    const id = await store.createSession("u-cn", "h");
    assert.deepStrictEqual(await store.getCurrentUser(reqWith(`slice-session=${id}`)), { isAuthenticated: false });
    assert.deepStrictEqual(await store.getCurrentUser(reqWith(`sid=${id}`)), {
      sessionId: id,
      sub: "u-cn",
      handle: "h",
      isAuthenticated: true,
    });
  });

  test("deleteSession resolves to undefined, also when missing", async () => {
    const { store, adapter } = mk();
    const id = await store.createSession("u");
    assert.equal(await store.deleteSession(id), undefined);
    assert.equal(await adapter.exists(id), false);
    assert.equal(await store.deleteSession(id), undefined);
    assert.equal(await store.deleteSession("never-existed"), undefined);
  });
});

describe("argument validation (TypeError naming the argument)", () => {
  const { mk, closeAll } = storeMaker();
  const { store } = mk();
  after(closeAll);

  const isTypeErrorNaming = (re) => (e) => {
    assert.ok(e instanceof TypeError, `expected a TypeError, got ${e?.constructor?.name}: ${e?.message}`);
    assert.match(e.message, re);
    return true;
  };

  test("new SessionStore() and new SessionStore({}) throw a TypeError naming adapter", () => {
    assert.throws(() => new SessionStore(), isTypeErrorNaming(/adapter/));
    assert.throws(() => new SessionStore({}), isTypeErrorNaming(/adapter/));
    assert.throws(() => new SessionStore({ adapter: null }), isTypeErrorNaming(/adapter/));
    assert.throws(() => new SessionStore({ adapter: 42 }), isTypeErrorNaming(/adapter/));
  });

  test("createSession(123) rejects with a TypeError naming userId", async () => {
    const p = store.createSession(123);
    assert.ok(p instanceof Promise, "createSession must return a Promise, not throw synchronously");
    await assert.rejects(p, isTypeErrorNaming(/userId/));
    await assert.rejects(() => store.createSession(), isTypeErrorNaming(/userId/));
    await assert.rejects(() => store.createSession(null), isTypeErrorNaming(/userId/));
  });

  test("createSession with non-object data rejects with a TypeError naming data", async () => {
    const p = store.createSession("u", "h", "not-an-object");
    assert.ok(p instanceof Promise);
    await assert.rejects(p, isTypeErrorNaming(/data/));
    await assert.rejects(() => store.createSession("u", "h", 5), isTypeErrorNaming(/data/));
  });

  test("createSession with a non-string handle rejects with a TypeError naming handle", async () => {
    await assert.rejects(() => store.createSession("u", 42), isTypeErrorNaming(/handle/));
  });

  test("getSession(42) rejects with a TypeError naming the id", async () => {
    const p = store.getSession(42);
    assert.ok(p instanceof Promise, "getSession must return a Promise, not throw synchronously");
    await assert.rejects(p, isTypeErrorNaming(/sessionId|\bid\b/));
    await assert.rejects(() => store.getSession(42), TypeError);
    await assert.rejects(() => store.getSession(), isTypeErrorNaming(/sessionId|\bid\b/));
  });

  test("updateSession(id, 5) rejects with a TypeError naming updates", async () => {
    const id = await store.createSession("u");
    const p = store.updateSession(id, 5);
    assert.ok(p instanceof Promise);
    await assert.rejects(p, isTypeErrorNaming(/updates/));
    await assert.rejects(() => store.updateSession(id, "x"), isTypeErrorNaming(/updates/));
    await assert.rejects(() => store.updateSession(7, {}), isTypeErrorNaming(/sessionId|\bid\b/));
  });

  test("deleteSession / regenerateSession with a number id reject with TypeError", async () => {
    const p = store.deleteSession(1);
    assert.ok(p instanceof Promise);
    await assert.rejects(p, isTypeErrorNaming(/sessionId|\bid\b/));
    await assert.rejects(() => store.regenerateSession(1), isTypeErrorNaming(/sessionId|\bid\b/));
  });

  test("listUserSessions / deleteUserSessions with a number user id reject with TypeError", async () => {
    await assert.rejects(() => store.listUserSessions(1), isTypeErrorNaming(/userId/));
    await assert.rejects(() => store.deleteUserSessions(1), isTypeErrorNaming(/userId/));
  });

  test("the store still works after argument errors", async () => {
    const id = await store.createSession("still-alive");
    assert.equal((await store.getSession(id)).userId, "still-alive");
  });
});

describe("close() and Symbol.asyncDispose", () => {
  const { mk, closeAll } = storeMaker();
  after(closeAll);

  const closedCheck = (e) => {
    assert.ok(e instanceof SessionStoreClosedError, `expected SessionStoreClosedError, got ${e?.constructor?.name}: ${e?.message}`);
    assert.ok(e instanceof SessionError);
    assert.ok(e instanceof Error);
    assert.equal(e.name, "SessionStoreClosedError");
    return true;
  };

  async function assertAllRejectClosed(store, id) {
    const calls = {
      createSession: () => store.createSession("u"),
      getSession: () => store.getSession(id),
      updateSession: () => store.updateSession(id, { handle: "x" }),
      deleteSession: () => store.deleteSession(id),
      getSessionFromRequest: () => store.getSessionFromRequest(reqWith(`slice-session=${id}`)),
      getCurrentUser: () => store.getCurrentUser(reqWith(`slice-session=${id}`)),
      cleanup: () => store.cleanup(),
      listUserSessions: () => store.listUserSessions("u"),
      deleteUserSessions: () => store.deleteUserSessions("u"),
      regenerateSession: () => store.regenerateSession(id),
    };
    for (const [name, call] of Object.entries(calls)) {
      const p = call();
      assert.ok(p instanceof Promise, `${name} after close must return a Promise`);
      await assert.rejects(p, closedCheck, `${name} after close`);
    }
  }

  test("after close(), every async method rejects with SessionStoreClosedError", async () => {
    const { store, adapter } = mk();
    const id = await store.createSession("u", "h");
    await store.close();
    await assertAllRejectClosed(store, id);
    // the store does not close the adapter (it may be shared)
    assert.equal((await adapter.get(id)).userId, "u");
  });

  test("close() is idempotent", async () => {
    const { store } = mk();
    await store.close();
    await store.close();
    await assertAllRejectClosed(store, "x");
  });

  test("the cookie methods keep working after close()", async () => {
    const { store } = mk();
    await store.close();
    assert.equal(store.createSessionCookie("abc"), "slice-session=abc; Max-Age=2592000; Path=/; HttpOnly; Secure; SameSite=lax");
    assert.equal(store.createLogoutCookie(), "slice-session=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=lax");
  });

  test("an adapter shared by two stores keeps working when one store closes", async () => {
    const adapter = new MemoryAdapter();
    const { store: a } = mk({ adapter });
    const { store: b } = mk({ adapter });
    const id = await a.createSession("shared");
    await a.close();
    assert.equal((await b.getSession(id)).userId, "shared");
  });

  test("Symbol.asyncDispose closes the store", async () => {
    assert.equal(typeof Symbol.asyncDispose, "symbol", "the runtime must define Symbol.asyncDispose");
    const { store } = mk();
    assert.equal(typeof store[Symbol.asyncDispose], "function");
    const r = store[Symbol.asyncDispose]();
    assert.ok(r instanceof Promise, "Symbol.asyncDispose must return a Promise");
    await r;
    await assert.rejects(() => store.getSession("x"), closedCheck);
    await store.close(); // still idempotent after dispose
  });
});

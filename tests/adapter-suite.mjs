// The parameterised adapter suite: SPEC §2, §3 and §5 behaviour that depends on the storage,
// run on every adapter (Memory, SQLite file, SQLite ":memory:", PostgreSQL, a custom JS
// adapter). Each *.test.mjs file that imports this calls `adapterSuite(...)`.
//
// Every test uses ids and user ids unique to the test (`uniq()`), so that the PostgreSQL table,
// shared by all test files and by concurrent runs, never makes a result depend on another test.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { pkg, uniq, DEFAULT_TTL, UUID_V4_RE } from "./target.mjs";

const { SessionStore, SessionError } = pkg;

/** Unicode and SQL-injection strings that must round-trip exactly (SPEC §7). */
export const NASTY_STRINGS = [
  "plain-ascii",
  "emoji 😀👩‍👩‍👧‍👦🏳️‍🌈",
  "مرحبا بالعالم (RTL) שלום",
  "combining e\u0301 a\u0308 o\u0302\u0323",
  "astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𠜎𠜱 \u{10FFFD}",
  "'; DROP TABLE sessions; --",
  '" OR 1=1 --',
  "\\",
  "%_",
  "\\' \\\" \\\\ ' \"",
  "$1 $$ ? :name @p0",
  "tab\tnewline\ncr\r",
  "zero-width \u200b\u200d\ufeff",
  "",
];

const USER_OPS = ["listUserSessions", "deleteUserSessions"];

function record(overrides = {}) {
  const now = Date.now();
  return {
    sessionId: overrides.sessionId,
    userId: "u",
    isAuthenticated: true,
    createdAt: now,
    expiresAt: now + 3600000,
    lastAccessedAt: now,
    ...overrides,
  };
}

function assertNumbers(rec) {
  for (const k of ["createdAt", "expiresAt", "lastAccessedAt"]) {
    assert.equal(typeof rec[k], "number", `${k} must be a JS number, got ${typeof rec[k]}`);
    assert.ok(Number.isSafeInteger(rec[k]), `${k} must be an integer, got ${rec[k]}`);
  }
  assert.equal(typeof rec.isAuthenticated, "boolean", `isAuthenticated must be a boolean, got ${typeof rec.isAuthenticated}`);
}

/**
 * @param {string} name
 * @param {() => Promise<{ adapter: any, close?: () => Promise<void> }>} factory
 * @param {{ userOps?: boolean, sharedTable?: boolean, selfExpiring?: boolean }} caps userOps: supports
 *   listByUser/deleteByUser; sharedTable: other processes may write the same storage concurrently
 *   (PostgreSQL); selfExpiring: the storage drops a record itself once it expires (Redis: key TTL =
 *   expiresAt), so an expired record is never read back and cleanup() only finds records that
 *   expire before its time but have not expired yet (docs/redis.md)
 */
export function adapterSuite(name, factory, caps = {}) {
  const userOps = caps.userOps ?? true;
  const sharedTable = caps.sharedTable ?? false;
  const selfExpiring = caps.selfExpiring ?? false;

  describe(`adapter suite: ${name}`, () => {
    let adapter;
    let closeAdapter;
    const stores = [];
    const mkStore = (opts = {}) => {
      const s = new SessionStore({ adapter, cleanupInterval: 0, ...opts });
      stores.push(s);
      return s;
    };

    before(async () => {
      const made = await factory();
      adapter = made.adapter;
      closeAdapter = made.close;
    });

    after(async () => {
      for (const s of stores) await s.close();
      if (closeAdapter) await closeAdapter();
    });

    // ----------------------------------------------------------------- adapter methods

    describe("adapter methods", () => {
      test("get of a missing id is null; exists is false", async () => {
        const id = uniq("missing");
        assert.equal(await adapter.get(id), null);
        assert.equal(await adapter.exists(id), false);
      });

      test("set then get returns the full record with JS numbers", async () => {
        const id = uniq("set");
        const rec = record({ sessionId: id, userId: uniq("user"), handle: "alice.test", data: { a: 1, nested: { b: [1, "two", null, true] } } });
        assert.equal(await adapter.set(id, rec), undefined);
        const got = await adapter.get(id);
        assert.deepStrictEqual(got, rec);
        assertNumbers(got);
        assert.equal(await adapter.exists(id), true);
      });

      test("absent handle and data are absent keys (never null)", async () => {
        const id = uniq("absent");
        await adapter.set(id, record({ sessionId: id }));
        const got = await adapter.get(id);
        assert.equal("handle" in got, false, `handle should be absent, got ${JSON.stringify(got.handle)}`);
        assert.equal("data" in got, false, `data should be absent, got ${JSON.stringify(got.data)}`);
      });

      test("isAuthenticated false round-trips", async () => {
        const id = uniq("unauth");
        await adapter.set(id, record({ sessionId: id, isAuthenticated: false }));
        assert.equal((await adapter.get(id)).isAuthenticated, false);
      });

      test("timestamps at the edges round-trip exactly", async () => {
        const id = uniq("ts");
        const rec = record({ sessionId: id, createdAt: 0, lastAccessedAt: 1, expiresAt: 8640000000000000 });
        await adapter.set(id, rec);
        assert.deepStrictEqual(await adapter.get(id), rec);
        const id2 = uniq("ts");
        const rec2 = record({ sessionId: id2, createdAt: 1700000000123, lastAccessedAt: 1700000000999, expiresAt: Number.MAX_SAFE_INTEGER });
        await adapter.set(id2, rec2);
        assert.deepStrictEqual(await adapter.get(id2), rec2);
      });

      test("set replaces an existing record (insert or replace)", async () => {
        const id = uniq("replace");
        await adapter.set(id, record({ sessionId: id, userId: "first", handle: "h1", data: { v: 1 } }));
        const second = record({ sessionId: id, userId: "second" });
        await adapter.set(id, second);
        assert.deepStrictEqual(await adapter.get(id), second);
      });

      test("update merges shallowly, data replaced whole, resolves true", async () => {
        const id = uniq("update");
        const rec = record({ sessionId: id, userId: "u1", handle: "h1", data: { a: 1, b: { c: 2 } } });
        await adapter.set(id, rec);
        assert.equal(await adapter.update(id, { handle: "h2", data: { b: { d: 3 } } }), true);
        assert.deepStrictEqual(await adapter.get(id), { ...rec, handle: "h2", data: { b: { d: 3 } } });
        assert.equal(await adapter.update(id, { expiresAt: rec.expiresAt + 5, isAuthenticated: false }), true);
        assert.deepStrictEqual(await adapter.get(id), { ...rec, handle: "h2", data: { b: { d: 3 } }, expiresAt: rec.expiresAt + 5, isAuthenticated: false });
      });

      test("update of a missing id resolves false and creates nothing", async () => {
        const id = uniq("update-missing");
        assert.equal(await adapter.update(id, { handle: "x" }), false);
        assert.equal(await adapter.exists(id), false);
        assert.equal(await adapter.get(id), null);
      });

      test("delete removes; deleting a missing id resolves", async () => {
        const id = uniq("delete");
        await adapter.set(id, record({ sessionId: id }));
        assert.equal(await adapter.delete(id), undefined);
        assert.equal(await adapter.exists(id), false);
        assert.equal(await adapter.get(id), null);
        assert.equal(await adapter.delete(id), undefined);
      });

      if (!selfExpiring) test("cleanup(t) removes rows with expiresAt < t (not = t) and resolves to the count", async () => {
        // Times far in the past, so no other test's rows (in a shared table) fall below them.
        const t = 1000 + Math.floor(Math.random() * 1000);
        const ids = { below1: uniq("c"), below2: uniq("c"), equal: uniq("c"), above: uniq("c") };
        await adapter.set(ids.below1, record({ sessionId: ids.below1, createdAt: 0, lastAccessedAt: 0, expiresAt: t - 1 }));
        await adapter.set(ids.below2, record({ sessionId: ids.below2, createdAt: 0, lastAccessedAt: 0, expiresAt: t - 500 }));
        await adapter.set(ids.equal, record({ sessionId: ids.equal, createdAt: 0, lastAccessedAt: 0, expiresAt: t }));
        await adapter.set(ids.above, record({ sessionId: ids.above, createdAt: 0, lastAccessedAt: 0, expiresAt: t + 1 }));
        const removed = await adapter.cleanup(t);
        assert.equal(typeof removed, "number");
        assert.equal(removed, 2);
        assert.equal(await adapter.exists(ids.below1), false);
        assert.equal(await adapter.exists(ids.below2), false);
        assert.equal(await adapter.exists(ids.equal), true);
        assert.equal(await adapter.exists(ids.above), true);
        assert.equal(await adapter.cleanup(t), 0);
        // tidy up (these rows are expired for everyone else)
        await adapter.delete(ids.equal);
        await adapter.delete(ids.above);
      });

      if (selfExpiring) {
        test("cleanup(t) with t ahead of now removes live rows with expiresAt < t (not = t) and resolves to the count", async () => {
          // The records expire in the future (Redis keeps them until then); first flush what
          // earlier tests left, so that the count is exact. This adapter's keys are its own.
          const t = Date.now() + 100 * 365 * 86400000;
          await adapter.cleanup(t - 1000);
          const ids = { below1: uniq("c"), below2: uniq("c"), equal: uniq("c"), above: uniq("c") };
          await adapter.set(ids.below1, record({ sessionId: ids.below1, expiresAt: t - 1 }));
          await adapter.set(ids.below2, record({ sessionId: ids.below2, expiresAt: t - 500 }));
          await adapter.set(ids.equal, record({ sessionId: ids.equal, expiresAt: t }));
          await adapter.set(ids.above, record({ sessionId: ids.above, expiresAt: t + 1 }));
          const removed = await adapter.cleanup(t);
          assert.equal(typeof removed, "number");
          assert.equal(removed, 2);
          assert.equal(await adapter.exists(ids.below1), false);
          assert.equal(await adapter.exists(ids.below2), false);
          assert.equal(await adapter.exists(ids.equal), true);
          assert.equal(await adapter.exists(ids.above), true);
          assert.equal(await adapter.cleanup(t), 0);
          await adapter.delete(ids.equal);
          await adapter.delete(ids.above);
        });

        test("an expired record is dropped by the storage itself: get is null, cleanup finds nothing", async () => {
          const id = uniq("exp-self");
          await adapter.set(id, record({ sessionId: id, expiresAt: Date.now() - 1000 }));
          assert.equal(await adapter.get(id), null);
          assert.equal(await adapter.exists(id), false);
          assert.equal(await adapter.cleanup(Date.now()), 0);
        });
      }

      if (!selfExpiring) test("get does not check expiry (the store does)", async () => {
        const id = uniq("exp-get");
        const rec = record({ sessionId: id, expiresAt: Date.now() - 1000 });
        await adapter.set(id, rec);
        assert.deepStrictEqual(await adapter.get(id), rec);
        assert.equal(await adapter.exists(id), true);
        await adapter.delete(id);
      });

      test("the returned record is a copy; set copies its input", async () => {
        const id = uniq("copy");
        const rec = record({ sessionId: id, handle: "h", data: { list: [1], obj: { k: "v" } } });
        const expected = structuredClone(rec);
        await adapter.set(id, rec);
        rec.handle = "mutated";
        rec.data.list.push(2);
        rec.data.obj.k = "mutated";
        const got = await adapter.get(id);
        assert.deepStrictEqual(got, expected);
        got.userId = "mutated";
        got.data.list.push(3);
        got.data.obj.k = "mutated";
        delete got.handle;
        assert.deepStrictEqual(await adapter.get(id), expected);
      });

      test("many concurrent operations", async () => {
        const ids = Array.from({ length: 50 }, () => uniq("conc"));
        await Promise.all(ids.map((id, i) => adapter.set(id, record({ sessionId: id, data: { i } }))));
        const got = await Promise.all(ids.map((id) => adapter.get(id)));
        got.forEach((g, i) => assert.deepStrictEqual(g.data, { i }));
        const upd = await Promise.all(ids.map((id, i) => adapter.update(id, { data: { i: i * 2 } })));
        assert.deepStrictEqual(upd, ids.map(() => true));
        await Promise.all(ids.map((id) => adapter.delete(id)));
        assert.deepStrictEqual(await Promise.all(ids.map((id) => adapter.exists(id))), ids.map(() => false));
      });
    });

    // ----------------------------------------------------------------- store over the adapter

    describe("SessionStore over this adapter", () => {
      test("createSession then getSession", async () => {
        const store = mkStore();
        const user = uniq("user");
        const before_ = Date.now();
        const id = await store.createSession(user, "handle.test", { role: "admin" });
        const after_ = Date.now();
        assert.match(id, UUID_V4_RE);
        const s = await store.getSession(id);
        assertNumbers(s);
        assert.ok(s.createdAt >= before_ && s.createdAt <= after_);
        assert.ok(s.lastAccessedAt >= s.createdAt);
        assert.deepStrictEqual(s, {
          sessionId: id,
          userId: user,
          handle: "handle.test",
          isAuthenticated: true,
          data: { role: "admin" },
          createdAt: s.createdAt,
          expiresAt: s.createdAt + DEFAULT_TTL,
          lastAccessedAt: s.lastAccessedAt,
        });
      });

      test("getSession of a missing id is null", async () => {
        assert.equal(await mkStore().getSession(uniq("nope")), null);
      });

      test("getSession of an expired record deletes it and returns null", async () => {
        const store = mkStore();
        const id = uniq("expired");
        await adapter.set(id, record({ sessionId: id, expiresAt: Date.now() - 1 }));
        assert.equal(await store.getSession(id), null);
        assert.equal(await adapter.exists(id), false);
      });

      test("getSession updates lastAccessedAt (returned and stored)", async () => {
        const store = mkStore();
        const id = uniq("touch");
        const old = Date.now() - 100000;
        const rec = record({ sessionId: id, handle: "h", data: { k: 1 }, createdAt: old, lastAccessedAt: old });
        await adapter.set(id, rec);
        const before_ = Date.now();
        const s = await store.getSession(id);
        const after_ = Date.now();
        assert.ok(s.lastAccessedAt >= before_ && s.lastAccessedAt <= after_, `lastAccessedAt ${s.lastAccessedAt} in [${before_}, ${after_}]`);
        assert.deepStrictEqual(s, { ...rec, lastAccessedAt: s.lastAccessedAt });
        const stored = await adapter.get(id);
        assert.deepStrictEqual(stored, { ...rec, lastAccessedAt: s.lastAccessedAt });
      });

      test("touchAfter: a recent access is not re-written", async () => {
        const store = mkStore({ touchAfter: 60000 });
        const id = uniq("touch-after");
        const recent = Date.now() - 1000;
        const rec = record({ sessionId: id, lastAccessedAt: recent });
        await adapter.set(id, rec);
        const s = await store.getSession(id);
        assert.equal(s.lastAccessedAt, recent);
        assert.deepStrictEqual(s, rec);
        assert.equal((await adapter.get(id)).lastAccessedAt, recent);
      });

      test("touchAfter: an older access is re-written", async () => {
        const store = mkStore({ touchAfter: 60000 });
        const id = uniq("touch-after-old");
        const old = Date.now() - 120000;
        await adapter.set(id, record({ sessionId: id, lastAccessedAt: old }));
        const before_ = Date.now();
        const s = await store.getSession(id);
        const after_ = Date.now();
        assert.ok(s.lastAccessedAt >= before_ && s.lastAccessedAt <= after_);
        assert.equal((await adapter.get(id)).lastAccessedAt, s.lastAccessedAt);
      });

      test("rolling: expiresAt becomes now + sessionTTL", async () => {
        const ttl = 600000;
        const store = mkStore({ rolling: true, sessionTTL: ttl });
        const id = uniq("rolling");
        const rec = record({ sessionId: id, expiresAt: Date.now() + 5000, lastAccessedAt: Date.now() - 10000 });
        await adapter.set(id, rec);
        const before_ = Date.now();
        const s = await store.getSession(id);
        const after_ = Date.now();
        assert.ok(before_ + ttl <= s.expiresAt && s.expiresAt <= after_ + ttl, `expiresAt ${s.expiresAt} in [${before_ + ttl}, ${after_ + ttl}]`);
        const stored = await adapter.get(id);
        assert.equal(stored.expiresAt, s.expiresAt);
        assert.equal(stored.lastAccessedAt, s.lastAccessedAt);
      });

      test("rolling with touchAfter: a recent access pushes nothing", async () => {
        const store = mkStore({ rolling: true, sessionTTL: 600000, touchAfter: 60000 });
        const id = uniq("rolling-touch");
        const rec = record({ sessionId: id, expiresAt: Date.now() + 5000, lastAccessedAt: Date.now() - 1000 });
        await adapter.set(id, rec);
        assert.deepStrictEqual(await store.getSession(id), rec);
        assert.deepStrictEqual(await adapter.get(id), rec);
      });

      test("without rolling, getSession leaves expiresAt alone", async () => {
        const store = mkStore();
        const id = uniq("not-rolling");
        const rec = record({ sessionId: id, expiresAt: Date.now() + 5000, lastAccessedAt: Date.now() - 10000 });
        await adapter.set(id, rec);
        assert.equal((await store.getSession(id)).expiresAt, rec.expiresAt);
        assert.equal((await adapter.get(id)).expiresAt, rec.expiresAt);
      });

      test("updateSession: shallow merge, data replaced whole", async () => {
        const store = mkStore();
        const id = await store.createSession(uniq("user"), "h1", { a: 1, b: { c: 2 } });
        const before_ = await adapter.get(id);
        assert.equal(await store.updateSession(id, { handle: "h2" }), true);
        assert.deepStrictEqual(await adapter.get(id), { ...before_, handle: "h2" });
        assert.equal(await store.updateSession(id, { data: { b: { d: 4 } } }), true);
        assert.deepStrictEqual(await adapter.get(id), { ...before_, handle: "h2", data: { b: { d: 4 } } });
        assert.equal(await store.updateSession(id, { userId: "other-user", isAuthenticated: false }), true);
        assert.deepStrictEqual(await adapter.get(id), { ...before_, handle: "h2", data: { b: { d: 4 } }, userId: "other-user", isAuthenticated: false });
      });

      test("updateSession with handle/data undefined removes them (absent keys)", async () => {
        const store = mkStore();
        const id = await store.createSession(uniq("user"), "h1", { a: 1 });
        assert.equal(await store.updateSession(id, { handle: undefined, data: undefined }), true);
        const s = await store.getSession(id);
        assert.equal("handle" in s, false, `handle should be absent, got ${JSON.stringify(s.handle)}`);
        assert.equal("data" in s, false, `data should be absent, got ${JSON.stringify(s.data)}`);
      });

      test("updateSession of a missing session resolves false", async () => {
        const store = mkStore();
        const id = uniq("upd-missing");
        assert.equal(await store.updateSession(id, { handle: "x" }), false);
        assert.equal(await adapter.exists(id), false);
      });

      test("updateSession ignores a sessionId key (the record is not moved)", async () => {
        const store = mkStore();
        const id = await store.createSession(uniq("user"), "h1");
        const other = uniq("moved");
        assert.equal(await store.updateSession(id, { sessionId: other, handle: "h2" }), true);
        const s = await store.getSession(id);
        assert.equal(s.sessionId, id);
        assert.equal(s.handle, "h2");
        assert.equal((await adapter.get(id)).sessionId, id);
        assert.equal(await adapter.exists(other), false);
        assert.equal(await store.getSession(other), null);
      });

      test("updateSession can expire a session", async () => {
        const store = mkStore();
        const id = await store.createSession(uniq("user"));
        assert.equal(await store.updateSession(id, { expiresAt: Date.now() - 1 }), true);
        assert.equal(await store.getSession(id), null);
        assert.equal(await adapter.exists(id), false);
      });

      test("deleteSession", async () => {
        const store = mkStore();
        const id = await store.createSession(uniq("user"));
        await store.deleteSession(id);
        assert.equal(await adapter.exists(id), false);
        assert.equal(await store.getSession(id), null);
        assert.equal(await store.deleteSession(id), undefined);
      });

      test("the record returned by getSession is a copy", async () => {
        const store = mkStore();
        const id = await store.createSession(uniq("user"), "h", { list: [1], o: { k: "v" } });
        const s = await store.getSession(id);
        const snapshot = structuredClone(s);
        s.handle = "mutated";
        s.data.list.push(2);
        s.data.o.k = "mutated";
        s.userId = "mutated";
        const again = await store.getSession(id);
        assert.deepStrictEqual({ ...again, lastAccessedAt: 0 }, { ...snapshot, lastAccessedAt: 0 });
      });

      test("data round-trips as JSON", async () => {
        const store = mkStore();
        const data = {
          str: "text",
          unicode: "😀 مرحبا e\u0301 𝔘",
          int: 42,
          neg: -7,
          float: 0.1 + 0.2,
          big: 9007199254740991,
          exp: 1e300,
          tiny: 5e-324,
          zero: 0,
          t: true,
          f: false,
          nothing: null,
          arr: [1, "two", null, false, [3, [4]], { five: 5 }],
          emptyArr: [],
          emptyObj: {},
          nested: { a: { b: { c: { d: ["deep"] } } } },
          "key with spaces & 'quotes' \"double\"": "v",
          "😀": "emoji key",
          "'; DROP TABLE sessions; --": "injection key",
        };
        const id = await store.createSession(uniq("user"), undefined, data);
        assert.deepStrictEqual((await store.getSession(id)).data, data);
        assert.deepStrictEqual((await adapter.get(id)).data, data);
        assert.equal(await store.updateSession(id, { data: { replaced: [data] } }), true);
        assert.deepStrictEqual((await store.getSession(id)).data, { replaced: [data] });
      });

      test("an empty data object round-trips as {}", async () => {
        const store = mkStore();
        const id = await store.createSession(uniq("user"), "h", {});
        assert.deepStrictEqual((await store.getSession(id)).data, {});
      });

      test("a large data object (~200 kB) round-trips", async () => {
        const store = mkStore();
        const data = { blob: "x".repeat(100000), list: Array.from({ length: 5000 }, (_, i) => ({ i, s: `item-${i}` })) };
        const id = await store.createSession(uniq("user"), undefined, data);
        assert.deepStrictEqual((await store.getSession(id)).data, data);
      });

      test("Unicode and SQL-injection strings round-trip in userId, handle, data and ids", async () => {
        const queue = [];
        const store = mkStore({ generateId: () => queue.shift() });
        const suffix = uniq("n");
        const made = [];
        for (const [i, str] of NASTY_STRINGS.entries()) {
          const id = `${str}#${i}#${suffix}`;
          queue.push(id);
          const userId = `${str}|user|${suffix}`;
          const handle = `${str}|handle`;
          const data = { [str]: str, nested: { arr: [str, { s: str }] } };
          assert.equal(await store.createSession(userId, handle, data), id);
          made.push({ id, userId, handle, data });
        }
        for (const m of made) {
          const s = await store.getSession(m.id);
          assert.ok(s, `session ${JSON.stringify(m.id)} must be found`);
          assert.equal(s.sessionId, m.id);
          assert.equal(s.userId, m.userId);
          assert.equal(s.handle, m.handle);
          assert.deepStrictEqual(s.data, m.data);
          const raw = await adapter.get(m.id);
          assert.equal(raw.sessionId, m.id);
          assert.equal(raw.userId, m.userId);
          assert.equal(await adapter.exists(m.id), true);
          assert.equal(await store.updateSession(m.id, { handle: m.handle + "!" }), true);
          assert.equal((await adapter.get(m.id)).handle, m.handle + "!");
          // through a cookie as well
          const cookie = store.createSessionCookie(m.id).split("; ")[0];
          assert.equal((await store.getSessionFromRequest({ headers: { cookie } }))?.sessionId, m.id);
        }
        if (userOps) {
          for (const m of made) {
            const list = await store.listUserSessions(m.userId);
            assert.deepStrictEqual(list.map((s) => s.sessionId), [m.id]);
          }
        }
        // the table is still there and working
        const probe = uniq("probe");
        await adapter.set(probe, record({ sessionId: probe }));
        assert.equal(await adapter.exists(probe), true);
        for (const m of made) {
          await store.deleteSession(m.id);
          assert.equal(await adapter.exists(m.id), false);
        }
        await adapter.delete(probe);
      });

      test("ids differing only by case or normalisation are distinct sessions", async () => {
        const queue = [];
        const store = mkStore({ generateId: () => queue.shift() });
        const base = uniq("Case");
        const ids = [`${base}-A`, `${base}-a`, `${base}-\u00e9`, `${base}-e\u0301`];
        queue.push(...ids);
        for (const [i, id] of ids.entries()) assert.equal(await store.createSession(`user-${i}-${base}`), id);
        for (const [i, id] of ids.entries()) assert.equal((await store.getSession(id)).userId, `user-${i}-${base}`);
      });

      if (!selfExpiring) test("store.cleanup() removes expired sessions and resolves to the count", async () => {
        const store = mkStore();
        // In a shared table, first flush rows other tests left expired.
        if (sharedTable) await store.cleanup();
        const now = Date.now();
        const ids = [uniq("sc"), uniq("sc"), uniq("sc")];
        await adapter.set(ids[0], record({ sessionId: ids[0], expiresAt: now - 10 }));
        await adapter.set(ids[1], record({ sessionId: ids[1], expiresAt: now - 5000 }));
        await adapter.set(ids[2], record({ sessionId: ids[2], expiresAt: now + 60000 }));
        assert.equal(await store.cleanup(), 2);
        assert.equal(await adapter.exists(ids[0]), false);
        assert.equal(await adapter.exists(ids[1]), false);
        assert.equal(await adapter.exists(ids[2]), true);
        await adapter.delete(ids[2]);
      });

      test("getSessionFromRequest finds a session stored in this adapter", async () => {
        const store = mkStore();
        const id = await store.createSession(uniq("user"), "h");
        const s = await store.getSessionFromRequest(new Request("http://localhost/", { headers: { cookie: `slice-session=${id}` } }));
        assert.equal(s?.sessionId, id);
        assertNumbers(s);
      });

      test("regenerateSession: new id, same record, old id gone", async () => {
        const store = mkStore();
        const user = uniq("user");
        const id = await store.createSession(user, "h", { keep: [1, 2] });
        const old = await adapter.get(id);
        const newId = await store.regenerateSession(id);
        assert.equal(typeof newId, "string");
        assert.match(newId, UUID_V4_RE);
        assert.notEqual(newId, id);
        assert.equal(await adapter.exists(id), false);
        assert.equal(await store.getSession(id), null);
        const moved = await adapter.get(newId);
        assert.equal(moved.sessionId, newId);
        assert.equal(moved.userId, user);
        assert.equal(moved.handle, "h");
        assert.deepStrictEqual(moved.data, { keep: [1, 2] });
        assert.equal(moved.createdAt, old.createdAt);
        assert.equal(moved.expiresAt, old.expiresAt);
        assert.equal(moved.isAuthenticated, true);
        assertNumbers(moved);
      });

      test("regenerateSession uses generateId", async () => {
        const queue = [uniq("gen-a"), uniq("gen-b")];
        const expected = [...queue];
        const store = mkStore({ generateId: () => queue.shift() });
        const id = await store.createSession(uniq("user"));
        assert.equal(id, expected[0]);
        assert.equal(await store.regenerateSession(id), expected[1]);
        assert.equal((await adapter.get(expected[1])).sessionId, expected[1]);
        assert.equal(await adapter.exists(expected[0]), false);
      });

      test("a generateId that repeats an id in use never hands out another user's session", async () => {
        const taken = uniq("taken");
        const other = uniq("free");
        const queue = [taken, taken, other, taken];
        const store = mkStore({ generateId: () => queue.shift() });
        assert.equal(await store.createSession("owner-user", "owner"), taken);
        // createSession with the same id rejects and leaves the owner's session alone
        await assert.rejects(store.createSession("intruder"), (e) => e instanceof pkg.SessionError && /already in use/.test(e.message));
        assert.equal((await store.getSession(taken)).userId, "owner-user");
        // regenerateSession onto an id in use rejects and keeps both sessions
        assert.equal(await store.createSession("second-user"), other);
        await assert.rejects(store.regenerateSession(other), (e) => e instanceof pkg.SessionError && /already in use/.test(e.message));
        assert.equal((await store.getSession(taken)).userId, "owner-user");
        assert.equal((await store.getSession(other)).userId, "second-user");
      });

      test("regenerateSession of a missing or expired session resolves null", async () => {
        const store = mkStore();
        assert.equal(await store.regenerateSession(uniq("missing")), null);
        const id = uniq("regen-expired");
        await adapter.set(id, record({ sessionId: id, expiresAt: Date.now() - 1 }));
        assert.equal(await store.regenerateSession(id), null);
      });

      if (userOps) {
        test("listUserSessions: unexpired only, oldest first", async () => {
          const store = mkStore();
          const user = uniq("lister");
          const now = Date.now();
          const a = uniq("ls-a");
          const b = uniq("ls-b");
          const c = uniq("ls-c");
          const expired = uniq("ls-exp");
          const otherUser = uniq("ls-other");
          await adapter.set(b, record({ sessionId: b, userId: user, createdAt: now - 1000, handle: "b" }));
          await adapter.set(a, record({ sessionId: a, userId: user, createdAt: now - 3000, data: { n: 1 } }));
          await adapter.set(expired, record({ sessionId: expired, userId: user, createdAt: now - 5000, expiresAt: now - 1 }));
          await adapter.set(c, record({ sessionId: c, userId: user, createdAt: now - 2000 }));
          await adapter.set(otherUser, record({ sessionId: otherUser, userId: user + "-x", createdAt: now - 4000 }));
          const list = await store.listUserSessions(user);
          assert.ok(Array.isArray(list));
          assert.deepStrictEqual(list.map((s) => s.sessionId), [a, c, b]);
          const first = list[0];
          assertNumbers(first);
          assert.equal(first.userId, user);
          assert.deepStrictEqual(first.data, { n: 1 });
          assert.equal("handle" in first, false);
          assert.equal(list[2].handle, "b");
          assert.deepStrictEqual(await store.listUserSessions(uniq("nobody")), []);
        });

        test("deleteUserSessions removes all of a user's sessions and counts them", async () => {
          const store = mkStore();
          const user = uniq("deleter");
          const keep = await store.createSession(user + "-other");
          const ids = [await store.createSession(user), await store.createSession(user), await store.createSession(user)];
          assert.equal(await store.deleteUserSessions(user), 3);
          for (const id of ids) assert.equal(await adapter.exists(id), false);
          assert.equal(await adapter.exists(keep), true);
          assert.equal(await store.deleteUserSessions(user), 0);
          assert.deepStrictEqual(await store.listUserSessions(user), []);
        });

        test("deleteUserSessions with except keeps that session", async () => {
          const store = mkStore();
          const user = uniq("except");
          const ids = [await store.createSession(user), await store.createSession(user), await store.createSession(user)];
          assert.equal(await store.deleteUserSessions(user, { except: ids[1] }), 2);
          assert.equal(await adapter.exists(ids[0]), false);
          assert.equal(await adapter.exists(ids[1]), true);
          assert.equal(await adapter.exists(ids[2]), false);
          assert.deepStrictEqual((await store.listUserSessions(user)).map((s) => s.sessionId), [ids[1]]);
          assert.equal(await store.deleteUserSessions(user, { except: ids[1] }), 0);
          assert.equal(await store.deleteUserSessions(user, { except: uniq("not-an-id") }), 1);
          assert.equal(await adapter.exists(ids[1]), false);
        });
      } else {
        for (const op of USER_OPS) {
          test(`${op} rejects with a "not supported" SessionError`, async () => {
            const store = mkStore();
            const p = store[op](uniq("user"));
            assert.ok(p instanceof Promise);
            await assert.rejects(p, (e) => {
              assert.ok(e instanceof SessionError, `expected SessionError, got ${e?.constructor?.name}: ${e?.message}`);
              assert.match(e.message, /not supported/);
              return true;
            });
          });
        }
      }

      test("many concurrent sessions through the store", async () => {
        const store = mkStore();
        const user = uniq("many");
        const ids = await Promise.all(Array.from({ length: 40 }, (_, i) => store.createSession(user, `h${i}`, { i })));
        assert.equal(new Set(ids).size, 40);
        const got = await Promise.all(ids.map((id) => store.getSession(id)));
        got.forEach((s, i) => {
          assert.equal(s.sessionId, ids[i]);
          assert.deepStrictEqual(s.data, { i });
        });
        await Promise.all(ids.map((id) => store.deleteSession(id)));
      });
    });
  });
}

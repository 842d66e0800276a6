// withOAuthSession (SPEC §6 table and edge rules), the successful paths and the rules that need
// no failure at the server: createOAuthSession, getOAuthSession (fresh, due, missing, expired,
// without tokens, without expiresAt, without refreshToken), getAccessToken,
// hasValidOAuthTokens, autoRefresh: false, refreshSkew, logout. Every test runs on
// MemoryOAuthStorage, SQLiteOAuthStorage (a temp file), PostgresOAuthStorage, RedisOAuthStorage and a custom JS
// storage class using `this`, against the loopback AIP server (tests/aip/server.mjs).
// Failures at the server are in oauth-failures.test.mjs, concurrency in oauth-concurrency.
import { describe, test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { pkg, removeTmpDirs, UUID_V4_RE } from "./target.mjs";
import { startAip, STORAGE_KINDS, withSetup, withoutAccess, assertOAuthError, MapOAuthStorage, oauthConfig } from "./oauth-support.mjs";

let aip;
before(async () => {
  aip = await startAip();
});
after(async () => {
  await aip?.stop();
  removeTmpDirs();
});
beforeEach(async () => {
  await aip.reset();
});

const HOUR = 3600 * 1000;

/** The refresh counter of the server, as {total, byStatus}. */
const refreshCounter = async () => (await aip.counters()).refresh;
const NO_REFRESH = { total: 0, byStatus: {} };

for (const kind of STORAGE_KINDS) {
  describe(`withOAuthSession on ${kind}`, () => {
    describe("createOAuthSession", () => {
      test("fetches userinfo; userId = sub, handle = name (profile scope); tokens stored by session id", async () => {
        await withSetup(aip, kind, {}, async (s) => {
          const tokens = await aip.issue({ scope: "atproto profile" });
          const before = Date.now();
          const id = await s.manager.createOAuthSession(tokens);
          const after = Date.now();
          assert.match(id, UUID_V4_RE);
          assert.deepEqual(s.ids, [id], "the id comes from the store's generateId");

          const session = await s.store.getSession(id);
          assert.deepEqual(Object.keys(session).sort(), ["createdAt", "expiresAt", "handle", "isAuthenticated", "lastAccessedAt", "sessionId", "userId"]);
          assert.equal(session.sessionId, id);
          assert.equal(session.userId, "did:plc:alice");
          assert.equal(session.handle, "alice.test");
          assert.equal(session.isAuthenticated, true);
          assert.ok(session.createdAt >= before && session.createdAt <= after);
          assert.equal(session.expiresAt, session.createdAt + 2592000000);

          assert.deepEqual(await s.storage.getTokens(id), tokens);
          const counters = await aip.counters();
          assert.deepEqual(counters.userinfo, { total: 1, byStatus: { 200: 1 } });
          assert.equal(counters.tokenRequests, 0);
          assert.deepEqual(s.rec.events, []);
        });
      });

      test("without the profile scope AIP sends no name: the session has no handle", async () => {
        await withSetup(aip, kind, {}, async (s) => {
          const tokens = await aip.issue({ handle: "bob.test", scope: "atproto" });
          const id = await s.manager.createOAuthSession(tokens);
          const session = await s.store.getSession(id);
          assert.equal(session.userId, "did:plc:bob");
          assert.equal("handle" in session, false);
          assert.deepEqual(await s.storage.getTokens(id), tokens);
          assert.deepEqual(s.rec.events, []);
        });
      });

      test("a refused access token (userinfo 401): null, no session, no tokens, onError(invalid_token)", async () => {
        await withSetup(aip, kind, {}, async (s) => {
          const good = await aip.issue();
          const expired = await aip.issue({ expiresIn: -1 });
          for (const tokens of [{ ...good, accessToken: "at_not-issued-by-the-server" }, expired]) {
            assert.equal(await s.manager.createOAuthSession(tokens), null);
          }
          assert.equal(s.ids.length, 2);
          for (const id of s.ids) {
            assert.equal(await s.store.getSession(id), null);
            assert.equal(await s.storage.getTokens(id), null);
          }
          assert.equal(s.adapter.size(), 0);
          assert.deepEqual(await aip.counters().then((c) => c.userinfo), { total: 2, byStatus: { 401: 2 } });
          const errors = s.rec.errors();
          assert.equal(errors.length, 2);
          for (const error of errors) assertOAuthError(error, "invalid_token");
          assert.deepEqual(s.rec.events.filter((e) => e[0] !== "error"), []);
        });
      });

      test("a closed store rejects with SessionStoreClosedError", async () => {
        await withSetup(aip, kind, {}, async (s) => {
          const tokens = await aip.issue();
          await s.store.close();
          await assert.rejects(s.manager.createOAuthSession(tokens), pkg.SessionStoreClosedError);
          await assert.rejects(s.manager.getOAuthSession("any"), pkg.SessionStoreClosedError);
          assert.deepEqual(await aip.counters().then((c) => c.userinfo), { total: 0, byStatus: {} });
        });
      });
    });

    describe("getOAuthSession", () => {
      test("fresh tokens: the session with its tokens, no refresh", async () => {
        await withSetup(aip, kind, {}, async (s) => {
          const tokens = await aip.issue();
          const id = await s.manager.createOAuthSession(tokens);
          const stored = await s.store.getSession(id);
          const result = await s.manager.getOAuthSession(id);
          assert.deepEqual(withoutAccess(result), { ...withoutAccess(stored), tokens });
          assert.ok(result.lastAccessedAt >= stored.lastAccessedAt);
          assert.equal(await s.manager.getAccessToken(id), tokens.accessToken);
          assert.equal(await s.manager.hasValidOAuthTokens(id), true);
          assert.deepEqual(await refreshCounter(), NO_REFRESH);
          assert.deepEqual(s.rec.events, []);
        });
      });

      test("tokens expiring within refreshSkew (default 60 s): refreshed once, stored, onTokenRefresh(id, tokens) once", async () => {
        await withSetup(aip, kind, {}, async (s) => {
          const old = await aip.issue({ expiresIn: 30 });
          const id = await s.manager.createOAuthSession(old);
          const before = Date.now();
          const result = await s.manager.getOAuthSession(id);
          const after = Date.now();

          const fresh = result.tokens;
          assert.deepEqual(Object.keys(fresh).sort(), ["accessToken", "expiresAt", "refreshToken", "scope", "tokenType"]);
          assert.notEqual(fresh.accessToken, old.accessToken);
          assert.notEqual(fresh.refreshToken, old.refreshToken);
          assert.equal(fresh.tokenType, "Bearer");
          assert.equal(fresh.scope, "atproto profile");
          assert.ok(fresh.expiresAt >= before + HOUR && fresh.expiresAt <= after + HOUR, `expiresAt ${fresh.expiresAt}`);
          assert.deepEqual(await s.storage.getTokens(id), fresh);
          assert.deepEqual(s.rec.events, [["refresh", id, fresh]]);

          const counters = await aip.counters();
          assert.deepEqual(counters.refresh, { total: 1, byStatus: { 200: 1 } });
          assert.deepEqual(counters.refreshTokensPresented, [old.refreshToken]);
          // The rotated pair works at the server, the old access token no longer does.
          assert.equal((await aip.userinfo(fresh.accessToken)).status, 200);
          assert.equal((await aip.userinfo(old.accessToken)).status, 401);

          // Fresh now: the next reads send nothing.
          assert.deepEqual((await s.manager.getOAuthSession(id)).tokens, fresh);
          assert.equal(await s.manager.getAccessToken(id), fresh.accessToken);
          assert.deepEqual(await refreshCounter(), { total: 1, byStatus: { 200: 1 } });
          assert.equal(s.rec.events.length, 1);
        });
      });

      test("getAccessToken and hasValidOAuthTokens refresh due tokens too", async () => {
        await withSetup(aip, kind, {}, async (s) => {
          const a = await s.seed(await aip.issue({ expiresIn: 30 }));
          const b = await s.seed(await aip.issue({ expiresIn: 30 }));
          const token = await s.manager.getAccessToken(a);
          assert.equal(token, (await s.storage.getTokens(a)).accessToken);
          assert.equal(await s.manager.hasValidOAuthTokens(b), true);
          assert.deepEqual(await refreshCounter(), { total: 2, byStatus: { 200: 2 } });
          const stored = [await s.storage.getTokens(a), await s.storage.getTokens(b)];
          assert.deepEqual(s.rec.refreshes(), [["refresh", a, stored[0]], ["refresh", b, stored[1]]]);
          assert.ok(stored.every((t) => t.expiresAt > Date.now() + HOUR - 60000));
        });
      });

      test("refreshSkew option: due inside the window, not outside it", async () => {
        await withSetup(aip, kind, { options: { refreshSkew: 10 * 60 * 1000 } }, async (s) => {
          const due = await s.seed(await aip.issue({ expiresIn: 300 })); // 5 min < 10 min skew
          const notDue = await s.seed(await aip.issue({ expiresIn: 900 })); // 15 min > 10 min
          const notDueTokens = await s.storage.getTokens(notDue);
          const dueTokens = await s.storage.getTokens(due);
          assert.notEqual((await s.manager.getOAuthSession(due)).tokens.accessToken, dueTokens.accessToken);
          assert.deepEqual((await s.manager.getOAuthSession(notDue)).tokens, notDueTokens);
          assert.deepEqual(await refreshCounter(), { total: 1, byStatus: { 200: 1 } });
        });
        await withSetup(aip, kind, { options: { refreshSkew: 10 * 1000 } }, async (s) => {
          const tokens = await aip.issue({ expiresIn: 30 }); // 30 s > 10 s skew
          const id = await s.seed(tokens);
          assert.deepEqual((await s.manager.getOAuthSession(id)).tokens, tokens);
          assert.deepEqual(await refreshCounter(), { total: 1, byStatus: { 200: 1 } }, "no second refresh");
        });
      });

      test("a missing session: null, and the tokens stored under its id are cleared", async () => {
        await withSetup(aip, kind, {}, async (s) => {
          const id = `no-such-session-${globalThis.crypto.randomUUID()}`;
          await s.storage.setTokens(await aip.issue({ expiresIn: 30 }), id);
          assert.equal(await s.manager.getOAuthSession(id), null);
          assert.equal(await s.storage.getTokens(id), null);
          assert.equal(await s.manager.getAccessToken(id), null);
          assert.equal(await s.manager.hasValidOAuthTokens(id), false);
          assert.deepEqual(await refreshCounter(), NO_REFRESH);
          assert.deepEqual(s.rec.events, []);
        });
      });

      test("an expired session: null, the session deleted and its tokens cleared", async () => {
        await withSetup(aip, kind, {}, async (s) => {
          const id = await s.manager.createOAuthSession(await aip.issue({ expiresIn: 30 }));
          assert.equal(await s.adapter.update(id, { expiresAt: Date.now() - 1 }), true);
          assert.equal(await s.manager.getOAuthSession(id), null);
          assert.equal(await s.adapter.get(id), null);
          assert.equal(await s.storage.getTokens(id), null);
          assert.deepEqual(await refreshCounter(), NO_REFRESH);
          assert.deepEqual(s.rec.events, []);
        });
      });

      test("a session without stored tokens: returned with the `tokens` key absent", async () => {
        await withSetup(aip, kind, {}, async (s) => {
          const id = await s.seed(undefined);
          const stored = await s.store.getSession(id);
          const result = await s.manager.getOAuthSession(id);
          assert.equal("tokens" in result, false);
          assert.deepEqual(withoutAccess(result), withoutAccess(stored));
          assert.equal(await s.manager.getAccessToken(id), null);
          assert.equal(await s.manager.hasValidOAuthTokens(id), false);
          assert.deepEqual(await refreshCounter(), NO_REFRESH);
          assert.deepEqual(s.rec.events, []);
        });
      });

      test("tokens without expiresAt are never refreshed proactively", async () => {
        await withSetup(aip, kind, {}, async (s) => {
          const { expiresAt, ...tokens } = await aip.issue();
          assert.equal(typeof expiresAt, "number");
          const id = await s.seed(tokens);
          const result = await s.manager.getOAuthSession(id);
          assert.deepEqual(result.tokens, tokens);
          assert.equal("expiresAt" in result.tokens, false);
          assert.equal(await s.manager.getAccessToken(id), tokens.accessToken);
          assert.equal(await s.manager.hasValidOAuthTokens(id), true);
          assert.deepEqual(await refreshCounter(), NO_REFRESH);
          assert.deepEqual(s.rec.events, []);
        });
      });

      test("expired tokens without a refreshToken: returned, hasValidOAuthTokens false, getAccessToken null", async () => {
        await withSetup(aip, kind, {}, async (s) => {
          const { refreshToken, ...tokens } = await aip.issue({ expiresIn: -5 });
          assert.equal(typeof refreshToken, "string");
          const id = await s.seed(tokens);
          const result = await s.manager.getOAuthSession(id);
          assert.deepEqual(result.tokens, tokens);
          assert.equal("refreshToken" in result.tokens, false);
          assert.equal(await s.manager.hasValidOAuthTokens(id), false);
          assert.equal(await s.manager.getAccessToken(id), null);
          assert.deepEqual(await s.storage.getTokens(id), tokens, "kept");
          assert.ok(await s.store.getSession(id), "the session is kept");
          assert.equal((await aip.counters()).tokenRequests, 0);
          assert.deepEqual(s.rec.events, []);
        });
      });
    });

    test("autoRefresh: false never refreshes (server counter stays 0)", async () => {
      await aip.config({ burnRefreshAfterAccessExpiry: false });
      await withSetup(aip, kind, { options: { autoRefresh: false } }, async (s) => {
        const expired = await aip.issue({ expiresIn: -5 });
        const due = await aip.issue({ expiresIn: 30 });
        const a = await s.seed(expired);
        const b = await s.seed(due);
        assert.deepEqual((await s.manager.getOAuthSession(a)).tokens, expired);
        assert.equal(await s.manager.getAccessToken(a), null);
        assert.equal(await s.manager.hasValidOAuthTokens(a), false);
        assert.deepEqual((await s.manager.getOAuthSession(b)).tokens, due);
        assert.equal(await s.manager.getAccessToken(b), due.accessToken);
        assert.equal(await s.manager.hasValidOAuthTokens(b), true);
        await Promise.all(Array.from({ length: 20 }, () => s.manager.getOAuthSession(a)));
        const counters = await aip.counters();
        assert.deepEqual(counters.refresh, NO_REFRESH);
        assert.equal(counters.tokenRequests, 0);
        assert.deepEqual(await s.storage.getTokens(a), expired);
        assert.deepEqual(s.rec.events, []);
      });
    });

    test("logout: tokens cleared, session deleted, onLogout called; idempotent", async () => {
      await withSetup(aip, kind, {}, async (s) => {
        const id = await s.manager.createOAuthSession(await aip.issue());
        const other = await s.manager.createOAuthSession(await aip.issue());
        const otherTokens = await s.storage.getTokens(other);
        await s.manager.logout(id);
        assert.equal(await s.store.getSession(id), null);
        assert.equal(await s.storage.getTokens(id), null);
        assert.deepEqual(s.rec.events, [["logout", id]]);
        assert.equal(await s.manager.getOAuthSession(id), null);

        await s.manager.logout(id); // again: nothing fails, onLogout again
        const unknown = `never-existed-${globalThis.crypto.randomUUID()}`;
        await s.manager.logout(unknown);
        assert.deepEqual(s.rec.events, [["logout", id], ["logout", id], ["logout", unknown]]);

        // Only that session: the other one keeps its session and tokens.
        assert.equal((await s.store.getSession(other)).userId, "did:plc:alice");
        assert.deepEqual(await s.storage.getTokens(other), otherTokens);
        assert.equal((await aip.counters()).tokenRequests, 0);
      });
    });

    if (kind === "custom JS class") {
      test("the custom storage's own methods are called, with `this` bound to it", async () => {
        await withSetup(aip, kind, {}, async (s) => {
          assert.ok(s.storage instanceof MapOAuthStorage);
          const id = await s.manager.createOAuthSession(await aip.issue({ expiresIn: 30 }));
          await s.manager.getOAuthSession(id);
          await s.manager.logout(id);
          assert.deepEqual(s.storage.calls.filter(([, sid]) => sid === id).map(([m]) => m).slice(0, 2), ["setTokens", "getTokens"]);
          assert.ok(s.storage.calls.some(([m, sid]) => m === "setTokens" && sid === id));
          assert.ok(s.storage.calls.some(([m, sid]) => m === "clearTokens" && sid === id));
          assert.equal(s.storage.size, 0);
        });
      });

      test("createOAuthSession when storing the tokens fails: null, the session deleted again, onError gets the cause", async () => {
        class FailingStorage extends MapOAuthStorage {
          async setTokens() {
            throw new Error("disk full (test)");
          }
        }
        const storage = new FailingStorage();
        const adapter = new pkg.MemoryAdapter();
        const store = new pkg.SessionStore({ adapter, cleanupInterval: 0 });
        const errors = [];
        const manager = pkg.withOAuthSession(store, oauthConfig(aip), storage, { onError: (e) => errors.push(e) });
        try {
          assert.equal(await manager.createOAuthSession(await aip.issue()), null);
          assert.equal(adapter.size(), 0, "no session left behind");
          assert.equal(storage.size, 0, "no tokens left behind");
          assert.equal(errors.length, 1);
          assert.ok(errors[0] instanceof pkg.SessionError, `${errors[0]?.constructor?.name}: ${errors[0]?.message}`);
          assert.match(errors[0].message, /disk full \(test\)/);
        } finally {
          await store.close();
        }
      });
    }
  });
}

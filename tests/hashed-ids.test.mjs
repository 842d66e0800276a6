// `hashIds: true` on SessionStore (docs/security.md): every session is stored under
// `sha256:<hex of SHA-256(id)>`, the cookie still carries the id. Proved on what a copy of the
// storage shows (the SQLite file's bytes, PostgreSQL rows via psql, Redis keys via redis-cli,
// the ids a custom JS adapter is called with) and on every store method working with the
// clear id. Runs under Node and Deno.
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pkg, tmpDir, removeTmpDirs, pgUrl, redisUrl, psql, redisCli, uniq } from "./target.mjs";
import { FullMapAdapter } from "./custom-adapters.mjs";

after(() => removeTmpDirs());

const hashOf = (id) => `sha256:${createHash("sha256").update(id).digest("hex")}`;

/** An adapter of `kind` and what a copy of its data shows. */
function backend(kind) {
  switch (kind) {
    case "SQLiteAdapter": {
      const file = join(tmpDir("slices-hashed-"), "sessions.db");
      const adapter = new pkg.SQLiteAdapter(file);
      return { adapter, dump: () => ["", "-wal"].map((s) => (existsSync(file + s) ? readFileSync(file + s).toString("latin1") : "")).join("\n") };
    }
    case "PostgresAdapter": {
      const adapter = new pkg.PostgresAdapter(pgUrl());
      return { adapter, dump: () => psql("SELECT session_id, user_id FROM sessions") };
    }
    case "RedisAdapter": {
      const prefix = `${uniq("hashed")}:`;
      const adapter = new pkg.RedisAdapter(redisUrl(), { prefix });
      return {
        adapter,
        dump: () => {
          const keys = redisCli("--scan", "--pattern", `${prefix}*`).split("\n").filter(Boolean);
          return keys.map((k) => `${k}\n${redisCli("TYPE", k) === "zset" ? redisCli("ZRANGE", k, "0", "-1") : redisCli("HGETALL", k)}`).join("\n");
        },
      };
    }
    case "custom JS adapter": {
      const adapter = new FullMapAdapter();
      return { adapter, dump: () => JSON.stringify([...adapter.rows]) + JSON.stringify(adapter.calls), custom: adapter };
    }
    default: {
      const adapter = new pkg.MemoryAdapter();
      return { adapter, dump: null };
    }
  }
}

describe("hashIds: option", () => {
  test("must be a boolean (TypeError naming it); default off keeps ids as they are", async () => {
    const adapter = new pkg.MemoryAdapter();
    assert.throws(() => new pkg.SessionStore({ adapter, hashIds: "yes", cleanupInterval: 0 }), (e) => e instanceof TypeError && /hashIds/.test(e.message));
    const plain = new FullMapAdapter();
    const store = new pkg.SessionStore({ adapter: plain, cleanupInterval: 0 });
    const id = await store.createSession("u");
    assert.ok(plain.rows.has(id), "without hashIds the id is the key");
    await store.close();
  });
});

for (const kind of ["MemoryAdapter", "SQLiteAdapter", "PostgresAdapter", "RedisAdapter", "custom JS adapter"]) {
  describe(`hashIds on ${kind}`, () => {
    test("every method works with the clear id; the storage holds only the hash", async () => {
      const b = backend(kind);
      const store = new pkg.SessionStore({ adapter: b.adapter, hashIds: true, cleanupInterval: 0, cookieName: "sid" });
      try {
        const userId = `did:plc:${uniq("hashed")}`;
        const id = await store.createSession(userId, "alice.test", { theme: "dark" });
        const other = await store.createSession(userId, "alice.test");
        const session = await store.getSession(id);
        assert.equal(session.sessionId, id, "records come back with the caller's id");
        assert.deepEqual(session.data, { theme: "dark" });
        // The cookie carries the clear id, and reading it back works.
        const cookie = store.createSessionCookie(id).split(";")[0];
        assert.equal(cookie, `sid=${id}`);
        const fromRequest = await store.getSessionFromRequest(new Request("http://x/", { headers: { cookie } }));
        assert.equal(fromRequest.sessionId, id);
        assert.equal((await store.getCurrentUser(new Headers({ cookie }))).sessionId, id);
        assert.equal(await store.updateSession(id, { handle: "bob.test" }), true);
        assert.equal((await store.getSession(id)).handle, "bob.test");
        // Listing cannot know clear ids: it returns the stored hashes, which name nothing.
        const listed = await store.listUserSessions(userId);
        assert.deepEqual(listed.map((s) => s.sessionId).sort(), [hashOf(id), hashOf(other)].sort());
        assert.equal(await store.getSession(hashOf(id)), null, "a hash from the table is not a session id");
        // What a copy of the storage shows.
        if (b.dump) {
          const dump = b.dump();
          assert.ok(dump.includes(hashOf(id).slice(7)), "the hash is the key");
          assert.ok(!dump.includes(id) && !dump.includes(other), "no clear session id is stored");
        }
        if (b.custom) {
          const ids = b.custom.calls.filter((c) => typeof c[1] === "string" && c[0] !== "listByUser" && c[0] !== "deleteByUser").map((c) => c[1]);
          assert.ok(ids.length > 5);
          for (const called of ids) assert.match(called, /^sha256:[0-9a-f]{64}$/, "the adapter is only ever given hashes");
        }
        // regenerateSession: a new clear id; the old one is gone.
        const renewed = await store.regenerateSession(id);
        assert.equal(typeof renewed, "string");
        assert.notEqual(renewed, id);
        assert.equal(await store.getSession(id), null);
        assert.equal((await store.getSession(renewed)).sessionId, renewed);
        // deleteUserSessions with `except` (a clear id), then deleteSession.
        assert.equal(await store.deleteUserSessions(userId, { except: renewed }), 1);
        assert.equal(await store.getSession(other), null);
        assert.notEqual(await store.getSession(renewed), null);
        await store.deleteSession(renewed);
        assert.equal(await store.getSession(renewed), null);
      } finally {
        await store.close();
        await b.adapter.close?.();
      }
    });

    test("a store without hashIds over the same data does not find hashed sessions (and the reverse)", async () => {
      if (kind === "custom JS adapter") return;
      const b = backend(kind);
      const hashed = new pkg.SessionStore({ adapter: b.adapter, hashIds: true, cleanupInterval: 0 });
      const plain = new pkg.SessionStore({ adapter: b.adapter, cleanupInterval: 0 });
      try {
        const a = await hashed.createSession("u");
        const p = await plain.createSession("u");
        assert.equal(await plain.getSession(a), null);
        assert.equal(await hashed.getSession(p), null);
        assert.notEqual(await plain.getSession(hashOf(a)), null, "the stored key is the hash");
      } finally {
        await hashed.close();
        await plain.close();
        await b.adapter.close?.();
      }
    });
  });
}

describe("hashIds with OAuth", () => {
  test("withOAuthSession over a hashed store and a hashed storage: the session and its tokens found by the clear id", async () => {
    const file = join(tmpDir("slices-hashed-oauth-"), "oauth.db");
    const sessions = join(tmpDir("slices-hashed-oauth-"), "sessions.db");
    const adapter = new pkg.SQLiteAdapter(sessions);
    const store = new pkg.SessionStore({ adapter, hashIds: true, cleanupInterval: 0 });
    const storage = new pkg.SQLiteOAuthStorage(file, { hashIds: true });
    const manager = pkg.withOAuthSession(store, { clientId: "c", clientSecret: "s", authBaseUrl: "http://127.0.0.1:9", redirectUri: "http://x/cb", scopes: ["atproto"] }, storage);
    try {
      const id = await store.createSession("did:plc:alice", "alice.test");
      await storage.setTokens({ accessToken: "at", tokenType: "Bearer" }, id);
      const session = await manager.getOAuthSession(id);
      assert.equal(session.sessionId, id);
      assert.equal(session.tokens.accessToken, "at");
      // Without tokens the session is still found (the manager asks the store whether it exists).
      await storage.clearTokens(id);
      assert.equal((await manager.getOAuthSession(id)).sessionId, id);
      await manager.logout(id);
      assert.equal(await store.getSession(id), null);
      for (const f of [file, sessions]) {
        const bytes = ["", "-wal"].map((s) => (existsSync(f + s) ? readFileSync(f + s).toString("latin1") : "")).join("");
        assert.ok(!bytes.includes(id), `${f} holds the clear id`);
      }
    } finally {
      await store.close();
      await storage.close();
      await adapter.close();
    }
  });
});

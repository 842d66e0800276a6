// Secrets at rest in the native OAuth storages (docs/security.md): `encryptionKey` seals the
// access and refresh tokens (AES-256-GCM, bound to the session id), `hashIds` stores every
// session-keyed record under SHA-256 of the id. Proved on what an attacker with a copy of the
// storage would see: the SQLite file's bytes, PostgreSQL's rows (psql), Redis's keys and
// values (redis-cli). Runs under Node and Deno, against the loopback AIP server.
import { describe, test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { pkg, tmpDir, removeTmpDirs, pgUrl, redisUrl, psql, redisCli, uniq, sqlLit } from "./target.mjs";
import { startAip, oauthConfig, memoryStore, recorder, isOAuthError, runWorkers, WORKER_BARRIER } from "./oauth-support.mjs";

let aip;
before(async () => {
  aip = await startAip();
});
after(async () => {
  await aip?.stop();
  removeTmpDirs();
});
beforeEach(async () => {
  await aip.reset({ burnRefreshAfterAccessExpiry: false });
});

const K1 = "11".repeat(32);
const K2 = Uint8Array.from({ length: 32 }, (_, i) => i + 100);
const K2_HEX = Array.from(K2, (b) => b.toString(16).padStart(2, "0")).join("");
const K2_BASE64 = btoa(String.fromCharCode(...K2));

/** A native storage of `kind` with `options`, and what a copy of its data shows (`dump()`). */
function backend(kind) {
  switch (kind) {
    case "SQLiteOAuthStorage": {
      const file = join(tmpDir("slices-at-rest-"), "oauth.db");
      return {
        open: (options) => new pkg.SQLiteOAuthStorage(file, options),
        dump: () => ["", "-wal"].map((s) => (existsSync(file + s) ? readFileSync(file + s).toString("latin1") : "")).join("\n"),
        /** Runs SQL on the file with python3's sqlite3 (an SQLite of its own). */
        sql: (statement, params) => {
          const res = spawnSync("python3", ["-c", "import sqlite3,sys,json; c=sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2], json.loads(sys.argv[3])); c.commit()", file, statement, JSON.stringify(params)], { encoding: "utf8" });
          assert.equal(res.status, 0, res.stderr);
        },
      };
    }
    case "PostgresOAuthStorage":
      return {
        open: (options) => new pkg.PostgresOAuthStorage(pgUrl(), options),
        dump: () => psql("SELECT * FROM slices_oauth_tokens") + "\n" + psql("SELECT * FROM slices_oauth_refresh_locks"),
        sql: (statement, params) => psql(statement.replace(/\?/g, () => sqlLit(params.shift()))),
      };
    case "RedisOAuthStorage": {
      const prefix = `${uniq("at-rest")}:`;
      return {
        open: (options) => new pkg.RedisOAuthStorage(redisUrl(), { prefix, ...options }),
        dump: () => {
          const keys = redisCli("--scan", "--pattern", `${prefix}*`).split("\n").filter(Boolean);
          return keys.map((k) => `${k}\n${redisCli("TYPE", k) === "hash" ? redisCli("HGETALL", k) : ""}`).join("\n");
        },
        prefix,
      };
    }
    default:
      return { open: (options) => new pkg.MemoryOAuthStorage(options), dump: null };
  }
}

const KINDS = ["MemoryOAuthStorage", "SQLiteOAuthStorage", "PostgresOAuthStorage", "RedisOAuthStorage"];
const tokens = (n = 1) => ({ accessToken: `at-${n}-${uniq("x")}`, tokenType: "Bearer", refreshToken: `rt-${n}-${uniq("x")}`, expiresAt: Date.now() + 3600_000, scope: "atproto" });

describe("encryptionKey and hashIds: options", () => {
  test("bad keys and flags are TypeErrors naming the option, without the key in the message", () => {
    const secret = "ab".repeat(31); // 31 bytes of hex: the wrong length
    for (const Ctor of [pkg.MemoryOAuthStorage, (o) => new pkg.SQLiteOAuthStorage(":memory:", o)]) {
      const make = (options) => (Ctor === pkg.MemoryOAuthStorage ? new Ctor(options) : Ctor(options));
      const named = (name) => (e) => e instanceof TypeError && e.message.includes(name) && !e.message.includes(secret);
      assert.throws(() => make({ encryptionKey: secret }), named("options.encryptionKey"));
      assert.throws(() => make({ encryptionKey: new Uint8Array(16) }), named("options.encryptionKey"));
      assert.throws(() => make({ encryptionKey: 42 }), named("options.encryptionKey"));
      assert.throws(() => make({ encryptionKey: [] }), named("options.encryptionKey"));
      assert.throws(() => make({ encryptionKey: [K1, secret] }), named("options.encryptionKey[1]"));
      assert.throws(() => make({ hashIds: "yes" }), named("options.hashIds"));
    }
    assert.throws(() => new pkg.PostgresOAuthStorage("postgresql://x/db", { encryptionKey: "nope" }), TypeError);
    assert.throws(() => new pkg.RedisOAuthStorage("redis://x", { hashIds: 1 }), TypeError);
    // The three spellings of one key are the same key.
    for (const key of [K2, K2_HEX, K2_HEX.toUpperCase(), K2_BASE64, K2_BASE64.replace(/=$/, "").replace(/\+/g, "-").replace(/\//g, "_")]) {
      new pkg.MemoryOAuthStorage({ encryptionKey: key });
    }
  });
});

for (const kind of KINDS) {
  describe(`secrets at rest on ${kind}`, () => {
    test("sealed: tokens round-trip, a copy of the data holds no token; key spellings agree", async () => {
      const b = backend(kind);
      const sealed = b.open({ encryptionKey: K2_HEX });
      const t = tokens();
      try {
        await sealed.setTokens(t, "s1");
        assert.deepEqual(await sealed.getTokens("s1"), t);
        if (kind !== "MemoryOAuthStorage") {
          const other = b.open({ encryptionKey: K2_BASE64 });
          assert.deepEqual(await other.getTokens("s1"), t, "the base64 spelling opens what the hex one sealed");
          await other.close();
        }
        if (b.dump) {
          const dump = b.dump();
          assert.ok(dump.includes("enc:v1:"), "the sealed values are there");
          for (const secret of [t.accessToken, t.refreshToken]) assert.ok(!dump.includes(secret), `${secret} is in the dump`);
        }
      } finally {
        await sealed.close();
      }
    });

    test("rotation: [k1] seals; [k2, k1] opens and reseals with k2; then [k2] alone opens it and [k1] does not", async () => {
      const b = backend(kind);
      if (kind === "MemoryOAuthStorage") return; // one process, one key set: nothing is shared
      const t = tokens();
      const s1 = b.open({ encryptionKey: K1 });
      await s1.setTokens(t, "s");
      const s21 = b.open({ encryptionKey: [K2, K1] });
      assert.deepEqual(await s21.getTokens("s"), t);
      await s21.setTokens(t, "s");
      const s2 = b.open({ encryptionKey: K2 });
      assert.deepEqual(await s2.getTokens("s"), t);
      await assert.rejects(() => s1.getTokens("s"), isOAuthError("token_decrypt_failed"));
      const none = b.open({});
      await assert.rejects(() => none.getTokens("s"), isOAuthError("token_decrypt_failed"));
      for (const s of [s1, s21, s2, none]) await s.close();
    });

    test("legacy rows written without a key stay readable and are sealed on their next write", async () => {
      const b = backend(kind);
      if (kind === "MemoryOAuthStorage") return;
      const t = tokens();
      const plain = b.open({});
      await plain.setTokens(t, "legacy");
      const sealed = b.open({ encryptionKey: K1 });
      assert.deepEqual(await sealed.getTokens("legacy"), t);
      assert.ok(b.dump().includes(t.accessToken), "still clear before the next write");
      const t2 = tokens(2);
      await sealed.setTokens(t2, "legacy");
      assert.ok(!b.dump().includes(t2.accessToken) && !b.dump().includes(t2.refreshToken));
      assert.deepEqual(await sealed.getTokens("legacy"), t2);
      await plain.close();
      await sealed.close();
    });

    test("hashIds: no session id in the data; tokens, lease and refresh found by the id", async () => {
      const b = backend(kind);
      const storage = b.open({ encryptionKey: K1, hashIds: true });
      const store = memoryStore();
      const rec = recorder();
      const manager = pkg.withOAuthSession(store, oauthConfig(aip), storage, rec.options);
      try {
        const old = await aip.issue({ expiresIn: -5 });
        const id = await store.createSession("did:plc:alice", "alice.test");
        await storage.setTokens(old, id);
        const session = await manager.getOAuthSession(id);
        assert.notEqual(session.tokens.accessToken, old.accessToken);
        assert.deepEqual(await storage.getTokens(id), session.tokens);
        assert.equal((await aip.counters()).refresh.total, 1);
        if (b.dump) {
          const dump = b.dump();
          assert.ok(!dump.includes(id), "the session id is not stored");
          for (const secret of [old.accessToken, old.refreshToken, session.tokens.accessToken, session.tokens.refreshToken]) {
            assert.ok(!dump.includes(secret), "no token in the dump");
          }
        }
        const unhashed = b.open({ encryptionKey: K1 });
        assert.equal(await unhashed.getTokens(id), null, "without hashIds the row is not found by the id");
        await unhashed.close();
        await manager.logout(id);
        assert.equal(await storage.getTokens(id), null);
      } finally {
        await store.close();
        await storage.close();
      }
    });

    if (kind === "SQLiteOAuthStorage" || kind === "PostgresOAuthStorage") {
      test("a tampered ciphertext, or a row copied to another session, is an OAuthError, never garbage; the session is kept", async () => {
        const b = backend(kind);
        const storage = b.open({ encryptionKey: K1 });
        const store = memoryStore();
        const manager = pkg.withOAuthSession(store, oauthConfig(aip), storage);
        try {
          const t = await aip.issue({ expiresIn: 3600 });
          const a = await store.createSession("did:plc:alice", "alice.test");
          const victim = await store.createSession("did:plc:bob", "bob.test");
          await storage.setTokens(t, a);
          await storage.setTokens(tokens(), victim);
          // Bob's row overwritten with Alice's sealed values: they do not open under Bob's id.
          b.sql("UPDATE slices_oauth_tokens SET access_token = (SELECT access_token FROM slices_oauth_tokens WHERE session_id = ?), refresh_token = (SELECT refresh_token FROM slices_oauth_tokens WHERE session_id = ?) WHERE session_id = ?", [a, a, victim]);
          await assert.rejects(() => manager.getOAuthSession(victim), isOAuthError("token_decrypt_failed"));
          await assert.rejects(() => storage.getTokens(victim), isOAuthError("token_decrypt_failed"));
          assert.notEqual(await store.getSession(victim), null, "a misconfiguration or tampering does not log the user out");
          // One character of Alice's ciphertext changed.
          b.sql("UPDATE slices_oauth_tokens SET access_token = substr(access_token, 1, length(access_token) - 3) || 'AAA' WHERE session_id = ?", [a]);
          await assert.rejects(() => manager.getAccessToken(a), isOAuthError("token_decrypt_failed"));
          assert.equal((await aip.counters()).refresh.total, 0, "nothing was sent with garbage");
        } finally {
          await store.close();
          await storage.close();
        }
      });
    }
  });
}

describe("secrets at rest across processes", () => {
  test("4 processes x 25 callers on one expired session, encrypted SQLite with hashed ids: exactly 1 refresh", async () => {
    const dir = tmpDir("slices-at-rest-procs-");
    const file = join(dir, "oauth.db");
    const storage = new pkg.SQLiteOAuthStorage(file, { encryptionKey: K1, hashIds: true });
    const old = await aip.issue({ expiresIn: -5 });
    const sessionId = "shared-session-" + uniq("p");
    await storage.setTokens(old, sessionId);
    await aip.faults([{ type: "latency", ms: 300 }]);
    const worker = `
const pkg = await import(PKG);
const cfg = JSON.parse(process.env.OAUTH_WORKER);
const storage = new pkg.SQLiteOAuthStorage(cfg.file, { encryptionKey: cfg.key, hashIds: true });
const store = new pkg.SessionStore({ adapter: new pkg.MemoryAdapter(), cleanupInterval: 0, generateId: () => cfg.sessionId });
await store.createSession("did:plc:alice", "alice.test");
let refreshes = 0;
const errors = [];
const manager = pkg.withOAuthSession(store, cfg.oauthConfig, storage, { onTokenRefresh: () => { refreshes += 1; }, onError: (e) => errors.push(String(e)) });
${WORKER_BARRIER}
const settled = await Promise.allSettled(Array.from({ length: 25 }, () => manager.getAccessToken(cfg.sessionId)));
const tokens = settled.map((r) => (r.status === "fulfilled" ? r.value : "rejected: " + r.reason));
await store.close();
await storage.close();
process.stdout.write(JSON.stringify({ tokens, errors, refreshes }) + "\\n");
`;
    const runs = await runWorkers(`import process from "node:process";\n${worker}`, 4, {
      env: { OAUTH_WORKER: JSON.stringify({ file, key: K1, sessionId, oauthConfig: oauthConfig(aip) }) },
      timeoutMs: 40000,
    });
    for (const [i, run] of runs.entries()) assert.equal(run.code, 0, `worker ${i}: ${run.stdout} ${run.stderr}`);
    const stored = await storage.getTokens(sessionId);
    await storage.close();
    const counters = await aip.counters();
    assert.deepEqual(counters.refresh, { total: 1, byStatus: { 200: 1 } }, "exactly one refresh request");
    assert.deepEqual(runs.map((r) => r.result.errors), [[], [], [], []]);
    assert.deepEqual(runs.map((r) => r.result.tokens), Array(4).fill(Array(25).fill(stored.accessToken)));
    assert.equal(runs.reduce((n, r) => n + r.result.refreshes, 0), 1);
    const dump = ["", "-wal"].map((s) => (existsSync(file + s) ? readFileSync(file + s).toString("latin1") : "")).join("");
    for (const secret of [old.accessToken, old.refreshToken, stored.accessToken, stored.refreshToken, sessionId]) {
      assert.ok(!dump.includes(secret), "nothing in clear in the shared file");
    }
  });
});

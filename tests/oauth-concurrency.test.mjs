// Single-flight refresh (SPEC §6, docs/oauth.md "The refresh protocol", issue 4 "Done when"):
// - 100 concurrent getOAuthSession calls on one expired session: exactly one refresh request
//   reaches the server, every caller gets the same new token (each storage kind);
// - two managers and an OAuthClient over one storage object share that one flight;
// - 4 processes x 25 concurrent calls on one expired session, sharing an SQLite OAuth storage
//   file, and the same with PostgresOAuthStorage and with RedisOAuthStorage: exactly one refresh request in total, all
//   end with the same valid token, zero errors.
// The session's access token is expired at the server too (expiresIn < 0), with the server's
// burn-after-expiry rule switched off so that the one refresh may succeed.
import { describe, test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { pkg, pgUrl, redisUrl, tmpDir, removeTmpDirs } from "./target.mjs";
import { startAip, STORAGE_KINDS, withSetup, oauthConfig, runWorkers, WORKER_BARRIER } from "./oauth-support.mjs";

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

for (const kind of STORAGE_KINDS) {
  describe(`single-flight refresh on ${kind}`, () => {
    test("100 concurrent getOAuthSession on one expired session: one refresh request, every caller the same new token", async () => {
      await withSetup(aip, kind, {}, async (s) => {
        const old = await aip.issue({ expiresIn: -5 });
        const id = await s.seed(old);
        const results = await Promise.all(Array.from({ length: 100 }, () => s.manager.getOAuthSession(id)));

        const counters = await aip.counters();
        assert.deepEqual(counters.refresh, { total: 1, byStatus: { 200: 1 } });
        assert.equal(counters.tokenRequests, 1);
        assert.deepEqual(counters.refreshTokensPresented, [old.refreshToken]);

        const stored = await s.storage.getTokens(id);
        assert.notEqual(stored.accessToken, old.accessToken);
        assert.ok(stored.expiresAt > Date.now());
        for (const result of results) {
          assert.equal(result.sessionId, id);
          assert.deepEqual(result.tokens, stored);
        }
        assert.deepEqual(s.rec.events, [["refresh", id, stored]], "onTokenRefresh once, no error, no logout");
        assert.equal((await aip.userinfo(stored.accessToken)).status, 200);
      });
    });

    test("two managers and an OAuthClient over one storage object share the flight (90 mixed calls)", async () => {
      await withSetup(aip, kind, {}, async (s) => {
        const old = await aip.issue({ expiresIn: -5 });
        const id = await s.seed(old);
        const errors = [];
        const second = pkg.withOAuthSession(s.store, oauthConfig(aip), s.storage, { onError: (e) => errors.push(e) });
        const client = new pkg.OAuthClient(oauthConfig(aip), s.storage, id);
        await aip.faults([{ type: "latency", ms: 200 }]); // keep the flight open while everyone joins
        const calls = [];
        for (let i = 0; i < 30; i += 1) {
          calls.push(s.manager.getAccessToken(id));
          calls.push(second.getOAuthSession(id).then((r) => r.tokens.accessToken));
          calls.push(client.ensureValidToken());
        }
        const tokens = await Promise.all(calls);
        const stored = await s.storage.getTokens(id);
        assert.notEqual(stored.accessToken, old.accessToken);
        assert.deepEqual(tokens, Array(90).fill(stored.accessToken));
        assert.deepEqual((await aip.counters()).refresh, { total: 1, byStatus: { 200: 1 } });
        assert.deepEqual(errors, []);
        assert.deepEqual(s.rec.errors(), []);
        assert.deepEqual(s.rec.logouts(), []);
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Several processes. Each worker opens its own SessionStore and OAuth storage on the shared
// database, builds a manager, announces "ready", waits for the parent's "go" (all four are
// released together), runs 25 concurrent getOAuthSession calls and prints what it saw.
// ---------------------------------------------------------------------------------------------

const WORKER = `
const pkg = await import(PKG);
const cfg = JSON.parse(process.env.OAUTH_WORKER);
const adapter = cfg.kind === "sqlite" ? new pkg.SQLiteAdapter(cfg.sessionsFile)
  : cfg.kind === "redis" ? new pkg.RedisAdapter(cfg.redisUrl) : new pkg.PostgresAdapter(cfg.pgUrl);
const storage = cfg.kind === "sqlite" ? new pkg.SQLiteOAuthStorage(cfg.oauthFile)
  : cfg.kind === "redis" ? new pkg.RedisOAuthStorage(cfg.redisUrl) : new pkg.PostgresOAuthStorage(cfg.pgUrl);
const store = new pkg.SessionStore({ adapter, cleanupInterval: 0 });
const errors = [];
let refreshes = 0;
let logouts = 0;
const manager = pkg.withOAuthSession(store, cfg.oauthConfig, storage, {
  onTokenRefresh: () => { refreshes += 1; },
  onLogout: () => { logouts += 1; },
  onError: (e) => errors.push(e.name + "(" + e.code + "): " + e.message),
});
// Open the databases before the start line (a read that refreshes nothing).
if ((await storage.getTokens(cfg.sessionId)) === null) throw new Error("the parent's tokens are not visible");
${WORKER_BARRIER}
const settled = await Promise.allSettled(Array.from({ length: 25 }, () => manager.getOAuthSession(cfg.sessionId)));
const tokens = [];
for (const r of settled) {
  if (r.status === "rejected") errors.push("rejected: " + (r.reason && r.reason.stack || r.reason));
  else if (r.value === null) errors.push("resolved null");
  else tokens.push(r.value.tokens ? r.value.tokens.accessToken : "NO TOKENS");
}
await store.close();
await storage.close();
await adapter.close();
process.stdout.write(JSON.stringify({ tokens, errors, refreshes, logouts }) + "\\n");
`;

async function fourProcesses({ kind, makeAdapter, makeStorage, workerConfig }) {
  const old = await aip.issue({ expiresIn: -5 });
  const adapter = makeAdapter();
  const storage = makeStorage();
  const store = new pkg.SessionStore({ adapter, cleanupInterval: 0 });
  try {
    const sessionId = await store.createSession("did:plc:alice", "alice.test");
    await storage.setTokens(old, sessionId);
    // The one refresh takes 300 ms at the server, so the other processes' calls (released at
    // once) arrive while it is in progress and must wait for its lease and adopt its result.
    await aip.faults([{ type: "latency", ms: 300 }]);
    const runs = await runWorkers(WORKER, 4, {
      env: { OAUTH_WORKER: JSON.stringify({ kind, sessionId, oauthConfig: oauthConfig(aip), ...workerConfig }) },
      timeoutMs: 40000,
    });
    for (const [i, run] of runs.entries()) {
      assert.equal(run.code, 0, `worker ${i} exited with ${run.code ?? run.signal}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
      assert.ok(run.result, `worker ${i} printed no result\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
    }
    const counters = await aip.counters();
    const stored = await storage.getTokens(sessionId);
    assert.deepEqual(
      runs.map((r) => r.result.errors),
      [[], [], [], []],
      "zero errors",
    );
    assert.deepEqual(counters.refresh, { total: 1, byStatus: { 200: 1 } }, "exactly one refresh request in total");
    assert.equal(counters.tokenRequests, 1);
    assert.deepEqual(counters.refreshTokensPresented, [old.refreshToken]);
    assert.notEqual(stored.accessToken, old.accessToken);
    assert.deepEqual(
      runs.map((r) => r.result.tokens),
      Array(4).fill(Array(25).fill(stored.accessToken)),
      "every call of every process ends with the stored new token",
    );
    assert.equal(runs.reduce((n, r) => n + r.result.refreshes, 0), 1, "onTokenRefresh once, in the process that refreshed");
    assert.deepEqual(runs.map((r) => r.result.logouts), [0, 0, 0, 0]);
    assert.equal((await aip.userinfo(stored.accessToken)).status, 200, "the token is valid at the server");
    assert.ok(stored.expiresAt > Date.now());
  } finally {
    await store.close();
    await storage.close();
    await adapter.close();
  }
}

describe("4 processes x 25 concurrent calls on one expired session", () => {
  test("sharing an SQLite OAuth storage file: one refresh in total, the same valid token everywhere, zero errors", async () => {
    const dir = tmpDir("slices-oauth-procs-");
    const sessionsFile = join(dir, "sessions.db");
    const oauthFile = join(dir, "oauth.db");
    await fourProcesses({
      kind: "sqlite",
      makeAdapter: () => new pkg.SQLiteAdapter(sessionsFile),
      makeStorage: () => new pkg.SQLiteOAuthStorage(oauthFile),
      workerConfig: { sessionsFile, oauthFile },
    });
  });

  test("sharing a PostgresOAuthStorage: one refresh in total, the same valid token everywhere, zero errors", async () => {
    const url = pgUrl();
    await fourProcesses({
      kind: "postgres",
      makeAdapter: () => new pkg.PostgresAdapter(url),
      makeStorage: () => new pkg.PostgresOAuthStorage(url),
      workerConfig: { pgUrl: url },
    });
  });

  test("sharing a RedisOAuthStorage (sessions in a RedisAdapter): one refresh in total, the same valid token everywhere, zero errors", async () => {
    const url = redisUrl();
    await fourProcesses({
      kind: "redis",
      makeAdapter: () => new pkg.RedisAdapter(url),
      makeStorage: () => new pkg.RedisOAuthStorage(url),
      workerConfig: { redisUrl: url },
    });
  });
});

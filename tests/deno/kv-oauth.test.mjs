// Deno only (needs --unstable-kv): DenoKVOAuthStorage, the OAuth storage over Deno.Kv that the
// JSR package adds (issue 14), with the setup real Slices apps use (DenoKVAdapter sessions,
// DenoKVOAuthStorage tokens, withOAuthSession with autoRefresh, OAuthClient) against the
// loopback AIP server (tests/aip/server.mjs): authorize, callback, createOAuthSession,
// getOAuthSession with a refresh, logout; and 4 Deno processes x 25 callers on one expired
// session sharing one KV file, which must make exactly one refresh request.
import { describe, test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { pkg, tmpDir, removeTmpDirs } from "../target.mjs";
import { startAip, oauthConfig, runWorkers, WORKER_BARRIER, recorder } from "../oauth-support.mjs";

const { DenoKVOAuthStorage, DenoKVAdapter, SessionStore, OAuthClient, withOAuthSession, AdapterError, OAuthError } = pkg;

assert.equal(typeof DenoKVOAuthStorage, "function", "run with SLICES_SESSION_MODULE=jsr/mod.ts");

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

/** Follows the loopback server's authorization page: its redirect carries code and state. */
async function followAuthorization(authorizationUrl) {
  const response = await fetch(authorizationUrl, { redirect: "manual" });
  await response.arrayBuffer();
  assert.equal(response.status, 302);
  const location = new URL(response.headers.get("location"));
  return { code: location.searchParams.get("code"), state: location.searchParams.get("state") };
}

const tokens = (over = {}) => ({ accessToken: "at-1", tokenType: "Bearer", refreshToken: "rt-1", expiresAt: Date.now() + 3600_000, scope: "atproto", ...over });

describe("DenoKVOAuthStorage: storage rules", () => {
  test("tokens round-trip (absent keys stay absent), replace, clear; per session id; a custom prefix keeps them apart", async () => {
    const kv = await Deno.openKv(":memory:");
    try {
      const a = new DenoKVOAuthStorage(kv);
      const b = new DenoKVOAuthStorage(kv, { prefix: ["other"] });
      assert.equal(await a.getTokens("s1"), null);
      await a.setTokens(tokens(), "s1");
      await a.setTokens({ accessToken: "only", tokenType: "DPoP" }, "s2");
      assert.deepEqual(await a.getTokens("s1"), tokens({ expiresAt: (await a.getTokens("s1")).expiresAt }));
      assert.deepEqual(await a.getTokens("s2"), { accessToken: "only", tokenType: "DPoP" });
      assert.equal(await b.getTokens("s1"), null, "another prefix sees nothing");
      await a.setTokens(tokens({ accessToken: "at-2", refreshToken: undefined }), "s1");
      assert.equal((await a.getTokens("s1")).accessToken, "at-2");
      assert.equal("refreshToken" in (await a.getTokens("s1")), false);
      await a.clearTokens("s1");
      await a.clearTokens("s1"); // no-op
      assert.equal(await a.getTokens("s1"), null);
      assert.equal((await a.getTokens("s2")).accessToken, "only");
      // Stored where the layout says.
      assert.equal((await kv.get(["slices-oauth", "tokens", "s2"])).value.accessToken, "only");
    } finally {
      kv.close();
    }
  });

  test("PKCE state: one use (of 10 concurrent takers exactly one gets it), expired states give null", async () => {
    const kv = await Deno.openKv(":memory:");
    try {
      const s = new DenoKVOAuthStorage(kv);
      await s.putState("st", { codeVerifier: "v", createdAt: 1 }, Date.now() + 60_000);
      const taken = await Promise.all(Array.from({ length: 10 }, () => s.takeState("st")));
      assert.deepEqual(taken.filter((t) => t !== null), [{ codeVerifier: "v", createdAt: 1 }]);
      assert.equal(await s.takeState("st"), null);
      await s.putState("old", { codeVerifier: "v", createdAt: 1 }, Date.now() - 1);
      assert.equal(await s.takeState("old"), null);
      assert.equal((await kv.get(["slices-oauth", "state", "old"])).value, null, "an expired state is removed when read");
    } finally {
      kv.close();
    }
  });

  test("refresh lease: one owner at a time, released only by its owner, an expired lease is taken over", async () => {
    const kv = await Deno.openKv(":memory:");
    try {
      const s = new DenoKVOAuthStorage(kv);
      const got = await Promise.all(["o1", "o2", "o3", "o4"].map((o) => s.tryLockRefresh("s", o, 60_000)));
      assert.equal(got.filter(Boolean).length, 1, "exactly one of 4 racing owners holds it");
      const holder = ["o1", "o2", "o3", "o4"][got.indexOf(true)];
      const other = holder === "o1" ? "o2" : "o1";
      assert.equal(await s.tryLockRefresh("s", holder, 60_000), true, "the holder may renew");
      await s.unlockRefresh("s", other); // not the owner: nothing happens
      assert.equal(await s.tryLockRefresh("s", other, 60_000), false);
      await s.unlockRefresh("s", holder);
      assert.equal(await s.tryLockRefresh("s", other, 50), true);
      await new Promise((r) => setTimeout(r, 80));
      assert.equal(await s.tryLockRefresh("s", holder, 60_000), true, "an expired lease is taken over");
    } finally {
      kv.close();
    }
  });

  test("refresh attempts: kept with the tokens, nothing without tokens, forgotten by setTokens and clearTokens", async () => {
    const kv = await Deno.openKv(":memory:");
    try {
      const s = new DenoKVOAuthStorage(kv);
      const attempt = { tokenFingerprint: "fp", startedAt: 5, lost: false };
      await s.setRefreshAttempt("s", attempt);
      assert.equal(await s.getRefreshAttempt("s"), null, "no tokens: nothing recorded");
      await s.setTokens(tokens(), "s");
      await s.setRefreshAttempt("s", attempt);
      assert.deepEqual(await s.getRefreshAttempt("s"), attempt);
      assert.equal("attempt" in (await s.getTokens("s")), false, "getTokens returns tokens only");
      await s.setRefreshAttempt("s", { ...attempt, lost: true });
      assert.equal((await s.getRefreshAttempt("s")).lost, true);
      await s.setRefreshAttempt("s", null);
      assert.equal(await s.getRefreshAttempt("s"), null);
      await s.setRefreshAttempt("s", attempt);
      await s.setTokens(tokens({ accessToken: "new" }), "s");
      assert.equal(await s.getRefreshAttempt("s"), null, "new tokens make the attempt moot");
      await s.setRefreshAttempt("s", attempt);
      await s.clearTokens("s");
      assert.equal(await s.getRefreshAttempt("s"), null);
    } finally {
      kv.close();
    }
  });

  test("bad arguments: TypeErrors; after close() calls reject with AdapterError; a caller's Deno.Kv stays open", async () => {
    assert.throws(() => new DenoKVOAuthStorage({}), TypeError);
    assert.throws(() => new DenoKVOAuthStorage(null), TypeError);
    const kv = await Deno.openKv(":memory:");
    try {
      assert.throws(() => new DenoKVOAuthStorage(kv, { prefix: "x" }), TypeError);
      const s = new DenoKVOAuthStorage(kv);
      await assert.rejects(() => s.getTokens(42), TypeError);
      await assert.rejects(() => s.setTokens({ accessToken: 1, tokenType: "Bearer" }, "s"), TypeError);
      await s.close();
      await s.close();
      await assert.rejects(() => s.getTokens("s"), (e) => e instanceof AdapterError && /closed/.test(e.message));
      await kv.set(["still", "open"], 1);
    } finally {
      kv.close();
    }
    const owned = await DenoKVOAuthStorage.open(":memory:");
    await owned.setTokens(tokens(), "s");
    await owned.close();
  });
});

describe("DenoKVOAuthStorage with the Slices app setup", () => {
  test("authorize, callback, createOAuthSession, getOAuthSession with a refresh, logout: all on Deno KV", async () => {
    const kv = await Deno.openKv(join(tmpDir("slices-kv-oauth-"), "app.kv"));
    const oauthStorage = new DenoKVOAuthStorage(kv);
    const sessionStore = new SessionStore({
      adapter: new DenoKVAdapter(kv),
      cookieName: "links-session",
      cookieOptions: { httpOnly: true, secure: false, sameSite: "lax", path: "/" },
      cleanupInterval: 0,
    });
    const config = oauthConfig(aip);
    const rec = recorder();
    const oauthSessions = withOAuthSession(sessionStore, config, oauthStorage, { autoRefresh: true, ...rec.options });
    const createOAuthClient = (userId) => new OAuthClient(config, oauthStorage, userId);
    try {
      // Login: the state is kept in KV until the callback, and is one use.
      const login = createOAuthClient("login");
      const { authorizationUrl, state } = await login.authorize({ loginHint: "alice.test" });
      assert.ok((await kv.get(["slices-oauth", "state", state])).value, "the PKCE state is in KV");
      const callback = await followAuthorization(authorizationUrl);
      assert.equal(callback.state, state);
      const issued = await login.handleCallback(callback);
      await assert.rejects(() => login.handleCallback(callback), (e) => e instanceof OAuthError && e.code === "invalid_state");
      const sessionId = await oauthSessions.createOAuthSession(issued);
      assert.equal(typeof sessionId, "string");
      assert.deepEqual(await oauthStorage.getTokens(sessionId), issued);
      const cookie = sessionStore.createSessionCookie(sessionId);
      assert.match(cookie, /^links-session=/);
      const request = new Request("http://localhost/", { headers: { cookie: cookie.split(";")[0] } });
      assert.equal((await sessionStore.getCurrentUser(request)).sub, "did:plc:alice");

      // The access token nears expiry: the next read refreshes once, through the KV lease.
      await oauthStorage.setTokens({ ...issued, expiresAt: Date.now() + 1000 }, sessionId);
      const session = await oauthSessions.getOAuthSession(sessionId);
      assert.equal(session.userId, "did:plc:alice");
      assert.notEqual(session.tokens.accessToken, issued.accessToken);
      assert.deepEqual(await oauthStorage.getTokens(sessionId), session.tokens);
      assert.equal((await aip.counters()).refresh.total, 1);
      assert.equal((await kv.get(["slices-oauth", "lock", sessionId])).value, null, "the lease was released");
      assert.deepEqual(rec.events, [["refresh", sessionId, session.tokens]]);
      assert.equal(await oauthSessions.getAccessToken(sessionId), session.tokens.accessToken);
      const client = createOAuthClient(sessionId);
      assert.equal((await client.getUserInfo()).sub, "did:plc:alice");

      await oauthSessions.logout(sessionId);
      assert.equal(await oauthStorage.getTokens(sessionId), null);
      assert.equal(await sessionStore.getSession(sessionId), null);
      assert.equal((await aip.counters()).refresh.total, 1, "nothing else was refreshed");
    } finally {
      await sessionStore.close();
      kv.close();
    }
  });

  test("4 Deno processes x 25 concurrent calls on one expired session, one KV file: exactly 1 refresh, one valid token everywhere", async () => {
    const file = join(tmpDir("slices-kv-procs-"), "shared.kv");
    const kv = await Deno.openKv(file);
    const storage = new DenoKVOAuthStorage(kv);
    const store = new SessionStore({ adapter: new DenoKVAdapter(kv), cleanupInterval: 0 });
    try {
      const old = await aip.issue({ expiresIn: -5 });
      const sessionId = await store.createSession("did:plc:alice", "alice.test");
      await storage.setTokens(old, sessionId);
      // The refresh takes 300 ms at the server, so the others arrive while it is in flight.
      await aip.faults([{ type: "latency", ms: 300 }]);
      const worker = `
const { DenoKVOAuthStorage, DenoKVAdapter, SessionStore, withOAuthSession } = await import(PKG);
const cfg = JSON.parse(Deno.env.get("OAUTH_WORKER"));
const kv = await Deno.openKv(cfg.file);
const storage = new DenoKVOAuthStorage(kv);
const store = new SessionStore({ adapter: new DenoKVAdapter(kv), cleanupInterval: 0 });
let refreshes = 0;
let logouts = 0;
const errors = [];
const manager = withOAuthSession(store, cfg.oauthConfig, storage, {
  onTokenRefresh: () => { refreshes += 1; },
  onLogout: () => { logouts += 1; },
  onError: (e) => errors.push(String(e)),
});
if ((await storage.getTokens(cfg.sessionId)) === null) throw new Error("the parent's tokens are not visible");
${WORKER_BARRIER}
const settled = await Promise.allSettled(Array.from({ length: 25 }, () => manager.getOAuthSession(cfg.sessionId)));
const tokens = [];
for (const r of settled) {
  if (r.status === "rejected") errors.push("rejected: " + (r.reason?.stack ?? r.reason));
  else if (r.value === null) errors.push("resolved null");
  else tokens.push(r.value.tokens ? r.value.tokens.accessToken : "NO TOKENS");
}
await store.close();
kv.close();
process.stdout.write(JSON.stringify({ tokens, errors, refreshes, logouts }) + "\\n");
`;
      const runs = await runWorkers(`import process from "node:process";\n${worker}`, 4, {
        env: { OAUTH_WORKER: JSON.stringify({ file, sessionId, oauthConfig: oauthConfig(aip) }) },
        timeoutMs: 40000,
      });
      for (const [i, run] of runs.entries()) {
        assert.equal(run.code, 0, `worker ${i} exited with ${run.code ?? run.signal}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
        assert.ok(run.result, `worker ${i} printed no result\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
      }
      const counters = await aip.counters();
      const stored = await storage.getTokens(sessionId);
      assert.deepEqual(runs.map((r) => r.result.errors), [[], [], [], []], "zero errors");
      assert.deepEqual(counters.refresh, { total: 1, byStatus: { 200: 1 } }, "exactly one refresh request in total");
      assert.deepEqual(counters.refreshTokensPresented, [old.refreshToken]);
      assert.notEqual(stored.accessToken, old.accessToken);
      assert.deepEqual(runs.map((r) => r.result.tokens), Array(4).fill(Array(25).fill(stored.accessToken)));
      assert.equal(runs.reduce((n, r) => n + r.result.refreshes, 0), 1, "onTokenRefresh once, in the process that refreshed");
      assert.deepEqual(runs.map((r) => r.result.logouts), [0, 0, 0, 0]);
      assert.equal((await aip.userinfo(stored.accessToken)).status, 200);
    } finally {
      await store.close();
      kv.close();
    }
  });
});

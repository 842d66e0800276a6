// A JS OAuth storage with the optional coordination methods (docs/oauth.md, "JS storages"):
// putState/takeState (OAuthClient's PKCE state), tryLockRefresh/unlockRefresh (the refresh
// lease), getRefreshAttempt/setRefreshAttempt (the attempt record). The native coordinator
// calls them; the storage only stores. Runs under Node (N-API) and Deno (FFI) alike, against
// the loopback AIP server.
import { describe, test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { pkg, removeTmpDirs } from "./target.mjs";
import { startAip, oauthConfig, memoryStore, recorder, isOAuthError, MapOAuthStorage } from "./oauth-support.mjs";

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

/** MapOAuthStorage plus every coordination method, recording calls; `lockedBy` simulates another process. */
class CoordinatedStorage extends MapOAuthStorage {
  states = new Map();
  leases = new Map();
  attempts = new Map();
  lockedBy = null;
  async putState(state, value, expiresAt) {
    this.calls.push(["putState", state]);
    this.states.set(state, { value: { ...value }, expiresAt });
  }
  async takeState(state) {
    this.calls.push(["takeState", state]);
    const entry = this.states.get(state);
    this.states.delete(state);
    return entry && entry.expiresAt > Date.now() ? entry.value : null;
  }
  async tryLockRefresh(sessionId, owner, leaseMs) {
    this.calls.push(["tryLockRefresh", sessionId, owner, leaseMs]);
    if (this.lockedBy !== null) return false;
    const held = this.leases.get(sessionId);
    if (held && held.owner !== owner && held.expiresAt > Date.now()) return false;
    this.leases.set(sessionId, { owner, expiresAt: Date.now() + leaseMs });
    return true;
  }
  async unlockRefresh(sessionId, owner) {
    this.calls.push(["unlockRefresh", sessionId, owner]);
    if (this.leases.get(sessionId)?.owner === owner) this.leases.delete(sessionId);
  }
  async getRefreshAttempt(sessionId) {
    this.calls.push(["getRefreshAttempt", sessionId]);
    return this.attempts.get(sessionId) ?? null;
  }
  async setRefreshAttempt(sessionId, attempt) {
    this.calls.push(["setRefreshAttempt", sessionId, attempt]);
    if (attempt === null) this.attempts.delete(sessionId);
    else this.attempts.set(sessionId, { ...attempt });
  }
  async setTokens(tokens, sessionId) {
    await super.setTokens(tokens, sessionId);
    this.attempts.delete(sessionId);
  }
  names() {
    return this.calls.map((c) => c[0]);
  }
}

async function followAuthorization(authorizationUrl) {
  const response = await fetch(authorizationUrl, { redirect: "manual" });
  await response.arrayBuffer();
  assert.equal(response.status, 302);
  const location = new URL(response.headers.get("location"));
  return { code: location.searchParams.get("code"), state: location.searchParams.get("state") };
}

describe("JS OAuth storage: coordination methods", () => {
  test("putState/takeState: OAuthClient keeps its PKCE state in the JS storage; one use", async () => {
    const storage = new CoordinatedStorage();
    const client = new pkg.OAuthClient(oauthConfig(aip), storage, "login");
    const { authorizationUrl, state, codeVerifier } = await client.authorize();
    assert.equal(storage.states.get(state).value.codeVerifier, codeVerifier);
    const expiresAt = storage.states.get(state).expiresAt;
    assert.ok(expiresAt > Date.now() + 9 * 60_000 && expiresAt <= Date.now() + 10 * 60_000, "10-minute expiry");
    assert.equal(typeof storage.states.get(state).value.createdAt, "number");
    const tokens = await client.handleCallback(await followAuthorization(authorizationUrl));
    assert.equal(typeof tokens.accessToken, "string");
    assert.deepEqual(storage.names(), ["putState", "takeState"]);
    await assert.rejects(() => client.handleCallback({ code: "x", state }), isOAuthError("invalid_state"));
  });

  test("without putState/takeState, authorize rejects naming the missing method, and sends nothing", async () => {
    const client = new pkg.OAuthClient(oauthConfig(aip), new MapOAuthStorage(), "login");
    await assert.rejects(() => client.authorize(), (e) => e instanceof pkg.SessionError && /putState/.test(e.message));
    assert.equal((await aip.counters()).authorize.total, 0);
  });

  test("half a pair is a TypeError naming the missing method, from withOAuthSession and OAuthClient", () => {
    const half = new MapOAuthStorage();
    half.tryLockRefresh = async () => true;
    assert.throws(() => pkg.withOAuthSession(memoryStore(), oauthConfig(aip), half), (e) => e instanceof TypeError && /unlockRefresh/.test(e.message));
    const other = new MapOAuthStorage();
    other.setRefreshAttempt = async () => {};
    assert.throws(() => new pkg.OAuthClient(oauthConfig(aip), other, "s"), (e) => e instanceof TypeError && /getRefreshAttempt/.test(e.message));
  });

  test("a refresh takes the lease, records the attempt before the request, stores, then releases the same lease", async () => {
    const storage = new CoordinatedStorage();
    const store = memoryStore();
    const rec = recorder();
    const manager = pkg.withOAuthSession(store, oauthConfig(aip), storage, rec.options);
    try {
      const old = await aip.issue({ expiresIn: -5 });
      const id = await store.createSession("did:plc:alice", "alice.test");
      await storage.setTokens(old, id);
      storage.calls.length = 0;
      const session = await manager.getOAuthSession(id);
      assert.notEqual(session.tokens.accessToken, old.accessToken);
      assert.equal((await aip.counters()).refresh.total, 1);
      const lock = storage.calls.find((c) => c[0] === "tryLockRefresh");
      const unlock = storage.calls.find((c) => c[0] === "unlockRefresh");
      assert.ok(lock && unlock, JSON.stringify(storage.names()));
      assert.equal(lock[1], id);
      assert.equal(typeof lock[2], "string");
      assert.ok(lock[3] > 10_000, "the lease outlives a request");
      assert.deepEqual(unlock.slice(1), [id, lock[2]], "released by its owner");
      const recorded = storage.calls.find((c) => c[0] === "setRefreshAttempt" && c[2] !== null);
      assert.ok(recorded, "an attempt is recorded before the request");
      assert.equal(typeof recorded[2].tokenFingerprint, "string");
      assert.equal(recorded[2].lost, false);
      const order = storage.names();
      assert.ok(order.indexOf("tryLockRefresh") < order.indexOf("setRefreshAttempt"));
      assert.ok(order.indexOf("setRefreshAttempt") < order.lastIndexOf("setTokens"));
      assert.ok(order.lastIndexOf("setTokens") < order.indexOf("unlockRefresh"));
      assert.equal(storage.leases.size, 0);
      assert.equal(storage.attempts.size, 0, "new tokens forget the attempt");
    } finally {
      await store.close();
    }
  });

  test("while another process holds the lease and then stores new tokens, the manager adopts them and sends nothing", async () => {
    const storage = new CoordinatedStorage();
    const store = memoryStore();
    const manager = pkg.withOAuthSession(store, oauthConfig(aip), storage);
    try {
      const old = await aip.issue({ expiresIn: -5 });
      const id = await store.createSession("did:plc:alice", "alice.test");
      await storage.setTokens(old, id);
      storage.lockedBy = "another process";
      const pending = manager.getOAuthSession(id);
      // The "other process" refreshes meanwhile and stores its result.
      const fresh = await aip.issue({ expiresIn: 3600 });
      await new Promise((r) => setTimeout(r, 50));
      await storage.setTokens(fresh, id);
      const session = await pending;
      assert.equal(session.tokens.accessToken, fresh.accessToken);
      assert.equal((await aip.counters()).refresh.total, 0, "no request while the lease was held elsewhere");
      assert.ok(storage.names().filter((n) => n === "tryLockRefresh").length >= 1);
    } finally {
      await store.close();
    }
  });

  test("results of the wrong shape fail the call with an error naming the method; nothing is sent", async () => {
    const storage = new CoordinatedStorage();
    storage.tryLockRefresh = async () => "yes";
    const store = memoryStore();
    const rec = recorder();
    const manager = pkg.withOAuthSession(store, oauthConfig(aip), storage, rec.options);
    try {
      const old = await aip.issue({ expiresIn: -5 });
      const id = await store.createSession("did:plc:alice", "alice.test");
      await storage.setTokens(old, id);
      // A storage failure is not a dead token: the session is kept with its current tokens,
      // and the failure is reported to onError, naming the method.
      const session = await manager.getOAuthSession(id);
      assert.equal(session.tokens.accessToken, old.accessToken);
      assert.equal(rec.errors().length, 1, JSON.stringify(rec.events));
      assert.match(rec.errors()[0].message, /tryLockRefresh/);
      assert.deepEqual(rec.logouts(), []);
      assert.equal((await aip.counters()).refresh.total, 0);
      assert.notEqual(await store.getSession(id), null, "not logged out");

      const bad = new CoordinatedStorage();
      bad.takeState = async () => ({ codeVerifier: 42 });
      const client = new pkg.OAuthClient(oauthConfig(aip), bad, "login");
      const { state } = await client.authorize();
      await assert.rejects(() => client.handleCallback({ code: "c", state }), (e) => /takeState/.test(e.message));
      assert.equal((await aip.counters()).authorizationCode.total, 0);
    } finally {
      await store.close();
    }
  });
});

// Wrong argument types for the OAuth API: a TypeError whose message names the argument, thrown
// synchronously by constructors and withOAuthSession, a rejection from async methods. No
// request leaves for a bad argument. (The loopback server is only there to prove that.)
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { pkg, removeTmpDirs } from "./target.mjs";
import { startAip, oauthConfig, MapOAuthStorage, memoryStore } from "./oauth-support.mjs";

const { withOAuthSession, OAuthClient, MemoryOAuthStorage, SQLiteOAuthStorage, PostgresOAuthStorage } = pkg;

let aip;
let store;
before(async () => {
  aip = await startAip();
  await aip.reset();
  store = memoryStore();
});
after(async () => {
  await store?.close();
  await aip?.stop();
  removeTmpDirs();
});

/** For assert.throws/rejects: a TypeError whose message contains `name`. */
const typeErrorNaming = (name) => (error) => {
  assert.ok(error instanceof TypeError, `expected a TypeError, got ${error?.constructor?.name}: ${error?.message}`);
  assert.ok(error.message.includes(name), `the message should name ${name}: ${error.message}`);
  return true;
};

describe("withOAuthSession", () => {
  test("a sessionStore that is not a SessionStore of this package", () => {
    const storage = new MemoryOAuthStorage();
    for (const bad of [undefined, null, {}, "store", new pkg.MemoryAdapter(), { getSession() {}, createSession() {} }]) {
      assert.throws(() => withOAuthSession(bad, oauthConfig(aip), storage), typeErrorNaming("sessionStore"));
    }
  });

  test("an oauthConfig that is not an OAuthConfig", () => {
    const storage = new MemoryOAuthStorage();
    const cfg = oauthConfig(aip);
    const cases = [
      [undefined, "oauthConfig"],
      ["https://auth.example.com", "oauthConfig"],
      [{ ...cfg, clientId: undefined }, "oauthConfig.clientId"],
      [{ ...cfg, clientId: 42 }, "oauthConfig.clientId"],
      [{ ...cfg, clientSecret: undefined }, "oauthConfig.clientSecret"],
      [{ ...cfg, authBaseUrl: undefined }, "oauthConfig.authBaseUrl"],
      [{ ...cfg, redirectUri: null }, "oauthConfig.redirectUri"],
      [{ ...cfg, scopes: "atproto" }, "oauthConfig.scopes"],
      [{ ...cfg, scopes: ["atproto", 7] }, "oauthConfig.scopes"],
      [{ ...cfg, authBaseUrl: "not a url" }, "authBaseUrl"],
    ];
    for (const [bad, name] of cases) {
      assert.throws(() => withOAuthSession(store, bad, storage), typeErrorNaming(name), `case ${JSON.stringify(bad)}`);
    }
    const { clientId, ...missing } = cfg;
    assert.throws(() => withOAuthSession(store, missing, storage), typeErrorNaming("oauthConfig.clientId"));
  });

  test("an oauthStorage lacking getTokens / setTokens / clearTokens", () => {
    const cfg = oauthConfig(aip);
    const full = { getTokens: async () => null, setTokens: async () => {}, clearTokens: async () => {} };
    for (const method of ["getTokens", "setTokens", "clearTokens"]) {
      const { [method]: _, ...lacking } = full;
      assert.throws(() => withOAuthSession(store, cfg, lacking), typeErrorNaming(`oauthStorage.${method}`));
      assert.throws(() => withOAuthSession(store, cfg, { ...full, [method]: "not a function" }), typeErrorNaming(`oauthStorage.${method}`));
    }
    class Lacking {
      async setTokens() {}
      async clearTokens() {}
    }
    assert.throws(() => withOAuthSession(store, cfg, new Lacking()), typeErrorNaming("oauthStorage.getTokens"));
    for (const bad of [undefined, null, "storage", 3]) {
      assert.throws(() => withOAuthSession(store, cfg, bad), typeErrorNaming("oauthStorage"));
    }
  });

  test("options of the wrong type", () => {
    const cfg = oauthConfig(aip);
    const storage = new MapOAuthStorage();
    const cases = [
      ["not an object", "options"],
      [{ autoRefresh: "yes" }, "options.autoRefresh"],
      [{ onTokenRefresh: "callback" }, "options.onTokenRefresh"],
      [{ onLogout: 1 }, "options.onLogout"],
      [{ onError: {} }, "options.onError"],
      [{ refreshSkew: "60s" }, "options.refreshSkew"],
      [{ refreshSkew: -1 }, "refreshSkew"],
      [{ requestTimeout: 0 }, "requestTimeout"],
    ];
    for (const [options, name] of cases) {
      assert.throws(() => withOAuthSession(store, cfg, storage, options), typeErrorNaming(name), `case ${JSON.stringify(options)}`);
    }
  });

  test("manager methods reject a non-string session id and non-OAuthTokens", async () => {
    const manager = withOAuthSession(store, oauthConfig(aip), new MemoryOAuthStorage());
    for (const method of ["getOAuthSession", "getAccessToken", "hasValidOAuthTokens", "logout"]) {
      await assert.rejects(manager[method](42), typeErrorNaming("sessionId"), method);
      await assert.rejects(manager[method](undefined), typeErrorNaming("sessionId"), method);
    }
    await assert.rejects(manager.createOAuthSession("at_token"), typeErrorNaming("tokens"));
    await assert.rejects(manager.createOAuthSession({ tokenType: "Bearer" }), typeErrorNaming("tokens.accessToken"));
    await assert.rejects(manager.createOAuthSession({ accessToken: "at", tokenType: "Bearer", expiresAt: "tomorrow" }), typeErrorNaming("tokens.expiresAt"));
    const counters = await aip.counters();
    assert.equal(counters.userinfo.total, 0);
    assert.equal(counters.tokenRequests, 0);
  });
});

describe("OAuthClient and the OAuth storages", () => {
  test("new OAuthClient(config, storage, sessionId) with a wrong argument", () => {
    const cfg = oauthConfig(aip);
    const storage = new MemoryOAuthStorage();
    assert.throws(() => new OAuthClient(undefined, storage, "s"), typeErrorNaming("config"));
    assert.throws(() => new OAuthClient({ ...cfg, clientSecret: 1 }, storage, "s"), typeErrorNaming("config.clientSecret"));
    assert.throws(() => new OAuthClient(cfg, { setTokens() {}, clearTokens() {} }, "s"), typeErrorNaming("storage.getTokens"));
    assert.throws(() => new OAuthClient(cfg, null, "s"), typeErrorNaming("storage"));
    assert.throws(() => new OAuthClient(cfg, storage, 42), typeErrorNaming("sessionId"));
    assert.throws(() => new OAuthClient(cfg, storage), typeErrorNaming("sessionId"));
  });

  test("OAuthClient methods with a wrong argument reject with a TypeError, sending nothing", async () => {
    const client = new OAuthClient(oauthConfig(aip), new MemoryOAuthStorage(), "s");
    await assert.rejects(client.authorize("alice"), typeErrorNaming("options"));
    await assert.rejects(client.authorize({ loginHint: 5 }), typeErrorNaming("options.loginHint"));
    await assert.rejects(client.handleCallback(), typeErrorNaming("params"));
    await assert.rejects(client.handleCallback({ code: 1, state: "s" }), typeErrorNaming("params.code"));
    await assert.rejects(client.handleCallback({ code: "c" }), typeErrorNaming("params.state"));
    assert.equal((await aip.counters()).tokenRequests, 0);
  });

  test("storage constructors and methods", async () => {
    assert.throws(() => new SQLiteOAuthStorage(), typeErrorNaming("pathOrUrl"));
    assert.throws(() => new SQLiteOAuthStorage(7), typeErrorNaming("pathOrUrl"));
    assert.throws(() => new PostgresOAuthStorage(), typeErrorNaming("connectionString"));
    assert.throws(() => new PostgresOAuthStorage("postgresql://127.0.0.1:1/x", { maxConnections: 0 }), typeErrorNaming("maxConnections"));
    assert.throws(() => new pkg.RedisOAuthStorage(), typeErrorNaming("url"));
    assert.throws(() => new pkg.RedisOAuthStorage("http://127.0.0.1:1"), typeErrorNaming("url"));
    assert.throws(() => new pkg.RedisOAuthStorage("redis://127.0.0.1:1", { maxConnections: 0 }), typeErrorNaming("maxConnections"));
    assert.throws(() => new pkg.RedisOAuthStorage("redis://127.0.0.1:1", { prefix: 5 }), typeErrorNaming("options.prefix"));
    const storage = new MemoryOAuthStorage();
    await assert.rejects(storage.getTokens(1), typeErrorNaming("sessionId"));
    await assert.rejects(storage.setTokens({ accessToken: "a", tokenType: "Bearer" }, null), typeErrorNaming("sessionId"));
    // Tokens first, as in @slices/oauth: swapped arguments are refused.
    await assert.rejects(storage.setTokens("s1", { accessToken: "a", tokenType: "Bearer" }), typeErrorNaming("tokens"));
    await assert.rejects(storage.setTokens({ accessToken: "a" }, "s1"), typeErrorNaming("tokens.tokenType"));
    await assert.rejects(storage.clearTokens({}), typeErrorNaming("sessionId"));
    await storage.close();
  });
});

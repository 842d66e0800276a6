// The native OAuthClient (SPEC §6 "Native OAuthClient", docs/oauth.md): authorize (PKCE S256,
// the URL's parameters exactly), the redirect followed by hand, handleCallback (tokens not
// stored; unknown or reused state rejected with OAuthError invalid_state before any request),
// getUserInfo (handle copied from name), refreshAccessToken (always refreshes, shares a flight
// with concurrent getOAuthSession calls), ensureValidToken, logout, and what it does after a
// lost refresh response. On MemoryOAuthStorage, SQLiteOAuthStorage, PostgresOAuthStorage, RedisOAuthStorage and
// a custom JS storage class (which holds tokens only: authorize/handleCallback need a native
// storage for the PKCE state).
import { describe, test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { pkg, pgUrl, redisUrl, tmpDir, removeTmpDirs, uniq } from "./target.mjs";
import { startAip, STORAGE_KINDS, makeStorage, withSetup, oauthConfig, isOAuthError, MapOAuthStorage } from "./oauth-support.mjs";

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
const NATIVE_KINDS = STORAGE_KINDS.filter((k) => k !== "custom JS class");
const BASE64URL_32_BYTES = /^[A-Za-z0-9_-]{43}$/;
const AUTHORIZE_KEYS = ["response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method"];
// Session ids unique to this run: the PostgreSQL tables are shared with other runs.
const ID = Object.fromEntries(
  ["with-profile", "without-profile", "nobody", "s1", "s2", "fresh", "due", "dead", "mine", "theirs", "login", "temp"].map((n) => [n, uniq(n)]),
);
const s256 = (verifier) => createHash("sha256").update(verifier).digest("base64url");

async function withStorage(kind, fn) {
  const { storage, close } = await makeStorage(kind);
  try {
    return await fn(storage);
  } finally {
    await close();
  }
}

/** The browser's part: GET the authorization URL, read the 302's Location without following it. */
async function followAuthorization(authorizationUrl) {
  // The client builds the URL from authBaseUrl, the loopback server.
  assert.ok(authorizationUrl.startsWith(`${aip.url}/oauth/authorize?`), authorizationUrl);
  const response = await fetch(authorizationUrl, { redirect: "manual" });
  await response.arrayBuffer();
  assert.equal(response.status, 302);
  const location = new URL(response.headers.get("location"));
  assert.equal(`${location.origin}${location.pathname}`, "http://localhost:8000/oauth/callback");
  assert.deepEqual([...location.searchParams.keys()], ["code", "state"]);
  return { code: location.searchParams.get("code"), state: location.searchParams.get("state") };
}

for (const kind of NATIVE_KINDS) {
  describe(`OAuthClient login on ${kind}`, () => {
    test("authorize: the URL's parameters exactly, PKCE S256 (code_challenge = base64url(sha256(codeVerifier)))", async () => {
      await withStorage(kind, async (storage) => {
        const client = new pkg.OAuthClient(oauthConfig(aip, { scopes: ["atproto", "transition:generic", "profile"] }), storage, ID["login"]);
        const result = await client.authorize();
        assert.deepEqual(Object.keys(result), ["authorizationUrl", "state", "codeVerifier"]);
        const { authorizationUrl, state, codeVerifier } = result;
        assert.match(state, BASE64URL_32_BYTES);
        assert.match(codeVerifier, BASE64URL_32_BYTES);
        const url = new URL(authorizationUrl);
        assert.equal(`${url.origin}${url.pathname}`, `${aip.url}/oauth/authorize`);
        assert.deepEqual([...url.searchParams.keys()], AUTHORIZE_KEYS);
        assert.deepEqual(Object.fromEntries(url.searchParams), {
          response_type: "code",
          client_id: "test-client",
          redirect_uri: "http://localhost:8000/oauth/callback",
          scope: "atproto transition:generic profile",
          state,
          code_challenge: s256(codeVerifier),
          code_challenge_method: "S256",
        });

        const again = await client.authorize({ loginHint: "did:plc:bob" });
        assert.notEqual(again.state, state);
        assert.notEqual(again.codeVerifier, codeVerifier);
        const url2 = new URL(again.authorizationUrl);
        assert.deepEqual([...url2.searchParams.keys()], [...AUTHORIZE_KEYS, "login_hint"]);
        assert.equal(url2.searchParams.get("login_hint"), "did:plc:bob");
        assert.equal(url2.searchParams.get("code_challenge"), s256(again.codeVerifier));
        assert.equal((await aip.counters()).authorize.total, 0, "authorize sends nothing");
      });
    });

    test("the whole login: authorize, the redirect, handleCallback (tokens not stored), createOAuthSession", async () => {
      await withStorage(kind, async (storage) => {
        const client = new pkg.OAuthClient(oauthConfig(aip), storage, ID["login"]);
        const { authorizationUrl, state } = await client.authorize({ loginHint: "bob.test" });
        const callback = await followAuthorization(authorizationUrl);
        assert.equal(callback.state, state);

        const before = Date.now();
        const tokens = await client.handleCallback(callback);
        const after = Date.now();
        assert.deepEqual(Object.keys(tokens).sort(), ["accessToken", "expiresAt", "refreshToken", "scope", "tokenType"]);
        assert.match(tokens.accessToken, /^at_/);
        assert.match(tokens.refreshToken, /^rt_/);
        assert.equal(tokens.tokenType, "Bearer");
        assert.equal(tokens.scope, "atproto profile");
        assert.ok(tokens.expiresAt >= before + HOUR && tokens.expiresAt <= after + HOUR, `expiresAt ${tokens.expiresAt}`);
        const counters = await aip.counters();
        assert.deepEqual(counters.authorize, { total: 1, byStatus: { 302: 1 } });
        assert.deepEqual(counters.authorizationCode, { total: 1, byStatus: { 200: 1 } });
        assert.equal(await storage.getTokens(ID["login"]), null, "handleCallback does not store the tokens");
        assert.deepEqual((await aip.userinfo(tokens.accessToken)).body, { sub: "did:plc:bob", did: "did:plc:bob", name: "bob.test" });

        // As the README does: createOAuthSession stores them under the new session's id.
        const store = new pkg.SessionStore({ adapter: new pkg.MemoryAdapter(), cleanupInterval: 0 });
        try {
          const manager = pkg.withOAuthSession(store, oauthConfig(aip), storage, { onError: (e) => assert.fail(e) });
          const id = await manager.createOAuthSession(tokens);
          const session = await manager.getOAuthSession(id);
          assert.equal(session.userId, "did:plc:bob");
          assert.equal(session.handle, "bob.test");
          assert.deepEqual(session.tokens, tokens);
          assert.deepEqual(await storage.getTokens(id), tokens);
        } finally {
          await store.close();
        }
      });
    });

    test("handleCallback rejects a reused or unknown state with OAuthError invalid_state, sending nothing", async () => {
      await withStorage(kind, async (storage) => {
        const client = new pkg.OAuthClient(oauthConfig(aip), storage, ID["temp"]);
        const callback = await followAuthorization((await client.authorize()).authorizationUrl);
        await client.handleCallback(callback);
        assert.equal((await aip.counters()).tokenRequests, 1);

        await assert.rejects(client.handleCallback(callback), isOAuthError("invalid_state"));
        await assert.rejects(client.handleCallback({ code: callback.code, state: "never-issued-state" }), isOAuthError("invalid_state"));
        assert.equal((await aip.counters()).tokenRequests, 1, "no request for a bad state");

        // A code the server refuses: its OAuth error code; the state is used up all the same.
        const second = await followAuthorization((await client.authorize()).authorizationUrl);
        await assert.rejects(client.handleCallback({ code: "code_forged", state: second.state }), isOAuthError("invalid_grant"));
        await assert.rejects(client.handleCallback(second), isOAuthError("invalid_state"));
        assert.equal((await aip.counters()).tokenRequests, 2);
      });
    });

    test("the state belongs to the storage, not to the client: another client over it completes the login", async () => {
      await withStorage(kind, async (storage) => {
        const loginRoute = new pkg.OAuthClient(oauthConfig(aip), storage, ID["login"]);
        const callbackRoute = new pkg.OAuthClient(oauthConfig(aip), storage, ID["temp"]);
        const callback = await followAuthorization((await loginRoute.authorize()).authorizationUrl);
        const tokens = await callbackRoute.handleCallback(callback);
        assert.equal((await aip.userinfo(tokens.accessToken)).status, 200);
      });
      // A second storage object: shared for the databases (another process, another server),
      // not for memory.
      const dir = tmpDir("slices-oauth-state-");
      const open = {
        MemoryOAuthStorage: () => new pkg.MemoryOAuthStorage(),
        SQLiteOAuthStorage: () => new pkg.SQLiteOAuthStorage(join(dir, "oauth.db")),
        PostgresOAuthStorage: () => new pkg.PostgresOAuthStorage(pgUrl()),
        RedisOAuthStorage: () => new pkg.RedisOAuthStorage(redisUrl()),
      }[kind];
      const [a, b] = [open(), open()];
      try {
        const callback = await followAuthorization((await new pkg.OAuthClient(oauthConfig(aip), a, ID["login"]).authorize()).authorizationUrl);
        const other = new pkg.OAuthClient(oauthConfig(aip), b, ID["temp"]);
        if (kind === "MemoryOAuthStorage") {
          await assert.rejects(other.handleCallback(callback), isOAuthError("invalid_state"));
        } else {
          assert.equal((await aip.userinfo((await other.handleCallback(callback)).accessToken)).status, 200);
        }
      } finally {
        await a.close();
        await b.close();
      }
    });
  });
}

describe("OAuthClient on a custom JS storage class", () => {
  test("authorize and handleCallback reject with a SessionError (no place for the PKCE state)", async () => {
    const client = new pkg.OAuthClient(oauthConfig(aip), new MapOAuthStorage(), ID["login"]);
    await assert.rejects(client.authorize(), (e) => e instanceof pkg.SessionError && !(e instanceof pkg.OAuthError));
    await assert.rejects(client.handleCallback({ code: "c", state: "s" }), (e) => e instanceof pkg.SessionError);
    assert.equal((await aip.counters()).tokenRequests, 0);
  });
});

for (const kind of STORAGE_KINDS) {
  describe(`OAuthClient session methods on ${kind}`, () => {
    test("getUserInfo: the server's JSON plus handle copied from name; without profile scope no name, no handle", async () => {
      await withStorage(kind, async (storage) => {
        await storage.setTokens(await aip.issue({ scope: "atproto profile" }), ID["with-profile"]);
        await storage.setTokens(await aip.issue({ handle: "bob.test", scope: "atproto" }), ID["without-profile"]);
        const info = await new pkg.OAuthClient(oauthConfig(aip), storage, ID["with-profile"]).getUserInfo();
        assert.deepEqual(info, { sub: "did:plc:alice", did: "did:plc:alice", name: "alice.test", handle: "alice.test" });
        const bare = await new pkg.OAuthClient(oauthConfig(aip), storage, ID["without-profile"]).getUserInfo();
        assert.deepEqual(bare, { sub: "did:plc:bob", did: "did:plc:bob" });
        await assert.rejects(new pkg.OAuthClient(oauthConfig(aip), storage, ID["nobody"]).getUserInfo(), isOAuthError("no_tokens"));
        const counters = await aip.counters();
        assert.deepEqual(counters.userinfo, { total: 2, byStatus: { 200: 2 } });
        assert.equal(counters.tokenRequests, 0);
      });
    });

    test("getUserInfo with tokens due for refresh refreshes first", async () => {
      await withStorage(kind, async (storage) => {
        const old = await aip.issue({ expiresIn: 30 });
        await storage.setTokens(old, ID["s1"]);
        const info = await new pkg.OAuthClient(oauthConfig(aip), storage, ID["s1"]).getUserInfo();
        assert.equal(info.sub, "did:plc:alice");
        const stored = await storage.getTokens(ID["s1"]);
        assert.notEqual(stored.accessToken, old.accessToken);
        const counters = await aip.counters();
        assert.deepEqual(counters.refresh, { total: 1, byStatus: { 200: 1 } });
        assert.deepEqual(counters.userinfo, { total: 1, byStatus: { 200: 1 } });
      });
    });

    test("refreshAccessToken always refreshes (one request per call) and stores the new tokens", async () => {
      await withStorage(kind, async (storage) => {
        const first = await aip.issue();
        await storage.setTokens(first, ID["s1"]);
        const client = new pkg.OAuthClient(oauthConfig(aip), storage, ID["s1"]);
        const second = await client.refreshAccessToken();
        assert.notEqual(second.accessToken, first.accessToken);
        assert.deepEqual(await storage.getTokens(ID["s1"]), second);
        assert.deepEqual((await aip.counters()).refresh, { total: 1, byStatus: { 200: 1 } });
        const third = await client.refreshAccessToken();
        assert.notEqual(third.accessToken, second.accessToken);
        assert.deepEqual(await storage.getTokens(ID["s1"]), third);
        const counters = await aip.counters();
        assert.deepEqual(counters.refresh, { total: 2, byStatus: { 200: 2 } });
        assert.deepEqual(counters.refreshTokensPresented, [first.refreshToken, second.refreshToken]);

        await assert.rejects(new pkg.OAuthClient(oauthConfig(aip), storage, ID["nobody"]).refreshAccessToken(), isOAuthError("no_tokens"));
        const { refreshToken, ...noRefresh } = await aip.issue();
        await storage.setTokens(noRefresh, ID["s2"]);
        await assert.rejects(new pkg.OAuthClient(oauthConfig(aip), storage, ID["s2"]).refreshAccessToken(), isOAuthError("no_refresh_token"));
        assert.equal((await aip.counters()).refresh.total, 2);
      });
    });

    test("refreshAccessToken shares the in-flight refresh with concurrent getOAuthSession calls", async () => {
      await withSetup(aip, kind, {}, async (s) => {
        const old = await aip.issue({ expiresIn: 30 });
        const id = await s.seed(old);
        const client = new pkg.OAuthClient(oauthConfig(aip), s.storage, id);
        await aip.faults([{ type: "latency", ms: 300 }]);
        const [fromClient, ...sessions] = await Promise.all([
          client.refreshAccessToken(),
          ...Array.from({ length: 20 }, () => s.manager.getOAuthSession(id)),
        ]);
        assert.notEqual(fromClient.accessToken, old.accessToken);
        assert.deepEqual(await s.storage.getTokens(id), fromClient);
        for (const session of sessions) assert.deepEqual(session.tokens, fromClient);
        assert.deepEqual((await aip.counters()).refresh, { total: 1, byStatus: { 200: 1 } });
        assert.deepEqual(s.rec.errors(), []);
        assert.deepEqual(s.rec.logouts(), []);
      });
    });

    test("ensureValidToken: the current token when fresh, a refreshed one when due, errors otherwise", async () => {
      await withStorage(kind, async (storage) => {
        const fresh = await aip.issue();
        const due = await aip.issue({ expiresIn: 30 });
        const { refreshToken, ...dead } = await aip.issue({ expiresIn: -5 });
        await storage.setTokens(fresh, ID["fresh"]);
        await storage.setTokens(due, ID["due"]);
        await storage.setTokens(dead, ID["dead"]);
        const client = (id) => new pkg.OAuthClient(oauthConfig(aip), storage, id);

        assert.equal(await client(ID["fresh"]).ensureValidToken(), fresh.accessToken);
        assert.equal((await aip.counters()).tokenRequests, 0);

        const token = await client(ID["due"]).ensureValidToken();
        assert.notEqual(token, due.accessToken);
        assert.equal((await storage.getTokens(ID["due"])).accessToken, token);
        assert.deepEqual((await aip.counters()).refresh, { total: 1, byStatus: { 200: 1 } });

        await assert.rejects(client(ID["dead"]).ensureValidToken(), isOAuthError("token_expired"));
        await assert.rejects(client(ID["nobody"]).ensureValidToken(), isOAuthError("no_tokens"));
        assert.equal((await aip.counters()).tokenRequests, 1);
      });
    });

    test("logout clears this session's tokens only; idempotent", async () => {
      await withStorage(kind, async (storage) => {
        const mine = await aip.issue();
        const theirs = await aip.issue();
        await storage.setTokens(mine, ID["mine"]);
        await storage.setTokens(theirs, ID["theirs"]);
        const client = new pkg.OAuthClient(oauthConfig(aip), storage, ID["mine"]);
        await client.logout();
        assert.equal(await storage.getTokens(ID["mine"]), null);
        assert.deepEqual(await storage.getTokens(ID["theirs"]), theirs);
        await client.logout();
        await assert.rejects(client.ensureValidToken(), isOAuthError("no_tokens"));
        assert.equal((await aip.counters()).tokenRequests, 0);
      });
    });

    test("a lost refresh response (drop_after_rotate), access token valid: refresh_response_lost, the token still served", async () => {
      await withSetup(aip, kind, {}, async (s) => {
        const tokens = await aip.issue({ expiresIn: 30 });
        const id = await s.seed(tokens);
        const client = new pkg.OAuthClient(oauthConfig(aip), s.storage, id);
        await aip.faults([{ type: "drop_after_rotate" }]);
        await assert.rejects(client.refreshAccessToken(), isOAuthError("network_error"));
        await assert.rejects(client.refreshAccessToken(), isOAuthError("refresh_response_lost"));
        assert.equal((await aip.counters()).tokenRequests, 2);
        await assert.rejects(client.refreshAccessToken(), isOAuthError("refresh_response_lost"));
        assert.equal(await client.ensureValidToken(), tokens.accessToken);
        assert.equal((await aip.counters()).tokenRequests, 2, "no further request with the spent refresh token");
        // The manager keeps the session signed in while the access token is valid.
        assert.deepEqual((await s.manager.getOAuthSession(id)).tokens, tokens);
        assert.equal(await s.manager.getAccessToken(id), tokens.accessToken);
        assert.equal((await aip.counters()).tokenRequests, 2);
        assert.deepEqual(await s.storage.getTokens(id), tokens);
        assert.deepEqual(s.rec.logouts(), []);
      });
    });

    test("a lost refresh response found by the client, access token expired: the manager's read logs out and says why", async () => {
      await aip.config({ burnRefreshAfterAccessExpiry: false });
      await withSetup(aip, kind, {}, async (s) => {
        const tokens = await aip.issue({ expiresIn: -5 });
        const id = await s.seed(tokens);
        const client = new pkg.OAuthClient(oauthConfig(aip), s.storage, id);
        await aip.faults([{ type: "drop_after_rotate" }]);
        await assert.rejects(client.refreshAccessToken(), isOAuthError("network_error"));
        await assert.rejects(client.refreshAccessToken(), isOAuthError("refresh_response_lost"));
        await assert.rejects(client.ensureValidToken(), isOAuthError("refresh_response_lost"));
        assert.equal((await aip.counters()).tokenRequests, 2);

        assert.equal(await s.manager.getOAuthSession(id), null);
        assert.equal(await s.store.getSession(id), null);
        assert.equal(await s.storage.getTokens(id), null);
        // Both the logout and its reason (docs/oauth.md, lost responses, point 2; the order of
        // the two is not specified there for this case).
        assert.deepEqual(
          s.rec.events.map((e) => (e[0] === "error" ? `error:${e[1].code}` : `${e[0]}:${e[1] === id}`)).sort(),
          ["error:refresh_response_lost", "logout:true"],
        );
        assert.equal((await aip.counters()).tokenRequests, 2);
      });
    });
  });
}

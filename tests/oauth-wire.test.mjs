// What goes over the wire to the authorization server, and how its answers become tokens
// (SPEC §6: "the client secret is sent as form fields", AIP's token response shape;
// docs/oauth.md "Other decisions"). A scripted loopback HTTP server records each request and
// answers what the test tells it to, which the AIP stand-in cannot do (odd responses, a
// redirect). Wire behaviour does not depend on the storage: MemoryOAuthStorage throughout.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { Buffer } from "node:buffer";
import { pkg } from "./target.mjs";
import { recorder, memoryStore, assertOAuthError } from "./oauth-support.mjs";

/** A server that records requests and answers from a queue of [status, body, headers]. */
let server;
let base;
const requests = [];
const answers = [];
before(async () => {
  server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      requests.push({ method: req.method, path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      const [status, body, headers = {}] = answers.shift() ?? [404, { error: "not_found" }];
      const text = typeof body === "string" ? body : JSON.stringify(body);
      res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
      res.end(text);
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${server.address().port}`;
});
after(async () => {
  await new Promise((r) => server.close(r));
});

function reset(...queue) {
  requests.length = 0;
  answers.length = 0;
  answers.push(...queue);
}

// A secret with every character form encoding must escape, and what HTTP Basic would mangle.
const SECRET = "s3cr:t/+ &=%?#é";
const config = () => ({
  clientId: "wire client",
  clientSecret: SECRET,
  authBaseUrl: base,
  redirectUri: "http://localhost:8000/oauth/callback?x=1",
  scopes: ["atproto", "profile"],
});

async function setup(options = {}) {
  const store = memoryStore();
  const storage = new pkg.MemoryOAuthStorage();
  const rec = recorder();
  const manager = pkg.withOAuthSession(store, config(), storage, { ...rec.options, ...options });
  return {
    store,
    storage,
    rec,
    manager,
    async seed(tokens) {
      const id = await store.createSession("did:plc:alice", "alice.test");
      await storage.setTokens(tokens, id);
      return id;
    },
    close: () => store.close(),
  };
}

const due = () => ({ accessToken: "at_old", tokenType: "Bearer", refreshToken: "rt_old", expiresAt: Date.now() + 10_000, scope: "atproto profile" });

describe("the refresh request", () => {
  test("POST {authBaseUrl}/oauth/token, form fields grant_type, refresh_token, client_id, client_secret; no HTTP Basic", async () => {
    const s = await setup();
    try {
      const id = await s.seed(due());
      reset([200, { access_token: "at_new", token_type: "Bearer", expires_in: 3600, refresh_token: "rt_new", scope: "atproto profile" }]);
      const before = Date.now();
      const result = await s.manager.getOAuthSession(id);
      const after = Date.now();
      assert.equal(requests.length, 1);
      const [request] = requests;
      assert.equal(request.method, "POST");
      assert.equal(request.path, "/oauth/token");
      assert.equal(request.headers["content-type"], "application/x-www-form-urlencoded");
      assert.equal(request.headers.authorization, undefined, "the secret travels as form fields only");
      const form = new URLSearchParams(request.body);
      assert.deepEqual([...form.keys()], ["grant_type", "refresh_token", "client_id", "client_secret"]);
      assert.deepEqual(Object.fromEntries(form), {
        grant_type: "refresh_token",
        refresh_token: "rt_old",
        client_id: "wire client",
        client_secret: SECRET,
      });
      const tokens = result.tokens;
      assert.deepEqual({ ...tokens, expiresAt: 0 }, { accessToken: "at_new", tokenType: "Bearer", refreshToken: "rt_new", expiresAt: 0, scope: "atproto profile" });
      // expires_in counted from when the request was sent.
      assert.ok(tokens.expiresAt >= before + 3600_000 && tokens.expiresAt <= after + 3600_000, `${tokens.expiresAt}`);
      assert.deepEqual(await s.storage.getTokens(id), tokens);
    } finally {
      await s.close();
    }
  });

  test("refresh_token null: none issued, the spent one is not kept; scope absent: unchanged; token_type absent: Bearer", async () => {
    const s = await setup();
    try {
      const id = await s.seed(due());
      reset([200, { access_token: "at_new", expires_in: 3600, refresh_token: null }]);
      const tokens = (await s.manager.getOAuthSession(id)).tokens;
      assert.deepEqual(Object.keys(tokens).sort(), ["accessToken", "expiresAt", "scope", "tokenType"]);
      assert.equal(tokens.accessToken, "at_new");
      assert.equal(tokens.tokenType, "Bearer");
      assert.equal(tokens.scope, "atproto profile");
      assert.deepEqual(await s.storage.getTokens(id), tokens);
    } finally {
      await s.close();
    }
  });

  test("a response without expires_in: tokens without expiresAt, never refreshed again", async () => {
    const s = await setup();
    try {
      const id = await s.seed(due());
      reset([200, { access_token: "at_new", token_type: "Bearer", refresh_token: "rt_new", scope: "atproto" }]);
      const tokens = (await s.manager.getOAuthSession(id)).tokens;
      assert.deepEqual(tokens, { accessToken: "at_new", tokenType: "Bearer", refreshToken: "rt_new", scope: "atproto" });
      await s.manager.getOAuthSession(id);
      assert.equal(requests.length, 1);
    } finally {
      await s.close();
    }
  });
});

describe("answers that are not tokens keep the session with its current tokens", () => {
  const cases = [
    ["400 invalid_request (refused)", [400, { error: "invalid_request", error_description: "x" }], "invalid_request"],
    ["400 without an error code", [400, "not json"], "http_400"],
    ["503 without a body", [503, ""], "server_error"],
    ["200 whose body is not JSON", [200, "<html>"], "invalid_response"],
    ["200 without access_token", [200, { token_type: "Bearer" }], "invalid_response"],
  ];
  for (const [name, answer, code] of cases) {
    test(`${name}: OAuthError ${code} through onError`, async () => {
      const s = await setup();
      try {
        const tokens = due();
        const id = await s.seed(tokens);
        reset(answer);
        assert.deepEqual((await s.manager.getOAuthSession(id)).tokens, tokens);
        assert.equal(requests.length, 1);
        assert.equal(s.rec.errors().length, 1);
        assertOAuthError(s.rec.errors()[0], code);
        assert.deepEqual(s.rec.events.filter((e) => e[0] !== "error"), []);
        assert.deepEqual(await s.storage.getTokens(id), tokens);
      } finally {
        await s.close();
      }
    });
  }

  test("a redirect from the token endpoint is not followed", async () => {
    const s = await setup();
    try {
      const tokens = due();
      const id = await s.seed(tokens);
      reset([307, "", { location: `${base}/elsewhere/token` }], [200, { access_token: "at_wrong", expires_in: 3600 }]);
      assert.deepEqual((await s.manager.getOAuthSession(id)).tokens, tokens);
      assert.deepEqual(requests.map((r) => r.path), ["/oauth/token"], "nothing sent to the redirect target");
      assert.equal(s.rec.errors().length, 1);
      assertOAuthError(s.rec.errors()[0], "http_307");
    } finally {
      await s.close();
    }
  });
});

describe("userinfo and the code exchange", () => {
  test("createOAuthSession: GET {authBaseUrl}/oauth/userinfo with Authorization: Bearer", async () => {
    const s = await setup();
    try {
      reset([200, { sub: "did:plc:wire", did: "did:plc:wire", name: "wire.test", extra: 1 }]);
      const id = await s.manager.createOAuthSession({ accessToken: "at_wire", tokenType: "Bearer" });
      assert.equal(requests.length, 1);
      assert.equal(requests[0].method, "GET");
      assert.equal(requests[0].path, "/oauth/userinfo");
      assert.equal(requests[0].headers.authorization, "Bearer at_wire");
      const session = await s.store.getSession(id);
      assert.equal(session.userId, "did:plc:wire");
      assert.equal(session.handle, "wire.test");

      // A userinfo answer without `sub`: null, nothing left behind.
      reset([200, { did: "did:plc:wire" }]);
      assert.equal(await s.manager.createOAuthSession({ accessToken: "at_wire", tokenType: "Bearer" }), null);
      assert.equal(s.rec.errors().length, 1);
      assertOAuthError(s.rec.errors()[0], "invalid_response");
    } finally {
      await s.close();
    }
  });

  test("handleCallback: form fields grant_type, code, redirect_uri, code_verifier, client_id, client_secret", async () => {
    const storage = new pkg.MemoryOAuthStorage();
    const client = new pkg.OAuthClient(config(), storage, "temp");
    const { authorizationUrl, state, codeVerifier } = await client.authorize();
    assert.equal(new URL(authorizationUrl).searchParams.get("redirect_uri"), "http://localhost:8000/oauth/callback?x=1");
    reset([200, { access_token: "at_code", token_type: "Bearer", expires_in: 60, refresh_token: "rt_code", scope: "atproto profile" }]);
    const tokens = await client.handleCallback({ code: "code_abc", state });
    assert.equal(requests.length, 1);
    assert.equal(requests[0].path, "/oauth/token");
    assert.equal(requests[0].headers.authorization, undefined);
    const form = new URLSearchParams(requests[0].body);
    assert.deepEqual([...form.keys()], ["grant_type", "code", "redirect_uri", "code_verifier", "client_id", "client_secret"]);
    assert.deepEqual(Object.fromEntries(form), {
      grant_type: "authorization_code",
      code: "code_abc",
      redirect_uri: "http://localhost:8000/oauth/callback?x=1",
      code_verifier: codeVerifier,
      client_id: "wire client",
      client_secret: SECRET,
    });
    assert.equal(tokens.accessToken, "at_code");
    assert.equal(tokens.refreshToken, "rt_code");
    await storage.close();
  });
});

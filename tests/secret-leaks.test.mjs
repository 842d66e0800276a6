// No error message, stack, error property or console line carries a secret (docs/security.md,
// "Log leaks"): database passwords in connection URLs, the OAuth client secret, access and
// refresh tokens, authorization codes, PKCE verifiers. Every failure path we can provoke on
// loopback is driven (bad URLs, servers down, the authorization server failing in each way),
// everything the package reports is collected (rejections, onError, console.error when there
// is no onError) and searched for each secret. Runs under Node and Deno.
import { describe, test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { inspect } from "node:util";
import { pkg, removeTmpDirs } from "./target.mjs";
import { startAip, oauthConfig, closedPort, memoryStore } from "./oauth-support.mjs";

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

const random = () => globalThis.crypto.randomUUID().replaceAll("-", "");

/** Everything the package said: error texts (message, stack, own properties) and console lines. */
class Said {
  texts = [];
  add(value) {
    if (value instanceof Error) this.texts.push(`${value.message}\n${value.stack}\n${inspect(value, { depth: 5 })}\n${JSON.stringify(value)}`);
    else this.texts.push(typeof value === "string" ? value : inspect(value, { depth: 5 }));
  }
  /** Runs `fn`, recording its rejection or throw (not its value: tokens are returned on purpose); returns it. */
  async attempt(fn) {
    try {
      await fn();
      return undefined;
    } catch (error) {
      this.add(error);
      return error;
    }
  }
  /** Runs `fn` with console.error / warn / log recorded (and silenced). */
  async withConsole(fn) {
    const saved = { error: console.error, warn: console.warn, log: console.log };
    for (const name of Object.keys(saved)) console[name] = (...args) => args.forEach((a) => this.add(a));
    try {
      return await fn();
    } finally {
      Object.assign(console, saved);
    }
  }
  assertNone(secrets) {
    assert.ok(this.texts.length > 0, "nothing was recorded: the scenarios did not run");
    for (const [name, secret] of Object.entries(secrets)) {
      assert.ok(secret.length >= 8, `${name} is a real secret`);
      for (const text of this.texts) {
        assert.ok(!text.includes(secret), `${name} leaked in: ${text.slice(0, 400)}`);
      }
    }
  }
}

describe("secrets never appear in errors or logs", () => {
  test("the search finds a secret when one is there (in a message, a property, a console line)", async () => {
    const secret = `s-${random()}`;
    for (const leak of [new Error(`oops ${secret}`), Object.assign(new Error("x"), { detail: { url: `redis://:${secret}@h` } }), `log ${secret}`]) {
      const said = new Said();
      await said.withConsole(async () => console.error(leak));
      assert.throws(() => said.assertNone({ secret }), /secret leaked/);
    }
  });

  test("database passwords in connection URLs (PostgreSQL, Redis): bad URLs, servers down", async () => {
    const password = `pw-${random()}`;
    const said = new Said();
    const port = await closedPort();
    const bad = [
      `postgresql://user:${password}@127.0.0.1:notaport/db`,
      `postgresql://user:${password}@[::1/db`,
      `redis://user:${password}@[bad`,
      `http://user:${password}@127.0.0.1:${port}`,
    ];
    for (const url of bad) {
      for (const Ctor of [pkg.PostgresAdapter, pkg.PostgresOAuthStorage, pkg.RedisAdapter, pkg.RedisOAuthStorage]) {
        const error = await said.attempt(async () => {
          const made = new Ctor(url, { queryTimeout: 1000 });
          try {
            return await (made.get ? made.get("x") : made.getTokens("x"));
          } finally {
            await made.close();
          }
        });
        assert.ok(error, `${Ctor.name}(${url.replace(password, "***")}) was accepted`);
      }
    }
    const down = [
      [pkg.PostgresAdapter, `postgresql://user:${password}@127.0.0.1:${port}/db`],
      [pkg.PostgresAdapter, `postgresql://127.0.0.1:${port}/db?user=u&password=${password}`],
      [pkg.PostgresOAuthStorage, `postgresql://user:${password}@127.0.0.1:${port}/db`],
      [pkg.RedisAdapter, `redis://user:${password}@127.0.0.1:${port}`],
      [pkg.RedisAdapter, `redis://:${password}@127.0.0.1:${port}/0`],
      [pkg.RedisOAuthStorage, `redis://user:${password}@127.0.0.1:${port}`],
    ];
    for (const [Ctor, url] of down) {
      const made = new Ctor(url, { queryTimeout: 1500 });
      try {
        const store = made.get ? new pkg.SessionStore({ adapter: made, cleanupInterval: 0 }) : null;
        const error = await said.attempt(() => (store ? store.getSession("x") : made.getTokens("x")));
        assert.ok(error instanceof pkg.AdapterError, `${Ctor.name}: ${error}`);
        if (store) {
          await said.attempt(() => store.createSession("u"));
          await store.close();
        }
      } finally {
        await made.close();
      }
    }
    said.assertNone({ password });
  });

  test("the OAuth client secret, tokens, codes and verifiers: every refresh failure, login failure and userinfo failure", async () => {
    const clientSecret = `cs-${random()}`;
    await aip.reset({ burnRefreshAfterAccessExpiry: false, clients: [{ clientId: "test-client", clientSecret }] });
    const said = new Said();
    const secrets = { clientSecret };
    let n = 0;
    const remember = (tokens) => {
      secrets[`access token ${++n}`] = tokens.accessToken;
      if (tokens.refreshToken) secrets[`refresh token ${n}`] = tokens.refreshToken;
      return tokens;
    };
    const store = memoryStore();
    const storage = new pkg.MemoryOAuthStorage();
    const config = oauthConfig(aip, { clientSecret });
    const seed = async () => {
      const id = await store.createSession("did:plc:alice", "alice.test");
      await storage.setTokens(remember(await aip.issue({ expiresIn: -5 })), id);
      return id;
    };
    try {
      await said.withConsole(async () => {
        // No onError: failures that do not fail the call go to console.error.
        const manager = pkg.withOAuthSession(store, config, storage, { requestTimeout: 300 });
        // 500, a timeout, invalid_client (a wrong secret: the secret we send must not be echoed).
        await aip.faults([{ type: "500" }]);
        await said.attempt(async () => manager.getOAuthSession(await seed()));
        await aip.faults([{ type: "latency", ms: 800 }]);
        await said.attempt(async () => manager.getAccessToken(await seed()));
        await new Promise((r) => setTimeout(r, 900)); // let the delayed request finish
        const wrongSecret = `wrong-${random()}`;
        secrets.wrongSecret = wrongSecret;
        const wrong = pkg.withOAuthSession(store, { ...config, clientSecret: wrongSecret }, storage);
        await said.attempt(async () => wrong.getOAuthSession(await seed()));
        // invalid_grant: the refresh token was spent elsewhere (logout).
        const id = await seed();
        const spent = await storage.getTokens(id);
        const rotated = await aip.refreshDirectly(spent.refreshToken, { clientSecret });
        remember(rotated.body ? { accessToken: rotated.body.access_token, refreshToken: rotated.body.refresh_token } : { accessToken: "x".repeat(8) });
        await said.attempt(() => manager.getOAuthSession(id));
        // Connection refused.
        const down = pkg.withOAuthSession(store, { ...config, authBaseUrl: `http://127.0.0.1:${await closedPort()}` }, storage);
        await said.attempt(async () => down.getOAuthSession(await seed()));
        // createOAuthSession with a token the server does not know: null, and quiet about it.
        const unknown = { accessToken: `at-${random()}`, tokenType: "Bearer", refreshToken: `rt-${random()}` };
        remember(unknown);
        await said.attempt(() => manager.createOAuthSession(unknown));
        // OAuthClient: a bad code, a reused state, userinfo with a bad token, a refresh that fails.
        const client = new pkg.OAuthClient(config, storage, "login");
        const { state, codeVerifier } = await client.authorize();
        secrets.codeVerifier = codeVerifier;
        const code = `code-${random()}`;
        secrets.code = code;
        await said.attempt(() => client.handleCallback({ code, state }));
        await said.attempt(() => client.handleCallback({ code, state }));
        const other = await seed();
        await storage.setTokens(unknown, other);
        await said.attempt(() => new pkg.OAuthClient(config, storage, other).getUserInfo());
        await aip.faults([{ type: "500" }]);
        await said.attempt(() => new pkg.OAuthClient(config, storage, other).refreshAccessToken());
        await said.attempt(() => new pkg.OAuthClient({ ...config, clientSecret: wrongSecret }, storage, other).refreshAccessToken());
      });
    } finally {
      await store.close();
      await storage.close();
    }
    assert.ok(said.texts.some((t) => /invalid_client/.test(t)), "the invalid_client failure was reported");
    assert.ok(said.texts.some((t) => /server_error|http_500|500/.test(t)), "the 500 was reported");
    said.assertNone(secrets);
  });
});

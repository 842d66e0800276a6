// The lifetimes of the JS objects OAuth hands to the native side (a JS OAuth storage, the
// onTokenRefresh / onLogout / onError callbacks, a store's JS adapter), under Node (N-API) and
// Deno (FFI, SLICES_SESSION_MODULE=jsr/mod.ts):
//   - they are collected once the manager, the clients and the user's own references are gone,
//     even when a callback refers to its manager (a cycle through the native side) and although
//     npm/session.js keys a storage's native handle by the storage object (a WeakMap);
//   - they stay while a manager or client that uses them is reachable, and while one of its
//     calls is in flight (a manager dropped right after `oauth.getAccessToken(id)`).
// And a SessionStore dropped without close(): its cleanup timer must not keep it (or its
// adapter) alive.
// Each test runs in a child process of the current runtime with the garbage collector exposed,
// importing the module under test (tests/target.mjs).
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { moduleSpecifier, runtime, tmpDir, removeTmpDirs } from "./target.mjs";

after(() => removeTmpDirs());

/** Runs `source` in a child of the current runtime with gc() exposed; resolves to its outcome. */
function runChild(source, timeoutMs = 60000) {
  const script = join(tmpDir("slices-oauth-gc-"), "oauth-gc.mjs");
  writeFileSync(script, source);
  const [cmd, args] =
    runtime === "deno"
      ? [Deno.execPath(), ["run", "-A", "--v8-flags=--expose-gc", script]]
      : [process.execPath, ["--expose-gc", script]];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: process.env });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Runs `body` after the package import and the helpers below; its last stdout line, parsed. */
async function runWithGc(body) {
  const source = `
    const m = await import(${JSON.stringify(moduleSpecifier)});
    // Nothing listens there: these tests make no successful HTTP request.
    const cfg = { clientId: "c", clientSecret: "s", authBaseUrl: "http://127.0.0.1:9", redirectUri: "http://localhost/cb", scopes: ["atproto"] };
    const mapStorage = () => {
      const tokens = new Map();
      return {
        async getTokens(id) { return tokens.get(id) ?? null; },
        async setTokens(t, id) { tokens.set(id, t); },
        async clearTokens(id) { tokens.delete(id); },
      };
    };
    const mapAdapter = () => {
      const rows = new Map();
      return {
        async get(id) { return rows.get(id) ?? null; }, async set(id, d) { rows.set(id, d); },
        async update(id, d) { if (!rows.has(id)) return false; rows.set(id, { ...rows.get(id), ...d }); return true; },
        async delete(id) { rows.delete(id); }, async cleanup() { return 0; }, async exists(id) { return rows.has(id); },
      };
    };
    const tick = () => new Promise((r) => setTimeout(r, 5));
    // Collects until every WeakRef in refs is cleared, or gives up. WeakRef.deref() keeps its
    // target alive until the current job ends: gc() only ever runs in a later job than the last
    // deref(). \`between\` runs each round (a call that lets the FFI binding deliver releases).
    const collectAll = async (refs, between = async () => {}) => {
      for (let i = 0; i < 60; i++) {
        await between();
        await tick();
        gc();
        await tick();
        if (refs.every((ref) => ref.deref() === undefined)) return true;
      }
      return false;
    };
    ${body}`;
  const result = await runChild(source);
  assert.equal(result.code, 0, `child exited with ${result.code ?? result.signal}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  const lines = result.stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

describe(`OAuth object lifetimes (${runtime})`, () => {
  // session.js keeps one native handle per JS storage object in a WeakMap keyed by that object,
  // and callbacks often refer to their manager: neither may be held from a root the native side
  // owns (an N-API threadsafe function, the FFI callback table), or both live forever.
  test("a JS OAuth storage and the callbacks are collected once manager, client and storage are unreachable", async () => {
    const out = await runWithGc(`
      const store = new m.SessionStore({ adapter: new m.MemoryAdapter(), cleanupInterval: 0 });
      const refs = [];
      const logouts = [];
      await (async () => {
        const storage = mapStorage();
        // The callback refers to the manager: a cycle through the native side.
        const onLogout = async (sessionId) => { logouts.push(sessionId); await oauth.getAccessToken(sessionId); };
        const onTokenRefresh = () => oauth;
        const oauth = m.withOAuthSession(store, cfg, storage, { onLogout, onTokenRefresh, onError: () => oauth });
        const client = new m.OAuthClient(cfg, storage, "s");
        refs.push(new WeakRef(storage), new WeakRef(onLogout), new WeakRef(oauth), new WeakRef(client));
        const id = await store.createSession("u");
        await storage.setTokens({ accessToken: "a", tokenType: "Bearer" }, id);
        await oauth.logout(id);
        await client.logout();
      })();
      // The control: the same, still in use.
      const keptStorage = mapStorage();
      const keptRef = new WeakRef(keptStorage);
      const kept = m.withOAuthSession(store, cfg, keptStorage, { onLogout: () => kept });
      const collected = await collectAll(refs, () => kept.hasValidOAuthTokens("nobody"));
      await kept.logout("nobody");
      console.log(JSON.stringify({ collected, logouts: logouts.length, control: keptRef.deref() !== undefined }));`);
    assert.deepEqual(out, { collected: true, logouts: 1, control: true });
  });

  test("many managers and clients over fresh JS storages, dropped without any cleanup, are all collected", async () => {
    const out = await runWithGc(`
      const store = new m.SessionStore({ adapter: new m.MemoryAdapter(), cleanupInterval: 0 });
      const refs = [];
      // In a function of its own: a suspended module body may still hold its last locals.
      await (async () => {
        for (let i = 0; i < 300; i++) {
          const storage = mapStorage();
          const oauth = m.withOAuthSession(store, cfg, storage, { onLogout: (id) => oauth.hasValidOAuthTokens(id) });
          const client = new m.OAuthClient(cfg, storage, "s" + i);
          refs.push(new WeakRef(storage), new WeakRef(oauth), new WeakRef(client));
          if (i % 10 === 0) {
            await oauth.hasValidOAuthTokens("x");
            await client.logout();
          }
        }
      })();
      const control = mapStorage();
      const kept = m.withOAuthSession(store, cfg, control, {});
      const collected = await collectAll(refs, () => kept.hasValidOAuthTokens("nobody"));
      const alive = refs.filter((ref) => ref.deref() !== undefined).length;
      console.log(JSON.stringify({ collected, alive }));`);
    assert.deepEqual(out, { collected: true, alive: 0 });
  });

  // The manager holds the session store's native side, hence a JS adapter's functions: dropping
  // everything without close() must release the adapter too (the N-API finalizers, the FFI
  // binding's release messages).
  test("a manager over a store with a JS adapter, all dropped without close(): adapter, storage and callbacks are collected", async () => {
    const out = await runWithGc(`
      const refs = [];
      await (async () => {
        const adapter = mapAdapter();
        const store = new m.SessionStore({ adapter, cleanupInterval: 0 });
        const storage = mapStorage();
        const onLogout = () => [oauth, store];
        const oauth = m.withOAuthSession(store, cfg, storage, { onLogout });
        refs.push(new WeakRef(adapter), new WeakRef(store), new WeakRef(storage), new WeakRef(onLogout), new WeakRef(oauth));
        const id = await store.createSession("u");
        await storage.setTokens({ accessToken: "a", tokenType: "Bearer" }, id);
        if ((await oauth.getAccessToken(id)) !== "a") throw new Error("no token");
        await oauth.logout(id);
      })();
      const keptStore = new m.SessionStore({ adapter: mapAdapter(), cleanupInterval: 0 });
      const kept = m.withOAuthSession(keptStore, cfg, mapStorage(), {});
      const collected = await collectAll(refs, async () => {
        await keptStore.createSession("x");
        await kept.hasValidOAuthTokens("nobody");
      });
      console.log(JSON.stringify({ collected, alive: refs.map((ref) => ref.deref() !== undefined) }));`);
    assert.deepEqual(out, { collected: true, alive: [false, false, false, false, false] });
  });

  // The native side refers to a JS storage and the callbacks only weakly: a reachable manager or
  // client must hold them, whatever the application dropped.
  test("a reachable manager or client keeps the storage and callbacks the application dropped", async () => {
    const out = await runWithGc(`
      const store = new m.SessionStore({ adapter: new m.MemoryAdapter(), cleanupInterval: 0 });
      const id = await store.createSession("u");
      const logouts = [];
      const refs = [];
      const [oauth, client] = await (async () => {
        const storage = mapStorage();
        await storage.setTokens({ accessToken: "a", tokenType: "Bearer" }, id);
        await storage.setTokens({ accessToken: "c", tokenType: "Bearer" }, "c");
        const onLogout = (sessionId) => void logouts.push(sessionId);
        refs.push(new WeakRef(storage), new WeakRef(onLogout));
        return [m.withOAuthSession(store, cfg, storage, { onLogout }), new m.OAuthClient(cfg, storage, "c")];
      })();
      const collected = await collectAll(refs);
      const token = await oauth.getAccessToken(id);
      const ensured = await client.ensureValidToken();
      await oauth.logout(id);
      await client.logout();
      const after = { token: await oauth.getAccessToken(id), ensured: await oauth.hasValidOAuthTokens("c") };
      const loggedOut = logouts.length === 1 && logouts[0] === id;
      console.log(JSON.stringify({ collected, token, ensured, loggedOut, after }));`);
    assert.deepEqual(out, { collected: false, token: "a", ensured: "c", loggedOut: true, after: { token: null, ensured: false } });
  });

  // A call keeps its manager or client alive until it settles: otherwise the JS objects only
  // that manager or client holds (its callbacks, its storage) could be collected mid-call, and
  // an event or a second storage call would be lost. `getAccessToken` and `ensureValidToken`
  // return the native Promise as it is, so nothing else holds the object once they are called.
  test("a manager or client dropped while its call is in flight keeps its storage and callbacks", async () => {
    const out = await runWithGc(`
      const store = new m.SessionStore({ adapter: new m.MemoryAdapter(), cleanupInterval: 0 });
      const id = await store.createSession("u");
      let open;
      const gate = new Promise((r) => (open = r));
      const events = [];
      const refs = [];
      const [token, ensured] = (() => {
        // Due for a refresh, which fails (nothing listens at authBaseUrl): onError, and the
        // current token. The first storage read waits until the objects were garbage-collected.
        const expiring = { accessToken: "a", tokenType: "Bearer", refreshToken: "r", expiresAt: Date.now() + 5000 };
        const gated = () => {
          const tokens = new Map([[id, expiring], ["c", expiring]]);
          let first = true;
          return {
            async getTokens(s) { if (first) { first = false; await gate; } return tokens.get(s) ?? null; },
            async setTokens(t, s) { tokens.set(s, t); },
            async clearTokens(s) { tokens.delete(s); },
          };
        };
        const onError = (e) => void events.push(e.code);
        const oauth = m.withOAuthSession(store, cfg, gated(), { onError });
        const client = new m.OAuthClient(cfg, gated(), "c");
        refs.push(new WeakRef(oauth), new WeakRef(client), new WeakRef(onError));
        return [oauth.getAccessToken(id), client.ensureValidToken()];
      })();
      for (let i = 0; i < 20; i++) {
        await tick();
        gc();
      }
      open();
      const result = { token: await token, ensured: await ensured, events };
      // Once settled, they go.
      result.collectedAfter = await collectAll(refs);
      console.log(JSON.stringify(result));`);
    assert.deepEqual(out, { token: "a", ensured: "a", events: ["network_error"], collectedAfter: true });
  });
});

describe(`SessionStore lifetimes (${runtime})`, () => {
  // The cleanup timer (default: hourly) must not keep a store that the application dropped
  // without close(), nor its adapter; a store still in use keeps running its cleanups.
  test("stores with the default cleanup timer, dropped without close(), are collected; a kept one still cleans up", async () => {
    const out = await runWithGc(`
      const refs = [];
      await (async () => {
        for (let i = 0; i < 20; i++) {
          const adapter = i % 2 ? mapAdapter() : new m.MemoryAdapter();
          const store = new m.SessionStore({ adapter });
          await store.createSession("u" + i);
          refs.push(new WeakRef(store), new WeakRef(adapter));
        }
      })();
      let cleanups = 0;
      const keptAdapter = { ...mapAdapter(), async cleanup() { cleanups += 1; return 0; } };
      const kept = new m.SessionStore({ adapter: keptAdapter, cleanupInterval: 20 });
      const collected = await collectAll(refs, () => kept.createSession("x"));
      await new Promise((r) => setTimeout(r, 100));
      await kept.close();
      console.log(JSON.stringify({ collected, alive: refs.filter((ref) => ref.deref() !== undefined).length, keptCleanedUp: cleanups > 0 }));`);
    assert.deepEqual(out, { collected: true, alive: 0, keptCleanedUp: true });
  });
});

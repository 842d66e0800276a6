// Shared by the tests/oauth-*.test.mjs files: the loopback AIP server (tests/aip/server.mjs) as
// a child process, its admin endpoints, token minting, the five kinds of OAuth storage, event
// recorders and the multi-process worker runner. Runs under Node and Deno (node:* modules only;
// children are `deno run -A` under Deno).
//
// Each test file starts its own server (`startAip()` in a `before`, `aip.stop()` in an `after`),
// so counters are per file; tests in a file run one after the other and call `aip.reset()`
// first, which clears counters, tokens and faults and restores the default configuration.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pkg, pgUrl, redisUrl, tmpDir, moduleSpecifier, runtime } from "./target.mjs";

const SERVER = fileURLToPath(new URL("./aip/server.mjs", import.meta.url));

/** The command that runs an ES module file in a new process of the current runtime. */
export function runtimeCommand(file, args = []) {
  if (runtime !== "deno") return [process.execPath, [file, ...args]];
  // Children of a test run with --unstable-kv (the Deno-only tests) get Deno KV too.
  const kv = typeof Deno.openKv === "function" ? ["--unstable-kv"] : [];
  return [Deno.execPath(), ["run", "-A", ...kv, file, ...args]];
}

/** The server's default configuration (tests/aip/server.mjs DEFAULT_CONFIG). */
export const DEFAULT_AIP_CONFIG = Object.freeze({
  accessTokenLifetime: 3600,
  burnRefreshAfterAccessExpiry: true,
  nameRequiresProfileScope: true,
  users: [
    { sub: "did:plc:alice", handle: "alice.test" },
    { sub: "did:plc:bob", handle: "bob.test" },
  ],
  clients: [{ clientId: "test-client", clientSecret: "test-secret" }],
});

/**
 * Starts tests/aip/server.mjs with `--die-with-stdin` on a free loopback port and resolves once
 * it has printed `{"port":N}`. The returned object has the admin helpers and `stop()`.
 */
export function startAip({ timeoutMs = 15000 } = {}) {
  const [cmd, args] = runtimeCommand(SERVER, ["--port", "0", "--die-with-stdin", "--ttl", "300"]);
  const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], env: process.env });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the AIP server did not start within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the AIP server exited (${code ?? signal}) before printing its port\nstderr: ${stderr}`));
    });
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d) => {
      stdout += d;
      const nl = stdout.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(timer);
      child.removeAllListeners("exit");
      const { port } = JSON.parse(stdout.slice(0, nl));
      resolve(new Aip(child, port));
    });
  });
}

class Aip {
  constructor(child, port) {
    this.child = child;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
  }

  async #json(method, path, body) {
    const response = await fetch(`${this.url}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`AIP admin ${method} ${path}: ${response.status} ${text}`);
    return JSON.parse(text);
  }

  counters() {
    return this.#json("GET", "/_admin/counters");
  }
  /** Clears counters, tokens, codes and faults, and restores the default configuration. */
  async reset(config = {}) {
    await this.#json("POST", "/_admin/reset", {});
    await this.#json("POST", "/_admin/config", { ...structuredClone(DEFAULT_AIP_CONFIG), ...config });
  }
  config(config) {
    return this.#json("POST", "/_admin/config", config);
  }
  faults(faults, append = false) {
    return this.#json("POST", "/_admin/faults", { faults, append });
  }
  /** The server's raw token response for a freshly minted pair. */
  issueRaw(body) {
    return this.#json("POST", "/_admin/issue", body);
  }

  /**
   * Mints a token pair for `handle` (alice by default) whose access token lives `expiresIn`
   * seconds (may be <= 0: already expired), and returns it as OAuthTokens, with `expiresAt`
   * counted from now as a client receiving this answer would. `localExpiresAt` overrides the
   * stored expiry (for "the client believes it expires soon" cases).
   */
  async issue({ handle = "alice.test", expiresIn = 3600, scope = "atproto profile", localExpiresAt } = {}) {
    const now = Date.now();
    const raw = await this.issueRaw({ handle, expiresIn, scope });
    return {
      accessToken: raw.access_token,
      tokenType: raw.token_type,
      refreshToken: raw.refresh_token,
      expiresAt: localExpiresAt ?? now + raw.expires_in * 1000,
      scope: raw.scope,
    };
  }

  /** GET /oauth/userinfo with a bearer token: { status, body }. */
  async userinfo(accessToken) {
    const response = await fetch(`${this.url}/oauth/userinfo`, { headers: { authorization: `Bearer ${accessToken}` } });
    return { status: response.status, body: await response.json() };
  }

  /** A refresh at the token endpoint made by someone else (another process, another client). */
  async refreshDirectly(refreshToken, { clientId = "test-client", clientSecret = "test-secret" } = {}) {
    const response = await fetch(`${this.url}/oauth/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken, client_id: clientId, client_secret: clientSecret }),
    });
    return { status: response.status, body: await response.json() };
  }

  /** Polls the counters until `pred(counters)` holds (bounded), then returns them. */
  async waitForCounters(pred, { timeoutMs = 5000, what = "condition" } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const c = await this.counters();
      if (pred(c)) return c;
      if (Date.now() > deadline) throw new Error(`AIP counters never reached ${what}: ${JSON.stringify(c)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async stop() {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.stdin.end();
    child.kill("SIGTERM");
    await exited;
    child.stdout.destroy();
    child.stderr.destroy();
  }
}

/** OAuthConfig for the loopback server. */
export function oauthConfig(aip, overrides = {}) {
  return {
    clientId: "test-client",
    clientSecret: "test-secret",
    authBaseUrl: aip.url,
    redirectUri: "http://localhost:8000/oauth/callback",
    scopes: ["atproto", "profile"],
    ...overrides,
  };
}

/** A loopback port nothing listens on (bound, then released). */
export async function closedPort() {
  const server = net.createServer();
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

/**
 * A custom JS OAuth storage: a class whose methods use `this` (a private Map), as a user's
 * Redis or KV storage would. It keeps copies, so nobody shares objects with the caller.
 */
export class MapOAuthStorage {
  #tokens = new Map();
  calls = [];
  async getTokens(sessionId) {
    this.calls.push(["getTokens", sessionId]);
    const tokens = this.#tokens.get(sessionId);
    return tokens === undefined ? null : { ...tokens };
  }
  async setTokens(tokens, sessionId) {
    this.calls.push(["setTokens", sessionId]);
    this.#tokens.set(sessionId, { ...tokens });
  }
  async clearTokens(sessionId) {
    this.calls.push(["clearTokens", sessionId]);
    this.#tokens.delete(sessionId);
  }
  get size() {
    return this.#tokens.size;
  }
}

export const STORAGE_KINDS = ["MemoryOAuthStorage", "SQLiteOAuthStorage", "PostgresOAuthStorage", "RedisOAuthStorage", "custom JS class"];

/** A fresh storage of `kind`: { storage, close }. SQLite uses a new temp file. */
export async function makeStorage(kind) {
  switch (kind) {
    case "MemoryOAuthStorage": {
      const storage = new pkg.MemoryOAuthStorage();
      return { storage, close: () => storage.close() };
    }
    case "SQLiteOAuthStorage": {
      const storage = new pkg.SQLiteOAuthStorage(join(tmpDir("slices-oauth-sqlite-"), "oauth.db"));
      return { storage, close: () => storage.close() };
    }
    case "PostgresOAuthStorage": {
      const storage = new pkg.PostgresOAuthStorage(pgUrl());
      return { storage, close: () => storage.close() };
    }
    case "RedisOAuthStorage": {
      const storage = new pkg.RedisOAuthStorage(redisUrl());
      return { storage, close: () => storage.close() };
    }
    case "custom JS class": {
      const storage = new MapOAuthStorage();
      return { storage, close: async () => {} };
    }
    default:
      throw new Error(`unknown storage kind ${kind}`);
  }
}

/** Records the manager's callbacks in order: [["refresh", id, tokens] | ["logout", id] | ["error", err]]. */
export function recorder() {
  const events = [];
  return {
    events,
    refreshes: () => events.filter((e) => e[0] === "refresh"),
    logouts: () => events.filter((e) => e[0] === "logout"),
    errors: () => events.filter((e) => e[0] === "error").map((e) => e[1]),
    options: {
      onTokenRefresh: (sessionId, tokens) => void events.push(["refresh", sessionId, tokens]),
      onLogout: (sessionId) => void events.push(["logout", sessionId]),
      onError: (error) => void events.push(["error", error]),
    },
  };
}

/** Asserts that `error` is an OAuthError (a SessionError, an Error) with `code`. */
export function assertOAuthError(error, code) {
  assert.ok(error instanceof pkg.OAuthError, `expected an OAuthError, got ${error?.constructor?.name}: ${error?.message}`);
  assert.ok(error instanceof pkg.SessionError && error instanceof Error);
  assert.equal(error.code, code, `OAuthError code (message: ${error.message})`);
  return true;
}

/** For assert.rejects: an OAuthError with `code`. */
export const isOAuthError = (code) => (error) => assertOAuthError(error, code);

/** A SessionStore over a MemoryAdapter, without the cleanup timer. */
export function memoryStore() {
  return new pkg.SessionStore({ adapter: new pkg.MemoryAdapter(), cleanupInterval: 0 });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `source` (an ES module; `PKG` in it is replaced by the package's absolute file URL or
 * specifier) in `n` processes of the current runtime at once. Each child must print
 * "ready\n" on stdout, then wait for a "go" line on stdin (see `WORKER_BARRIER`), then print
 * one line of JSON as its last stdout line. The children are released together once all are
 * ready. Resolves to [{ code, signal, stdout, stderr, result }] in spawn order.
 */
export async function runWorkers(source, n, { env = {}, timeoutMs = 30000 } = {}) {
  const dir = tmpDir("slices-oauth-worker-");
  const file = join(dir, "worker.mjs");
  writeFileSync(file, source.replaceAll("PKG", JSON.stringify(moduleSpecifier)));
  const [cmd, args] = runtimeCommand(file);
  const children = [];
  let released = false;
  let readyCount = 0;
  const release = () => {
    if (released) return;
    released = true;
    for (const c of children) c.child.stdin.end("go\n");
  };
  const runs = [];
  for (let i = 0; i < n; i += 1) {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...env, WORKER_INDEX: String(i) } });
    const entry = { child, stdout: "", stderr: "" };
    children.push(entry);
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d) => (entry.stderr += d));
    let sawReady = false;
    child.stdout.on("data", (d) => {
      entry.stdout += d;
      if (!sawReady && entry.stdout.startsWith("ready\n")) {
        sawReady = true;
        readyCount += 1;
        if (readyCount === n) release();
      }
    });
    runs.push(
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          for (const c of children) c.child.kill("SIGKILL");
          reject(new Error(`worker ${i} did not finish within ${timeoutMs} ms\nstdout: ${entry.stdout}\nstderr: ${entry.stderr}`));
        }, timeoutMs);
        child.on("error", (e) => {
          clearTimeout(timer);
          reject(e);
        });
        child.on("close", (code, signal) => {
          clearTimeout(timer);
          if (!sawReady) release(); // a child that died early must not hold the others forever
          const lines = entry.stdout.trim().split("\n");
          let result;
          try {
            result = JSON.parse(lines[lines.length - 1]);
          } catch {
            result = undefined;
          }
          resolve({ code, signal, stdout: entry.stdout, stderr: entry.stderr, result });
        });
      }),
    );
  }
  return Promise.all(runs);
}

/** Worker prologue: announce readiness, then wait for the parent's "go" line. */
export const WORKER_BARRIER = `
process.stdout.write("ready\\n");
await new Promise((resolve) => {
  let input = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (d) => { input += d; if (input.includes("go\\n")) resolve(); });
  process.stdin.on("end", resolve);
});
`;

// ---------------------------------------------------------------------------------------------
// A stand-in for "https://auth.example.com" on loopback, for the README sample whose config
// names that host (the sample must run unchanged, so its URL cannot be pointed elsewhere).
//
// The sample runs in a child process whose environment says, as a deployment behind a
// forward proxy would: HTTPS_PROXY=http://127.0.0.1:<proxy> and SSL_CERT_FILE=<a test CA>.
// The proxy accepts `CONNECT auth.example.com:443` only (anything else: 403), and connects the
// tunnel to a TLS endpoint on 127.0.0.1 presenting a certificate for auth.example.com signed
// by the test CA, which forwards the decrypted HTTP to the loopback AIP server. No name is
// resolved and nothing leaves the machine. The certificates are made with the `openssl` CLI
// in a temporary directory (2 days' validity); without openssl the test fails, saying so.
// ---------------------------------------------------------------------------------------------

/** Creates a test CA and a server certificate for `hostname` in `dir`: { caFile, key, cert }. */
export function makeTestCertificates(dir, hostname) {
  const run = (args) => {
    const res = spawnSync("openssl", args, { cwd: dir, encoding: "utf8", timeout: 20000 });
    if (res.error) throw new Error(`the openssl CLI is needed to create a test certificate for ${hostname}: ${res.error.message}`);
    if (res.status !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${res.stderr}`);
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  run(["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=slices-session test CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
  run(["req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", `/CN=${hostname}`]);
  writeFileSync(
    join(dir, "server.ext"),
    `subjectAltName=DNS:${hostname}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n`,
  );
  run(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem",
    "-days", "2", "-extfile", "server.ext"]);
  return { caFile: join(dir, "ca.pem"), key: readFileSync(join(dir, "server.key")), cert: readFileSync(join(dir, "server.pem")) };
}

/**
 * Starts the forward proxy and the TLS endpoint described above, for `hostname:443` → the AIP
 * server at `targetPort`. Resolves to { url, connects: ["host:port", ...], close() }.
 */
export async function startHttpsProxy({ hostname, key, cert, targetPort }) {
  const sockets = new Set();
  const track = (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    return socket;
  };
  const tlsServer = tls.createServer({ key, cert }, (clear) => {
    track(clear);
    const upstream = track(net.connect(targetPort, "127.0.0.1"));
    clear.pipe(upstream);
    upstream.pipe(clear);
  });
  tlsServer.on("tlsClientError", () => {});
  await new Promise((r) => tlsServer.listen(0, "127.0.0.1", r));
  const tlsPort = tlsServer.address().port;

  const connects = [];
  const proxy = net.createServer((client) => {
    track(client);
    let head = Buffer.alloc(0);
    const onData = (chunk) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      client.off("data", onData);
      const requestLine = head.subarray(0, head.indexOf("\r\n")).toString("latin1");
      const match = /^CONNECT (\S+) HTTP\/1\.[01]$/.exec(requestLine);
      connects.push(match ? match[1] : requestLine);
      if (!match || match[1] !== `${hostname}:443`) {
        client.end("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        return;
      }
      const tunnel = track(net.connect(tlsPort, "127.0.0.1", () => {
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        const rest = head.subarray(end + 4);
        if (rest.length > 0) tunnel.write(rest);
        client.pipe(tunnel);
        tunnel.pipe(client);
      }));
    };
    client.on("data", onData);
  });
  await new Promise((r) => proxy.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${proxy.address().port}`,
    connects,
    async close() {
      for (const socket of sockets) socket.destroy();
      await Promise.all([new Promise((r) => proxy.close(r)), new Promise((r) => tlsServer.close(r))]);
    },
  };
}

/**
 * A manager over a fresh storage of `kind` and a SessionStore over a MemoryAdapter, with
 * recorded callbacks. `ids` lists every id the store generated (so a test can look for what a
 * failed createOAuthSession might have left behind). Call `close()` when done.
 */
export async function setup(aip, kind, { options = {}, config = {} } = {}) {
  const { storage, close } = await makeStorage(kind);
  const ids = [];
  const adapter = new pkg.MemoryAdapter();
  const store = new pkg.SessionStore({
    adapter,
    cleanupInterval: 0,
    generateId: () => {
      const id = globalThis.crypto.randomUUID();
      ids.push(id);
      return id;
    },
  });
  const rec = recorder();
  const manager = pkg.withOAuthSession(store, oauthConfig(aip, config), storage, { ...rec.options, ...options });
  return {
    kind,
    storage,
    adapter,
    store,
    rec,
    manager,
    ids,
    /** A session for alice with `tokens` stored under its id (as a login would leave it). */
    async seed(tokens, { userId = "did:plc:alice", handle = "alice.test" } = {}) {
      const id = await store.createSession(userId, handle);
      if (tokens !== undefined) await storage.setTokens(tokens, id);
      return id;
    },
    async close() {
      await store.close();
      await close();
    },
  };
}

/** Runs `fn(s)` with `setup(...)`, closing it afterwards. */
export async function withSetup(aip, kind, opts, fn) {
  const s = await setup(aip, kind, opts);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

/** The session record as the store keeps it, without lastAccessedAt (which reads move). */
export function withoutAccess(session) {
  const { lastAccessedAt, ...rest } = session;
  assert.equal(typeof lastAccessedAt, "number");
  return rest;
}

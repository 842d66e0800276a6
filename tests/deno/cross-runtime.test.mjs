// Deno only: one SQLite file (and one Redis server), two runtimes. A session created by the npm package on Node is read
// by the JSR package on Deno (FFI), and the other way round, while both have the file open.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pkg, redisUrl, tmpDir, removeTmpDirs } from "../target.mjs";

const NODE = Deno.env.get("SLICES_NODE") ?? "node";
const NPM = new URL("../../npm/index.js", import.meta.url).href;

assert.equal(typeof pkg.DenoKVAdapter, "function", "run with SLICES_SESSION_MODULE=jsr/mod.ts");

/** Runs `source` (an ES module) under Node with `args`; resolves to its parsed JSON output. */
async function node(source, ...args) {
  const result = await new Deno.Command(NODE, {
    args: ["--input-type=module", "-e", source, "--", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(result.stdout);
  const stderr = new TextDecoder().decode(result.stderr);
  assert.equal(result.code, 0, `node failed (${result.code}): ${stderr}`);
  return JSON.parse(stdout);
}

describe("Node (npm, N-API) and Deno (JSR, FFI) share one SQLite file", () => {
  let file;
  let adapter;
  let store;

  before(() => {
    file = join(tmpDir("slices-cross-"), "sessions.db");
    // Deno keeps the file open for the whole test, as a running server would.
    adapter = new pkg.SQLiteAdapter(file);
    store = new pkg.SessionStore({ adapter, cleanupInterval: 0 });
  });
  after(async () => {
    await store?.close();
    await adapter?.close();
    removeTmpDirs();
  });

  test("Node runs the npm package over N-API (not this package)", async () => {
    const out = await node(`const m = await import(${JSON.stringify(NPM)}); console.log(JSON.stringify({ kv: typeof m.DenoKVAdapter, runtime: typeof Deno }));`);
    assert.deepEqual(out, { kv: "undefined", runtime: "undefined" });
    assert.ok(fileURLToPath(NPM).endsWith("npm/index.js"));
  });

  test("a session created on Deno is read on Node", async () => {
    const data = { theme: "dark", nested: { list: [1, "two", null] }, unicode: "😀 e\u0301" };
    const id = await store.createSession("did:plc:deno", "deno.example", data);
    const expected = await adapter.get(id);
    const out = await node(
      `const { SQLiteAdapter, SessionStore } = await import(${JSON.stringify(NPM)});
       const [file, id] = process.argv.slice(1);
       const adapter = new SQLiteAdapter(file);
       const store = new SessionStore({ adapter, cleanupInterval: 0 });
       const raw = await adapter.get(id);
       const viaCookie = await store.getSessionFromRequest({ headers: { cookie: "slice-session=" + id } });
       await store.close(); await adapter.close();
       console.log(JSON.stringify({ raw, viaCookie }));`,
      file,
      id,
    );
    assert.deepStrictEqual(out.raw, expected);
    assert.equal(out.viaCookie.sessionId, id);
    assert.equal(out.viaCookie.userId, "did:plc:deno");
    assert.equal(out.viaCookie.handle, "deno.example");
    assert.deepStrictEqual(out.viaCookie.data, data);
    // Node's read recorded the access in the shared file; Deno sees it.
    assert.equal((await adapter.get(id)).lastAccessedAt, out.viaCookie.lastAccessedAt);
  });

  test("a session created on Node is read on Deno", async () => {
    const out = await node(
      `const { SQLiteAdapter, SessionStore } = await import(${JSON.stringify(NPM)});
       const [file] = process.argv.slice(1);
       const adapter = new SQLiteAdapter(file);
       const store = new SessionStore({ adapter, cleanupInterval: 0 });
       const id = await store.createSession("did:plc:node", "node.example", { from: "node" });
       const record = await adapter.get(id);
       const cookie = store.createSessionCookie(id);
       await store.close(); await adapter.close();
       console.log(JSON.stringify({ id, record, cookie }));`,
      file,
    );
    assert.deepStrictEqual(await adapter.get(out.id), out.record);
    const request = new Request("http://localhost/", { headers: { cookie: out.cookie.split(";")[0] } });
    const user = await store.getCurrentUser(request);
    assert.deepStrictEqual(user, { sessionId: out.id, sub: "did:plc:node", handle: "node.example", isAuthenticated: true });
    // Both packages write the same cookie for the same session.
    assert.equal(store.createSessionCookie(out.id), out.cookie);
  });

  test("log out everywhere on Deno ends the user's sessions for Node too", async () => {
    const a = await store.createSession("did:plc:both");
    const created = await node(
      `const { SQLiteAdapter, SessionStore } = await import(${JSON.stringify(NPM)});
       const adapter = new SQLiteAdapter(process.argv[1]);
       const store = new SessionStore({ adapter, cleanupInterval: 0 });
       const id = await store.createSession("did:plc:both");
       await store.close(); await adapter.close();
       console.log(JSON.stringify(id));`,
      file,
    );
    assert.deepEqual((await store.listUserSessions("did:plc:both")).map((s) => s.sessionId).sort(), [a, created].sort());
    assert.equal(await store.deleteUserSessions("did:plc:both"), 2);
    const left = await node(
      `const { SQLiteAdapter, SessionStore } = await import(${JSON.stringify(NPM)});
       const adapter = new SQLiteAdapter(process.argv[1]);
       const store = new SessionStore({ adapter, cleanupInterval: 0 });
       const list = await store.listUserSessions("did:plc:both");
       await store.close(); await adapter.close();
       console.log(JSON.stringify(list));`,
      file,
    );
    assert.deepEqual(left, []);
  });
});

describe("Node (npm, N-API) and Deno (JSR, FFI) share one Redis server", () => {
  const prefix = `cross-${Date.now()}-${Math.random().toString(36).slice(2)}:`;
  let adapter;
  let store;
  before(() => {
    adapter = new pkg.RedisAdapter(redisUrl(), { prefix });
    store = new pkg.SessionStore({ adapter, cleanupInterval: 0 });
  });
  after(async () => {
    await store?.close();
    await adapter?.close();
  });

  test("a session created on Deno is read, touched and logged out everywhere on Node", async () => {
    const data = { theme: "dark", unicode: "😀 e\u0301" };
    const id = await store.createSession("did:plc:deno-redis", "deno.example", data);
    const expected = await adapter.get(id);
    const out = await node(
      `const { RedisAdapter, SessionStore } = await import(${JSON.stringify(NPM)});
       const [url, prefix, id] = process.argv.slice(1);
       const adapter = new RedisAdapter(url, { prefix });
       const store = new SessionStore({ adapter, cleanupInterval: 0 });
       const raw = await adapter.get(id);
       const viaCookie = await store.getSessionFromRequest({ headers: { cookie: "slice-session=" + id } });
       const other = await store.createSession("did:plc:deno-redis");
       await store.close(); await adapter.close();
       console.log(JSON.stringify({ raw, viaCookie, other }));`,
      redisUrl(),
      prefix,
      id,
    );
    assert.deepStrictEqual(out.raw, expected);
    assert.deepStrictEqual(out.viaCookie.data, data);
    assert.equal((await adapter.get(id)).lastAccessedAt, out.viaCookie.lastAccessedAt);
    assert.deepEqual((await store.listUserSessions("did:plc:deno-redis")).map((s) => s.sessionId).sort(), [id, out.other].sort());
    assert.equal(await store.deleteUserSessions("did:plc:deno-redis"), 2);
  });
});

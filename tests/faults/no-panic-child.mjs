// Scenarios for no-panic.test.mjs (Node, the npm package) and no-panic-deno.test.mjs (Deno,
// jsr/mod.ts through FFI), each run in its own process (a Rust panic that crossed into JS, or an
// abort, would kill that process: the parent checks the exit and stderr).
//
//   node no-panic-child.mjs SCENARIO
//   SLICES_SESSION_MODULE=jsr/mod.ts deno run -A no-panic-child.mjs SCENARIO
//
// The package comes from tests/target.mjs (SLICES_SESSION_MODULE, default the npm package).
// "garbage-native" goes one level below the public API, to the package's native object: the
// N-API addon (npm/native.cjs) for the npm package, jsr/native.ts (FFI) for the JSR one.
//
// Prints one JSON line: what every call did ({ name: "ok: <value>" | "<ErrorClass>: <message>" }).
import { createRequire } from "node:module";
import process from "node:process";
import { Worker } from "node:worker_threads";
import { pkg, moduleSpecifier, runtime } from "../target.mjs";

const PKG = moduleSpecifier;
const { SessionStore, MemoryAdapter, SQLiteAdapter, PostgresAdapter } = pkg;
const isJsr = /\/jsr\/mod\.ts$/.test(new URL(PKG, "file:///").pathname);
const native = isJsr
  ? (await import(new URL("./native.ts", PKG).href)).native
  : createRequire(import.meta.url)("../../npm/native.cjs");
/** Ends the process with `code` as the runtime's own exit does (Deno.exit on Deno). */
const exit = (code) => (runtime === "deno" ? Deno.exit(code) : process.exit(code));
const scenario = process.argv[2];
const results = {};

async function attempt(name, fn) {
  try {
    const value = await fn();
    results[name] = `ok: ${JSON.stringify(value)?.slice(0, 60)}`;
  } catch (error) {
    results[name] = `${error?.constructor?.name}: ${String(error?.message).slice(0, 160)}`;
  }
}

const record = (id, over = {}) => ({ sessionId: id, userId: "u", isAuthenticated: true, createdAt: 1, expiresAt: 9e15, lastAccessedAt: 1, ...over });
const baseFns = {
  get: async () => null,
  set: async () => {},
  update: async () => true,
  delete: async () => {},
  cleanup: async () => 0,
  exists: async () => false,
};

if (scenario === "garbage-public") {
  // Custom adapters returning wrong shapes, through the public API.
  const shapes = {
    number: 42,
    string: "x",
    array: [1, 2],
    "missing fields": { sessionId: "x" },
    "wrong types": { sessionId: "x", userId: 7, isAuthenticated: "yes", createdAt: "soon" },
    "NaN times": record("x", { createdAt: NaN, expiresAt: Infinity }),
    "bigint times": record("x", { createdAt: 1n }),
    "data not an object": record("x", { data: "text" }),
    "throwing getter": Object.defineProperty({}, "sessionId", { get() { throw new Error("getter boom"); }, enumerable: true }),
    proxy: new Proxy({}, { get() { throw new Error("proxy boom"); } }),
    symbol: Symbol("s"),
  };
  for (const [name, value] of Object.entries(shapes)) {
    const adapter = { ...baseFns, get: async () => value, update: async () => value, cleanup: async () => value, exists: async () => value };
    const store = new SessionStore({ adapter, cleanupInterval: 0 });
    await attempt(`get -> ${name}`, () => store.getSession("x"));
    await attempt(`request -> ${name}`, () => store.getSessionFromRequest({ headers: { cookie: "slice-session=x" } }));
    await attempt(`update -> ${name}`, () => store.updateSession("x", { handle: "h" }));
    await attempt(`cleanup -> ${name}`, () => store.cleanup());
    await store.close();
  }
  const throwing = { ...baseFns, get: () => { throw 42; }, set: () => Promise.reject(undefined), listByUser: async () => "not an array", deleteByUser: async () => ({}) };
  const store = new SessionStore({ adapter: throwing, cleanupInterval: 0 });
  await attempt("get throws a number", () => store.getSession("x"));
  await attempt("set rejects undefined", () => store.createSession("u"));
  await attempt("listByUser -> string", () => store.listUserSessions("u"));
  await attempt("deleteByUser -> object", () => store.deleteUserSessions("u"));
} else if (scenario === "garbage-native") {
  // The same, one level down: straight into the native store (npm/native.cjs), skipping the JS
  // layer's normalisation, so Rust's own conversion of JS values is what fails.
  const cases = {
    "get -> 42": { get: async () => 42 },
    "get -> missing fields": { get: async () => ({ sessionId: "x" }) },
    "get -> bigint": { get: async (id) => record(id, { createdAt: 1n }) },
    "get -> handle number": { get: async (id) => record(id, { handle: 5 }) },
    "get -> proxy": { get: async () => new Proxy({}, { get() { throw new Error("proxy boom"); } }) },
    "get -> not a promise": { get: () => 42 },
    "get -> thenable": { get: () => ({ then: (resolve) => resolve(42) }) },
    "get -> sync throw": { get: () => { throw new Error("sync boom"); } },
    "get -> rejects with undefined": { get: () => Promise.reject(undefined) },
    "update -> string": { get: async (id) => record(id), update: async () => "yes" },
    "set -> rejects": { set: async () => { throw new Error("set boom"); } },
  };
  for (const [name, over] of Object.entries(cases)) {
    await attempt(name, async () => {
      const store = native.NativeStore.withJsAdapter({ ...baseFns, ...over }, {});
      if (name.startsWith("set")) return store.createSession(undefined, "u", undefined, undefined);
      return store.getSessionFromCookieHeader("slice-session=abc");
    });
  }
  // N-API refuses this at construction; the FFI binding when the store calls it.
  await attempt("get is not a function", async () =>
    native.NativeStore.withJsAdapter({ ...baseFns, get: 42 }, {}).getSessionFromCookieHeader("slice-session=abc"),
  );
  await attempt("wrong argument types", () => native.NativeStore.withNativeAdapter(native.NativeAdapter.memoryAdapter(), {}).getSession(42));
  await attempt("sqlite path with NUL", () => native.NativeAdapter.sqliteAdapter("a\u0000b", undefined));
  await attempt("postgres url garbage", () => native.NativeAdapter.postgresAdapter("postgresql://%zz@[::1", undefined));
} else if (scenario === "huge") {
  const big = "x".repeat(10 * 1024 * 1024);
  const adapters = { memory: new MemoryAdapter(), sqlite: new SQLiteAdapter(":memory:"), postgres: new PostgresAdapter(process.env.SLICES_TEST_PG_URL) };
  for (const [name, adapter] of Object.entries(adapters)) {
    const ids = [];
    const store = new SessionStore({ adapter, cleanupInterval: 0, generateId: () => ids.shift() ?? crypto.randomUUID() });
    await attempt(`${name}: 10 MB cookie header`, () => store.getSessionFromRequest({ headers: { cookie: big } }));
    await attempt(`${name}: 100 000 cookies`, () =>
      store.getSessionFromRequest({ headers: { cookie: Array.from({ length: 100000 }, (_, i) => `c${i}=${i}`).join("; ") } }),
    );
    await attempt(`${name}: 2 MB session id`, () => store.getSession(big.slice(0, 2 * 1024 * 1024)));
    ids.push(`${name}-${big.slice(0, 1024 * 1024)}`);
    await attempt(`${name}: 1 MB id, 5 MB user id, 20 MB data`, async () => (await store.createSession(big.slice(0, 5 * 1024 * 1024), "h", { big: big + big })).length);
    await attempt(`${name}: U+0000 in user id`, () => store.createSession("a\u0000b").then((id) => id.length));
    await attempt(`${name}: data nested 5000 deep`, () => {
      let data = {};
      for (let i = 0; i < 5000; i += 1) data = { a: data };
      return store.createSession("deep", undefined, data);
    });
    await attempt(`${name}: still works`, async () => (await store.getSession(await store.createSession("after"))).userId);
    await store.close();
    await adapter.close();
  }
} else if (scenario === "close-mid-flight") {
  const adapter = new PostgresAdapter(process.env.SLICES_TEST_PG_URL, { maxConnections: 4 });
  const store = new SessionStore({ adapter, cleanupInterval: 0 });
  await adapter.initialize();
  const tally = (list) => list.reduce((acc, r) => ({ ...acc, [r]: (acc[r] ?? 0) + 1 }), {});
  const settle = (p) => p.then(() => "ok", (e) => `${e.constructor.name}: ${e.message}`);
  const calls = Array.from({ length: 200 }, (_, i) => settle(i % 2 ? store.createSession(`mid-${i}`) : store.getSession(`mid-${i}`)));
  await adapter.close();
  results["adapter closed with 200 calls in flight"] = tally(await Promise.all(calls));
  await attempt("a call after the adapter closed", () => store.createSession("late"));
  const adapter2 = new PostgresAdapter(process.env.SLICES_TEST_PG_URL, { maxConnections: 4 });
  const store2 = new SessionStore({ adapter: adapter2, cleanupInterval: 0 });
  const calls2 = Array.from({ length: 200 }, (_, i) => settle(store2.createSession(`mid2-${i}`)));
  await store2.close();
  results["store closed with 200 calls in flight"] = tally(await Promise.all(calls2));
  await adapter2.close();
  const js = new SessionStore({ cleanupInterval: 0, adapter: { ...baseFns, get: () => new Promise((r) => setTimeout(() => r(null), 50)) } });
  const calls3 = Array.from({ length: 50 }, () => settle(js.getSession("x")));
  await js.close();
  results["store over a JS adapter closed with 50 calls in flight"] = tally(await Promise.all(calls3));
} else if (scenario === "worker-terminate") {
  // argv[3]: which stores each worker keeps busy: "all" (default), "native" (PostgreSQL and
  // SQLite) or "js" (a custom JS adapter).
  const which = process.argv[3] ?? "all";
  const src = `(async () => {
    const { SessionStore, PostgresAdapter, SQLiteAdapter } = await import(${JSON.stringify(PKG)});
    const { parentPort } = await import("node:worker_threads");
    const which = ${JSON.stringify(which)};
    const adapters = which === "js" ? [] : [new PostgresAdapter(${JSON.stringify(process.env.SLICES_TEST_PG_URL)}), new SQLiteAdapter(":memory:")];
    const js = { get: (id) => new Promise((r) => setTimeout(() => r(null), 2)), set: async () => {}, update: async () => true,
      delete: async () => {}, cleanup: async () => 0, exists: async () => false };
    if (which !== "native") adapters.push(js);
    const stores = adapters.map((adapter) => new SessionStore({ adapter, cleanupInterval: 1 }));
    for (let i = 0; i < 300; i += 1) for (const s of stores) { s.createSession("u" + i).catch(() => {}); s.getSession("x" + i).catch(() => {}); }
    parentPort.postMessage("busy");
  })();`;
  let terminated = 0;
  for (let round = 0; round < 12; round += 1) {
    const worker = new Worker(src, { eval: true });
    worker.on("error", (e) => {
      results[`worker error ${round}`] = String(e);
    });
    await new Promise((resolve) => worker.on("message", resolve));
    await new Promise((resolve) => setTimeout(resolve, round % 4));
    await worker.terminate();
    terminated += 1;
  }
  results["workers terminated mid-flight"] = terminated;
  const store = new SessionStore({ adapter: new MemoryAdapter(), cleanupInterval: 0 });
  await attempt("main thread still works", async () => (await store.getSession(await store.createSession("main"))).userId);
} else if (scenario === "exit-mid-flight") {
  const pg = new SessionStore({ adapter: new PostgresAdapter(process.env.SLICES_TEST_PG_URL), cleanupInterval: 0 });
  const js = new SessionStore({ cleanupInterval: 0, adapter: { ...baseFns, get: () => new Promise((r) => setTimeout(() => r(null), 1)) } });
  for (let i = 0; i < 500; i += 1) {
    pg.createSession(`exit-${i}`).catch(() => {});
    js.getSession(`x${i}`).catch(() => {});
  }
  setTimeout(() => exit(7), Number(process.argv[3] ?? 0));
  await new Promise(() => {});
} else {
  console.error(`unknown scenario ${scenario}`);
  exit(2);
}

console.log(JSON.stringify(results));

// Fault: internal error paths of the native code, provoked from JS. A Rust panic crossing into
// JS (or an abort) would end the process, so every scenario runs in a child process
// (no-panic-child.mjs) and the test checks that it exited normally, printed no panic, and that
// every call settled as a resolved value or a rejected, typed error.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startNode, figure, expectClean, assertGarbageShapes } from "./helpers.mjs";

const CHILD = fileURLToPath(new URL("./no-panic-child.mjs", import.meta.url));

/** Node's own notice when a JS callback invoked through N-API throws; not a crash. */
const NAPI_NOTICE = /^\(node:\d+\) \[DEP0168\] DeprecationWarning: Uncaught N-API callback exception detected.*$|^\(Use `node --trace-deprecation .*$/;

async function run(scenario, args = []) {
  const child = startNode(CHILD, [scenario, ...args]);
  const { code, signal } = await child.done;
  const stderr = child.err
    .split("\n")
    .filter((line) => line !== "" && !NAPI_NOTICE.test(line))
    .join("\n");
  assert.doesNotMatch(child.err, /panicked|RUST_BACKTRACE|fatal runtime error|Aborted|core dumped|FATAL ERROR/);
  return { code, signal, stderr, results: code === 0 ? JSON.parse(child.out.trim().split("\n").pop()) : undefined, out: child.out };
}


describe("no Rust panic crosses into JS", () => {
  test("a custom adapter returning garbage shapes: every call settles, gets reject with a named AdapterError", async () => {
    const r = await run("garbage-public");
    expectClean(r);
    assertGarbageShapes(r.results);
    assert.match(r.results["get throws a number"], /^AdapterError: adapter `get` failed: /);
    assert.match(r.results["set rejects undefined"], /^AdapterError: adapter `set` failed: /);
    assert.equal(r.results["listByUser -> string"], "AdapterError: adapter `listByUser` failed: adapter.listByUser() must resolve to an array");
    assert.equal(r.results["deleteByUser -> object"], "ok: 0");
    figure("garbage shapes (public API)", `${Object.keys(r.results).length} calls, all settled, process alive`);
  });

  test(
    "a rejection reason that is not an Error or a string (42, undefined) is named in the AdapterError message",
    async () => {
      const r = await run("garbage-public");
      expectClean(r);
      assert.equal(r.results["get throws a number"], "AdapterError: adapter `get` failed: 42");
      assert.equal(r.results["set rejects undefined"], "AdapterError: adapter `set` failed: undefined");
    },
  );

  test("garbage handed straight to the native store (no JS normalisation): Rust conversion errors reject", async () => {
    const r = await run("garbage-native");
    expectClean(r);
    const failed = (method, why) => `Error: AdapterError: adapter \`${method}\` failed: ${why}`;
    assert.deepEqual(r.results, {
      "get -> 42": failed("get", "Missing field `sessionId`"),
      "get -> missing fields": failed("get", "Missing field `userId`"),
      "get -> bigint": failed("get", "Failed to convert napi value BigInt into rust type `i64` on WireSession.createdAt"),
      "get -> handle number": failed("get", "Failed to convert JavaScript value `Number 5 ` into rust type `String` on WireSession.handle"),
      "get -> proxy": failed("get", "proxy boom"),
      "get -> not a promise": failed("get", "Call the PromiseRaw::then failed"),
      "get -> thenable": failed("get", "Call the PromiseRaw::then failed"),
      "get -> sync throw": failed("get", "sync boom"),
      "get -> rejects with undefined": failed("get", ""),
      "update -> string": failed("update", "Failed to convert napi value into rust type `bool`"),
      "set -> rejects": failed("set", "set boom"),
      "get is not a function": "Error: Create threadsafe function in ThreadsafeFunction::create failed on JsAdapterFns.get",
      "wrong argument types": "Error: Failed to convert JavaScript value `Number 42 ` into rust type `String`",
      "sqlite path with NUL": "Error: AdapterError: SQLite error while trying to open the database: nul byte found in provided data at position: 1",
      "postgres url garbage": "Error: TypeError: invalid argument `connectionString`: not a valid PostgreSQL connection string (invalid connection string)",
    });
  });

  test("huge and hostile inputs on Memory, SQLite and PostgreSQL: results or clear errors, the store keeps working", async () => {
    const r = await run("huge");
    expectClean(r);
    for (const name of ["memory", "sqlite", "postgres"]) {
      assert.equal(r.results[`${name}: 10 MB cookie header`], "ok: null");
      assert.equal(r.results[`${name}: 100 000 cookies`], "ok: null");
      assert.equal(r.results[`${name}: 2 MB session id`], "ok: null");
      assert.equal(r.results[`${name}: data nested 5000 deep`], "RangeError: Maximum call stack size exceeded");
      assert.equal(r.results[`${name}: still works`], 'ok: "after"');
    }
    for (const name of ["memory", "sqlite"]) {
      assert.equal(r.results[`${name}: 1 MB id, 5 MB user id, 20 MB data`], `ok: ${name.length + 1 + 1024 * 1024}`);
      assert.equal(r.results[`${name}: U+0000 in user id`], "ok: 36");
    }
    // PostgreSQL's limits, reported as such (SPEC §7 excepts U+0000 for PostgreSQL).
    assert.match(
      r.results["postgres: 1 MB id, 5 MB user id, 20 MB data"],
      /^AdapterError: PostgreSQL error while trying to store the new session: index row requires \d+ bytes, maximum size is 8191 \(54000\)$/,
    );
    assert.equal(
      r.results["postgres: U+0000 in user id"],
      'AdapterError: PostgreSQL error while trying to store the new session: invalid byte sequence for encoding "UTF8": 0x00 (22021)',
    );
  });

  test("adapter or store closed with 200 calls in flight: each call resolves or rejects with the right class", async () => {
    const r = await run("close-mid-flight");
    expectClean(r);
    const check = (name, total, allowed) => {
      const tally = r.results[name];
      assert.equal(Object.values(tally).reduce((a, b) => a + b, 0), total, name);
      for (const key of Object.keys(tally)) assert.ok(allowed.includes(key), `${name}: ${key}`);
    };
    check("adapter closed with 200 calls in flight", 200, ["ok", "AdapterError: the adapter is closed"]);
    check("store closed with 200 calls in flight", 200, ["ok", "SessionStoreClosedError: the session store is closed"]);
    check("store over a JS adapter closed with 50 calls in flight", 50, ["ok", "SessionStoreClosedError: the session store is closed"]);
    assert.equal(r.results["a call after the adapter closed"], "AdapterError: the adapter is closed");
    figure("closed mid-flight", r.results);
  });

  test("worker threads terminated with native calls in flight (PostgreSQL, SQLite, JS adapter), 12 times", async () => {
    const r = await run("worker-terminate");
    expectClean(r);
    assert.deepEqual(r.results, { "workers terminated mid-flight": 12, "main thread still works": 'ok: "main"' });
  });

  test("process.exit() with 1000 native calls in flight exits with the requested code, no panic", async () => {
    for (const delay of ["0", "3", "20"]) {
      const r = await run("exit-mid-flight", [delay]);
      assert.equal(r.signal, null);
      assert.equal(r.code, 7, `exit after ${delay} ms: ${r.stderr}`);
      assert.equal(r.stderr, "");
    }
  });
});

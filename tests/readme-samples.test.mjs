// The original @slices/session README samples ("Basic Usage", "Deno Fresh", "Hono") run
// against this package, unchanged apart from the import specifier.
//
// How each sample stays unchanged (the fixtures are in tests/fixtures/readme/):
// - samples.md holds the three samples byte for byte as the seed README has them; the first
//   tests below check the fixtures against it (and it against the seed README when available).
// - basic-usage.mjs is the sample with "@slices/session" replaced by "../../../npm/index.js".
//   Its free variable `request` is a getter on globalThis defined by run-sample.mjs before the
//   import (see there: the Request carries the cookie of the session the sample created).
// - fresh-middleware.ts is the sample verbatim (import included). Node 20 cannot run type
//   annotations, so fresh-middleware.mjs is the same text with the import specifier replaced
//   and the two annotations (`req: Request`, `ctx: FreshContext`) stripped, nothing else; a test
//   asserts exactly that. The harness calls the exported `handler(req, ctx)` with a minimal
//   FreshContext stand-in `{ state: {}, next: async () => new Response("ok") }`.
// - hono.mjs is the sample with the import replaced, plus a marked footer `export { app };`
//   (the sample keeps `app` local); the harness adds a route returning c.get("user") as JSON
//   and calls `app.request(...)` of the real `hono` package.
//
// Every sample opens "./sessions.db" relative to the current directory, so each runs in a
// child process (run-sample.mjs) that first changes into a fresh temporary directory: nothing
// is written to the repository, and the samples share no state. Runs under `node --test` and
// `deno test -A` (the child is `deno run -A` there).
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SessionStore, SQLiteAdapter } from "../npm/index.js";

const FIXTURES = fileURLToPath(new URL("./fixtures/readme/", import.meta.url));
const REPO = fileURLToPath(new URL("../", import.meta.url));
const RUNNER = join(FIXTURES, "run-sample.mjs");
// A copy of the original package's README (MIT), kept so the check runs on any checkout.
const SEED_README = fileURLToPath(new URL("./fixtures/readme/seed-README.md", import.meta.url));

const ORIGINAL_IMPORT = `from "@slices/session";`;
const FIXTURE_IMPORT = `from "../../../npm/index.js";`;
const HONO_FOOTER =
  "\n// ---- test harness addition, not part of the README sample: lets the test reach `app` ----\nexport { app };\n";

const fixture = (name) => readFileSync(join(FIXTURES, name), "utf8");

/** The samples of samples.md: `## Title` followed by one ```ts block. */
function originalSamples() {
  const samples = {};
  for (const [, title, code] of fixture("samples.md").matchAll(/^## (.+)\n\n```ts\n([\s\S]*?)```\n/gm)) {
    samples[title] = code;
  }
  return samples;
}

/** The sample with its one "@slices/session" import pointed at this repository's package. */
function withFixtureImport(code) {
  assert.equal(code.split(ORIGINAL_IMPORT).length, 2, "the sample imports @slices/session exactly once");
  return code.replace(ORIGINAL_IMPORT, FIXTURE_IMPORT);
}

const tmpDirs = [];
after(() => {
  for (const dir of tmpDirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * Runs run-sample.mjs for `sample` in a new process of the current runtime, inside a fresh
 * temporary directory. Resolves to { code, signal, stdout, stderr, report, dir }.
 */
function runSample(sample, { timeoutMs = 30000 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), `readme-${sample}-`));
  tmpDirs.push(dir);
  const [cmd, args] =
    typeof Deno !== "undefined" ? [Deno.execPath(), ["run", "-A", RUNNER]] : [process.execPath, [RUNNER]];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: REPO,
      env: { ...process.env, README_SAMPLE: sample, README_SAMPLE_CWD: dir },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`sample ${sample} did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const line = stderr.split("\n").find((l) => l.startsWith("README-HARNESS "));
      const report = line === undefined ? undefined : JSON.parse(line.slice("README-HARNESS ".length));
      resolve({ code, signal, stdout, stderr, report, dir });
    });
  });
}

/** Asserts a clean exit (by itself, status 0) and returns the harness report. */
function reportOf(run) {
  assert.equal(run.code, 0, `the sample process failed (signal ${run.signal}):\n${run.stderr}`);
  assert.ok(run.report, `no harness report; stderr:\n${run.stderr}`);
  return run.report;
}

/** The session record in the sample's ./sessions.db, read after its process has ended. */
async function storedSession(dir, sessionId) {
  const adapter = new SQLiteAdapter(join(dir, "sessions.db"));
  try {
    return await adapter.get(sessionId);
  } finally {
    await adapter.close();
  }
}

describe("README sample fixtures are the samples, unchanged apart from the import", () => {
  const samples = originalSamples();

  test("samples.md holds the three samples", () => {
    assert.deepEqual(Object.keys(samples), ["Basic Usage", "Deno Fresh", "Hono"]);
  });

  test("samples.md matches the seed README", () => {
    const seed = readFileSync(SEED_README, "utf8");
    for (const [title, code] of Object.entries(samples)) {
      // The seed README is the rendered page: a heading line "<title>#", a blank line, the code.
      assert.ok(seed.includes(`\n${title}#\n\n${code}`), `sample "${title}" differs from ${SEED_README}`);
    }
  });

  test("basic-usage.mjs", () => {
    assert.equal(fixture("basic-usage.mjs"), withFixtureImport(samples["Basic Usage"]));
  });

  test("fresh-middleware.ts is the sample verbatim", () => {
    assert.equal(fixture("fresh-middleware.ts"), samples["Deno Fresh"]);
  });

  test("fresh-middleware.mjs differs from the .ts only by the import specifier and the type annotations", () => {
    const ts = fixture("fresh-middleware.ts").split("\n");
    const mjs = fixture("fresh-middleware.mjs").split("\n");
    assert.equal(mjs.length, ts.length);
    const differing = ts.flatMap((line, i) => (line === mjs[i] ? [] : [[line, mjs[i]]]));
    assert.deepEqual(differing, [
      [`import { SessionStore, SQLiteAdapter } ${ORIGINAL_IMPORT}`, `import { SessionStore, SQLiteAdapter } ${FIXTURE_IMPORT}`],
      ["export async function handler(req: Request, ctx: FreshContext) {", "export async function handler(req, ctx) {"],
    ]);
  });

  test("hono.mjs is the sample plus the marked export footer", () => {
    assert.equal(fixture("hono.mjs"), withFixtureImport(samples["Hono"]) + HONO_FOOTER);
  });
});

describe("README Basic Usage", () => {
  test("logs `User: alice.bsky.social` for a request carrying the created session's cookie", async () => {
    const run = await runSample("basic-usage");
    const report = reportOf(run);
    assert.equal(run.stdout, "User: alice.bsky.social\n");

    // The sample created exactly one session, and the request carried its default cookie.
    assert.equal(report.createdIds.length, 1);
    const [sessionId] = report.createdIds;
    assert.equal(report.cookieSent, `slice-session=${sessionId}`);

    // It went to ./sessions.db of the sample's working directory, as the sample says.
    const stored = await storedSession(run.dir, sessionId);
    assert.equal(stored.sessionId, sessionId);
    assert.equal(stored.userId, "user123");
    assert.equal(stored.handle, "alice.bsky.social");
    assert.equal(stored.isAuthenticated, true);
  });

  test("logs nothing for a request without a session cookie", async () => {
    const run = await runSample("basic-usage-no-cookie");
    const report = reportOf(run);
    assert.equal(run.stdout, "");
    assert.equal(report.createdIds.length, 1);
    assert.equal(report.cookieSent, null);
    assert.equal((await storedSession(run.dir, report.createdIds[0])).handle, "alice.bsky.social");
  });
});

describe("README Deno Fresh middleware", () => {
  test("sets ctx.state.user and returns ctx.next()", async () => {
    const { sessionId, results } = reportOf(await runSample("fresh"));
    const alice = { sessionId, sub: "did:plc:alice", handle: "alice.bsky.social", isAuthenticated: true };
    const anonymous = { isAuthenticated: false };
    const passedOn = (user) => ({ state: { user }, nextCalls: 1, status: 200, body: "ok" });
    assert.deepStrictEqual(results, {
      withSession: passedOn(alice),
      withoutCookie: passedOn(anonymous),
      unknownSession: passedOn(anonymous),
      otherCookiesOnly: passedOn(anonymous),
      withSessionAmongOthers: passedOn(alice),
      afterLogout: passedOn(anonymous),
    });
    // Key order too, as getCurrentUser builds the object.
    assert.deepEqual(Object.keys(results.withSession.state.user), ["sessionId", "sub", "handle", "isAuthenticated"]);
  });
});

describe("README Hono middleware", () => {
  test("c.get('user') in a route, with the real hono package", async () => {
    const { sessionId, results } = reportOf(await runSample("hono"));
    const json = (body) => ({ status: 200, contentType: "application/json", body });
    const alice = `{"sessionId":"${sessionId}","sub":"did:plc:alice","handle":"alice.bsky.social","isAuthenticated":true}`;
    const anonymous = `{"isAuthenticated":false}`;
    assert.deepStrictEqual(results, {
      withSession: json(alice),
      withoutCookie: json(anonymous),
      unknownSession: json(anonymous),
      otherCookiesOnly: json(anonymous),
      withSessionAmongOthers: json(alice),
      afterLogout: json(anonymous),
    });
  });
});

test("the samples' ./sessions.db never lands in the repository", () => {
  for (const dir of [REPO, FIXTURES, join(REPO, "tests")]) {
    assert.equal(existsSync(join(dir, "sessions.db")), false, `${dir}sessions.db exists`);
  }
});

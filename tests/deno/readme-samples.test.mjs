// Deno only: the seed README's samples on the JSR package (FFI). tests/readme-samples.test.mjs
// runs them against the npm package; here the same harness (fixtures/readme/run-sample.mjs) runs
// under an import map that sends the fixtures' import of npm/index.js to jsr/mod.ts, and the
// Fresh sample runs as the verbatim TypeScript of the README, `@slices/session` import included
// (the import map names jsr/mod.ts for it): unchanged, not even the import.
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { tmpDir, removeTmpDirs } from "../target.mjs";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const RUNNER = fileURLToPath(new URL("../fixtures/readme/run-sample.mjs", import.meta.url));
const FRESH_TS = new URL("../fixtures/readme/fresh-middleware.ts", import.meta.url).href;
const JSR_MOD = new URL("../../jsr/mod.ts", import.meta.url).href;
const NPM_INDEX = new URL("../../npm/index.js", import.meta.url).href;

after(() => removeTmpDirs());

/** An import map sending the npm package and "@slices/session" to the JSR package. */
function importMap() {
  const file = join(tmpDir("slices-readme-map-"), "import_map.json");
  writeFileSync(file, JSON.stringify({ imports: { [NPM_INDEX]: JSR_MOD, "@slices/session": JSR_MOD } }));
  return file;
}

async function run(args, env = {}) {
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--node-modules-dir=manual", `--import-map=${importMap()}`, ...args],
    cwd: REPO, // the Hono sample resolves "hono" from the repository's node_modules
    env: { ...Deno.env.toObject(), ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(result.stdout);
  const stderr = new TextDecoder().decode(result.stderr);
  assert.equal(result.code, 0, `exit ${result.code}\nstdout: ${stdout}\nstderr: ${stderr}`);
  const line = stderr.split("\n").find((l) => l.startsWith("README-HARNESS "));
  return { stdout, stderr, report: line && JSON.parse(line.slice("README-HARNESS ".length)) };
}

const sample = (name) => run([RUNNER], { README_SAMPLE: name, README_SAMPLE_CWD: tmpDir(`readme-jsr-${name}-`) });

describe("README samples on the JSR package", () => {
  test("the import map really swaps in the JSR package", async () => {
    const dir = tmpDir("slices-readme-probe-");
    const probe = join(dir, "probe.mjs");
    writeFileSync(probe, `const m = await import(${JSON.stringify(NPM_INDEX)}); console.log(typeof m.DenoKVAdapter);`);
    assert.equal((await run([probe])).stdout.trim(), "function");
  });

  test("Basic Usage logs `User: alice.bsky.social`", async () => {
    const { stdout, report } = await sample("basic-usage");
    assert.equal(stdout, "User: alice.bsky.social\n");
    assert.equal(report.cookieSent, `slice-session=${report.createdIds[0]}`);
  });

  test("Basic Usage without a cookie logs nothing", async () => {
    const { stdout, report } = await sample("basic-usage-no-cookie");
    assert.equal(stdout, "");
    assert.equal(report.cookieSent, null);
  });

  for (const name of ["fresh", "hono"]) {
    test(`${name === "fresh" ? "Deno Fresh" : "Hono"} middleware sets the user`, async () => {
      const { report } = await sample(name);
      const users = Object.fromEntries(
        Object.entries(report.results).map(([k, r]) => [k, name === "fresh" ? r.state.user : JSON.parse(r.body)]),
      );
      const alice = { sessionId: report.sessionId, sub: "did:plc:alice", handle: "alice.bsky.social", isAuthenticated: true };
      const anonymous = { isAuthenticated: false };
      assert.deepStrictEqual(users, {
        withSession: alice,
        withoutCookie: anonymous,
        unknownSession: anonymous,
        otherCookiesOnly: anonymous,
        withSessionAmongOthers: alice,
        afterLogout: anonymous,
      });
    });
  }

  test("the Fresh sample as the README has it (TypeScript, `@slices/session` import) runs unchanged", async () => {
    const dir = tmpDir("slices-readme-fresh-ts-");
    const harness = join(dir, "harness.mjs");
    writeFileSync(
      harness,
      `Deno.chdir(${JSON.stringify(dir)});
       const { SessionStore, SQLiteAdapter } = await import("@slices/session");
       const login = new SessionStore({ adapter: new SQLiteAdapter("./sessions.db"), cleanupInterval: 0 });
       const id = await login.createSession("did:plc:alice", "alice.bsky.social");
       const { handler } = await import(${JSON.stringify(FRESH_TS)});
       const ctx = { state: {}, next: async () => new Response("ok") };
       const response = await handler(new Request("http://localhost/", { headers: { cookie: "slice-session=" + id } }), ctx);
       console.log(JSON.stringify({ id, user: ctx.state.user, body: await response.text() }));
       await login.close();`,
    );
    const out = JSON.parse((await run([harness])).stdout);
    assert.deepStrictEqual(out.user, { sessionId: out.id, sub: "did:plc:alice", handle: "alice.bsky.social", isAuthenticated: true });
    assert.equal(out.body, "ok");
  });
});

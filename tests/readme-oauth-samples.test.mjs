// The original @slices/session README's OAuth samples ("With OAuth Integration" and
// "Multi-Device Support") run against this package and the loopback AIP server, with our
// OAuthClient / SQLiteOAuthStorage in place of @slices/oauth's (issue 4, "Done when").
//
// How each sample stays unchanged (the fixtures are in tests/fixtures/readme/):
// - oauth-samples.md holds the two samples byte for byte as the seed README has them; the first
//   tests check the fixtures against it, and it against the seed README.
// - oauth-integration.mjs is the sample with its two import specifiers ("@slices/session",
//   "@slices/oauth") replaced by this repository's package; nothing else. Its config names
//   https://auth.example.com: the sample's process runs behind a loopback forward proxy
//   (HTTPS_PROXY) that tunnels that name to a TLS endpoint with a test CA's certificate
//   (SSL_CERT_FILE) in front of the loopback AIP server, so the URL stays as written and
//   nothing leaves the machine (see tests/oauth-support.mjs). Its free variables `code` and
//   `state` come from a real authorize + redirect (see run-oauth-sample.mjs).
// - multi-device.mjs is the sample (which has no imports; its OAuthClient is @slices/oauth's in
//   the README) with one import line for OAuthClient from this package added on top; nothing
//   else. Its free variables (oauthSessions, config, storage, laptopTokens, phoneTokens) are
//   defined by run-oauth-sample.mjs from two real logins.
// Each sample runs in a child process (run-oauth-sample.mjs) in a fresh temporary directory, so
// ./sessions.db and ./oauth.db never land in the repository. Runs under `node --test` and
// `deno test -A` (the child is `deno run -A` there).
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pkg, tmpDir, removeTmpDirs } from "./target.mjs";
import { startAip, makeTestCertificates, startHttpsProxy, runtimeCommand } from "./oauth-support.mjs";

const FIXTURES = fileURLToPath(new URL("./fixtures/readme/", import.meta.url));
const REPO = fileURLToPath(new URL("../", import.meta.url));
const RUNNER = join(FIXTURES, "run-oauth-sample.mjs");
const SEED_README = join(FIXTURES, "seed-README.md");
const PACKAGE_SPECIFIER = `"../../../npm/index.js"`;
const AUTH_HOST = "auth.example.com";

const fixture = (name) => readFileSync(join(FIXTURES, name), "utf8");

/** The samples of oauth-samples.md: `## Title` followed by one ```ts block. */
function originalSamples() {
  const samples = {};
  for (const [, title, code] of fixture("oauth-samples.md").matchAll(/^## (.+)\n\n```ts\n([\s\S]*?)```\n/gm)) {
    samples[title] = code;
  }
  return samples;
}

let aip;
let proxy;
let caFile;
before(async () => {
  aip = await startAip();
  const certs = makeTestCertificates(tmpDir("slices-readme-oauth-certs-"), AUTH_HOST);
  caFile = certs.caFile;
  proxy = await startHttpsProxy({ hostname: AUTH_HOST, key: certs.key, cert: certs.cert, targetPort: aip.port });
});
after(async () => {
  await proxy?.close();
  await aip?.stop();
  removeTmpDirs();
});

/** Runs run-oauth-sample.mjs for `sample` in a new process, in a fresh temporary directory. */
function runSample(sample, { env = {}, timeoutMs = 30000 } = {}) {
  const dir = tmpDir(`readme-${sample}-`);
  const [cmd, args] = runtimeCommand(RUNNER);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: REPO,
      env: { ...process.env, README_SAMPLE: sample, README_SAMPLE_CWD: dir, AIP_URL: aip.url, ...env },
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
      const lines = stderr.split("\n").filter((l) => l !== "");
      const reportLine = lines.find((l) => l.startsWith("README-HARNESS "));
      const report = reportLine === undefined ? undefined : JSON.parse(reportLine.slice("README-HARNESS ".length));
      resolve({ code, signal, stdout, stderr, otherStderr: lines.filter((l) => l !== reportLine), report, dir });
    });
  });
}

/** Asserts a clean exit by itself with nothing else printed, and returns the harness report. */
function reportOf(run) {
  assert.equal(run.code, 0, `the sample process failed (signal ${run.signal}):\n${run.stderr}`);
  assert.ok(run.report, `no harness report; stderr:\n${run.stderr}`);
  assert.equal(run.stdout, "");
  // The samples pass no onError: a reported failure would be on stderr (console.error).
  assert.deepEqual(run.otherStderr, [], "nothing on stderr but the harness report");
  return run.report;
}

/** Reads ./sessions.db and ./oauth.db of a sample's directory after its process ended. */
async function readBack(dir, sessionId) {
  const adapter = new pkg.SQLiteAdapter(join(dir, "sessions.db"));
  const storage = new pkg.SQLiteOAuthStorage(join(dir, "oauth.db"));
  try {
    return { session: await adapter.get(sessionId), tokens: await storage.getTokens(sessionId) };
  } finally {
    await adapter.close();
    await storage.close();
  }
}

describe("README OAuth sample fixtures are the samples, unchanged apart from the import lines", () => {
  const samples = originalSamples();

  test("oauth-samples.md holds the two samples", () => {
    assert.deepEqual(Object.keys(samples), ["With OAuth Integration", "Multi-Device Support"]);
  });

  test("oauth-samples.md matches the seed README", () => {
    const seed = readFileSync(SEED_README, "utf8");
    assert.ok(seed.includes(`\nWith OAuth Integration#\n\n${samples["With OAuth Integration"]}\nStorage Adapters#\n`));
    assert.ok(
      seed.includes(
        `\nMulti-Device Support#\n\nThe session-scoped OAuth pattern enables proper multi-device support:\n\n${samples["Multi-Device Support"]}\nSecurity#\n`,
      ),
    );
  });

  test("oauth-integration.mjs: only the two import specifiers differ", () => {
    const original = samples["With OAuth Integration"].split("\n");
    const ours = fixture("oauth-integration.mjs").split("\n");
    assert.equal(ours.length, original.length);
    const differing = original.flatMap((line, i) => (line === ours[i] ? [] : [[line, ours[i]]]));
    assert.deepEqual(differing, [
      [
        `import { SessionStore, SQLiteAdapter, withOAuthSession } from "@slices/session";`,
        `import { SessionStore, SQLiteAdapter, withOAuthSession } from ${PACKAGE_SPECIFIER};`,
      ],
      [`import { OAuthClient, SQLiteOAuthStorage } from "@slices/oauth";`, `import { OAuthClient, SQLiteOAuthStorage } from ${PACKAGE_SPECIFIER};`],
    ]);
    assert.ok(original.includes(`  authBaseUrl: "https://auth.example.com",`), "the sample's URL, as written");
  });

  test("multi-device.mjs: the sample with one import line added on top", () => {
    assert.equal(fixture("multi-device.mjs"), `import { OAuthClient } from ${PACKAGE_SPECIFIER};\n${samples["Multi-Device Support"]}`);
    assert.equal(/^import /m.test(samples["Multi-Device Support"]), false, "the sample itself imports nothing");
  });
});

describe("README With OAuth Integration", () => {
  test("callback, createOAuthSession, getOAuthSession, getUserInfo against https://auth.example.com (loopback)", async () => {
    await aip.reset({ clients: [{ clientId: "your-client-id", clientSecret: "your-client-secret" }] });
    const connectsBefore = proxy.connects.length;
    const run = await runSample("oauth-integration", {
      env: { HTTPS_PROXY: proxy.url, https_proxy: proxy.url, SSL_CERT_FILE: caFile, NO_PROXY: "127.0.0.1,localhost", no_proxy: "127.0.0.1,localhost" },
    });
    const report = reportOf(run);

    // The login the harness started: the sample's config, PKCE S256.
    const url = new URL(report.authorizationUrl);
    assert.equal(`${url.origin}${url.pathname}`, "https://auth.example.com/oauth/authorize");
    assert.equal(url.searchParams.get("client_id"), "your-client-id");
    assert.equal(url.searchParams.get("redirect_uri"), "http://localhost:8000/oauth/callback");
    assert.equal(url.searchParams.get("scope"), "atproto");
    assert.equal(url.searchParams.get("state"), report.state);

    // What the sample's calls returned, in order.
    assert.deepEqual(report.log.map((c) => c.method), ["handleCallback", "createOAuthSession", "getOAuthSession", "getUserInfo"]);
    const [callback, create, get, userInfo] = report.log;
    assert.deepEqual(callback.args, [{ code: report.code, state: report.state }]);
    const tokens = callback.result;
    assert.deepEqual(Object.keys(tokens).sort(), ["accessToken", "expiresAt", "refreshToken", "scope", "tokenType"]);
    assert.equal(tokens.tokenType, "Bearer");
    assert.equal(tokens.scope, "atproto");
    assert.deepEqual(create.args, [tokens]);
    const sessionId = create.result;
    assert.match(sessionId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.deepEqual(get.args, [sessionId]);
    const session = get.result;
    assert.equal(session.sessionId, sessionId);
    assert.equal(session.userId, "did:plc:alice");
    assert.equal("handle" in session, false, "AIP sends no name without the profile scope");
    assert.equal(session.isAuthenticated, true);
    assert.deepEqual(session.tokens, tokens, "fresh tokens: no refresh");
    // The userinfo JSON as the server sent it (no name, hence no handle, with scope "atproto").
    assert.deepEqual(userInfo.result, { sub: "did:plc:alice", did: "did:plc:alice" });

    // At the server: one authorization, one code exchange, two userinfo calls, no refresh; all
    // of the sample's requests went to auth.example.com:443 through the proxy.
    const counters = await aip.counters();
    assert.deepEqual(counters.authorize, { total: 1, byStatus: { 302: 1 } });
    assert.deepEqual(counters.authorizationCode, { total: 1, byStatus: { 200: 1 } });
    assert.deepEqual(counters.userinfo, { total: 2, byStatus: { 200: 2 } });
    assert.deepEqual(counters.refresh, { total: 0, byStatus: {} });
    assert.deepEqual(proxy.connects.slice(connectsBefore), Array(3).fill(`${AUTH_HOST}:443`));

    // ./sessions.db and ./oauth.db in the sample's directory hold the session and its tokens.
    const stored = await readBack(run.dir, sessionId);
    assert.equal(stored.session.userId, "did:plc:alice");
    assert.deepEqual(stored.tokens, tokens);
  });
});

describe("README Multi-Device Support", () => {
  test("two devices, independent tokens; logging out the laptop leaves the phone signed in", async () => {
    await aip.reset();
    const report = reportOf(await runSample("multi-device"));
    const { laptopTokens, phoneTokens, laptopId, phoneId, after } = report;

    assert.deepEqual(report.log.map((c) => [c.method, c.args]), [
      ["createOAuthSession", [laptopTokens]],
      ["createOAuthSession", [phoneTokens]],
    ]);
    assert.notEqual(laptopId, phoneId);
    assert.notEqual(laptopTokens.accessToken, phoneTokens.accessToken);
    assert.notEqual(laptopTokens.refreshToken, phoneTokens.refreshToken);
    // onLogout for the laptop only; no error, no refresh (the phone client's own refresh below
    // is not the manager's: an OAuthClient has no callbacks).
    assert.deepEqual(report.events, [["logout", laptopId]]);

    // The laptop: session and tokens gone.
    assert.equal(after.laptop.session, null);
    assert.equal(after.laptop.tokens, null);
    assert.equal(after.laptop.oauthSession, null);
    assert.deepEqual(after.laptop.ensureValidToken, { error: { name: "OAuthError", code: "no_tokens" } });

    // The phone: the same user, still signed in with its own tokens, which work at the server.
    const phone = after.phone.oauthSession;
    assert.equal(phone.sessionId, phoneId);
    assert.equal(phone.userId, "did:plc:alice");
    assert.equal(phone.handle, "alice.test");
    assert.deepEqual(phone.tokens, phoneTokens);
    assert.deepEqual(after.phone.tokens, phoneTokens);
    assert.deepEqual(after.phone.userInfo, { value: { sub: "did:plc:alice", did: "did:plc:alice", name: "alice.test", handle: "alice.test" } });
    const refreshed = after.phone.refreshed.value;
    assert.ok(refreshed, `the phone's refresh failed: ${JSON.stringify(after.phone.refreshed)}`);
    assert.notEqual(refreshed.accessToken, phoneTokens.accessToken);

    const counters = await aip.counters();
    assert.deepEqual(counters.authorizationCode, { total: 2, byStatus: { 200: 2 } });
    assert.deepEqual(counters.refresh, { total: 1, byStatus: { 200: 1 } });
    assert.deepEqual(counters.refreshTokensPresented, [phoneTokens.refreshToken]);
  });
});

test("the samples' ./sessions.db and ./oauth.db never land in the repository", () => {
  for (const dir of [REPO, FIXTURES, join(REPO, "tests")]) {
    for (const name of ["sessions.db", "oauth.db"]) assert.equal(existsSync(join(dir, name)), false, `${dir}${name} exists`);
  }
});

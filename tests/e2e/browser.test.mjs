// A real browser logs in to each example app and out again: Playwright (playwright-core)
// driving Debian's Chromium, the example app as its own process, the loopback AIP server
// (tests/aip/server.mjs) as another: the Hono and Express examples on Node, and the Hono and
// Fresh-style examples and the Deno KV one (the Slices app setup) on Deno. Run by tests/e2e/run.sh (`make test-e2e`), which installs
// Chromium and the tools and sets:
//   SLICES_E2E_CHROMIUM   the Chromium binary (/usr/bin/chromium)
//   SLICES_E2E_DENO       the Deno binary, for the Deno examples (examples/hono-deno,
//                         examples/fresh-middleware, examples/deno-kv)
//
// For each example: login → the page shows the handle → reload keeps the session → logout →
// logged out. Checked as the browser sees it: the session cookie is `__Host-slice-session`
// (each example runs with that name; Chromium stores `__Host-` cookies only when Secure, Path=/
// and host-only, and treats http://localhost as secure), HttpOnly (document.cookie cannot read
// it), SameSite=Lax, Path=/. The exception is examples/deno-kv, the setup of a real Slices app
// kept exactly as written: its cookie is `links-session`, not Secure, and its redirect URI names
// a fixed port (the test picks a free one). A screenshot of the logged-in page goes to tests/e2e/screenshots/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";
import { chromium } from "playwright-core";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SCREENSHOTS = join(ROOT, "tests/e2e/screenshots");
const CHROMIUM = process.env.SLICES_E2E_CHROMIUM;
const DENO = process.env.SLICES_E2E_DENO;
if (!CHROMIUM) throw new Error("SLICES_E2E_CHROMIUM is not set: run tests/e2e/run.sh (make test-e2e)");

const COOKIE_NAME = "__Host-slice-session";
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const THIRTY_DAYS_S = 30 * 24 * 60 * 60;
// The flags that work on this kind of machine (no network: no background requests, no QUIC).
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

// Each example app, run as its README says but with the test's settings (env below).
const DENO_RUN = ["run", "--allow-net", "--allow-env", "--allow-read", "--allow-write", "--allow-ffi"];
const EXAMPLES = [
  { slug: "hono-node", title: "Hono on Node", command: [process.execPath, ["server.mjs"]] },
  { slug: "express", title: "Express", command: [process.execPath, ["server.mjs"]] },
];
if (DENO) {
  EXAMPLES.push(
    { slug: "hono-deno", title: "Hono on Deno", command: [DENO, [...DENO_RUN, "server.ts"]] },
    { slug: "fresh-middleware", title: "Fresh-style middleware", command: [DENO, [...DENO_RUN, "main.ts"]] },
    {
      slug: "deno-kv",
      title: "Deno KV",
      command: [DENO, [...DENO_RUN, "server.ts"]],
      cookie: { name: "links-session", secure: false },
      fixedPort: true,
    },
  );
}

/** A free loopback port (for the example whose redirect URI is fixed before it listens). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const processes = [];
const tmpDirs = [];
function tmp(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tmpDirs.push(dir);
  return dir;
}

/** Spawns a process and resolves with the first match of `pattern` in its stdout. */
function startProcess(what, cmd, args, { cwd, env, pattern, timeoutMs = 30_000 }) {
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
  processes.push(child);
  let stdout = "";
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d) => (stderr += d));
  child.stdout.setEncoding("utf8");
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`)), timeoutMs);
    child.stdout.on("data", (d) => {
      stdout += d;
      const match = pattern.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve({ child, match, output: () => ({ stdout, stderr }) });
      }
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code ?? signal}) before it was ready\nstdout: ${stdout}\nstderr: ${stderr}`));
    });
  });
}

async function stopProcess(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.stdin.end();
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

let aip;
before(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const started = await startProcess("the AIP server", process.execPath, [join(ROOT, "tests/aip/server.mjs"), "--port", "0", "--die-with-stdin", "--ttl", "600"], {
    cwd: ROOT,
    pattern: /^\{"port":(\d+)\}\n/,
  });
  aip = { child: started.child, url: `http://127.0.0.1:${started.match[1]}` };
});

after(async () => {
  await Promise.all(processes.map(stopProcess));
  for (const dir of tmpDirs) rmSync(dir, { recursive: true, force: true });
});

async function aipAdmin(method, path, body) {
  const response = await fetch(`${aip.url}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.equal(response.status, 200, `${method} ${path}`);
  return response.json();
}

for (const ex of EXAMPLES) {
  const cookieName = ex.cookie?.name ?? COOKIE_NAME;
  const secure = ex.cookie?.secure ?? true;
  test(`${ex.title}: log in, reload, log out in Chromium, with a ${cookieName} cookie`, async (t) => {
    await aipAdmin("POST", "/_admin/reset", {});
    const data = tmp(`slices-e2e-${ex.slug}-`);
    const port = ex.fixedPort ? String(await freePort()) : "0";
    const app = await startProcess(`the ${ex.title} example`, ex.command[0], ex.command[1], {
      cwd: join(ROOT, "examples", ex.slug),
      env: {
        AUTH_BASE_URL: aip.url,
        OAUTH_CLIENT_ID: "test-client",
        OAUTH_CLIENT_SECRET: "test-secret",
        PORT: port,
        SESSION_COOKIE_NAME: COOKIE_NAME,
        SESSION_DB: join(data, "sessions.db"),
        OAUTH_DB: join(data, "oauth.db"),
        KV_PATH: join(data, "app.kv"),
      },
      pattern: / at (http:\/\/localhost:\d+)\/\n/,
    });
    const appUrl = app.match[1];
    const userDataDir = tmp(`slices-e2e-chromium-${ex.slug}-`);
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 900, height: 520 },
    });
    t.after(() => context.close());
    const page = context.pages()[0] ?? (await context.newPage());
    const sessionCookies = async () => (await context.cookies(appUrl)).filter((c) => c.name === cookieName);

    // Logged out at first.
    await page.goto(`${appUrl}/`);
    assert.equal(await page.locator("h1").textContent(), ex.title);
    assert.equal(await page.locator("p").first().textContent(), "You are not logged in.");
    assert.deepEqual(await context.cookies(appUrl), []);

    // Log in as bob.test: the app → the authorization server → the callback → the app.
    await page.locator('input[name="handle"]').fill("bob.test");
    await page.locator("#login").click();
    await page.locator("#handle").waitFor();
    assert.equal(page.url(), `${appUrl}/`);
    assert.equal(await page.locator("#handle").textContent(), "bob.test");
    assert.equal(await page.locator("#did").textContent(), "did:plc:bob");
    const counters = await aipAdmin("GET", "/_admin/counters");
    assert.deepEqual(counters.authorize, { total: 1, byStatus: { 302: 1 } });
    assert.deepEqual(counters.authorizationCode, { total: 1, byStatus: { 200: 1 } });
    assert.deepEqual(counters.userinfo, { total: 1, byStatus: { 200: 1 } });

    // The session cookie as the browser keeps it; the login's state cookie is gone.
    const cookies = await context.cookies(appUrl);
    assert.deepEqual(cookies.map((c) => c.name), [cookieName]);
    const [cookie] = cookies;
    assert.match(cookie.value, UUID_V4);
    const { value, expires, ...attributes } = cookie;
    assert.deepEqual(attributes, {
      name: cookieName,
      domain: "localhost",
      path: "/",
      httpOnly: true,
      secure,
      sameSite: "Lax",
    });
    const lifetime = expires - Date.now() / 1000;
    assert.ok(lifetime > THIRTY_DAYS_S - 120 && lifetime <= THIRTY_DAYS_S + 1, `expires in ${lifetime} s, expected 30 days`);
    // HttpOnly: scripts on the page cannot read it (and there is no other cookie).
    assert.equal(await page.evaluate(() => document.cookie), "");

    const shot = join(SCREENSHOTS, `${ex.slug}-logged-in.png`);
    await page.screenshot({ path: shot });
    console.log(`screenshot: ${shot}`);

    // A reload keeps the session (the browser sends the __Host- cookie back).
    await page.reload();
    assert.equal(await page.locator("#handle").textContent(), "bob.test");
    assert.deepEqual((await sessionCookies()).map((c) => c.value), [value]);

    // Log out: the cookie is removed and the page is logged out, also after a reload.
    await page.locator("#logout").click();
    await page.locator("#login").waitFor();
    assert.equal(page.url(), `${appUrl}/`);
    assert.equal(await page.locator("p").first().textContent(), "You are not logged in.");
    assert.equal(await page.locator("#handle").count(), 0);
    assert.deepEqual(await context.cookies(appUrl), []);
    await page.reload();
    assert.equal(await page.locator("p").first().textContent(), "You are not logged in.");

    // The server deleted the session: the old cookie, put back by hand, logs nobody in.
    await context.addCookies([{ ...cookie }]);
    assert.deepEqual((await sessionCookies()).map((c) => c.value), [value]);
    await page.reload();
    assert.equal(await page.locator("p").first().textContent(), "You are not logged in.");
    assert.equal(await page.locator("#handle").count(), 0);

    await context.close();
    await stopProcess(app.child);
    assert.equal(app.child.exitCode, 0, `the example exited with ${app.child.exitCode ?? app.child.signalCode}\n${JSON.stringify(app.output())}`);
  });
}

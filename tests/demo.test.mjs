// demo/server.mjs end to end: log in through the HTML form, read the session cookie, kill the
// demo, start it again on the same SQLite file and find the same session still logged in; then
// log out, log out everywhere, HTML escaping, and a clean exit on SIGTERM.
// Runs under `node --test` and `deno test -A` (the demo then runs under `deno run -A`).
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const DEMO = fileURLToPath(new URL("../demo/server.mjs", import.meta.url));
const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}";
const STARTED = /^Demo running at http:\/\/localhost:(\d+)\/ \(sessions in (.+)\)$/m;

const children = new Set();
const dir = mkdtempSync(join(tmpdir(), "slices-demo-test-"));
after(() => {
  for (const child of children) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/** Starts the demo on a free port; resolves once it has printed its address. */
function startDemo(extraEnv = {}) {
  const env = { ...process.env, PORT: "0", DEMO_DB: join(dir, "sessions.db"), ...extraEnv };
  if (!("DEMO_INSECURE" in extraEnv)) delete env.DEMO_INSECURE;
  const [cmd, args] =
    typeof Deno !== "undefined" ? [Deno.execPath(), ["run", "-A", DEMO]] : [process.execPath, [DEMO]];
  const child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise((resolve) =>
    child.on("exit", (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the demo did not start within 20 s\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, 20000);
    child.on("error", reject);
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the demo exited (code ${code}, signal ${signal})\nstdout: ${stdout}\nstderr: ${stderr}`));
    });
    child.stdout.on("data", (d) => {
      stdout += d;
      const match = STARTED.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve({
          child,
          exited,
          dbPath: match[2],
          // The demo listens on the loopback interface; its banner says "localhost".
          url: (path) => `http://127.0.0.1:${match[1]}${path}`,
          output: () => ({ stdout, stderr }),
        });
      }
    });
  });
}

/** GET a page (with a `name=value` cookie, or none); resolves to { status, html }. */
async function getPage(demo, cookie, path = "/") {
  const response = await fetch(demo.url(path), cookie ? { headers: { cookie } } : {});
  return { status: response.status, html: await response.text() };
}

/** POST the form `fields`; resolves to { status, location, setCookie, body }. */
async function post(demo, path, { cookie, fields = {} } = {}) {
  const headers = { "content-type": "application/x-www-form-urlencoded" };
  if (cookie) headers.cookie = cookie;
  const response = await fetch(demo.url(path), {
    method: "POST",
    headers,
    body: new URLSearchParams(fields).toString(),
    redirect: "manual",
  });
  return {
    status: response.status,
    location: response.headers.get("location"),
    setCookie: response.headers.get("set-cookie"),
    body: await response.text(),
  };
}

/** Logs in as `handle`; returns the `name=value` pair a browser would send back. */
async function login(demo, handle) {
  const res = await post(demo, "/login", { fields: { handle } });
  assert.equal(res.status, 303, res.body);
  assert.equal(res.location, "/");
  assert.ok(res.setCookie, "the login response sets a cookie");
  return { cookie: res.setCookie.split(";")[0], setCookie: res.setCookie };
}

const isLoginForm = (html) => html.includes('<form method="post" action="/login">') && !html.includes("Logged in as");
const sessionCount = (html) => Number(/Your sessions \((\d+)\)/.exec(html)?.[1]);

describe("demo/server.mjs", () => {
  let demo;
  let alice; // the first login's cookie
  let aliceUserId;

  test("starts, and shows the login form to a visitor without a session", async () => {
    demo = await startDemo();
    assert.equal(demo.dbPath, join(dir, "sessions.db"));
    const page = await getPage(demo);
    assert.equal(page.status, 200);
    assert.ok(isLoginForm(page.html), page.html);
  });

  test("POST /login sets the default session cookie (Secure) and redirects to /", async () => {
    const { cookie, setCookie } = await login(demo, "Alice.Example");
    assert.match(setCookie, new RegExp(`^slice-session=${UUID}; Max-Age=2592000; Path=/; HttpOnly; Secure; SameSite=lax$`));
    alice = cookie;
  });

  test("GET / with the cookie shows the handle, the user id and the session list", async () => {
    const page = await getPage(demo, alice);
    assert.equal(page.status, 200);
    assert.match(page.html, /Logged in as <strong>alice\.example<\/strong>/);
    aliceUserId = /user id <code>(did:example:[0-9a-f]{24})<\/code>/.exec(page.html)?.[1];
    assert.ok(aliceUserId, page.html);
    assert.equal(sessionCount(page.html), 1);
    assert.match(page.html, /\(this one\)/);
    assert.match(page.html, /action="\/logout"/);
    assert.match(page.html, /action="\/logout-everywhere"/);
  });

  test("a session survives a killed demo: a new process on the same file knows the cookie", async () => {
    demo.child.kill("SIGKILL");
    assert.deepEqual(await demo.exited, { code: null, signal: "SIGKILL" });
    // The second run leaves Secure out (DEMO_INSECURE=1); the session is the same either way.
    demo = await startDemo({ DEMO_INSECURE: "1" });
    const page = await getPage(demo, alice);
    assert.equal(page.status, 200);
    assert.match(page.html, /Logged in as <strong>alice\.example<\/strong>/);
    assert.ok(page.html.includes(`user id <code>${aliceUserId}</code>`), page.html);
    assert.equal(sessionCount(page.html), 1);
  });

  test("the same handle on a second device is the same user with two sessions", async () => {
    const phone = await login(demo, "alice.example");
    assert.match(phone.setCookie, new RegExp(`^slice-session=${UUID}; Max-Age=2592000; Path=/; HttpOnly; SameSite=lax$`));
    assert.notEqual(phone.cookie, alice);
    const page = await getPage(demo, phone.cookie);
    assert.ok(page.html.includes(`user id <code>${aliceUserId}</code>`));
    assert.equal(sessionCount(page.html), 2);

    // Logging out the first device ends only that session.
    const out = await post(demo, "/logout", { cookie: alice });
    assert.equal(out.status, 303);
    assert.equal(out.location, "/");
    assert.equal(out.setCookie, "slice-session=; Max-Age=0; Path=/; HttpOnly; SameSite=lax");
    assert.ok(isLoginForm((await getPage(demo, alice)).html), "logged out: the login form again");
    const phonePage = await getPage(demo, phone.cookie);
    assert.match(phonePage.html, /Logged in as <strong>alice\.example<\/strong>/);
    assert.equal(sessionCount(phonePage.html), 1);

    // Log out everywhere ends every session of the user.
    const laptop = await login(demo, "alice.example");
    assert.equal(sessionCount((await getPage(demo, laptop.cookie)).html), 2);
    const everywhere = await post(demo, "/logout-everywhere", { cookie: phone.cookie });
    assert.equal(everywhere.status, 303);
    assert.equal(everywhere.setCookie, "slice-session=; Max-Age=0; Path=/; HttpOnly; SameSite=lax");
    assert.ok(isLoginForm((await getPage(demo, phone.cookie)).html));
    assert.ok(isLoginForm((await getPage(demo, laptop.cookie)).html));
  });

  test("escapes the handle in HTML, and rejects an empty one", async () => {
    const { cookie } = await login(demo, `<script>alert("x")</script>&'`);
    const page = await getPage(demo, cookie);
    assert.ok(page.html.includes("<strong>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;</strong>"), page.html);
    assert.ok(!page.html.includes("<script>"));

    const empty = await post(demo, "/login", { fields: { handle: "   " } });
    assert.equal(empty.status, 400);
    assert.equal(empty.setCookie, null);
    assert.ok(isLoginForm(empty.body));
  });

  test("an unknown page is a 404", async () => {
    assert.equal((await getPage(demo, null, "/nope")).status, 404);
  });

  test("SIGTERM closes the server and the store, and the process exits 0", async () => {
    // process.kill, not child.kill: Deno 2.9's node:child_process reports a child it signalled
    // through child.kill() as killed by that signal even when the child handled it and exited 0.
    process.kill(demo.child.pid, "SIGTERM");
    assert.deepEqual(await demo.exited, { code: 0, signal: null });
    const { stdout, stderr } = demo.output();
    assert.match(stdout, /SIGTERM: shutting down/);
    assert.equal(stderr, "");
  });
});

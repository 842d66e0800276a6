// A tiny login demo for @slices-rs/session: node:http (no framework), sessions in an SQLite file.
//
//   node demo/server.mjs                     (Deno: deno run -A demo/server.mjs)
//   env: PORT (default 8000, 0 = any free port), DEMO_DB (default demo/sessions.db),
//        DEMO_INSECURE=1 (cookie without Secure, see below)
//
// There is no password: anyone may log in as any handle. The demo is about sessions (create,
// read from the cookie, list, log out, log out everywhere, survive a restart), not about
// authentication.
import http from "node:http";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
// In an application: import { SessionStore, SQLiteAdapter } from "@slices-rs/session";
import { SessionStore, SQLiteAdapter } from "../npm/index.js";

const port = process.env.PORT ? Number(process.env.PORT) : 8000;
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`PORT must be an integer from 0 to 65535, got ${JSON.stringify(process.env.PORT)}`);
  process.exit(1);
}
const dbPath = process.env.DEMO_DB || fileURLToPath(new URL("./sessions.db", import.meta.url));

// The default session cookie is `HttpOnly; Secure; SameSite=lax`. Browsers treat http://localhost
// as a secure context, and Chromium and Firefox therefore accept a Secure cookie from this
// plain-http demo; other browsers (Safari, for one) drop it, and you would never stay logged in.
// For those, DEMO_INSECURE=1 leaves Secure out. Never do that in production: serve HTTPS instead.
// (SameSite=lax also keeps other sites from POSTing to /logout with the user's cookie.)
const adapter = new SQLiteAdapter(dbPath);
const store = new SessionStore({
  adapter,
  ...(process.env.DEMO_INSECURE === "1" ? { cookieOptions: { secure: false } } : {}),
});

/** A stable user id per handle, standing in for the DID an OAuth login would give. */
const userIdFor = (handle) => `did:example:${createHash("sha256").update(handle).digest("hex").slice(0, 24)}`;

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const esc = (value) => String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]);
const time = (ms) => `${new Date(ms).toISOString().slice(0, 19).replace("T", " ")} UTC`;

function page(title, body) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem}
th,td{padding:.2rem .7rem .2rem 0;text-align:left}form{display:inline-block;margin:1rem 1rem 0 0}</style>
</head><body><h1>${esc(title)}</h1>
${body}
</body></html>`;
}

function loginPage(error) {
  return page("Log in", `${error ? `<p role="alert"><strong>${esc(error)}</strong></p>` : ""}
<form method="post" action="/login"><label>Handle <input name="handle" required maxlength="64" autofocus
placeholder="alice.example.com"></label> <button>Log in</button></form>`);
}

async function homePage(session) {
  const sessions = await store.listUserSessions(session.userId);
  const rows = sessions.map((s) => `<tr><td><code>${esc(s.sessionId.slice(0, 8))}…</code>${
    s.sessionId === session.sessionId ? " (this one)" : ""}</td><td>${esc(time(s.createdAt))}</td><td>${
    esc(time(s.lastAccessedAt))}</td><td>${esc(time(s.expiresAt))}</td></tr>`);
  return page("Logged in", `<p>Logged in as <strong>${esc(session.handle)}</strong> (user id <code>${
    esc(session.userId)}</code>).</p>
<p>This session was created ${esc(time(session.createdAt))} and expires ${esc(time(session.expiresAt))}.</p>
<h2>Your sessions (${sessions.length})</h2>
<table><tr><th>Session</th><th>Created</th><th>Last seen</th><th>Expires</th></tr>
${rows.join("\n")}</table>
<form method="post" action="/logout"><button>Log out</button></form>
<form method="post" action="/logout-everywhere"><button>Log out everywhere</button></form>`);
}

function send(res, status, html) {
  res.writeHead(status, {
    "content-type": "text/html; charset=utf-8",
    "cache-control": "no-store",
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
  });
  res.end(html);
}

/** After a POST: 303 to the home page, with the session (or logout) cookie. */
function redirectHome(res, setCookie) {
  res.writeHead(303, { location: "/", "set-cookie": setCookie, "cache-control": "no-store" });
  res.end();
}

async function readForm(req, limit = 8192) {
  let body = "";
  req.setEncoding("utf8");
  for await (const chunk of req) {
    body += chunk;
    if (body.length > limit) throw Object.assign(new Error("Request body too large."), { status: 413 });
  }
  return new URLSearchParams(body);
}

async function route(req, res) {
  const { pathname } = new URL(req.url, "http://localhost");
  // getSessionFromRequest takes a Node IncomingMessage as well as a Fetch Request.
  const session = await store.getSessionFromRequest(req);

  if (req.method === "GET" && pathname === "/") {
    return send(res, 200, session ? await homePage(session) : loginPage());
  }
  if (req.method === "POST" && pathname === "/login") {
    const handle = ((await readForm(req)).get("handle") ?? "").trim().toLowerCase();
    if (handle === "" || handle.length > 64) return send(res, 400, loginPage("Enter a handle of 1 to 64 characters."));
    if (session) await store.deleteSession(session.sessionId); // a new login replaces the old session
    const sessionId = await store.createSession(userIdFor(handle), handle);
    return redirectHome(res, store.createSessionCookie(sessionId));
  }
  if (req.method === "POST" && pathname === "/logout") {
    if (session) await store.deleteSession(session.sessionId);
    return redirectHome(res, store.createLogoutCookie());
  }
  if (req.method === "POST" && pathname === "/logout-everywhere") {
    if (session) await store.deleteUserSessions(session.userId);
    return redirectHome(res, store.createLogoutCookie());
  }
  send(res, 404, page("Not found", `<p><a href="/">Home</a></p>`));
}

const server = http.createServer((req, res) => {
  route(req, res).catch((error) => {
    if (!error.status) console.error("request failed:", error);
    if (res.headersSent) return res.destroy();
    send(res, error.status ?? 500, page("Error", `<p>${esc(error.status ? error.message : "Internal error.")}</p>`));
  });
});

// Loopback only: the demo is not meant to be reachable from other machines.
server.listen(port, "127.0.0.1", () => {
  console.log(`Demo running at http://localhost:${server.address().port}/ (sessions in ${dbPath})`);
});

let closing = false;
async function shutdown(signal) {
  if (closing) process.exit(1); // a second Ctrl+C does not wait
  closing = true;
  console.log(`${signal}: shutting down`);
  const closed = new Promise((resolve) => server.close(resolve)); // finishes requests in flight
  // Idle keep-alive connections would hold close() open until the client drops them. Node 19+
  // closes them itself; Deno's node:http does not (not even with closeIdleConnections()), so
  // after a grace period for requests in flight, every connection is closed.
  const grace = setTimeout(() => server.closeAllConnections(), 1000);
  await closed;
  clearTimeout(grace);
  await store.close();
  await adapter.close(); // the store does not close its adapter (one adapter may serve several stores)
}
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);

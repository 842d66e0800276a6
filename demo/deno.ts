// The login demo of demo/server.mjs on Deno's own HTTP server (Deno.serve) and the JSR package
// (jsr/mod.ts: the Rust core through Deno FFI). Same pages, routes, cookie and SQLite file as
// demo/server.mjs; `deno run -A demo/server.mjs` is the other way to run the demo on Deno
// (node:http and the npm package through N-API).
//
//   deno run -A demo/deno.ts         (from the repository root, after `make build-deno`)
//   env: PORT (default 8000, 0 = any free port), DEMO_DB (default demo/sessions.db),
//        DEMO_INSECURE=1 (cookie without Secure, see demo/server.mjs)
//
// There is no password: anyone may log in as any handle (see demo/README.md).
import { type SessionData, SessionStore, SQLiteAdapter } from "../jsr/mod.ts";

const port = Deno.env.get("PORT") ? Number(Deno.env.get("PORT")) : 8000;
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`PORT must be an integer from 0 to 65535, got ${JSON.stringify(Deno.env.get("PORT"))}`);
  Deno.exit(1);
}
const dbPath = Deno.env.get("DEMO_DB") || new URL("./sessions.db", import.meta.url).pathname;

const adapter = new SQLiteAdapter(dbPath);
const store = new SessionStore({
  adapter,
  ...(Deno.env.get("DEMO_INSECURE") === "1" ? { cookieOptions: { secure: false } } : {}),
});

/** A stable user id per handle, standing in for the DID an OAuth login would give. */
async function userIdFor(handle: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(handle)));
  return `did:example:${Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("").slice(0, 24)}`;
}

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const esc = (value: unknown) => String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]);
const time = (ms: number) => `${new Date(ms).toISOString().slice(0, 19).replace("T", " ")} UTC`;

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem}
th,td{padding:.2rem .7rem .2rem 0;text-align:left}form{display:inline-block;margin:1rem 1rem 0 0}</style>
</head><body><h1>${esc(title)}</h1>
${body}
</body></html>`;
}

function loginPage(error?: string): string {
  return page("Log in", `${error ? `<p role="alert"><strong>${esc(error)}</strong></p>` : ""}
<form method="post" action="/login"><label>Handle <input name="handle" required maxlength="64" autofocus
placeholder="alice.example.com"></label> <button>Log in</button></form>`);
}

async function homePage(session: SessionData): Promise<string> {
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

function html(status: number, body: string): Response {
  return new Response(body, {
    status,
    headers: {
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    },
  });
}

/** After a POST: 303 to the home page, with the session (or logout) cookie. */
function redirectHome(setCookie: string): Response {
  return new Response(null, { status: 303, headers: { location: "/", "set-cookie": setCookie, "cache-control": "no-store" } });
}

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

async function readForm(request: Request, limit = 8192): Promise<URLSearchParams> {
  let body = "";
  const decoder = new TextDecoder();
  for await (const chunk of request.body ?? []) {
    body += decoder.decode(chunk, { stream: true });
    if (body.length > limit) throw new HttpError(413, "Request body too large.");
  }
  return new URLSearchParams(body + decoder.decode());
}

async function route(request: Request): Promise<Response> {
  const { pathname } = new URL(request.url);
  // getSessionFromRequest takes a Fetch Request (Deno.serve's) as well as a Node IncomingMessage.
  const session = await store.getSessionFromRequest(request);

  if (request.method === "GET" && pathname === "/") {
    return html(200, session ? await homePage(session) : loginPage());
  }
  if (request.method === "POST" && pathname === "/login") {
    const handle = ((await readForm(request)).get("handle") ?? "").trim().toLowerCase();
    if (handle === "" || handle.length > 64) return html(400, loginPage("Enter a handle of 1 to 64 characters."));
    if (session) await store.deleteSession(session.sessionId); // a new login replaces the old session
    const sessionId = await store.createSession(await userIdFor(handle), handle);
    return redirectHome(store.createSessionCookie(sessionId));
  }
  if (request.method === "POST" && pathname === "/logout") {
    if (session) await store.deleteSession(session.sessionId);
    return redirectHome(store.createLogoutCookie());
  }
  if (request.method === "POST" && pathname === "/logout-everywhere") {
    if (session) await store.deleteUserSessions(session.userId);
    return redirectHome(store.createLogoutCookie());
  }
  return html(404, page("Not found", `<p><a href="/">Home</a></p>`));
}

// Loopback only: the demo is not meant to be reachable from other machines.
const server = Deno.serve({
  port,
  hostname: "127.0.0.1",
  onListen({ port }) {
    console.log(`Demo running at http://localhost:${port}/ (sessions in ${dbPath})`);
  },
  onError(error) {
    if (error instanceof HttpError) return html(error.status, page("Error", `<p>${esc(error.message)}</p>`));
    console.error("request failed:", error);
    return html(500, page("Error", "<p>Internal error.</p>"));
  },
}, route);

let closing = false;
async function shutdown(signal: string) {
  if (closing) Deno.exit(1); // a second Ctrl+C does not wait
  closing = true;
  console.log(`${signal}: shutting down`);
  await server.shutdown(); // finishes requests in flight, closes idle connections
  await store.close();
  await adapter.close(); // the store does not close its adapter (one adapter may serve several stores)
  Deno.exit(0);
}
Deno.addSignalListener("SIGINT", () => shutdown("SIGINT"));
Deno.addSignalListener("SIGTERM", () => shutdown("SIGTERM"));

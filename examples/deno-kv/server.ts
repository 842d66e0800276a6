// A Deno.serve app on the Slices setup of setup.ts (Deno KV for sessions and OAuth tokens):
// log in through an OAuth authorization server (AIP), see your handle, log out.
//
//   deno task start    (builds the FFI library, starts the loopback AIP server and this app)
import { OAuthError, parseCookie, serializeCookie } from "@slices/session";
import { createOAuthClient, kv, oauthSessions, port, sessionStore } from "./setup.ts";

// The OAuth `state` also goes into a short-lived cookie, so that a callback is only accepted in
// the browser that started the login (no login CSRF).
const STATE_COOKIE = "oauth-state";
const stateCookie = (value: string, maxAge: number) =>
  serializeCookie(STATE_COOKIE, value, { httpOnly: true, secure: false, sameSite: "lax", path: "/oauth/callback", maxAge });

const ESC: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => ESC[c]);
const TITLE = "Deno KV";

function html(body: string, status = 200, headers: [string, string][] = []): Response {
  const page = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(TITLE)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}</style>
</head><body><h1>${esc(TITLE)}</h1>
${body}
</body></html>`;
  return new Response(page, { status, headers: [["content-type", "text/html; charset=utf-8"], ...headers] });
}

const redirect = (location: string, status: number, cookies: string[] = []) =>
  new Response(null, { status, headers: [["location", location], ...cookies.map((c): [string, string] => ["set-cookie", c])] });

/** The OAuth session (session record + tokens, refreshed when due) of the request's cookie, or null. */
async function currentSession(request: Request) {
  const session = await sessionStore.getSessionFromRequest(request);
  return session && (await oauthSessions.getOAuthSession(session.sessionId));
}

async function handle(request: Request): Promise<Response> {
  const url = new URL(request.url);
  if (request.method === "GET" && url.pathname === "/") {
    const session = await currentSession(request);
    if (!session) {
      return html(`<p>You are not logged in.</p>
<form action="/login"><label>Handle <input name="handle" value="alice.test"></label>
<button id="login">Log in</button></form>`);
    }
    return html(`<p>Logged in as <strong id="handle">${esc(session.handle)}</strong>
(<code id="did">${esc(session.userId)}</code>).</p>
<form method="post" action="/logout"><button id="logout">Log out</button></form>`);
  }
  if (request.method === "GET" && url.pathname === "/login") {
    const loginHint = url.searchParams.get("handle")?.trim() || undefined;
    const { authorizationUrl, state } = await createOAuthClient("login").authorize({ loginHint });
    return redirect(authorizationUrl, 302, [stateCookie(state, 600)]);
  }
  if (request.method === "GET" && url.pathname === "/oauth/callback") {
    const code = url.searchParams.get("code");
    const state = url.searchParams.get("state");
    const expected = parseCookie(request.headers.get("cookie") ?? "")[STATE_COOKIE];
    if (!code || !state || state !== expected) return html('<p>Unknown login attempt. <a href="/">Try again</a>.</p>', 400);
    let tokens;
    try {
      tokens = await createOAuthClient("login").handleCallback({ code, state });
    } catch (error) {
      if (!(error instanceof OAuthError)) throw error;
      return html(`<p>${esc(error.code ?? error.message)}. <a href="/">Try again</a>.</p>`, 400);
    }
    const previous = await sessionStore.getSessionFromRequest(request);
    if (previous) await oauthSessions.logout(previous.sessionId); // a new login replaces the old session
    const sessionId = await oauthSessions.createOAuthSession(tokens); // fetches the user's DID and handle
    if (!sessionId) return html("<p>The authorization server did not say who you are.</p>", 502);
    return redirect("/", 302, [sessionStore.createSessionCookie(sessionId), stateCookie("", 0)]);
  }
  if (request.method === "POST" && url.pathname === "/logout") {
    const session = await sessionStore.getSessionFromRequest(request);
    if (session) await oauthSessions.logout(session.sessionId); // clears the tokens, deletes the session
    return redirect("/", 303, [sessionStore.createLogoutCookie()]);
  }
  return html("<p>Not found.</p>", 404);
}

const server = Deno.serve({
  port,
  hostname: "127.0.0.1",
  onListen({ port }) {
    console.log(`${TITLE} at http://localhost:${port}/`);
  },
}, async (request) => {
  const response = await handle(request);
  response.headers.set("cache-control", "no-store");
  return response;
});

async function shutdown() {
  await server.shutdown();
  await sessionStore.close();
  kv.close();
}
Deno.addSignalListener("SIGINT", shutdown);
Deno.addSignalListener("SIGTERM", shutdown);

// Hono on Deno (Deno.serve) with @slices-rs/session: log in through an OAuth authorization
// server (AIP), see your handle, log out.
//
//   deno task start    (builds the FFI library, starts the loopback AIP server and this app)
//
// Environment: AUTH_BASE_URL (the authorization server; required, `deno task start` sets it),
// OAUTH_CLIENT_ID / OAUTH_CLIENT_SECRET (test-client / test-secret), PORT (8000; 0 = any free
// port), SESSION_COOKIE_NAME (slice-session), SESSION_DB (sessions.db), OAUTH_DB (oauth.db).
import { Hono } from "hono";
import {
  OAuthClient,
  type OAuthConfig,
  OAuthError,
  type OAuthSessionManager,
  type OAuthTokens,
  parseCookie,
  serializeCookie,
  SessionStore,
  SQLiteAdapter,
  SQLiteOAuthStorage,
  withOAuthSession,
} from "@slices-rs/session";

const authBaseUrl = Deno.env.get("AUTH_BASE_URL");
if (!authBaseUrl) {
  console.error("AUTH_BASE_URL is not set: run `deno task start`, which starts a loopback authorization server");
  Deno.exit(1);
}
const port = Number(Deno.env.get("PORT") ?? 8000);
const cookieName = Deno.env.get("SESSION_COOKIE_NAME") ?? "slice-session";

const adapter = new SQLiteAdapter(Deno.env.get("SESSION_DB") ?? "sessions.db");
const sessions = new SessionStore({ adapter, cookieName });
const oauthStorage = new SQLiteOAuthStorage(Deno.env.get("OAUTH_DB") ?? "oauth.db");
let oauthConfig: OAuthConfig; // set once the port is known (the redirect URI names it)
let oauthSessions: OAuthSessionManager;

// The OAuth `state` also goes into a short-lived cookie, so that a callback is only accepted in
// the browser that started the login (no login CSRF).
const STATE_COOKIE = "oauth-state";
const stateCookie = (value: string, maxAge: number) =>
  serializeCookie(STATE_COOKIE, value, { httpOnly: true, secure: true, sameSite: "lax", path: "/oauth/callback", maxAge });

/** The OAuth session (session record + tokens) of the request's cookie, or null. */
async function currentSession(request: Request) {
  const session = await sessions.getSessionFromRequest(request);
  return session && (await oauthSessions.getOAuthSession(session.sessionId));
}

const ESC: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => ESC[c]);
const page = (title: string, body: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}</style>
</head><body><h1>${esc(title)}</h1>
${body}
</body></html>`;

const app = new Hono();

// The login form's request is redirected to the authorization server: form-action allows it.
const CSP = `default-src 'none'; style-src 'unsafe-inline'; form-action 'self' ${new URL(authBaseUrl).origin}`;
app.use("*", async (c, next) => {
  await next();
  c.header("cache-control", "no-store");
  c.header("content-security-policy", CSP);
});

app.get("/", async (c) => {
  const session = await currentSession(c.req.raw);
  if (!session) {
    return c.html(page("Hono on Deno", `<p>You are not logged in.</p>
<form action="/login"><label>Handle <input name="handle" value="alice.test"></label>
<button id="login">Log in</button></form>`));
  }
  return c.html(page("Hono on Deno", `<p>Logged in as <strong id="handle">${esc(session.handle)}</strong>
(<code id="did">${esc(session.userId)}</code>).</p>
<form method="post" action="/logout"><button id="logout">Log out</button></form>`));
});

app.get("/login", async (c) => {
  const loginHint = c.req.query("handle")?.trim() || undefined;
  const { authorizationUrl, state } = await new OAuthClient(oauthConfig, oauthStorage, "login").authorize({ loginHint });
  c.header("set-cookie", stateCookie(state, 600));
  return c.redirect(authorizationUrl, 302);
});

app.get("/oauth/callback", async (c) => {
  const { code, state } = c.req.query();
  const expected = parseCookie(c.req.header("cookie"))[STATE_COOKIE];
  if (!code || !state || state !== expected) return c.html(page("Login failed", '<p>Unknown login attempt. <a href="/">Try again</a>.</p>'), 400);
  let tokens: OAuthTokens;
  try {
    tokens = await new OAuthClient(oauthConfig, oauthStorage, "login").handleCallback({ code, state });
  } catch (error) {
    if (!(error instanceof OAuthError)) throw error;
    return c.html(page("Login failed", `<p>${esc(error.code ?? error.message)}. <a href="/">Try again</a>.</p>`), 400);
  }
  const previous = await sessions.getSessionFromRequest(c.req.raw);
  if (previous) await oauthSessions.logout(previous.sessionId); // a new login replaces the old session
  const sessionId = await oauthSessions.createOAuthSession(tokens); // fetches the user's DID and handle
  if (!sessionId) return c.html(page("Login failed", "<p>The authorization server did not say who you are.</p>"), 502);
  c.header("set-cookie", sessions.createSessionCookie(sessionId));
  c.header("set-cookie", stateCookie("", 0), { append: true });
  return c.redirect("/", 302);
});

app.post("/logout", async (c) => {
  const session = await sessions.getSessionFromRequest(c.req.raw);
  if (session) await oauthSessions.logout(session.sessionId); // clears the tokens, deletes the session
  c.header("set-cookie", sessions.createLogoutCookie());
  return c.redirect("/", 303);
});

const server = Deno.serve({
  port,
  hostname: "127.0.0.1",
  onListen({ port }) {
    const appUrl = `http://localhost:${port}`;
    oauthConfig = {
      clientId: Deno.env.get("OAUTH_CLIENT_ID") ?? "test-client",
      clientSecret: Deno.env.get("OAUTH_CLIENT_SECRET") ?? "test-secret",
      authBaseUrl,
      redirectUri: `${appUrl}/oauth/callback`,
      scopes: ["atproto", "profile"],
    };
    oauthSessions = withOAuthSession(sessions, oauthConfig, oauthStorage);
    console.log(`Hono on Deno at ${appUrl}/`);
  },
}, app.fetch);

async function shutdown() {
  await server.shutdown();
  await sessions.close();
  await Promise.all([adapter.close(), oauthStorage.close()]);
}
Deno.addSignalListener("SIGINT", shutdown);
Deno.addSignalListener("SIGTERM", shutdown);

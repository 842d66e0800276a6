// Hono on Node (@hono/node-server) with @slices-rs/session: log in through an OAuth
// authorization server (AIP), see your handle, log out.
//
//   npm start    (installs, builds the addon, starts the loopback AIP server and this app)
//
// Environment: AUTH_BASE_URL (the authorization server; required, `npm start` sets it),
// OAUTH_CLIENT_ID / OAUTH_CLIENT_SECRET (test-client / test-secret), PORT (8000; 0 = any free
// port), SESSION_COOKIE_NAME (slice-session), SESSION_DB (sessions.db), OAUTH_DB (oauth.db).
import { Hono } from "hono";
import { serve } from "@hono/node-server";
import {
  OAuthClient,
  OAuthError,
  SessionStore,
  SQLiteAdapter,
  SQLiteOAuthStorage,
  parseCookie,
  serializeCookie,
  withOAuthSession,
} from "@slices-rs/session";

const env = process.env;
if (!env.AUTH_BASE_URL) {
  console.error("AUTH_BASE_URL is not set: run `npm start`, which starts a loopback authorization server");
  process.exit(1);
}
const port = Number(env.PORT ?? 8000);
const cookieName = env.SESSION_COOKIE_NAME ?? "slice-session";

const adapter = new SQLiteAdapter(env.SESSION_DB ?? "sessions.db");
const sessions = new SessionStore({ adapter, cookieName });
const oauthStorage = new SQLiteOAuthStorage(env.OAUTH_DB ?? "oauth.db");
let oauthConfig; // set once the port is known (the redirect URI names it)
let oauthSessions;

// The OAuth `state` also goes into a short-lived cookie, so that a callback is only accepted in
// the browser that started the login (no login CSRF).
const STATE_COOKIE = "oauth-state";
const stateCookie = (value, maxAge) =>
  serializeCookie(STATE_COOKIE, value, { httpOnly: true, secure: true, sameSite: "lax", path: "/oauth/callback", maxAge });

/** The OAuth session (session record + tokens) of the request's cookie, or null. */
async function currentSession(request) {
  const session = await sessions.getSessionFromRequest(request);
  return session && (await oauthSessions.getOAuthSession(session.sessionId));
}

const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ESC[c]);
const page = (title, body) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}</style>
</head><body><h1>${esc(title)}</h1>
${body}
</body></html>`;

const app = new Hono();

// The login form's request is redirected to the authorization server: form-action allows it.
const CSP = `default-src 'none'; style-src 'unsafe-inline'; form-action 'self' ${new URL(env.AUTH_BASE_URL).origin}`;
app.use("*", async (c, next) => {
  await next();
  c.header("cache-control", "no-store");
  c.header("content-security-policy", CSP);
});

app.get("/", async (c) => {
  const session = await currentSession(c.req.raw);
  if (!session) {
    return c.html(page("Hono on Node", `<p>You are not logged in.</p>
<form action="/login"><label>Handle <input name="handle" value="alice.test"></label>
<button id="login">Log in</button></form>`));
  }
  return c.html(page("Hono on Node", `<p>Logged in as <strong id="handle">${esc(session.handle)}</strong>
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
  if (!code || !state || state !== expected) return c.html(page("Login failed", "<p>Unknown login attempt. <a href=\"/\">Try again</a>.</p>"), 400);
  let tokens;
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

const server = serve({ fetch: app.fetch, port, hostname: "127.0.0.1" }, (info) => {
  const appUrl = `http://localhost:${info.port}`;
  oauthConfig = {
    clientId: env.OAUTH_CLIENT_ID ?? "test-client",
    clientSecret: env.OAUTH_CLIENT_SECRET ?? "test-secret",
    authBaseUrl: env.AUTH_BASE_URL,
    redirectUri: `${appUrl}/oauth/callback`,
    scopes: ["atproto", "profile"],
  };
  oauthSessions = withOAuthSession(sessions, oauthConfig, oauthStorage);
  console.log(`Hono on Node at ${appUrl}/`);
});

async function shutdown() {
  server.close();
  server.closeAllConnections?.();
  await sessions.close();
  await Promise.all([adapter.close(), oauthStorage.close()]);
}
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);

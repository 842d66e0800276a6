// The app's session store and OAuth set-up, shared by the middleware and the routes.
import {
  type OAuthConfig,
  type OAuthSessionManager,
  type OAuthTokens,
  type SessionData,
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
export const AUTH_BASE_URL: string = authBaseUrl;

const adapter = new SQLiteAdapter(Deno.env.get("SESSION_DB") ?? "sessions.db");
export const sessions = new SessionStore({ adapter, cookieName: Deno.env.get("SESSION_COOKIE_NAME") ?? "slice-session" });
export const oauthStorage = new SQLiteOAuthStorage(Deno.env.get("OAUTH_DB") ?? "oauth.db");

export let oauthConfig: OAuthConfig;
export let oauthSessions: OAuthSessionManager;

/** Called once the app's URL is known: the redirect URI names it. */
export function configure(appUrl: string) {
  oauthConfig = {
    clientId: Deno.env.get("OAUTH_CLIENT_ID") ?? "test-client",
    clientSecret: Deno.env.get("OAUTH_CLIENT_SECRET") ?? "test-secret",
    authBaseUrl: AUTH_BASE_URL,
    redirectUri: `${appUrl}/oauth/callback`,
    scopes: ["atproto", "profile"],
  };
  oauthSessions = withOAuthSession(sessions, oauthConfig, oauthStorage);
}

// The OAuth `state` also goes into a short-lived cookie, so that a callback is only accepted in
// the browser that started the login (no login CSRF).
export const STATE_COOKIE = "oauth-state";
export const stateCookie = (value: string, maxAge: number) =>
  serializeCookie(STATE_COOKIE, value, { httpOnly: true, secure: true, sameSite: "lax", path: "/oauth/callback", maxAge });

export async function close() {
  await sessions.close();
  await Promise.all([adapter.close(), oauthStorage.close()]);
}

/** What the middleware puts in ctx.state. */
export interface State {
  session: (SessionData & { tokens?: OAuthTokens }) | null;
}

const ESC: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => ESC[c]);

export function html(title: string, body: string, status = 200): Response {
  return new Response(
    `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}</style>
</head><body><h1>${esc(title)}</h1>
${body}
</body></html>`,
    { status, headers: { "content-type": "text/html; charset=utf-8" } },
  );
}

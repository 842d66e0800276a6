// The setup of a real Slices app (the "links" app), as written for the original packages
// `@slices/session` and `@slices/oauth`. Not a line of it differs: deno.json maps both import
// specifiers to this package (in your app: "jsr:@slices-rs/session" for both).
//
// Environment: AUTH_BASE_URL (the authorization server; `deno task start` sets it),
// OAUTH_CLIENT_ID / OAUTH_CLIENT_SECRET (test-client / test-secret), PORT (8000, the redirect
// URI names it), KV_PATH (Deno.openKv's default database when unset).
import { DenoKVOAuthStorage, OAuthClient } from "@slices/oauth";
import { DenoKVAdapter, SessionStore, withOAuthSession } from "@slices/session";

const authBaseUrl = Deno.env.get("AUTH_BASE_URL");
if (!authBaseUrl) {
  console.error("AUTH_BASE_URL is not set: run `deno task start`, which starts a loopback authorization server");
  Deno.exit(1);
}
export const port = Number(Deno.env.get("PORT") ?? 8000);

export const oauthConfig = {
  clientId: Deno.env.get("OAUTH_CLIENT_ID") ?? "test-client",
  clientSecret: Deno.env.get("OAUTH_CLIENT_SECRET") ?? "test-secret",
  authBaseUrl,
  redirectUri: `http://localhost:${port}/oauth/callback`,
  scopes: ["atproto", "profile"],
};

export const kv = await Deno.openKv(Deno.env.get("KV_PATH"));
export const oauthStorage = new DenoKVOAuthStorage(kv);
export const sessionStore = new SessionStore({
  adapter: new DenoKVAdapter(kv),
  cookieName: "links-session",
  cookieOptions: { httpOnly: true, secure: false, sameSite: "lax", path: "/" },
});
export const oauthSessions = withOAuthSession(sessionStore, oauthConfig, oauthStorage, { autoRefresh: true });
export const createOAuthClient = (userId: string) => new OAuthClient(oauthConfig, oauthStorage, userId);

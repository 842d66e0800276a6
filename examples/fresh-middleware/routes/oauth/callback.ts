import type { Handlers } from "$fresh/server.ts";
import { OAuthClient, OAuthError, type OAuthTokens, parseCookie } from "@slices-rs/session";
import { esc, html, oauthConfig, oauthSessions, oauthStorage, sessions, STATE_COOKIE, stateCookie, type State } from "../../lib/auth.ts";

export const handler: Handlers<unknown, State> = {
  async GET(req, ctx) {
    const code = ctx.url.searchParams.get("code");
    const state = ctx.url.searchParams.get("state");
    if (!code || !state || state !== parseCookie(req.headers.get("cookie"))[STATE_COOKIE]) {
      return html("Login failed", '<p>Unknown login attempt. <a href="/">Try again</a>.</p>', 400);
    }
    let tokens: OAuthTokens;
    try {
      tokens = await new OAuthClient(oauthConfig, oauthStorage, "login").handleCallback({ code, state });
    } catch (error) {
      if (!(error instanceof OAuthError)) throw error;
      return html("Login failed", `<p>${esc(error.code ?? error.message)}. <a href="/">Try again</a>.</p>`, 400);
    }
    if (ctx.state.session) await oauthSessions.logout(ctx.state.session.sessionId); // a new login replaces the old session
    const sessionId = await oauthSessions.createOAuthSession(tokens); // fetches the user's DID and handle
    if (!sessionId) return html("Login failed", "<p>The authorization server did not say who you are.</p>", 502);
    const headers = new Headers({ location: "/" });
    headers.append("set-cookie", sessions.createSessionCookie(sessionId));
    headers.append("set-cookie", stateCookie("", 0));
    return new Response(null, { status: 302, headers });
  },
};

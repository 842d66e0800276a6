// routes/_middleware.ts: every request gets the user's OAuth session (or null) in ctx.state,
// the Fresh way. The session store reads the cookie from the Fetch Request.
import type { FreshContext } from "$fresh/server.ts";
import { AUTH_BASE_URL, oauthSessions, sessions, type State } from "../lib/auth.ts";

// The login form's request is redirected to the authorization server: form-action allows it.
const CSP = `default-src 'none'; style-src 'unsafe-inline'; form-action 'self' ${new URL(AUTH_BASE_URL).origin}`;

export async function handler(req: Request, ctx: FreshContext<State>) {
  const session = await sessions.getSessionFromRequest(req);
  ctx.state.session = session && (await oauthSessions.getOAuthSession(session.sessionId));
  const response = await ctx.next();
  response.headers.set("cache-control", "no-store");
  response.headers.set("content-security-policy", CSP);
  return response;
}

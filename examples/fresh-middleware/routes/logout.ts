import type { Handlers } from "$fresh/server.ts";
import { oauthSessions, sessions, type State } from "../lib/auth.ts";

export const handler: Handlers<unknown, State> = {
  async POST(_req, ctx) {
    if (ctx.state.session) await oauthSessions.logout(ctx.state.session.sessionId); // clears the tokens, deletes the session
    return new Response(null, { status: 303, headers: { location: "/", "set-cookie": sessions.createLogoutCookie() } });
  },
};

import type { Handlers } from "$fresh/server.ts";
import { OAuthClient } from "@slices-rs/session";
import { oauthConfig, oauthStorage, stateCookie, type State } from "../lib/auth.ts";

export const handler: Handlers<unknown, State> = {
  async GET(_req, ctx) {
    const loginHint = ctx.url.searchParams.get("handle")?.trim() || undefined;
    const { authorizationUrl, state } = await new OAuthClient(oauthConfig, oauthStorage, "login").authorize({ loginHint });
    return new Response(null, { status: 302, headers: { location: authorizationUrl, "set-cookie": stateCookie(state, 600) } });
  },
};

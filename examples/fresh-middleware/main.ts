// A tiny stand-in for Fresh's server: Deno.serve, routes/_middleware.ts in front of every
// request, then the route module for the path (file-system routing, as Fresh does it, over the
// few routes of this example).
//
//   deno task start    (builds the FFI library, starts the loopback AIP server and this app)
//
// Environment: AUTH_BASE_URL (the authorization server; required, `deno task start` sets it),
// OAUTH_CLIENT_ID / OAUTH_CLIENT_SECRET (test-client / test-secret), PORT (8000; 0 = any free
// port), SESSION_COOKIE_NAME (slice-session), SESSION_DB (sessions.db), OAUTH_DB (oauth.db).
import type { FreshContext, Handlers } from "$fresh/server.ts";
import { close, configure, type State } from "./lib/auth.ts";
import { handler as middleware } from "./routes/_middleware.ts";
import { handler as index } from "./routes/index.ts";
import { handler as login } from "./routes/login.ts";
import { handler as logout } from "./routes/logout.ts";
import { handler as callback } from "./routes/oauth/callback.ts";

const routes: Record<string, Handlers<unknown, State>> = {
  "/": index,
  "/login": login,
  "/logout": logout,
  "/oauth/callback": callback,
};

function route(req: Request, ctx: FreshContext<State>): Response | Promise<Response> {
  const handlers = routes[ctx.url.pathname];
  if (!handlers) return new Response("Not found", { status: 404 });
  const handler = handlers[req.method as "GET" | "POST"];
  if (!handler) return new Response("Method not allowed", { status: 405, headers: { allow: Object.keys(handlers).join(", ") } });
  return handler(req, ctx);
}

const server = Deno.serve({
  port: Number(Deno.env.get("PORT") ?? 8000),
  hostname: "127.0.0.1",
  onListen({ port }) {
    configure(`http://localhost:${port}`);
    console.log(`Fresh-style middleware at http://localhost:${port}/`);
  },
}, (req) => {
  const ctx: FreshContext<State> = {
    url: new URL(req.url),
    params: {},
    state: { session: null },
    next: async () => await route(req, ctx),
  };
  return middleware(req, ctx);
});

async function shutdown() {
  await server.shutdown();
  await close();
}
Deno.addSignalListener("SIGINT", shutdown);
Deno.addSignalListener("SIGTERM", shutdown);

import type { Handlers } from "$fresh/server.ts";
import { esc, html, type State } from "../lib/auth.ts";

export const handler: Handlers<unknown, State> = {
  GET(_req, ctx) {
    const { session } = ctx.state;
    if (!session) {
      return html("Fresh-style middleware", `<p>You are not logged in.</p>
<form action="/login"><label>Handle <input name="handle" value="alice.test"></label>
<button id="login">Log in</button></form>`);
    }
    return html("Fresh-style middleware", `<p>Logged in as <strong id="handle">${esc(session.handle)}</strong>
(<code id="did">${esc(session.userId)}</code>).</p>
<form method="post" action="/logout"><button id="logout">Log out</button></form>`);
  },
};

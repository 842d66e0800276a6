// The part of Fresh 1.x's "$fresh/server.ts" that these routes use (deno.json maps
// "$fresh/server.ts" here). In a Fresh app, delete this file and the import map entry: the
// routes and the middleware run unchanged under Fresh's own server.

export interface FreshContext<State = Record<string, unknown>> {
  url: URL;
  params: Record<string, string>;
  state: State;
  /** Runs the next middleware, or the route handler. */
  next(): Promise<Response>;
}

export type Handler<State = Record<string, unknown>> = (req: Request, ctx: FreshContext<State>) => Response | Promise<Response>;

/** A route's handlers by HTTP method. */
// deno-lint-ignore no-explicit-any
export type Handlers<_Data = any, State = Record<string, unknown>> = {
  [method in "GET" | "POST"]?: Handler<State>;
};

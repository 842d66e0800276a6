// @slices-rs/session for Node.js (and Deno through `npm:`), over the N-API addon.
import { createRequire } from "node:module";
import { createApi } from "./session.js";

const native = createRequire(import.meta.url)("./native.cjs");

export { AdapterError, OAuthError, SessionError, SessionStoreClosedError } from "./session.js";
export const {
  SessionStore,
  MemoryAdapter,
  SQLiteAdapter,
  PostgresAdapter,
  RedisAdapter,
  parseCookie,
  serializeCookie,
  withOAuthSession,
  OAuthClient,
  MemoryOAuthStorage,
  SQLiteOAuthStorage,
  PostgresOAuthStorage,
  RedisOAuthStorage,
} = createApi(native);

/**
 * `@slices-rs/session` for Deno: a native (Rust) drop-in replacement for `@slices/session`.
 *
 * The same API as the npm package, built by the same JS layer (session.js, a generated copy of
 * npm/session.js) over the Rust core, reached here through Deno FFI instead of N-API. Needs
 * `--allow-ffi`; the first run may download the native library (see the README).
 *
 * @example
 * ```ts
 * import { SessionStore, SQLiteAdapter } from "jsr:@slices-rs/session";
 *
 * const sessionStore = new SessionStore({ adapter: new SQLiteAdapter("./sessions.db") });
 * const sessionId = await sessionStore.createSession("user123", "alice.bsky.social");
 * ```
 *
 * @module
 */

import type * as T from "./types.d.ts";
import { native } from "./native.ts";
import {
  AdapterError as AdapterErrorClass,
  createApi,
  OAuthError as OAuthErrorClass,
  SessionError as SessionErrorClass,
  SessionStoreClosedError as SessionStoreClosedErrorClass,
} from "./session.js";

// Every public type of the npm package (index.d.ts), so the two packages cannot drift apart;
// the values below shadow the declared classes with their implementations.
export type * from "./types.d.ts";
export { DenoKVAdapter, type DenoKVAdapterOptions } from "./kv.ts";
export { DenoKVOAuthStorage, type DenoKVOAuthStorageOptions } from "./kv-oauth.ts";

// session.js is plain JavaScript; its exports get their public types from types.d.ts (the
// npm package's index.d.ts), so both packages declare one API.
const api = createApi(native) as unknown as {
  SessionStore: typeof T.SessionStore;
  MemoryAdapter: typeof T.MemoryAdapter;
  SQLiteAdapter: typeof T.SQLiteAdapter;
  PostgresAdapter: typeof T.PostgresAdapter;
  RedisAdapter: typeof T.RedisAdapter;
  parseCookie: typeof T.parseCookie;
  serializeCookie: typeof T.serializeCookie;
  withOAuthSession: typeof T.withOAuthSession;
  OAuthClient: typeof T.OAuthClient;
  MemoryOAuthStorage: typeof T.MemoryOAuthStorage;
  SQLiteOAuthStorage: typeof T.SQLiteOAuthStorage;
  PostgresOAuthStorage: typeof T.PostgresOAuthStorage;
  RedisOAuthStorage: typeof T.RedisOAuthStorage;
};

/** The session store of `@slices/session` (SPEC §3). */
export const SessionStore: typeof T.SessionStore = api.SessionStore;
export type SessionStore = T.SessionStore;
/** In-process sessions (native). */
export const MemoryAdapter: typeof T.MemoryAdapter = api.MemoryAdapter;
export type MemoryAdapter = T.MemoryAdapter;
/** Sessions in an SQLite file (native; WAL, busy timeout). */
export const SQLiteAdapter: typeof T.SQLiteAdapter = api.SQLiteAdapter;
export type SQLiteAdapter = T.SQLiteAdapter;
/** Sessions in PostgreSQL (native; pooled). */
export const PostgresAdapter: typeof T.PostgresAdapter = api.PostgresAdapter;
export type PostgresAdapter = T.PostgresAdapter;
/** Sessions in Redis or Valkey (native; Redis expires them itself). */
export const RedisAdapter: typeof T.RedisAdapter = api.RedisAdapter;
export type RedisAdapter = T.RedisAdapter;
/** Parses a `Cookie` header. */
export const parseCookie: typeof T.parseCookie = api.parseCookie;
/** Serialises a `Set-Cookie` value. */
export const serializeCookie: typeof T.serializeCookie = api.serializeCookie;

/**
 * OAuth sessions (SPEC §6): wraps a `SessionStore` with an OAuth token storage; tokens are
 * refreshed before they expire, one refresh per session at a time (in this process and, with
 * the SQLite, PostgreSQL or Redis storage, across processes). `onTokenRefresh`, `onLogout` and
 * `onError` are awaited one at a time, in the order things happened.
 */
export const withOAuthSession: typeof T.withOAuthSession = api.withOAuthSession;
/** PKCE login, userinfo and token refresh for one session (mirrors `@slices/oauth`'s `OAuthClient`). */
export const OAuthClient: typeof T.OAuthClient = api.OAuthClient;
export type OAuthClient = T.OAuthClient;
/** OAuth tokens in process memory (native). */
export const MemoryOAuthStorage: typeof T.MemoryOAuthStorage = api.MemoryOAuthStorage;
export type MemoryOAuthStorage = T.MemoryOAuthStorage;
/** OAuth tokens in an SQLite file (native; shared safely by several processes). */
export const SQLiteOAuthStorage: typeof T.SQLiteOAuthStorage = api.SQLiteOAuthStorage;
export type SQLiteOAuthStorage = T.SQLiteOAuthStorage;
/** OAuth tokens in PostgreSQL (native; pooled, shared safely by several processes). */
export const PostgresOAuthStorage: typeof T.PostgresOAuthStorage = api.PostgresOAuthStorage;
export type PostgresOAuthStorage = T.PostgresOAuthStorage;
/** OAuth tokens in Redis or Valkey (native; shared safely by several processes). */
export const RedisOAuthStorage: typeof T.RedisOAuthStorage = api.RedisOAuthStorage;
export type RedisOAuthStorage = T.RedisOAuthStorage;

/** Base class of every error this package raises on purpose. */
export const SessionError: typeof T.SessionError = SessionErrorClass as unknown as typeof T.SessionError;
export type SessionError = T.SessionError;
/** An async method was called after `SessionStore.close()`. */
export const SessionStoreClosedError: typeof T.SessionStoreClosedError =
  SessionStoreClosedErrorClass as unknown as typeof T.SessionStoreClosedError;
export type SessionStoreClosedError = T.SessionStoreClosedError;
/** The storage failed (database error, unreachable server, a custom adapter that threw). */
export const AdapterError: typeof T.AdapterError = AdapterErrorClass as unknown as typeof T.AdapterError;
export type AdapterError = T.AdapterError;
/** An OAuth request failed; `code` is the OAuth error code. */
export const OAuthError: typeof T.OAuthError = OAuthErrorClass as unknown as typeof T.OAuthError;
export type OAuthError = T.OAuthError;

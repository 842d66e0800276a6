// Public types of @slices-rs/session (SPEC §1-§2). Same names as @slices/session.

export interface SessionData {
  sessionId: string;
  /** The user's id; a DID for OAuth sessions. */
  userId: string;
  handle?: string;
  isAuthenticated: boolean;
  data?: Record<string, unknown>;
  /** Epoch milliseconds. */
  createdAt: number;
  /** Epoch milliseconds; the session is expired when `expiresAt <= Date.now()`. */
  expiresAt: number;
  /** Epoch milliseconds. */
  lastAccessedAt: number;
}

export interface SessionUser {
  sessionId?: string;
  sub?: string;
  handle?: string;
  isAuthenticated: boolean;
  [key: string]: unknown;
}

export interface CookieOptions {
  httpOnly?: boolean;
  secure?: boolean;
  sameSite?: "strict" | "lax" | "none";
  domain?: string;
  path?: string;
  /** Seconds. */
  maxAge?: number;
}

export interface SessionAdapter {
  get(sessionId: string): Promise<SessionData | null>;
  set(sessionId: string, data: SessionData): Promise<void>;
  /** Shallow merge; resolves to false when there is no such session. */
  update(sessionId: string, updates: Partial<SessionData>): Promise<boolean>;
  delete(sessionId: string): Promise<void>;
  /** Removes sessions with `expiresAt < expiresBefore`; resolves to how many. */
  cleanup(expiresBefore: number): Promise<number>;
  exists(sessionId: string): Promise<boolean>;
  /** Optional: enables `SessionStore.listUserSessions`. */
  listByUser?(userId: string): Promise<SessionData[]>;
  /** Optional: enables `SessionStore.deleteUserSessions`. */
  deleteByUser?(userId: string, except?: string): Promise<number>;
}

export interface SessionOptions {
  adapter: SessionAdapter;
  /** Default "slice-session". */
  cookieName?: string;
  /** Overlaid on `{ httpOnly: true, secure: true, sameSite: "lax", path: "/" }`. */
  cookieOptions?: CookieOptions;
  /** Milliseconds; default 30 days. */
  sessionTTL?: number;
  /** Milliseconds between expired-session cleanups; default 1 hour; 0 disables. */
  cleanupInterval?: number;
  /** Default: a random v4 UUID. */
  generateId?: () => string;
  /** Receives cleanup-timer failures (default: console.error). */
  onError?: (error: unknown) => void;
  /** Milliseconds: skip the lastAccessedAt write when the stored value is younger. Default 0. */
  touchAfter?: number;
  /** Push expiresAt to now + sessionTTL on each recorded access. Default false. */
  rolling?: boolean;
  /**
   * Store each session under SHA-256 of its id (`sha256:<hex>`) instead of the id; the cookie
   * still carries the id. A copy of the database then holds no usable cookie value (OWASP,
   * Lucia). Default false: files written this way are not readable by the original package,
   * and turning it on makes existing sessions unreachable. `listUserSessions` returns the
   * stored hashes as `sessionId`. See docs/security.md.
   */
  hashIds?: boolean;
}

/** Anything with a Cookie header: a Fetch Request, a Node IncomingMessage, or Headers. */
export type RequestLike =
  | Request
  | Headers
  | { headers: Headers | Record<string, string | string[] | undefined> };

export declare class SessionStore {
  constructor(options: SessionOptions);
  createSession(userId: string, handle?: string, data?: Record<string, unknown>): Promise<string>;
  getSession(sessionId: string): Promise<SessionData | null>;
  updateSession(sessionId: string, updates: Partial<SessionData>): Promise<boolean>;
  deleteSession(sessionId: string): Promise<void>;
  getSessionFromRequest(request: RequestLike): Promise<SessionData | null>;
  getCurrentUser(request: RequestLike): Promise<SessionUser>;
  createSessionCookie(sessionId: string): string;
  createLogoutCookie(): string;
  cleanup(): Promise<number>;
  /** The user's unexpired sessions, oldest first. */
  listUserSessions(userId: string): Promise<SessionData[]>;
  /** Deletes the user's sessions except `options.except`; resolves to how many. */
  deleteUserSessions(userId: string, options?: { except?: string }): Promise<number>;
  /** Moves a live session to a new id; null when missing or expired. */
  regenerateSession(sessionId: string): Promise<string | null>;
  /** Stops the cleanup timer; later async calls reject with SessionStoreClosedError. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

declare class NativeBackedAdapter implements SessionAdapter {
  get(sessionId: string): Promise<SessionData | null>;
  set(sessionId: string, data: SessionData): Promise<void>;
  update(sessionId: string, updates: Partial<SessionData>): Promise<boolean>;
  delete(sessionId: string): Promise<void>;
  cleanup(expiresBefore: number): Promise<number>;
  exists(sessionId: string): Promise<boolean>;
  listByUser(userId: string): Promise<SessionData[]>;
  deleteByUser(userId: string, except?: string): Promise<number>;
  close(): Promise<void>;
}

export declare class MemoryAdapter extends NativeBackedAdapter {
  constructor();
  clear(): void;
  size(): number;
  keys(): string[];
}

export interface SQLiteAdapterOptions {
  /** Milliseconds to wait for a lock held by another connection; default 5000. */
  busyTimeout?: number;
}

export declare class SQLiteAdapter extends NativeBackedAdapter {
  /** A file path, `sqlite://<path>`, or ":memory:". */
  constructor(pathOrUrl: string, options?: SQLiteAdapterOptions);
}

export interface PostgresAdapterOptions {
  /** Pool size; default 10. */
  maxConnections?: number;
  /**
   * Limit for one call, from waiting for a connection to the answer, in ms; default 10 000,
   * `0` for none. A call over it rejects with an `AdapterError` and the pool's connections
   * are replaced (a hung server cannot hold requests for longer).
   */
  queryTimeout?: number;
}

export declare class PostgresAdapter extends NativeBackedAdapter {
  /** Does not connect; the pool connects on first use. */
  constructor(connectionString: string, options?: PostgresAdapterOptions);
  initialize(): Promise<void>;
}

export interface RedisAdapterOptions {
  /**
   * Prepended to every key; default `"slices:session:"` (`RedisOAuthStorage`:
   * `"slices:oauth:"`). Stores with different prefixes share a server without seeing each
   * other's keys.
   */
  prefix?: string;
  /** Multiplexed connections; default 2. Each carries any number of concurrent calls. */
  maxConnections?: number;
  /**
   * Limit for one call, in ms; default 10 000, `0` for none. A call over it rejects with an
   * `AdapterError` (a paused or unreachable server cannot hold requests for longer).
   */
  queryTimeout?: number;
}

/**
 * Sessions in Redis or Valkey (native). Redis expires them itself (key TTL = `expiresAt`), so
 * `get` never returns an expired record and `cleanup` has little to do; see docs/redis.md.
 */
export declare class RedisAdapter extends NativeBackedAdapter {
  /**
   * `redis://[user:password@]host[:port][/db]`, `rediss://` for TLS, `redis+unix:///path`,
   * or the same with `valkey`. Does not connect: the first call does.
   */
  constructor(url: string, options?: RedisAdapterOptions);
  /** Checks that the server answers (optional: there is no schema). */
  initialize(): Promise<void>;
}

export declare function parseCookie(header: string | null | undefined): Record<string, string>;
export declare function serializeCookie(name: string, value: string, options?: CookieOptions): string;

export declare class SessionError extends Error {}
export declare class SessionStoreClosedError extends SessionError {}
export declare class AdapterError extends SessionError {}
export declare class OAuthError extends SessionError {
  constructor(message: string, options?: { code?: string; cause?: unknown });
  readonly code: string | undefined;
}

// ---- OAuth (SPEC §6) ----------------------------------------------------------------------

export interface OAuthConfig {
  clientId: string;
  clientSecret: string;
  /** The authorization server (AIP), e.g. "https://auth.example.com". */
  authBaseUrl: string;
  redirectUri: string;
  scopes: string[];
}

export interface OAuthTokens {
  accessToken: string;
  tokenType: string;
  refreshToken?: string;
  /** Epoch milliseconds. */
  expiresAt?: number;
  scope?: string;
}

/** Any object with these methods works, including storages from `@slices/oauth`. */
/**
 * An OAuth token storage: the three methods of `@slices/oauth`'s interface, and optionally the
 * coordination methods (docs/oauth.md, "JS storages"), each pair all or nothing. The native
 * code calls them; they only store and compare values.
 */
export interface OAuthStorage {
  getTokens(sessionId: string): Promise<OAuthTokens | null>;
  setTokens(tokens: OAuthTokens, sessionId: string): Promise<void>;
  clearTokens(sessionId: string): Promise<void>;
  /** Keeps OAuthClient's PKCE state under `state` until `expiresAt` (epoch ms). */
  putState?(state: string, value: OAuthPkceState, expiresAt: number): Promise<void>;
  /** Removes and returns the state (one use); `null` when unknown or expired. */
  takeState?(state: string): Promise<OAuthPkceState | null>;
  /**
   * Takes the session's refresh lease for `owner` for `leaseMs`; `false` while another owner
   * holds an unexpired one. Atomic across every process sharing the storage: this is what
   * makes a refresh single-flight across processes.
   */
  tryLockRefresh?(sessionId: string, owner: string, leaseMs: number): Promise<boolean>;
  /** Releases the lease if `owner` still holds it. */
  unlockRefresh?(sessionId: string, owner: string): Promise<void>;
  /** The refresh attempt recorded for the session, or `null`. */
  getRefreshAttempt?(sessionId: string): Promise<OAuthRefreshAttempt | null>;
  /** Records (`null`: forgets) the session's refresh attempt; nothing when it has no tokens. setTokens forgets it too. */
  setRefreshAttempt?(sessionId: string, attempt: OAuthRefreshAttempt | null): Promise<void>;
}

/** What `OAuthClient.authorize()` keeps under its state until the callback. */
export interface OAuthPkceState {
  codeVerifier: string;
  /** When authorize() ran (epoch ms). */
  createdAt: number;
}

/** A refresh whose answer is not known yet, recorded before the request leaves (docs/oauth.md). */
export interface OAuthRefreshAttempt {
  /** A truncated SHA-256 of the refresh token presented (not the token). */
  tokenFingerprint: string;
  startedAt: number;
  /** The server later said the token was spent: the answer was lost. */
  lost: boolean;
}

export interface OAuthSessionOptions {
  /** Refresh tokens that expire within `refreshSkew` when read. Default true. */
  autoRefresh?: boolean;
  /** Milliseconds before expiry at which tokens are refreshed. Default 60 000. */
  refreshSkew?: number;
  /** Limit for one request to the authorization server (ms). Default 10 000. */
  requestTimeout?: number;
  /** Limit for waiting on another process's refresh of the same session (ms). Default 15 000. */
  lockWait?: number;
  onTokenRefresh?: (sessionId: string, tokens: OAuthTokens) => void | Promise<void>;
  onLogout?: (sessionId: string) => void | Promise<void>;
  /** Failures that did not fail the call (a refresh that kept the session, ...). Default: console.error. */
  onError?: (error: SessionError) => void;
}

export interface OAuthUserInfo {
  sub: string;
  did?: string;
  name?: string;
  /** Copied from `name` when present. */
  handle?: string;
  [key: string]: unknown;
}

export interface OAuthSessionManager {
  createOAuthSession(tokens: OAuthTokens): Promise<string | null>;
  getOAuthSession(sessionId: string): Promise<(SessionData & { tokens?: OAuthTokens }) | null>;
  getAccessToken(sessionId: string): Promise<string | null>;
  hasValidOAuthTokens(sessionId: string): Promise<boolean>;
  logout(sessionId: string): Promise<void>;
}

export declare function withOAuthSession(
  sessionStore: SessionStore,
  oauthConfig: OAuthConfig,
  oauthStorage: OAuthStorage,
  options?: OAuthSessionOptions,
): OAuthSessionManager;

export declare class OAuthClient {
  constructor(config: OAuthConfig, storage: OAuthStorage, sessionId: string);
  authorize(options?: { loginHint?: string }): Promise<{ authorizationUrl: string; state: string; codeVerifier: string }>;
  handleCallback(params: { code: string; state: string }): Promise<OAuthTokens>;
  getUserInfo(): Promise<OAuthUserInfo>;
  refreshAccessToken(): Promise<OAuthTokens>;
  ensureValidToken(): Promise<string>;
  logout(): Promise<void>;
}

declare class NativeBackedOAuthStorage implements OAuthStorage {
  getTokens(sessionId: string): Promise<OAuthTokens | null>;
  setTokens(tokens: OAuthTokens, sessionId: string): Promise<void>;
  clearTokens(sessionId: string): Promise<void>;
  close(): Promise<void>;
}

/** An `encryptionKey`: 32 bytes, as bytes, 64 hex digits, or base64/base64url. */
export type EncryptionKey = Uint8Array | string;

/** What a native OAuth storage protects at rest (docs/security.md). */
export interface OAuthStorageAtRestOptions {
  /**
   * Seal access and refresh tokens with AES-256-GCM, bound to the session id. One key, or a
   * list for rotation: the first encrypts, every one decrypts. Rows written without a key stay
   * readable and are sealed on their next write; a value no configured key opens is an
   * `OAuthError` with code `token_decrypt_failed`, never garbage tokens.
   */
  encryptionKey?: EncryptionKey | EncryptionKey[];
  /**
   * Store tokens, refresh leases and attempts under SHA-256 of the session id instead of the
   * id. Default false. Rows written this way are not readable by the original package or by a
   * storage without this option.
   */
  hashIds?: boolean;
}

export declare class MemoryOAuthStorage extends NativeBackedOAuthStorage {
  constructor(options?: OAuthStorageAtRestOptions);
}

export declare class SQLiteOAuthStorage extends NativeBackedOAuthStorage {
  constructor(pathOrUrl: string, options?: OAuthStorageAtRestOptions);
}

export declare class PostgresOAuthStorage extends NativeBackedOAuthStorage {
  constructor(connectionString: string, options?: PostgresAdapterOptions & OAuthStorageAtRestOptions);
  initialize(): Promise<void>;
}

/**
 * OAuth tokens, PKCE states and refresh leases in Redis or Valkey (native; shared safely by
 * several processes: the refresh lease is a Redis lock).
 */
export declare class RedisOAuthStorage extends NativeBackedOAuthStorage {
  constructor(url: string, options?: RedisAdapterOptions & OAuthStorageAtRestOptions);
  initialize(): Promise<void>;
}

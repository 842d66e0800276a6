// Type-checked by tests/install (tsc --noEmit) inside a fresh project that installed the packed
// tarballs: every export of "@slices-rs/session", used as a TypeScript application would use it.
// The test checks that this import list names every export of the installed index.d.ts.
import {
  AdapterError,
  MemoryAdapter,
  MemoryOAuthStorage,
  OAuthClient,
  OAuthError,
  PostgresAdapter,
  PostgresOAuthStorage,
  RedisAdapter,
  RedisOAuthStorage,
  SessionError,
  SessionStore,
  SessionStoreClosedError,
  SQLiteAdapter,
  SQLiteOAuthStorage,
  parseCookie,
  serializeCookie,
  withOAuthSession,
  type CookieOptions,
  type EncryptionKey,
  type OAuthConfig,
  type OAuthPkceState,
  type OAuthRefreshAttempt,
  type OAuthSessionManager,
  type OAuthSessionOptions,
  type OAuthStorageAtRestOptions,
  type OAuthStorage,
  type OAuthTokens,
  type OAuthUserInfo,
  type PostgresAdapterOptions,
  type RedisAdapterOptions,
  type RequestLike,
  type SQLiteAdapterOptions,
  type SessionAdapter,
  type SessionData,
  type SessionOptions,
  type SessionUser,
} from "@slices-rs/session";

class MapAdapter implements SessionAdapter {
  private readonly map = new Map<string, SessionData>();
  async get(id: string): Promise<SessionData | null> {
    return this.map.get(id) ?? null;
  }
  async set(id: string, data: SessionData): Promise<void> {
    this.map.set(id, data);
  }
  async update(id: string, updates: Partial<SessionData>): Promise<boolean> {
    const s = this.map.get(id);
    if (!s) return false;
    this.map.set(id, { ...s, ...updates });
    return true;
  }
  async delete(id: string): Promise<void> {
    this.map.delete(id);
  }
  async cleanup(expiresBefore: number): Promise<number> {
    let n = 0;
    for (const [id, s] of this.map) if (s.expiresAt < expiresBefore && this.map.delete(id)) n++;
    return n;
  }
  async exists(id: string): Promise<boolean> {
    return this.map.has(id);
  }
}

class MapTokenStorage implements OAuthStorage {
  private readonly map = new Map<string, OAuthTokens>();
  async getTokens(sessionId: string): Promise<OAuthTokens | null> {
    return this.map.get(sessionId) ?? null;
  }
  async setTokens(tokens: OAuthTokens, sessionId: string): Promise<void> {
    this.map.set(sessionId, tokens);
  }
  async clearTokens(sessionId: string): Promise<void> {
    this.map.delete(sessionId);
  }
}

export async function usage(request: Request): Promise<void> {
  const cookieOptions: CookieOptions = { httpOnly: true, secure: true, sameSite: "lax", path: "/", maxAge: 60 };
  const sqliteOptions: SQLiteAdapterOptions = { busyTimeout: 1000 };
  const pgOptions: PostgresAdapterOptions = { maxConnections: 4 };
  const options: SessionOptions = {
    adapter: new SQLiteAdapter("./sessions.db", sqliteOptions),
    cookieName: "__Host-slice-session",
    cookieOptions,
    sessionTTL: 86_400_000,
    cleanupInterval: 0,
    generateId: () => crypto.randomUUID(),
    onError: (error: unknown) => console.error(error),
    touchAfter: 1000,
    rolling: true,
  };
  const store = new SessionStore(options);
  const memory = new MemoryAdapter();
  const postgres = new PostgresAdapter("postgresql://localhost/db", pgOptions);
  await postgres.initialize();
  const redisOptions: RedisAdapterOptions = { prefix: "app:sessions:", maxConnections: 2, queryTimeout: 2000 };
  const redis = new RedisAdapter("redis://localhost:6379", redisOptions);
  await redis.initialize();
  const adapters: SessionAdapter[] = [memory, postgres, redis, new MapAdapter()];
  const size: number = memory.size();
  const keys: string[] = memory.keys();
  memory.clear();

  const id: string = await store.createSession("user123", "alice.bsky.social", { theme: "dark" });
  const byId: SessionData | null = await store.getSession(id);
  const fromRequest: SessionData | null = await store.getSessionFromRequest(request);
  const requests: RequestLike[] = [request, request.headers, { headers: { cookie: "a=b" } }];
  const fromHeaders: SessionData | null = await store.getSessionFromRequest(requests[1]);
  const user: SessionUser = await store.getCurrentUser(request);
  const updated: boolean = await store.updateSession(id, { handle: "bob" });
  const cookie: string = store.createSessionCookie(id) + store.createLogoutCookie();
  const removed: number = (await store.cleanup()) + (await store.deleteUserSessions("user123", { except: id }));
  const list: SessionData[] = await store.listUserSessions("user123");
  const newId: string | null = await store.regenerateSession(id);
  await store.deleteSession(id);
  const cookies: Record<string, string> = parseCookie(request.headers.get("cookie"));
  const header: string = serializeCookie("a", "b", cookieOptions);
  await store.close();
  await store[Symbol.asyncDispose]();

  const config: OAuthConfig = {
    clientId: "c",
    clientSecret: "s",
    authBaseUrl: "http://127.0.0.1:1",
    redirectUri: "http://localhost:8000/oauth/callback",
    scopes: ["atproto", "profile"],
  };
  const storages: OAuthStorage[] = [
    new MemoryOAuthStorage(),
    new SQLiteOAuthStorage("./oauth.db"),
    new PostgresOAuthStorage("postgresql://localhost/db"),
    new RedisOAuthStorage("redis://localhost:6379", { prefix: "app:oauth:" }),
    new MapTokenStorage(),
  ];
  const sessionOptions: OAuthSessionOptions = {
    autoRefresh: true,
    refreshSkew: 30_000,
    requestTimeout: 5_000,
    lockWait: 5_000,
    onTokenRefresh: async (sessionId: string, tokens: OAuthTokens) => void [sessionId, tokens],
    onLogout: (sessionId: string) => void sessionId,
    onError: (error: SessionError) => void (error instanceof OAuthError ? error.code : error.message),
  };
  const manager: OAuthSessionManager = withOAuthSession(store, config, storages[0], sessionOptions);
  const client = new OAuthClient(config, storages[1], "login");
  const { authorizationUrl, state, codeVerifier } = await client.authorize({ loginHint: "alice.test" });
  const tokens: OAuthTokens = await client.handleCallback({ code: "c", state });
  const sid: string | null = await manager.createOAuthSession(tokens);
  const oauthSession = sid ? await manager.getOAuthSession(sid) : null;
  const access: string | undefined = oauthSession?.tokens?.accessToken;
  const info: OAuthUserInfo = await client.getUserInfo();
  const did: string = info.sub;
  const handle: string | undefined = info.handle;
  const valid: boolean = await manager.hasValidOAuthTokens("x");
  const token: string | null = await manager.getAccessToken("x");
  await manager.logout("x");
  const refreshed: OAuthTokens = await client.refreshAccessToken();
  const ensured: string = await client.ensureValidToken();
  await client.logout();
  const errors: SessionError[] = [
    new SessionError("x"),
    new SessionStoreClosedError("x"),
    new AdapterError("x"),
    new OAuthError("x", { code: "invalid_grant" }),
  ];
  const code: string | undefined = (errors[3] as OAuthError).code;
  void [adapters, size, keys, byId, fromRequest, fromHeaders, user, updated, cookie, removed, list, newId, cookies,
    header, authorizationUrl, codeVerifier, access, did, handle, valid, token, refreshed, ensured, errors, code];
}

/** A JS storage with the PKCE-state and lease methods (docs/oauth.md, "JS storages"). */
export const coordinated: OAuthStorage = {
  getTokens: async (_sessionId: string) => null,
  setTokens: async (_tokens: OAuthTokens, _sessionId: string) => {},
  clearTokens: async (_sessionId: string) => {},
  putState: async (_state: string, _value: OAuthPkceState, _expiresAt: number) => {},
  takeState: async (_state: string): Promise<OAuthPkceState | null> => null,
  tryLockRefresh: async (_sessionId: string, _owner: string, _leaseMs: number) => true,
  unlockRefresh: async (_sessionId: string, _owner: string) => {},
  getRefreshAttempt: async (_sessionId: string): Promise<OAuthRefreshAttempt | null> => null,
  setRefreshAttempt: async (_sessionId: string, _attempt: OAuthRefreshAttempt | null) => {},
};

/** Tokens sealed at rest, with a key list for rotation, and hashed session ids. */
const key: EncryptionKey = new Uint8Array(32);
const atRest: OAuthStorageAtRestOptions = { encryptionKey: [key, "00".repeat(32)], hashIds: true };
export const sealedStorages: OAuthStorage[] = [
  new MemoryOAuthStorage(atRest),
  new SQLiteOAuthStorage("./oauth.db", atRest),
  new PostgresOAuthStorage("postgresql://localhost/db", { ...atRest, maxConnections: 2 }),
  new RedisOAuthStorage("redis://localhost", { ...atRest, prefix: "p:" }),
];

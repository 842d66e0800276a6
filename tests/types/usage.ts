// Type-checked by `make lint` (tsc --noEmit): every export of npm/index.d.ts used as a
// TypeScript user of @slices/session would use it.
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
  type OAuthConfig,
  type OAuthSessionManager,
  type OAuthStorage,
  type OAuthPkceState,
  type OAuthRefreshAttempt,
  type OAuthTokens,
  type SessionAdapter,
  type SessionData,
  type SessionOptions,
  type SessionUser,
} from "../../npm/index.js";

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

/** A storage with the coordination methods: PKCE state and a cross-process refresh lease. */
class CoordinatedTokenStorage extends MapTokenStorage implements OAuthStorage {
  private readonly states = new Map<string, OAuthPkceState>();
  async putState(state: string, value: OAuthPkceState, _expiresAt: number): Promise<void> {
    this.states.set(state, value);
  }
  async takeState(state: string): Promise<OAuthPkceState | null> {
    const value = this.states.get(state) ?? null;
    this.states.delete(state);
    return value;
  }
  async tryLockRefresh(_sessionId: string, _owner: string, _leaseMs: number): Promise<boolean> {
    return true;
  }
  async unlockRefresh(_sessionId: string, _owner: string): Promise<void> {}
  async getRefreshAttempt(_sessionId: string): Promise<OAuthRefreshAttempt | null> {
    return null;
  }
  async setRefreshAttempt(_sessionId: string, _attempt: OAuthRefreshAttempt | null): Promise<void> {}
}

export async function usage(request: Request): Promise<void> {
  const cookieOptions: CookieOptions = { httpOnly: true, secure: true, sameSite: "lax", maxAge: 60 };
  const options: SessionOptions = { adapter: new SQLiteAdapter("./sessions.db"), cookieOptions, touchAfter: 1000, hashIds: true };
  const store = new SessionStore(options);
  const others = [new MemoryAdapter(), new PostgresAdapter("postgresql://localhost/db", { maxConnections: 4, queryTimeout: 5000 }), new RedisAdapter("redis://localhost", { prefix: "p:" }), new MapAdapter()];
  const id: string = await store.createSession("user123", "alice.bsky.social", { theme: "dark" });
  const session: SessionData | null = await store.getSessionFromRequest(request);
  const user: SessionUser = await store.getCurrentUser(request.headers);
  const updated: boolean = await store.updateSession(id, { handle: "bob" });
  const cookie: string = store.createSessionCookie(id) + store.createLogoutCookie();
  const removed: number = (await store.cleanup()) + (await store.deleteUserSessions("user123", { except: id }));
  const list: SessionData[] = await store.listUserSessions("user123");
  const newId: string | null = await store.regenerateSession(id);
  const cookies: Record<string, string> = parseCookie(request.headers.get("cookie"));
  const header: string = serializeCookie("a", "b", { path: "/" });
  await store.close();

  const config: OAuthConfig = { clientId: "c", clientSecret: "s", authBaseUrl: "http://x", redirectUri: "http://x/cb", scopes: ["atproto"] };
  const storages: OAuthStorage[] = [new MemoryOAuthStorage(), new SQLiteOAuthStorage("./oauth.db"), new PostgresOAuthStorage("postgresql://localhost/db", { queryTimeout: 0 }), new RedisOAuthStorage("redis://localhost"), new MapTokenStorage(), new CoordinatedTokenStorage(), new SQLiteOAuthStorage("./oauth.db", { encryptionKey: new Uint8Array(32), hashIds: true }), new RedisOAuthStorage("redis://localhost", { prefix: "p:", encryptionKey: ["00".repeat(32)] })];
  const manager: OAuthSessionManager = withOAuthSession(store, config, storages[0], {
    autoRefresh: true,
    refreshSkew: 30_000,
    onTokenRefresh: async (sessionId: string, tokens: OAuthTokens) => void [sessionId, tokens],
    onLogout: (sessionId: string) => void sessionId,
    onError: (error: SessionError) => void (error instanceof OAuthError ? error.code : error.message),
  });
  const client = new OAuthClient(config, storages[1], "temp");
  const { authorizationUrl, state, codeVerifier } = await client.authorize({ loginHint: "alice" });
  const tokens: OAuthTokens = await client.handleCallback({ code: "c", state });
  const sid: string | null = await manager.createOAuthSession(tokens);
  const oauthSession = sid ? await manager.getOAuthSession(sid) : null;
  const access: string | undefined = oauthSession?.tokens?.accessToken;
  const info = await client.getUserInfo();
  const did: string = info.sub;
  const valid: boolean = await manager.hasValidOAuthTokens("x");
  const token: string | null = await manager.getAccessToken("x");
  await manager.logout("x");
  await client.refreshAccessToken();
  const ensured: string = await client.ensureValidToken();
  await client.logout();
  const errors: Error[] = [new SessionError("x"), new SessionStoreClosedError("x"), new AdapterError("x"), new OAuthError("x", { code: "invalid_grant" })];
  void [others, user, updated, cookie, removed, list, newId, cookies, header, authorizationUrl, codeVerifier, access, did, valid, token, ensured, errors, session];
}

// DenoKVOAuthStorage (issue 14): an OAuth storage written in JavaScript over Deno KV, for apps
// that keep their sessions in Deno KV (DenoKVAdapter) and their tokens beside them. It has the
// three methods of the original interface (getTokens, setTokens(tokens, sessionId),
// clearTokens) and the optional coordination methods of docs/oauth.md ("JS storages"), so the
// native refresh coordinator makes a refresh single-flight across isolates and processes that
// share the database, and OAuthClient can keep its PKCE state here. The refresh rules stay in
// Rust: this file only stores and compares values.
//
// Layout under the key prefix (default ["slices-oauth"]):
//   [...prefix, "tokens", sessionId]   the tokens, and the recorded refresh attempt if any
//   [...prefix, "state", state]        a PKCE state until its expiry (one use)
//   [...prefix, "lock", sessionId]     the refresh lease: { owner, expiresAt }
// Each change is one atomic operation guarded by the versionstamp it read (Deno KV's
// check-and-set), retried a bounded number of times when another writer got there first.
// Expiry is checked on read (Deno KV's `expireIn` deletes only eventually); `expireIn` is set
// too, so abandoned states and leases do not accumulate.

import type { OAuthPkceState, OAuthRefreshAttempt, OAuthStorage, OAuthTokens } from "./types.d.ts";
import { AdapterError } from "./session.js";
import { isLockedError, sleep } from "./kv.ts";

/** Options of {@link DenoKVOAuthStorage}. */
export interface DenoKVOAuthStorageOptions {
  /** Key prefix under which tokens, states and leases are kept. Default `["slices-oauth"]`. */
  prefix?: Deno.KvKey;
}

interface StoredTokens {
  accessToken: string;
  tokenType: string;
  refreshToken?: string;
  expiresAt?: number;
  scope?: string;
  attempt?: OAuthRefreshAttempt;
}

interface StoredState extends OAuthPkceState {
  expiresAt: number;
}

interface StoredLease {
  owner: string;
  expiresAt: number;
}

const MAX_ATTEMPTS = 20;

function closedError(): Error {
  return new AdapterError("the DenoKVOAuthStorage is closed") as Error;
}

function conflictError(what: string): Error {
  return new AdapterError(
    `DenoKVOAuthStorage: could not ${what}: other writers changed the key, or held the database, ${MAX_ATTEMPTS} times in a row`,
  ) as Error;
}

function checkId(value: unknown, name: string): string {
  if (typeof value !== "string") throw new TypeError(`${name} must be a string, got ${typeof value}`);
  return value;
}

/** An OAuth storage over a `Deno.Kv` database (needs `--unstable-kv`). */
export class DenoKVOAuthStorage implements OAuthStorage {
  readonly #kv: Deno.Kv;
  readonly #prefix: Deno.KvKey;
  #ownsKv = false;
  #closed = false;

  /**
   * Uses `kv`, which stays the caller's: `close()` does not close it. To let the storage open
   * and close the database itself, use {@link DenoKVOAuthStorage.open}.
   */
  constructor(kv: Deno.Kv, options: DenoKVOAuthStorageOptions = {}) {
    if (kv === null || typeof kv !== "object" || typeof kv.atomic !== "function") {
      throw new TypeError("kv must be a Deno.Kv (from Deno.openKv())");
    }
    if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
    if (options.prefix !== undefined && !Array.isArray(options.prefix)) {
      throw new TypeError("options.prefix must be a Deno.KvKey (an array)");
    }
    this.#kv = kv;
    this.#prefix = options.prefix ?? ["slices-oauth"];
  }

  /** Opens `Deno.openKv(path)` (the default database when `path` is omitted); `close()` closes it. */
  static async open(path?: string, options: DenoKVOAuthStorageOptions = {}): Promise<DenoKVOAuthStorage> {
    const storage = new DenoKVOAuthStorage(await Deno.openKv(path), options);
    storage.#ownsKv = true;
    return storage;
  }

  #key(...parts: Deno.KvKeyPart[]): Deno.KvKey {
    return [...this.#prefix, ...parts];
  }

  #check(): void {
    if (this.#closed) throw closedError();
  }

  /**
   * Runs `step` until it reports done; each step reads, then commits a checked operation. A
   * step that lost the race, or met another process's write lock ("database is locked"), is
   * tried again after a random, growing delay.
   */
  async #retry<T>(what: string, step: () => Promise<{ done: true; value: T } | { done: false }>): Promise<T> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (attempt > 0) await sleep(Math.random() * Math.min(50, 2 ** attempt));
      try {
        const result = await step();
        if (result.done) return result.value;
      } catch (error) {
        if (!isLockedError(error)) throw error;
      }
    }
    throw conflictError(what);
  }

  /** A plain write (set or delete), retried on another process's write lock. */
  async #write(what: string, op: () => Promise<unknown>): Promise<void> {
    await this.#retry(what, async () => {
      await op();
      return { done: true, value: undefined };
    });
  }

  // ---- The original interface ------------------------------------------------------------

  /** The session's tokens, or `null`. */
  async getTokens(sessionId: string): Promise<OAuthTokens | null> {
    checkId(sessionId, "sessionId");
    this.#check();
    const entry = await this.#kv.get<StoredTokens>(this.#key("tokens", sessionId));
    if (entry.value === null) return null;
    const { accessToken, tokenType, refreshToken, expiresAt, scope } = entry.value;
    const tokens: OAuthTokens = { accessToken, tokenType };
    if (refreshToken !== undefined) tokens.refreshToken = refreshToken;
    if (expiresAt !== undefined) tokens.expiresAt = expiresAt;
    if (scope !== undefined) tokens.scope = scope;
    return tokens;
  }

  /** Stores (replaces) the session's tokens; forgets a recorded refresh attempt. */
  async setTokens(tokens: OAuthTokens, sessionId: string): Promise<void> {
    if (tokens === null || typeof tokens !== "object") throw new TypeError("tokens must be an OAuthTokens object");
    checkId(tokens.accessToken, "tokens.accessToken");
    checkId(tokens.tokenType, "tokens.tokenType");
    checkId(sessionId, "sessionId");
    this.#check();
    const stored: StoredTokens = { accessToken: tokens.accessToken, tokenType: tokens.tokenType };
    if (tokens.refreshToken !== undefined && tokens.refreshToken !== null) stored.refreshToken = tokens.refreshToken;
    if (tokens.expiresAt !== undefined && tokens.expiresAt !== null) stored.expiresAt = tokens.expiresAt;
    if (tokens.scope !== undefined && tokens.scope !== null) stored.scope = tokens.scope;
    await this.#write("store the tokens", () => this.#kv.set(this.#key("tokens", sessionId), stored));
  }

  /** Removes the session's tokens (with their refresh attempt). No-op when there are none. */
  async clearTokens(sessionId: string): Promise<void> {
    checkId(sessionId, "sessionId");
    this.#check();
    await this.#write("clear the tokens", () => this.#kv.delete(this.#key("tokens", sessionId)));
  }

  // ---- Coordination (docs/oauth.md, "JS storages"); called by the native code -------------

  /** Keeps a PKCE state until `expiresAt` (epoch ms). */
  async putState(state: string, value: OAuthPkceState, expiresAt: number): Promise<void> {
    this.#check();
    const stored: StoredState = { codeVerifier: value.codeVerifier, createdAt: value.createdAt, expiresAt };
    const expireIn = Math.max(1, expiresAt - Date.now());
    await this.#write("store the OAuth state", () => this.#kv.set(this.#key("state", state), stored, { expireIn }));
  }

  /** Removes and returns the state: one use. An expired state is removed and gives `null`. */
  async takeState(state: string): Promise<OAuthPkceState | null> {
    this.#check();
    const key = this.#key("state", state);
    return await this.#retry<OAuthPkceState | null>("take the OAuth state", async () => {
      const entry = await this.#kv.get<StoredState>(key);
      if (entry.value === null) return { done: true, value: null };
      // Of several callers presenting the same state, only the one whose delete commits gets it.
      const { ok } = await this.#kv.atomic().check(entry).delete(key).commit();
      if (!ok) return { done: false };
      const { codeVerifier, createdAt, expiresAt } = entry.value;
      return { done: true, value: expiresAt > Date.now() ? { codeVerifier, createdAt } : null };
    });
  }

  /** Takes the refresh lease for `owner` for `leaseMs`; `false` while another owner holds one. */
  async tryLockRefresh(sessionId: string, owner: string, leaseMs: number): Promise<boolean> {
    this.#check();
    const key = this.#key("lock", sessionId);
    return await this.#retry<boolean>("take the refresh lease", async () => {
      const entry = await this.#kv.get<StoredLease>(key);
      const now = Date.now();
      if (entry.value !== null && entry.value.owner !== owner && entry.value.expiresAt > now) {
        return { done: true, value: false };
      }
      const lease: StoredLease = { owner, expiresAt: now + leaseMs };
      // Checked against what was read: of several isolates racing, one commits.
      const { ok } = await this.#kv.atomic().check(entry).set(key, lease, { expireIn: Math.max(1, leaseMs) }).commit();
      return ok ? { done: true, value: true } : { done: false };
    });
  }

  /** Releases the lease if `owner` still holds it. */
  async unlockRefresh(sessionId: string, owner: string): Promise<void> {
    this.#check();
    const key = this.#key("lock", sessionId);
    await this.#retry<undefined>("release the refresh lease", async () => {
      const entry = await this.#kv.get<StoredLease>(key);
      if (entry.value === null || entry.value.owner !== owner) return { done: true, value: undefined };
      const { ok } = await this.#kv.atomic().check(entry).delete(key).commit();
      return ok ? { done: true, value: undefined } : { done: false };
    });
  }

  /** The refresh attempt recorded for the session, or `null`. */
  async getRefreshAttempt(sessionId: string): Promise<OAuthRefreshAttempt | null> {
    this.#check();
    const entry = await this.#kv.get<StoredTokens>(this.#key("tokens", sessionId));
    return entry.value?.attempt ?? null;
  }

  /** Records (or, with `null`, forgets) the session's refresh attempt; nothing without tokens. */
  async setRefreshAttempt(sessionId: string, attempt: OAuthRefreshAttempt | null): Promise<void> {
    this.#check();
    const key = this.#key("tokens", sessionId);
    await this.#retry<undefined>("record the refresh attempt", async () => {
      const entry = await this.#kv.get<StoredTokens>(key);
      if (entry.value === null) return { done: true, value: undefined };
      const { attempt: _old, ...tokens } = entry.value;
      const stored: StoredTokens = attempt === null ? tokens : { ...tokens, attempt: { ...attempt } };
      // Checked, so an attempt is never written over tokens stored in between.
      const { ok } = await this.#kv.atomic().check(entry).set(key, stored).commit();
      return ok ? { done: true, value: undefined } : { done: false };
    });
  }

  /**
   * Stops the storage: later calls reject. Closes the `Deno.Kv` when the storage opened it
   * ({@link DenoKVOAuthStorage.open}). Idempotent.
   */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      if (this.#ownsKv) this.#kv.close();
    }
    return Promise.resolve();
  }
}

// DenoKVAdapter (SPEC §1, §5): a SessionAdapter written in JavaScript over Deno KV. It works
// with the native SessionStore like any custom adapter (the store's Rust code calls it through
// the FFI binding's JS request protocol), and implements the optional listByUser/deleteByUser.
//
// Layout under the key prefix (default ["slices-session"]):
//   [...prefix, "session", id]                  the record (data as UTF-8 JSON bytes)
//   [...prefix, "data", id, i]                  chunk i of data too large for one KV value
//   [...prefix, "by_user", userId, id]          index for listByUser / deleteByUser
//   [...prefix, "by_expiry", expiresAt, id]     index for cleanup (ordered by time)
// Every write changes the record and its index entries in one atomic operation, guarded by the
// record's versionstamp, and retries when another writer got there first.
//
// `data` is stored as JSON text, like the SQLite and PostgreSQL adapters do, so a session reads
// back the same from every adapter. Deno KV values are limited to 64 KiB; larger `data` is split.

import type { SessionAdapter, SessionData } from "./types.d.ts";
import { AdapterError } from "./session.js";

/** Options of {@link DenoKVAdapter}. */
export interface DenoKVAdapterOptions {
  /** Key prefix under which sessions are kept. Default `["slices-session"]`. */
  prefix?: Deno.KvKey;
}

/** The stored form of a record. */
interface StoredSession {
  userId: string;
  handle?: string;
  isAuthenticated: boolean;
  createdAt: number;
  expiresAt: number;
  lastAccessedAt: number;
  /** UTF-8 JSON of `data` when it fits in the record. */
  data?: Uint8Array;
  /** Number of `data` chunks stored beside the record when it did not. */
  dataChunks?: number;
}

// Deno KV allows 64 KiB per value; the rest of a record is small.
const INLINE_DATA_MAX = 48 * 1024;
const CHUNK_SIZE = 60 * 1024;
const MAX_ATTEMPTS = 20;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Like the native adapters: calls after `close()` reject with an AdapterError. */
function closedError(): Error {
  return new AdapterError("the DenoKVAdapter is closed") as Error;
}

/** A {@link SessionAdapter} over a `Deno.Kv` database (needs `--unstable-kv`). */
export class DenoKVAdapter implements SessionAdapter {
  readonly #kv: Deno.Kv;
  readonly #prefix: Deno.KvKey;
  /** Set by {@link DenoKVAdapter.open}: the adapter then closes the database in `close()`. */
  #ownsKv = false;
  #closed = false;

  /**
   * Uses `kv`, which stays the caller's: `close()` does not close it. To let the adapter open
   * and close the database itself, use {@link DenoKVAdapter.open}.
   */
  constructor(kv: Deno.Kv, options: DenoKVAdapterOptions = {}) {
    if (kv === null || typeof kv !== "object" || typeof kv.atomic !== "function") {
      throw new TypeError("kv must be a Deno.Kv (from Deno.openKv())");
    }
    this.#kv = kv;
    this.#prefix = options.prefix ?? ["slices-session"];
  }

  /** Opens `Deno.openKv(path)` (the default database when `path` is omitted); `close()` closes it. */
  static async open(path?: string, options: DenoKVAdapterOptions = {}): Promise<DenoKVAdapter> {
    const adapter = new DenoKVAdapter(await Deno.openKv(path), options);
    adapter.#ownsKv = true;
    return adapter;
  }

  #key(...parts: Deno.KvKeyPart[]): Deno.KvKey {
    return [...this.#prefix, ...parts];
  }

  #check(): void {
    if (this.#closed) throw closedError();
  }

  async #read(id: string): Promise<Deno.KvEntryMaybe<StoredSession>> {
    return await this.#kv.get<StoredSession>(this.#key("session", id));
  }

  async #dataOf(id: string, stored: StoredSession): Promise<unknown> {
    let bytes: Uint8Array | undefined = stored.data;
    if (stored.dataChunks !== undefined) {
      const parts: Uint8Array[] = [];
      for await (const entry of this.#kv.list<Uint8Array>({ prefix: this.#key("data", id) })) {
        parts.push(entry.value);
      }
      if (parts.length !== stored.dataChunks) {
        throw new Error(`stored session ${JSON.stringify(id)} is missing data chunks`);
      }
      bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let offset = 0;
      for (const part of parts) {
        bytes.set(part, offset);
        offset += part.length;
      }
    }
    return bytes === undefined ? undefined : JSON.parse(decoder.decode(bytes));
  }

  async #toSession(id: string, stored: StoredSession): Promise<SessionData> {
    const session: SessionData = { sessionId: id, userId: stored.userId } as SessionData;
    if (stored.handle !== undefined) session.handle = stored.handle;
    session.isAuthenticated = stored.isAuthenticated;
    const data = await this.#dataOf(id, stored);
    if (data !== undefined) session.data = data as Record<string, unknown>;
    session.createdAt = stored.createdAt;
    session.expiresAt = stored.expiresAt;
    session.lastAccessedAt = stored.lastAccessedAt;
    return session;
  }

  /**
   * Writes `next` (or deletes when null) in place of `current`, with the index entries, in one
   * atomic operation that fails if the record changed since it was read.
   */
  async #commit(
    id: string,
    current: Deno.KvEntryMaybe<StoredSession>,
    next: { stored: StoredSession; chunks: Uint8Array[] } | null,
  ): Promise<boolean> {
    const op = this.#kv.atomic().check(current);
    const old = current.value;
    if (old !== null) {
      op.delete(this.#key("by_user", old.userId, id));
      op.delete(this.#key("by_expiry", old.expiresAt, id));
      for (let i = 0; i < (old.dataChunks ?? 0); i++) op.delete(this.#key("data", id, i));
    }
    if (next === null) {
      op.delete(this.#key("session", id));
    } else {
      op.set(this.#key("session", id), next.stored);
      op.set(this.#key("by_user", next.stored.userId, id), null);
      op.set(this.#key("by_expiry", next.stored.expiresAt, id), null);
      next.chunks.forEach((chunk, i) => op.set(this.#key("data", id, i), chunk));
    }
    return (await op.commit()).ok;
  }

  /**
   * Retries `attempt` while another writer changed the record in between, or while another
   * process holds the database file's write lock (Deno KV's SQLite answers "database is
   * locked" instead of waiting). Between tries it waits a random, growing delay, so writers in
   * several processes that collided do not collide again in lock step.
   */
  async #retry<T>(id: string, attempt: () => Promise<{ done: true; value: T } | { done: false }>): Promise<T> {
    let lastLocked: unknown;
    for (let i = 0; i < MAX_ATTEMPTS; i++) {
      if (i > 0) await sleep(Math.random() * Math.min(50, 2 ** i));
      try {
        const result = await attempt();
        if (result.done) return result.value;
      } catch (error) {
        if (!isLockedError(error)) throw error;
        lastLocked = error;
      }
    }
    const cause = lastLocked === undefined ? "" : ` (last: ${(lastLocked as Error).message})`;
    throw new Error(`session ${JSON.stringify(id)} kept changing under concurrent writers; gave up${cause}`);
  }

  async get(sessionId: string): Promise<SessionData | null> {
    this.#check();
    const entry = await this.#read(sessionId);
    return entry.value === null ? null : await this.#toSession(sessionId, entry.value);
  }

  async set(sessionId: string, data: SessionData): Promise<void> {
    this.#check();
    const next = encodeRecord(data);
    await this.#retry(sessionId, async () => {
      const current = await this.#read(sessionId);
      return (await this.#commit(sessionId, current, next)) ? { done: true, value: undefined } : { done: false };
    });
  }

  async update(sessionId: string, updates: Partial<SessionData>): Promise<boolean> {
    this.#check();
    let lostRace = false;
    return await this.#retry<boolean>(sessionId, async () => {
      const current = await this.#read(sessionId);
      if (current.value === null) return { done: true, value: false };
      // A touch (lastAccessedAt, and expiresAt when rolling) that lost the race to another
      // writer whose times are at least as late is done: it is ordered before that write,
      // which replaced both times. This is what keeps many concurrent reads of one session,
      // in several processes, from fighting over the record. Only after a lost race: a
      // first attempt always writes (an update may move times backwards on purpose).
      if (lostRace && isOvertakenTouch(current.value, updates)) return { done: true, value: true };
      lostRace = true;
      const merged = await this.#toSession(sessionId, current.value);
      // The fixed fields only, as the native adapters store them; `sessionId` never moves a record.
      for (const key of ["userId", "handle", "isAuthenticated", "data", "createdAt", "expiresAt", "lastAccessedAt"] as const) {
        if (Object.prototype.hasOwnProperty.call(updates, key)) {
          (merged as unknown as Record<string, unknown>)[key] = updates[key];
        }
      }
      const ok = await this.#commit(sessionId, current, encodeRecord(merged));
      return ok ? { done: true, value: true } : { done: false };
    });
  }

  async delete(sessionId: string): Promise<void> {
    this.#check();
    await this.#retry(sessionId, async () => {
      const current = await this.#read(sessionId);
      if (current.value === null) return { done: true, value: undefined };
      return (await this.#commit(sessionId, current, null)) ? { done: true, value: undefined } : { done: false };
    });
  }

  /** Removes sessions with `expiresAt < expiresBefore`; resolves to how many. */
  async cleanup(expiresBefore: number): Promise<number> {
    this.#check();
    let removed = 0;
    const expired = this.#kv.list<null>({
      prefix: this.#key("by_expiry"),
      end: this.#key("by_expiry", expiresBefore),
    });
    for await (const entry of expired) {
      const id = entry.key[entry.key.length - 1] as string;
      const gone = await this.#retry(id, async () => {
        const current = await this.#read(id);
        // Re-checked: the session may have been extended since the index was listed.
        if (current.value === null || !(current.value.expiresAt < expiresBefore)) return { done: true, value: false };
        return (await this.#commit(id, current, null)) ? { done: true, value: true } : { done: false };
      });
      if (gone) removed++;
    }
    return removed;
  }

  async exists(sessionId: string): Promise<boolean> {
    this.#check();
    return (await this.#read(sessionId)).value !== null;
  }

  /** All sessions of a user (the store filters expired ones and sorts). */
  async listByUser(userId: string): Promise<SessionData[]> {
    this.#check();
    const sessions: SessionData[] = [];
    for await (const entry of this.#kv.list<null>({ prefix: this.#key("by_user", userId) })) {
      const id = entry.key[entry.key.length - 1] as string;
      const session = await this.get(id);
      if (session !== null && session.userId === userId) sessions.push(session);
    }
    return sessions;
  }

  /** Deletes every session of a user but `except`; resolves to how many. */
  async deleteByUser(userId: string, except?: string): Promise<number> {
    this.#check();
    let removed = 0;
    for await (const entry of this.#kv.list<null>({ prefix: this.#key("by_user", userId) })) {
      const id = entry.key[entry.key.length - 1] as string;
      if (id === except) continue;
      const gone = await this.#retry(id, async () => {
        const current = await this.#read(id);
        if (current.value === null || current.value.userId !== userId) return { done: true, value: false };
        return (await this.#commit(id, current, null)) ? { done: true, value: true } : { done: false };
      });
      if (gone) removed++;
    }
    return removed;
  }

  /**
   * Stops the adapter: later calls reject. Closes the `Deno.Kv` when the adapter opened it
   * ({@link DenoKVAdapter.open}). Idempotent.
   */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      if (this.#ownsKv) this.#kv.close();
    }
    return Promise.resolve();
  }
}

/** @internal Shared with kv-oauth.ts. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** @internal Deno KV's SQLite backend reports another process's write lock this way. */
export function isLockedError(error: unknown): boolean {
  return error instanceof Error && /database is locked|SQLITE_BUSY/i.test(error.message);
}

/**
 * True when `updates` is a touch (lastAccessedAt, maybe with expiresAt, nothing else) and
 * `stored` already has those times or later ones.
 */
function isOvertakenTouch(stored: StoredSession, updates: Partial<SessionData>): boolean {
  const keys = Object.keys(updates).filter((key) => key !== "sessionId");
  if (!keys.includes("lastAccessedAt")) return false;
  for (const key of keys) {
    if (key !== "lastAccessedAt" && key !== "expiresAt") return false;
    const value = updates[key];
    if (typeof value !== "number" || !(stored[key] >= value)) return false;
  }
  return true;
}

/** A record to its stored form (and the data chunks when `data` is large). */
function encodeRecord(session: SessionData): { stored: StoredSession; chunks: Uint8Array[] } {
  const stored: StoredSession = {
    userId: session.userId,
    isAuthenticated: session.isAuthenticated,
    createdAt: session.createdAt,
    expiresAt: session.expiresAt,
    lastAccessedAt: session.lastAccessedAt,
  };
  if (session.handle !== undefined && session.handle !== null) stored.handle = session.handle;
  const chunks: Uint8Array[] = [];
  if (session.data !== undefined && session.data !== null) {
    const bytes = encoder.encode(JSON.stringify(session.data));
    if (bytes.length <= INLINE_DATA_MAX) {
      stored.data = bytes;
    } else {
      for (let offset = 0; offset < bytes.length; offset += CHUNK_SIZE) {
        chunks.push(bytes.slice(offset, offset + CHUNK_SIZE));
      }
      stored.dataChunks = chunks.length;
    }
  }
  return { stored, chunks };
}

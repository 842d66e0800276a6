// Contender: "the original's approach", what users of @slices/session run today, rebuilt in
// plain JS the way the original builds it (SPEC §3 and §5):
// - SessionStore in JS; getSession = adapter.get, expiry check (delete when expired), then
//   adapter.update(id, { lastAccessedAt }) — two storage calls on the request path;
// - parseCookie splits the header and URI-decodes every value;
// - MemoryAdapter: a Map of live objects;
// - SQLiteAdapter: node:sqlite DatabaseSync with its default pragmas (rollback journal,
//   synchronous=FULL), each call preparing its statement;
// - PostgresAdapter: `pg` with a NEW client per call (connect, one query, end).
// The schema is SPEC §5's. Runs on Node >= 22.13 and Deno >= 2.2 (node:sqlite).

import { TTL, benchRequire, cookieHeaderOf, dataFor, parseCookie, seedPostgresExpired, seedSqliteExpired } from "./common.mjs";

const SCHEMA_SQLITE = `CREATE TABLE IF NOT EXISTS sessions (
  session_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, handle TEXT,
  is_authenticated INTEGER NOT NULL DEFAULT 1, data TEXT,
  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, last_accessed_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS idx_sessions_expires_at ON sessions(expires_at);
CREATE INDEX IF NOT EXISTS idx_sessions_user_id ON sessions(user_id);`;

const SCHEMA_PG = `CREATE TABLE IF NOT EXISTS sessions (
  session_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, handle TEXT,
  is_authenticated BOOLEAN NOT NULL DEFAULT true, data JSONB,
  created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, last_accessed_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS idx_sessions_expires_at ON sessions(expires_at);
CREATE INDEX IF NOT EXISTS idx_sessions_user_id ON sessions(user_id);`;

/** SessionData keys to columns, for dynamic UPDATEs. */
export const COLUMNS = {
  userId: "user_id",
  handle: "handle",
  isAuthenticated: "is_authenticated",
  data: "data",
  createdAt: "created_at",
  expiresAt: "expires_at",
  lastAccessedAt: "last_accessed_at",
};

export class SessionStore {
  constructor(options) {
    this.adapter = options.adapter;
    this.cookieName = options.cookieName ?? "slice-session";
    this.cookieOptions = { httpOnly: true, secure: true, sameSite: "lax", path: "/", ...options.cookieOptions };
    this.sessionTTL = options.sessionTTL ?? TTL;
    this.cleanupInterval = options.cleanupInterval ?? 60 * 60 * 1000;
    this.generateId = options.generateId ?? (() => crypto.randomUUID());
    if (this.cleanupInterval > 0) {
      this.timer = setInterval(() => this.cleanup().catch(console.error), this.cleanupInterval);
    }
  }

  async createSession(userId, handle, data) {
    const sessionId = this.generateId();
    const now = Date.now();
    const session = {
      sessionId,
      userId,
      handle,
      isAuthenticated: true,
      data,
      createdAt: now,
      expiresAt: now + this.sessionTTL,
      lastAccessedAt: now,
    };
    await this.adapter.set(sessionId, session);
    return sessionId;
  }

  async getSession(sessionId) {
    const session = await this.adapter.get(sessionId);
    if (!session) return null;
    const now = Date.now();
    if (session.expiresAt <= now) {
      await this.adapter.delete(sessionId);
      return null;
    }
    session.lastAccessedAt = now;
    await this.adapter.update(sessionId, { lastAccessedAt: now });
    return session;
  }

  updateSession(sessionId, updates) {
    return this.adapter.update(sessionId, updates);
  }

  deleteSession(sessionId) {
    return this.adapter.delete(sessionId);
  }

  async getSessionFromRequest(request) {
    const cookies = parseCookie(cookieHeaderOf(request));
    const sessionId = cookies[this.cookieName];
    if (!sessionId) return null;
    return this.getSession(sessionId);
  }

  cleanup() {
    return this.adapter.cleanup(Date.now());
  }

  close() {
    clearInterval(this.timer);
  }
}

export class MemoryAdapter {
  constructor() {
    this.sessions = new Map();
  }
  async get(id) {
    return this.sessions.get(id) ?? null;
  }
  async set(id, data) {
    this.sessions.set(id, data);
  }
  async update(id, updates) {
    const session = this.sessions.get(id);
    if (!session) return false;
    this.sessions.set(id, { ...session, ...updates });
    return true;
  }
  async delete(id) {
    this.sessions.delete(id);
  }
  async cleanup(expiresBefore) {
    let removed = 0;
    for (const [id, session] of this.sessions) {
      if (session.expiresAt < expiresBefore) {
        this.sessions.delete(id);
        removed++;
      }
    }
    return removed;
  }
  async exists(id) {
    return this.sessions.has(id);
  }
}

/** A row of the sessions table to SessionData (data is JSON text in SQLite, parsed by pg for JSONB). */
export function rowToSession(row) {
  const session = {
    sessionId: row.session_id,
    userId: row.user_id,
    isAuthenticated: Boolean(row.is_authenticated),
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    lastAccessedAt: Number(row.last_accessed_at),
  };
  if (row.handle !== null && row.handle !== undefined) session.handle = row.handle;
  if (row.data !== null && row.data !== undefined) session.data = typeof row.data === "string" ? JSON.parse(row.data) : row.data;
  return session;
}

/** The original's dynamic UPDATE: one SET clause per key given. */
export function buildUpdate(updates, placeholder, encodeData) {
  const sets = [];
  const values = [];
  for (const [key, column] of Object.entries(COLUMNS)) {
    if (!(key in updates)) continue;
    let value = updates[key];
    if (key === "data") value = value === undefined ? null : encodeData(value);
    else if (key === "isAuthenticated" && placeholder === "?") value = value ? 1 : 0;
    else if (value === undefined) value = null;
    values.push(value);
    sets.push(`${column} = ${placeholder === "?" ? "?" : `$${values.length}`}`);
  }
  return { sets, values };
}

export class SQLiteAdapter {
  constructor(path) {
    const { DatabaseSync } = benchRequire("node:sqlite");
    this.db = new DatabaseSync(path.replace(/^sqlite:\/\//, ""));
    this.db.exec(SCHEMA_SQLITE);
  }
  async get(id) {
    const row = this.db.prepare("SELECT * FROM sessions WHERE session_id = ?").get(id);
    return row ? rowToSession(row) : null;
  }
  async set(id, s) {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO sessions (session_id, user_id, handle, is_authenticated, data, created_at, expires_at, last_accessed_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(id, s.userId, s.handle ?? null, s.isAuthenticated ? 1 : 0, s.data === undefined ? null : JSON.stringify(s.data), s.createdAt, s.expiresAt, s.lastAccessedAt);
  }
  async update(id, updates) {
    const { sets, values } = buildUpdate(updates, "?", JSON.stringify);
    if (sets.length === 0) return this.exists(id);
    const result = this.db.prepare(`UPDATE sessions SET ${sets.join(", ")} WHERE session_id = ?`).run(...values, id);
    return result.changes > 0;
  }
  async delete(id) {
    this.db.prepare("DELETE FROM sessions WHERE session_id = ?").run(id);
  }
  async cleanup(expiresBefore) {
    return Number(this.db.prepare("DELETE FROM sessions WHERE expires_at < ?").run(expiresBefore).changes);
  }
  async exists(id) {
    return this.db.prepare("SELECT 1 FROM sessions WHERE session_id = ?").get(id) !== undefined;
  }
  close() {
    this.db.close();
  }
}

export class PostgresAdapter {
  constructor(connectionString) {
    this.connectionString = connectionString;
    this.pg = benchRequire("pg");
  }
  /** A new connection for every call, as the original does. */
  async withClient(fn) {
    const client = new this.pg.Client({ connectionString: this.connectionString });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  }
  initialize() {
    return this.withClient((c) => c.query(SCHEMA_PG));
  }
  get(id) {
    return this.withClient(async (c) => {
      const { rows } = await c.query("SELECT * FROM sessions WHERE session_id = $1", [id]);
      return rows.length ? rowToSession(rows[0]) : null;
    });
  }
  set(id, s) {
    return this.withClient((c) =>
      c.query(
        `INSERT INTO sessions (session_id, user_id, handle, is_authenticated, data, created_at, expires_at, last_accessed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (session_id) DO UPDATE SET user_id = EXCLUDED.user_id, handle = EXCLUDED.handle,
           is_authenticated = EXCLUDED.is_authenticated, data = EXCLUDED.data, created_at = EXCLUDED.created_at,
           expires_at = EXCLUDED.expires_at, last_accessed_at = EXCLUDED.last_accessed_at`,
        [id, s.userId, s.handle ?? null, s.isAuthenticated, s.data === undefined ? null : JSON.stringify(s.data), s.createdAt, s.expiresAt, s.lastAccessedAt],
      ),
    );
  }
  update(id, updates) {
    const { sets, values } = buildUpdate(updates, "$", JSON.stringify);
    if (sets.length === 0) return this.exists(id);
    return this.withClient(async (c) => {
      const res = await c.query(`UPDATE sessions SET ${sets.join(", ")} WHERE session_id = $${values.length + 1}`, [...values, id]);
      return res.rowCount > 0;
    });
  }
  delete(id) {
    return this.withClient((c) => c.query("DELETE FROM sessions WHERE session_id = $1", [id]));
  }
  cleanup(expiresBefore) {
    return this.withClient(async (c) => (await c.query("DELETE FROM sessions WHERE expires_at < $1", [expiresBefore])).rowCount);
  }
  exists(id) {
    return this.withClient(async (c) => (await c.query("SELECT 1 FROM sessions WHERE session_id = $1", [id])).rowCount > 0);
  }
  close() {}
}

/** Harness entry: the contender interface of bench/lib/workload.mjs over this library. */
export async function open(cfg, lib = { SessionStore, MemoryAdapter, SQLiteAdapter, PostgresAdapter }) {
  let adapter;
  if (cfg.backend === "memory") adapter = new lib.MemoryAdapter();
  else if (cfg.backend === "sqlite") adapter = new lib.SQLiteAdapter(cfg.sqlitePath);
  else if (cfg.backend === "postgres") {
    adapter = new lib.PostgresAdapter(cfg.pgUrl);
    await adapter.initialize();
  } else throw new Error(`unknown backend ${cfg.backend}`);
  const store = new lib.SessionStore({ adapter, cleanupInterval: 0 });
  return {
    create: (i) => store.createSession(`did:plc:user${i}`, `user${i}.bsky.social`, dataFor(i)),
    request: (req) => store.getSessionFromRequest(req),
    update: (id, i) => store.updateSession(id, { data: dataFor(i) }),
    async seedExpired(n) {
      if (cfg.backend === "memory") {
        for (let k = 0; k < n; k++) {
          const id = `expired-${k}`;
          await adapter.set(id, { sessionId: id, userId: `did:plc:old${k}`, isAuthenticated: true, createdAt: 1000, expiresAt: 2000, lastAccessedAt: 1000 });
        }
      } else if (cfg.backend === "sqlite") {
        seedSqliteExpired(cfg.seedNode, cfg.sqlitePath, "slices", n);
      } else {
        await seedPostgresExpired(cfg.pgUrl, "slices", n);
      }
    },
    cleanup: () => store.cleanup(),
    async close() {
      store.close();
      await adapter.close?.();
    },
  };
}

// Contender: a tuned plain-JS variant of the original, so that we beat good JS, not only naive JS:
// - SQLite: node:sqlite in WAL mode with synchronous=NORMAL and a busy timeout (our pragmas),
//   every statement prepared once and reused. The request path is the original's (read, then
//   write lastAccessedAt: two statements), or, with `cfg.variant === "our-sql"`, ONE statement,
//   the SQL our adapter runs (core/src/sqlite.rs: TOUCH ... RETURNING, which returns the row
//   whether or not it wrote the access; a DELETE only for an expired row): that variant differs
//   from ours only by the binding and the JS;
// - PostgreSQL: a `pg` Pool of 10 connections (our default pool size), named (server-side
//   prepared) statements, and the request path in one statement, our LOAD
//   (core/src/postgres.rs).
// The SessionStore and cookie parsing are the original's (contenders/original.mjs).

import { SessionStore as OriginalStore, MemoryAdapter, buildUpdate, open as openOriginal, rowToSession } from "./original.mjs";
import { benchRequire } from "./common.mjs";

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

const COLS = "session_id, user_id, handle, is_authenticated, data, created_at, expires_at, last_accessed_at";
const PG_COLS = "session_id, user_id, handle, is_authenticated, data::text AS data, created_at, expires_at, last_accessed_at";

/** The original's store; the request path is one adapter call when the adapter has `load`. */
export class SessionStore extends OriginalStore {
  async getSession(sessionId) {
    if (this.adapter.load) return this.adapter.load(sessionId, Date.now());
    return super.getSession(sessionId);
  }
}

export class SQLiteAdapter {
  constructor(path) {
    const { DatabaseSync } = benchRequire("node:sqlite");
    const db = new DatabaseSync(path.replace(/^sqlite:\/\//, ""));
    db.exec("PRAGMA busy_timeout = 5000");
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec(SCHEMA_SQLITE);
    this.db = db;
    this.stmts = {
      select: db.prepare(`SELECT ${COLS} FROM sessions WHERE session_id = ?`),
      upsert: db.prepare(
        `INSERT INTO sessions (${COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET
         user_id = excluded.user_id, handle = excluded.handle, is_authenticated = excluded.is_authenticated,
         data = excluded.data, created_at = excluded.created_at, expires_at = excluded.expires_at,
         last_accessed_at = excluded.last_accessed_at`,
      ),
      touch: db.prepare(
        `UPDATE sessions SET last_accessed_at = CASE WHEN expires_at > ?1 AND last_accessed_at <= ?4
         THEN ?1 ELSE last_accessed_at END WHERE session_id = ?3 RETURNING ${COLS}`,
      ),
      deleteExpiredOne: db.prepare("DELETE FROM sessions WHERE session_id = ? AND expires_at <= ?"),
      delete: db.prepare("DELETE FROM sessions WHERE session_id = ?"),
      cleanup: db.prepare("DELETE FROM sessions WHERE expires_at < ?"),
      exists: db.prepare("SELECT 1 FROM sessions WHERE session_id = ?"),
    };
    this.updates = new Map();
  }
  /** The request path: the touch first (one statement on a hit and on a miss), as core/src/sqlite.rs does. */
  async load(id, now) {
    // all(), not get(): get() resets the statement after its first row, and SQLite runs the WAL
    // auto-checkpoint only for a statement stepped to its end (the WAL would grow unbounded).
    const [row] = this.stmts.touch.all(now, null, id, now);
    if (!row) return null;
    if (row.expires_at <= now) {
      this.stmts.deleteExpiredOne.run(id, now);
      return null;
    }
    return rowToSession(row);
  }
  async get(id) {
    const row = this.stmts.select.get(id);
    return row ? rowToSession(row) : null;
  }
  async set(id, s) {
    this.stmts.upsert.run(id, s.userId, s.handle ?? null, s.isAuthenticated ? 1 : 0, s.data === undefined ? null : JSON.stringify(s.data), s.createdAt, s.expiresAt, s.lastAccessedAt);
  }
  async update(id, updates) {
    const { sets, values } = buildUpdate(updates, "?", JSON.stringify);
    if (sets.length === 0) return this.exists(id);
    const sql = `UPDATE sessions SET ${sets.join(", ")} WHERE session_id = ?`;
    let stmt = this.updates.get(sql);
    if (!stmt) this.updates.set(sql, (stmt = this.db.prepare(sql)));
    return stmt.run(...values, id).changes > 0;
  }
  async delete(id) {
    this.stmts.delete.run(id);
  }
  async cleanup(expiresBefore) {
    return Number(this.stmts.cleanup.run(expiresBefore).changes);
  }
  async exists(id) {
    return this.stmts.exists.get(id) !== undefined;
  }
  close() {
    this.db.close();
  }
}

const PG_LOAD = `WITH expired AS (DELETE FROM sessions WHERE session_id = $1 AND expires_at <= $2),
touched AS (UPDATE sessions SET last_accessed_at = $2, expires_at = COALESCE($3::bigint, expires_at)
  WHERE session_id = $1 AND expires_at > $2 AND last_accessed_at <= $4 RETURNING ${PG_COLS})
SELECT * FROM touched UNION ALL SELECT ${PG_COLS} FROM sessions WHERE session_id = $1 AND expires_at > $2
AND NOT EXISTS (SELECT 1 FROM touched)`;
const PG_UPSERT = `INSERT INTO sessions (${COLS}) VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8)
ON CONFLICT (session_id) DO UPDATE SET user_id = EXCLUDED.user_id, handle = EXCLUDED.handle,
is_authenticated = EXCLUDED.is_authenticated, data = EXCLUDED.data, created_at = EXCLUDED.created_at,
expires_at = EXCLUDED.expires_at, last_accessed_at = EXCLUDED.last_accessed_at`;

export class PostgresAdapter {
  constructor(connectionString) {
    const pg = benchRequire("pg");
    this.pool = new pg.Pool({ connectionString, max: 10 });
    this.names = new Map();
  }
  /** A named statement: prepared once per pooled connection by `pg`. */
  query(text, values) {
    let name = this.names.get(text);
    if (!name) this.names.set(text, (name = `s${this.names.size}`));
    return this.pool.query({ name, text, values });
  }
  async initialize() {
    await this.pool.query(SCHEMA_PG);
  }
  async load(id, now) {
    const { rows } = await this.query(PG_LOAD, [id, now, null, now]);
    return rows.length ? rowToSession(rows[0]) : null;
  }
  async get(id) {
    const { rows } = await this.query(`SELECT ${PG_COLS} FROM sessions WHERE session_id = $1`, [id]);
    return rows.length ? rowToSession(rows[0]) : null;
  }
  async set(id, s) {
    await this.query(PG_UPSERT, [id, s.userId, s.handle ?? null, s.isAuthenticated, s.data === undefined ? null : JSON.stringify(s.data), s.createdAt, s.expiresAt, s.lastAccessedAt]);
  }
  async update(id, updates) {
    const { sets, values } = buildUpdate(updates, "$", JSON.stringify);
    if (sets.length === 0) return this.exists(id);
    // As core/src/postgres.rs: data bound as text, cast by the server.
    const sql = `UPDATE sessions SET ${sets.join(", ").replace(/^data = (\$\d+)|, data = (\$\d+)/, (m) => `${m}::text::jsonb`)} WHERE session_id = $${values.length + 1}`;
    return (await this.query(sql, [...values, id])).rowCount > 0;
  }
  async delete(id) {
    await this.query("DELETE FROM sessions WHERE session_id = $1", [id]);
  }
  async cleanup(expiresBefore) {
    return (await this.query("DELETE FROM sessions WHERE expires_at < $1", [expiresBefore])).rowCount;
  }
  async exists(id) {
    return (await this.query("SELECT 1 FROM sessions WHERE session_id = $1", [id])).rowCount > 0;
  }
  async close() {
    await this.pool.end();
  }
}

/** The SQLite adapter without `load`: the original's two-statement request path, tuned. */
class TwoStatementSQLiteAdapter extends SQLiteAdapter {}
Object.defineProperty(TwoStatementSQLiteAdapter.prototype, "load", { value: undefined });

export function open(cfg) {
  const Sqlite = cfg.variant === "our-sql" ? SQLiteAdapter : TwoStatementSQLiteAdapter;
  return openOriginal(cfg, { SessionStore, MemoryAdapter, SQLiteAdapter: Sqlite, PostgresAdapter });
}

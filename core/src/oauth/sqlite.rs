//! `SqliteOAuthStorage`: tokens, PKCE states, refresh attempts and the cross-process refresh
//! lease in an SQLite file that several processes may share.
//!
//! Like the session adapter (`crate::sqlite`): one connection behind a mutex, WAL mode, a
//! busy timeout, so every call completes on its first poll (`is_sync()`). Every operation
//! is one statement, so none needs an explicit transaction: `take_state` is a
//! `DELETE ... RETURNING` (one use, atomic), and the lease is one upsert whose `WHERE`
//! decides, inside SQLite's write lock, whether the caller gets it.
//!
//! The tables have a `slices_` prefix: `oauth_tokens` is a common name, and a table of that
//! name with other columns would make `CREATE TABLE IF NOT EXISTS` silently keep it.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::error::{Result, SessionError};
use crate::oauth::config::{OAuthTokens, PkceState};
use crate::oauth::refresh::RefreshAttempt;
use crate::oauth::storage::OAuthStorage;
use crate::session::{now_millis, Millis};
use crate::sqlite::SqliteOptions;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS slices_oauth_tokens (
  session_id TEXT PRIMARY KEY, access_token TEXT NOT NULL, token_type TEXT NOT NULL,
  refresh_token TEXT, expires_at INTEGER, scope TEXT, updated_at INTEGER NOT NULL,
  refresh_attempt_token TEXT, refresh_attempt_at INTEGER,
  refresh_attempt_lost INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS slices_oauth_states (
  state TEXT PRIMARY KEY, code_verifier TEXT NOT NULL,
  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS idx_slices_oauth_states_expires_at ON slices_oauth_states(expires_at);
CREATE TABLE IF NOT EXISTS slices_oauth_refresh_locks (
  session_id TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at INTEGER NOT NULL);";

const GET_TOKENS: &str = "SELECT access_token, token_type, refresh_token, expires_at, scope \
     FROM slices_oauth_tokens WHERE session_id = ?1";
/// Replacing the tokens also forgets the refresh attempt (new tokens make it moot).
const SET_TOKENS: &str = "INSERT INTO slices_oauth_tokens (session_id, access_token, token_type, \
     refresh_token, expires_at, scope, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
     ON CONFLICT (session_id) DO UPDATE SET access_token = excluded.access_token, \
     token_type = excluded.token_type, refresh_token = excluded.refresh_token, \
     expires_at = excluded.expires_at, scope = excluded.scope, updated_at = excluded.updated_at, \
     refresh_attempt_token = NULL, refresh_attempt_at = NULL, refresh_attempt_lost = 0";
const CLEAR_TOKENS: &str = "DELETE FROM slices_oauth_tokens WHERE session_id = ?1";
const PURGE_STATES: &str = "DELETE FROM slices_oauth_states WHERE expires_at <= ?1";
const PUT_STATE: &str = "INSERT OR REPLACE INTO slices_oauth_states \
     (state, code_verifier, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)";
const TAKE_STATE: &str = "DELETE FROM slices_oauth_states WHERE state = ?1 \
     RETURNING code_verifier, created_at, expires_at";
/// The lease in one statement: a new row, or a takeover of an expired lease (or our own).
/// `changes()` is 1 exactly when the caller holds the lease afterwards.
const TRY_LOCK: &str = "INSERT INTO slices_oauth_refresh_locks (session_id, owner, expires_at) \
     VALUES (?1, ?2, ?3) ON CONFLICT (session_id) DO UPDATE SET owner = excluded.owner, \
     expires_at = excluded.expires_at \
     WHERE slices_oauth_refresh_locks.expires_at < ?4 \
     OR slices_oauth_refresh_locks.owner = excluded.owner";
const UNLOCK: &str = "DELETE FROM slices_oauth_refresh_locks WHERE session_id = ?1 AND owner = ?2";
const GET_ATTEMPT: &str = "SELECT refresh_attempt_token, refresh_attempt_at, refresh_attempt_lost \
     FROM slices_oauth_tokens WHERE session_id = ?1";
const SET_ATTEMPT: &str = "UPDATE slices_oauth_tokens SET refresh_attempt_token = ?2, \
     refresh_attempt_at = ?3, refresh_attempt_lost = ?4 WHERE session_id = ?1";

fn sqlite_err(action: &'static str) -> impl FnOnce(rusqlite::Error) -> SessionError {
    move |source| SessionError::Sqlite { action, source }
}

/// OAuth state in one SQLite database file (or `:memory:`).
pub struct SqliteOAuthStorage {
    /// `None` once closed.
    conn: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for SqliteOAuthStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteOAuthStorage").finish_non_exhaustive()
    }
}

impl SqliteOAuthStorage {
    /// Opens (creating if needed) the database at `path_or_url` with the default busy
    /// timeout (5 s). A leading `sqlite://` is stripped; `":memory:"` works.
    pub fn open(path_or_url: &str) -> Result<SqliteOAuthStorage> {
        Self::open_with(path_or_url, SqliteOptions::default())
    }

    pub fn open_with(path_or_url: &str, options: SqliteOptions) -> Result<SqliteOAuthStorage> {
        let path = path_or_url.strip_prefix("sqlite://").unwrap_or(path_or_url);
        let mut conn = Connection::open(path).map_err(sqlite_err("open the OAuth database"))?;
        // First, so that every later step waits for other processes instead of failing.
        conn.busy_timeout(Duration::from_millis(u64::from(options.busy_timeout_ms)))
            .map_err(sqlite_err("set the busy timeout"))?;
        let in_memory = path == ":memory:"
            || path.is_empty()
            || (path.starts_with("file:") && path.contains("mode=memory"));
        if !in_memory {
            // WAL: readers never wait for the writer, which matters while other processes
            // poll the lease. A file system without WAL keeps its mode and still works.
            let busy = Duration::from_millis(u64::from(options.busy_timeout_ms));
            let _mode = crate::sqlite::enable_wal(&conn, busy)
                .map_err(sqlite_err("switch the OAuth database to WAL mode"))?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite_err("set synchronous=NORMAL"))?;
        // IMMEDIATE: take the write lock (waiting on the busy timeout) before reading the
        // schema, so two processes creating it at once do not fail with SQLITE_BUSY.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_err("create the OAuth tables"))?;
        tx.execute_batch(SCHEMA)
            .map_err(sqlite_err("create the OAuth tables"))?;
        tx.commit().map_err(sqlite_err("create the OAuth tables"))?;
        Ok(SqliteOAuthStorage {
            conn: Mutex::new(Some(conn)),
        })
    }

    fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let guard = self.lock()?;
        match guard.as_ref() {
            Some(conn) => f(conn),
            None => Err(SessionError::AdapterClosed),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Option<Connection>>> {
        self.conn.lock().map_err(|_| {
            SessionError::Internal(
                "the SQLite OAuth connection lock was poisoned by a panic".into(),
            )
        })
    }

    fn execute(
        &self,
        action: &'static str,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<usize> {
        self.with_conn(|conn| {
            conn.prepare_cached(sql)
                .and_then(|mut stmt| stmt.execute(params))
                .map_err(sqlite_err(action))
        })
    }
}

#[async_trait]
impl OAuthStorage for SqliteOAuthStorage {
    async fn get_tokens(&self, session_id: &str) -> Result<Option<OAuthTokens>> {
        const ACTION: &str = "read the OAuth tokens";
        self.with_conn(|conn| {
            conn.prepare_cached(GET_TOKENS)
                .and_then(|mut stmt| {
                    stmt.query_row([session_id], |row| {
                        Ok(OAuthTokens {
                            access_token: row.get(0)?,
                            token_type: row.get(1)?,
                            refresh_token: row.get(2)?,
                            expires_at: row.get(3)?,
                            scope: row.get(4)?,
                        })
                    })
                    .optional()
                })
                .map_err(sqlite_err(ACTION))
        })
    }

    async fn set_tokens(&self, tokens: &OAuthTokens, session_id: &str) -> Result<()> {
        self.execute(
            "store the OAuth tokens",
            SET_TOKENS,
            rusqlite::params![
                session_id,
                tokens.access_token,
                tokens.token_type,
                tokens.refresh_token,
                tokens.expires_at,
                tokens.scope,
                now_millis(),
            ],
        )
        .map(|_| ())
    }

    async fn clear_tokens(&self, session_id: &str) -> Result<()> {
        self.execute("clear the OAuth tokens", CLEAR_TOKENS, [session_id])
            .map(|_| ())
    }

    fn is_sync(&self) -> bool {
        true
    }

    async fn put_state(&self, state: &str, pkce: &PkceState, expires_at: Millis) -> Result<()> {
        // Abandoned logins would otherwise accumulate; the index makes this cheap.
        self.execute("purge expired OAuth states", PURGE_STATES, [now_millis()])?;
        self.execute(
            "store the OAuth state",
            PUT_STATE,
            rusqlite::params![state, pkce.code_verifier, pkce.created_at, expires_at],
        )
        .map(|_| ())
    }

    async fn take_state(&self, state: &str) -> Result<Option<PkceState>> {
        const ACTION: &str = "take the OAuth state";
        let now = now_millis();
        let taken = self.with_conn(|conn| {
            conn.prepare_cached(TAKE_STATE)
                .and_then(|mut stmt| {
                    let mut rows = stmt.query([state])?;
                    let taken = match rows.next()? {
                        Some(row) => Some((
                            PkceState {
                                code_verifier: row.get(0)?,
                                created_at: row.get(1)?,
                            },
                            row.get::<_, Millis>(2)?,
                        )),
                        None => None,
                    };
                    // To SQLITE_DONE, so the WAL auto-checkpoint runs (see core/src/sqlite.rs
                    // `query_one`): `query_row` resets after the first row.
                    while rows.next()?.is_some() {}
                    Ok(taken)
                })
                .map_err(sqlite_err(ACTION))
        })?;
        Ok(taken.and_then(|(pkce, expires_at)| (expires_at > now).then_some(pkce)))
    }

    async fn try_lock_refresh(
        &self,
        session_id: &str,
        owner: &str,
        lease_ms: Millis,
    ) -> Result<bool> {
        let now = now_millis();
        let changed = self.execute(
            "take the refresh lease",
            TRY_LOCK,
            rusqlite::params![session_id, owner, now.saturating_add(lease_ms), now],
        )?;
        Ok(changed == 1)
    }

    async fn unlock_refresh(&self, session_id: &str, owner: &str) -> Result<()> {
        self.execute("release the refresh lease", UNLOCK, [session_id, owner])
            .map(|_| ())
    }

    fn persists_refresh_attempts(&self) -> bool {
        true
    }

    async fn get_refresh_attempt(&self, session_id: &str) -> Result<Option<RefreshAttempt>> {
        const ACTION: &str = "read the refresh attempt";
        let row = self.with_conn(|conn| {
            conn.prepare_cached(GET_ATTEMPT)
                .and_then(|mut stmt| {
                    stmt.query_row([session_id], |row| {
                        Ok((
                            row.get::<_, Option<String>>(0)?,
                            row.get::<_, Option<Millis>>(1)?,
                            row.get::<_, bool>(2)?,
                        ))
                    })
                    .optional()
                })
                .map_err(sqlite_err(ACTION))
        })?;
        Ok(match row {
            Some((Some(token_fingerprint), started_at, lost)) => Some(RefreshAttempt {
                token_fingerprint,
                started_at: started_at.unwrap_or(0),
                lost,
            }),
            _ => None,
        })
    }

    async fn set_refresh_attempt(
        &self,
        session_id: &str,
        attempt: Option<&RefreshAttempt>,
    ) -> Result<()> {
        self.execute(
            "record the refresh attempt",
            SET_ATTEMPT,
            rusqlite::params![
                session_id,
                attempt.map(|a| &a.token_fingerprint),
                attempt.map(|a| a.started_at),
                attempt.is_some_and(|a| a.lost),
            ],
        )
        .map(|_| ())
    }

    async fn close(&self) -> Result<()> {
        let conn = self.lock()?.take();
        match conn {
            None => Ok(()),
            Some(conn) => conn
                .close()
                .map_err(|(_conn, source)| SessionError::Sqlite {
                    action: "close the OAuth database",
                    source,
                }),
        }
    }
}

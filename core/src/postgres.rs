//! PostgreSQL adapter (SPEC §5 PostgresAdapter): a bounded, lazily connecting pool.
//!
//! Every operation is one statement (the request path included), prepared once per
//! connection. The schema is created on first use, so `initialize()` is optional. A call
//! whose connection turns out to be dead (server restarted) is retried once on a fresh
//! connection: all our statements may safely run twice. The pool, the retry and the
//! per-call limit are `crate::pg_pool`'s, shared with the OAuth storage.

use async_trait::async_trait;
use tokio_postgres::Row;

use crate::adapter::{SessionAdapter, Touch};
use crate::error::{Result, SessionError};
use crate::pg_pool::{Param, PgPool, Schema};
use crate::session::{Millis, SessionData, SessionPatch};

/// Options for [`PostgresAdapter::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Most connections open at once (`maxConnections`).
    pub max_connections: usize,
    /// Limit for opening one connection, in ms, unless the URL sets `connect_timeout`
    /// (0: no limit).
    pub connect_timeout_ms: u64,
    /// Limit for waiting for a free pooled connection, in ms (0: no limit).
    pub wait_timeout_ms: u64,
    /// Limit for one call, from asking for a connection to the answer, in ms (0: no limit).
    /// A server that stops answering (paused, network cut) would otherwise hold the call for
    /// as long as TCP does; on timeout the pool's connections are dropped.
    pub query_timeout_ms: u64,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            max_connections: 10,
            connect_timeout_ms: 10_000,
            wait_timeout_ms: 10_000,
            query_timeout_ms: 10_000,
        }
    }
}

/// SPEC §5: the SQLite columns with PostgreSQL types, the same two indexes.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS sessions (
  session_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, handle TEXT,
  is_authenticated BOOLEAN NOT NULL DEFAULT true, data JSONB,
  created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, last_accessed_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS idx_sessions_expires_at ON sessions(expires_at);
CREATE INDEX IF NOT EXISTS idx_sessions_user_id ON sessions(user_id);";

/// Serialises schema creation across processes: concurrent `CREATE TABLE IF NOT EXISTS`
/// can fail with a unique violation in the catalog. The value is arbitrary but fixed
/// ("slices" in ASCII, then 1).
const SCHEMA_LOCK_KEY: i64 = 0x736c_6963_6573_0001;

/// The columns of a session, in the order `read_session` decodes them. `data` is read as
/// text so that the core keeps JSON text.
macro_rules! columns {
    () => {
        "session_id, user_id, handle, is_authenticated, data::text AS data, \
         created_at, expires_at, last_accessed_at"
    };
}

const SELECT_ONE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM sessions WHERE session_id = $1"
);
const UPSERT: &str = "INSERT INTO sessions (session_id, user_id, handle, is_authenticated, \
     data, created_at, expires_at, last_accessed_at) \
     VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8) \
     ON CONFLICT (session_id) DO UPDATE SET user_id = EXCLUDED.user_id, \
     handle = EXCLUDED.handle, is_authenticated = EXCLUDED.is_authenticated, \
     data = EXCLUDED.data, created_at = EXCLUDED.created_at, \
     expires_at = EXCLUDED.expires_at, last_accessed_at = EXCLUDED.last_accessed_at";
/// `insert`: a new session never replaces another (0 rows means the id is taken).
const INSERT_NEW: &str = "INSERT INTO sessions (session_id, user_id, handle, is_authenticated, \
     data, created_at, expires_at, last_accessed_at) \
     VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8) ON CONFLICT (session_id) DO NOTHING";
const DELETE_ONE: &str = "DELETE FROM sessions WHERE session_id = $1";
const EXISTS: &str = "SELECT EXISTS(SELECT 1 FROM sessions WHERE session_id = $1)";
const CLEANUP: &str = "DELETE FROM sessions WHERE expires_at < $1";
/// The request path in one round trip. `$1` id, `$2` now, `$3` new `expires_at` (NULL:
/// keep), `$4` = now - touch_after (due when `last_accessed_at <= $4`, the overflow-free
/// form of `Touch::is_due`). The CTEs see one snapshot and their conditions exclude each
/// other: an expired row is deleted; a live, due row is updated and returned; a live row
/// that is not due is returned as stored.
const LOAD: &str = concat!(
    "WITH expired AS (DELETE FROM sessions WHERE session_id = $1 AND expires_at <= $2), ",
    "touched AS (UPDATE sessions SET last_accessed_at = $2, ",
    "expires_at = COALESCE($3::bigint, expires_at) ",
    "WHERE session_id = $1 AND expires_at > $2 AND last_accessed_at <= $4 RETURNING ",
    columns!(),
    ") SELECT * FROM touched UNION ALL SELECT ",
    columns!(),
    " FROM sessions WHERE session_id = $1 AND expires_at > $2 ",
    "AND NOT EXISTS (SELECT 1 FROM touched)"
);
const RENAME: &str = concat!(
    "UPDATE sessions SET session_id = $2 WHERE session_id = $1 AND expires_at > $3 RETURNING ",
    columns!()
);
/// `COLLATE "C"`: code-point order, the same as SQLite's, whatever the database locale.
const LIST_BY_USER: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM sessions WHERE user_id = $1 ORDER BY created_at, session_id COLLATE \"C\""
);
const DELETE_BY_USER: &str = "DELETE FROM sessions WHERE user_id = $1";
const DELETE_BY_USER_EXCEPT: &str = "DELETE FROM sessions WHERE user_id = $1 AND session_id <> $2";

/// Sessions in a PostgreSQL table `sessions` (in the connection's `search_path`).
pub struct PostgresAdapter {
    pool: PgPool,
}

impl std::fmt::Debug for PostgresAdapter {
    // The pool's Debug leaves out the configuration, which holds the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.pool.fmt(f)
    }
}

impl PostgresAdapter {
    /// Prepares a pool for `connection_string` (a `postgresql://` URL or `key=value` pairs).
    /// Does not connect: the first call does.
    pub fn new(connection_string: &str, options: PostgresOptions) -> Result<PostgresAdapter> {
        let schema = Schema {
            sql: SCHEMA,
            advisory_lock_key: SCHEMA_LOCK_KEY,
            action: "create the sessions table",
        };
        let pool = PgPool::new(
            connection_string,
            &options,
            "slices-session",
            "PostgresAdapter",
            schema,
        )?;
        Ok(PostgresAdapter { pool })
    }

    /// Creates the table and indexes if missing (at most once per adapter; safe to run from
    /// several processes at once). Optional: the first call of any method does it.
    pub async fn initialize(&self) -> Result<()> {
        self.pool.ensure_schema().await
    }

    async fn query(
        &self,
        action: &'static str,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>> {
        self.pool.query(action, sql, params).await
    }

    async fn execute(&self, action: &'static str, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        self.pool.execute(action, sql, params).await
    }

    async fn query_session(
        &self,
        action: &'static str,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Option<SessionData>> {
        match self.query(action, sql, params).await?.first() {
            Some(row) => read_session(row).map(Some),
            None => Ok(None),
        }
    }
}

fn read_session(row: &Row) -> Result<SessionData> {
    let err = |source| SessionError::Postgres {
        action: "read a session row",
        source,
    };
    let data: Option<String> = row.try_get(4).map_err(err)?;
    Ok(SessionData {
        session_id: row.try_get(0).map_err(err)?,
        user_id: row.try_get(1).map_err(err)?,
        handle: row.try_get(2).map_err(err)?,
        is_authenticated: row.try_get(3).map_err(err)?,
        // JSONB `null` is "absent" (SPEC §2: `data` is never null).
        data: data.filter(|json| json != "null"),
        created_at: row.try_get(5).map_err(err)?,
        expires_at: row.try_get(6).map_err(err)?,
        last_accessed_at: row.try_get(7).map_err(err)?,
    })
}

/// The `UPDATE` of a non-empty patch and its values, the session id last. Column names come
/// only from this fixed list; every value is bound.
fn patch_update<'a>(patch: &'a SessionPatch, id: &'a &'a str) -> (String, Vec<Param<'a>>) {
    let fields: [(&str, &str, Option<Param<'a>>); 7] = [
        (
            "user_id",
            "",
            patch.user_id.as_ref().map(|v| v as Param<'a>),
        ),
        ("handle", "", patch.handle.as_ref().map(|v| v as Param<'a>)),
        (
            "is_authenticated",
            "",
            patch.is_authenticated.as_ref().map(|v| v as Param<'a>),
        ),
        // Bound as text, parsed by the server, so the core never re-encodes JSON.
        (
            "data",
            "::text::jsonb",
            patch.data.as_ref().map(|v| v as Param<'a>),
        ),
        (
            "created_at",
            "",
            patch.created_at.as_ref().map(|v| v as Param<'a>),
        ),
        (
            "expires_at",
            "",
            patch.expires_at.as_ref().map(|v| v as Param<'a>),
        ),
        (
            "last_accessed_at",
            "",
            patch.last_accessed_at.as_ref().map(|v| v as Param<'a>),
        ),
    ];
    let mut sql = String::from("UPDATE sessions SET ");
    let mut values: Vec<Param<'a>> = Vec::with_capacity(8);
    for (column, cast, value) in fields {
        if let Some(value) = value {
            if !values.is_empty() {
                sql.push_str(", ");
            }
            values.push(value);
            sql.push_str(&format!("{column} = ${}{cast}", values.len()));
        }
    }
    values.push(id);
    sql.push_str(&format!(" WHERE session_id = ${}", values.len()));
    (sql, values)
}

#[async_trait]
impl SessionAdapter for PostgresAdapter {
    async fn get(&self, id: &str) -> Result<Option<SessionData>> {
        self.query_session("read the session", SELECT_ONE, &[&id])
            .await
    }

    async fn set(&self, id: &str, data: &SessionData) -> Result<()> {
        self.execute(
            "store the session",
            UPSERT,
            &[
                &id,
                &data.user_id,
                &data.handle,
                &data.is_authenticated,
                &data.data,
                &data.created_at,
                &data.expires_at,
                &data.last_accessed_at,
            ],
        )
        .await
        .map(|_| ())
    }

    async fn insert(&self, id: &str, data: &SessionData) -> Result<()> {
        let inserted = self
            .execute(
                "store the new session",
                INSERT_NEW,
                &[
                    &id,
                    &data.user_id,
                    &data.handle,
                    &data.is_authenticated,
                    &data.data,
                    &data.created_at,
                    &data.expires_at,
                    &data.last_accessed_at,
                ],
            )
            .await?;
        if inserted == 0 {
            return Err(SessionError::IdInUse(id.to_owned()));
        }
        Ok(())
    }

    async fn update(&self, id: &str, patch: &SessionPatch) -> Result<bool> {
        if patch.is_empty() {
            return self.exists(id).await;
        }
        let (sql, values) = patch_update(patch, &id);
        Ok(self.execute("update the session", &sql, &values).await? > 0)
    }

    async fn delete(&self, id: &str) -> Result<()> {
        self.execute("delete the session", DELETE_ONE, &[&id])
            .await
            .map(|_| ())
    }

    async fn cleanup(&self, expires_before: Millis) -> Result<u64> {
        self.execute("delete expired sessions", CLEANUP, &[&expires_before])
            .await
    }

    async fn exists(&self, id: &str) -> Result<bool> {
        const ACTION: &str = "check whether the session exists";
        let rows = self.query(ACTION, EXISTS, &[&id]).await?;
        match rows.first() {
            Some(row) => row.try_get(0).map_err(|source| SessionError::Postgres {
                action: ACTION,
                source,
            }),
            None => Ok(false),
        }
    }

    fn is_sync(&self) -> bool {
        false
    }

    async fn list_by_user(&self, user_id: &str) -> Result<Vec<SessionData>> {
        self.query("list the user's sessions", LIST_BY_USER, &[&user_id])
            .await?
            .iter()
            .map(read_session)
            .collect()
    }

    async fn delete_by_user(&self, user_id: &str, except: Option<&str>) -> Result<u64> {
        const ACTION: &str = "delete the user's sessions";
        match except {
            Some(keep) => {
                self.execute(ACTION, DELETE_BY_USER_EXCEPT, &[&user_id, &keep])
                    .await
            }
            None => self.execute(ACTION, DELETE_BY_USER, &[&user_id]).await,
        }
    }

    async fn load(&self, id: &str, touch: &Touch) -> Result<Option<SessionData>> {
        let new_expires_at = touch.rolling_ttl.map(|ttl| touch.now.saturating_add(ttl));
        let due_before = touch.now.saturating_sub(touch.touch_after);
        self.query_session(
            "load the session",
            LOAD,
            &[&id, &touch.now, &new_expires_at, &due_before],
        )
        .await
    }

    async fn rename(&self, old_id: &str, new_id: &str, now: Millis) -> Result<Option<SessionData>> {
        self.query_session("rename the session", RENAME, &[&old_id, &new_id, &now])
            .await
            .map_err(|e| match e {
                SessionError::Postgres { source, .. }
                    if source.code()
                        == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
                {
                    SessionError::IdInUse(new_id.to_owned())
                }
                other => other,
            })
    }

    async fn close(&self) -> Result<()> {
        self.pool.close();
        Ok(())
    }
}

//! PostgreSQL adapter (SPEC §5 PostgresAdapter): a bounded, lazily connecting pool.
//!
//! Every operation is one statement (the request path included), prepared once per
//! connection. The schema is created on first use, so `initialize()` is optional. A call
//! whose connection turns out to be dead (server restarted) is retried once on a fresh
//! connection: all our statements may safely run twice.

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::adapter::{SessionAdapter, Touch};
use crate::error::{Result, SessionError};
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

type Param<'a> = &'a (dyn ToSql + Sync);

/// Sessions in a PostgreSQL table `sessions` (in the connection's `search_path`).
pub struct PostgresAdapter {
    pool: Pool,
    /// Set once the schema exists; a failed attempt leaves it empty, so the next call retries.
    schema: tokio::sync::OnceCell<()>,
    closed: AtomicBool,
    max_connections: usize,
    wait_timeout_ms: u64,
    connect_timeout_ms: u64,
    query_timeout: Option<std::time::Duration>,
}

impl std::fmt::Debug for PostgresAdapter {
    // Not derived: the pool's configuration holds the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresAdapter")
            .field("max_connections", &self.max_connections)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// A lazy pool for `connection_string` (shared by the session adapter and the OAuth storage):
/// checks the string and options, applies our connect timeout unless the URL sets one, and
/// names the connections `application_name` unless the URL does. Returns the pool and the
/// connect timeout in effect (ms).
pub(crate) fn connection_pool(
    connection_string: &str,
    options: &PostgresOptions,
    application_name: &str,
) -> Result<(Pool, u64)> {
    let mut config = tokio_postgres::Config::from_str(connection_string).map_err(|e| {
        // The string itself is not repeated: it may hold a password.
        SessionError::invalid_argument(
            "connectionString",
            format!("not a valid PostgreSQL connection string ({e})"),
        )
    })?;
    if config.get_ssl_mode() == SslMode::Require {
        return Err(SessionError::invalid_argument(
            "connectionString",
            "sslmode=require needs TLS, which this build does not support yet",
        ));
    }
    if options.max_connections == 0 {
        return Err(SessionError::invalid_argument(
            "maxConnections",
            "must be at least 1",
        ));
    }
    if config.get_application_name().is_none() {
        // Lets a DBA tell our connections apart in pg_stat_activity.
        config.application_name(application_name);
    }
    let connect_timeout_ms = match config.get_connect_timeout() {
        Some(t) => u64::try_from(t.as_millis()).unwrap_or(u64::MAX),
        None => {
            if options.connect_timeout_ms > 0 {
                config.connect_timeout(Duration::from_millis(options.connect_timeout_ms));
            }
            options.connect_timeout_ms
        }
    };
    let limit = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
    let manager = Manager::from_config(
        config,
        NoTls,
        // Fast: a closed connection is dropped on checkout without a round trip; one
        // that died unnoticed is caught by the retry in `with_retry`.
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(options.max_connections)
        .wait_timeout(limit(options.wait_timeout_ms))
        .create_timeout(limit(connect_timeout_ms))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| SessionError::Pool(format!("cannot build the connection pool: {e}")))?;
    Ok((pool, connect_timeout_ms))
}

impl PostgresAdapter {
    /// Prepares a pool for `connection_string` (a `postgresql://` URL or `key=value` pairs).
    /// Does not connect: the first call does.
    pub fn new(connection_string: &str, options: PostgresOptions) -> Result<PostgresAdapter> {
        let (pool, connect_timeout_ms) =
            connection_pool(connection_string, &options, "slices-session")?;
        Ok(PostgresAdapter {
            pool,
            schema: tokio::sync::OnceCell::new(),
            closed: AtomicBool::new(false),
            max_connections: options.max_connections,
            wait_timeout_ms: options.wait_timeout_ms,
            connect_timeout_ms,
            query_timeout: (options.query_timeout_ms > 0)
                .then(|| std::time::Duration::from_millis(options.query_timeout_ms)),
        })
    }

    /// Creates the table and indexes if missing (at most once per adapter; safe to run from
    /// several processes at once). Optional: the first call of any method does it.
    pub async fn initialize(&self) -> Result<()> {
        self.ensure_schema().await
    }

    async fn ensure_schema(&self) -> Result<()> {
        // Checked here too: once the schema exists, no call would reach the pool's check.
        if self.closed.load(Ordering::Acquire) {
            return Err(SessionError::AdapterClosed);
        }
        self.schema
            .get_or_try_init(|| self.create_schema())
            .await
            .map(|_| ())
    }

    async fn create_schema(&self) -> Result<()> {
        self.with_retry("create the sessions table", |mut client| async move {
            let result = async {
                let tx = client.transaction().await?;
                tx.execute(
                    "SELECT pg_advisory_xact_lock($1::bigint)",
                    &[&SCHEMA_LOCK_KEY],
                )
                .await?;
                tx.batch_execute(SCHEMA).await?;
                tx.commit().await
            }
            .await;
            (client, result)
        })
        .await
    }

    /// A pooled connection, or the reason there is none.
    async fn client(&self) -> Result<Object> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SessionError::AdapterClosed);
        }
        // The pool's timeouts and the connection tasks need Tokio; without it they would
        // panic, so say so instead.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SessionError::Internal(
                "PostgresAdapter was called outside a Tokio runtime".into(),
            ));
        }
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(source) => SessionError::Postgres {
                action: "connect to the server",
                source,
            },
            PoolError::Closed => SessionError::AdapterClosed,
            PoolError::Timeout(TimeoutType::Wait) => SessionError::Pool(format!(
                "no connection became free within {} ms (all {} in use)",
                self.wait_timeout_ms, self.max_connections
            )),
            PoolError::Timeout(TimeoutType::Create) => SessionError::Pool(format!(
                "connecting to the server took longer than {} ms",
                self.connect_timeout_ms
            )),
            PoolError::Timeout(TimeoutType::Recycle) => {
                SessionError::Pool("checking a pooled connection timed out".into())
            }
            other => SessionError::Pool(other.to_string()),
        })
    }

    /// Runs `op` on a pooled connection; when the connection proves dead, once more on a
    /// fresh one. `op` hands the connection back so that a dead one can be thrown away.
    async fn with_retry<T, F, Fut>(&self, action: &'static str, mut op: F) -> Result<T>
    where
        F: FnMut(Object) -> Fut,
        Fut: Future<Output = (Object, std::result::Result<T, tokio_postgres::Error>)>,
    {
        let mut retried = false;
        loop {
            // The limit covers the whole attempt: waiting for a connection, connecting, and
            // the statements (a hung server can stall any of them).
            let attempt = async {
                let client = self.client().await?;
                Ok::<_, SessionError>(op(client).await)
            };
            let (client, result) = match self.query_timeout {
                None => attempt.await?,
                Some(limit) => match tokio::time::timeout(limit, attempt).await {
                    Ok(done) => done?,
                    Err(_) => {
                        // A connection in use went back to the pool when the attempt was
                        // dropped; it may be stuck, and so may the idle ones: drop them all.
                        let _ = self.pool.retain(|_, _| false);
                        return Err(SessionError::Timeout {
                            backend: "PostgreSQL",
                            action,
                            ms: limit.as_millis() as u64,
                        });
                    }
                },
            };
            let source = match result {
                Ok(value) => return Ok(value),
                Err(source) => source,
            };
            if !connection_lost(&source) {
                return Err(SessionError::Postgres { action, source });
            }
            // Never let a dead connection back into the pool. The idle ones are most likely
            // dead too (a server restart ends them all), so drop them and connect afresh.
            drop(Object::take(client));
            let _ = self.pool.retain(|_, _| false);
            if retried {
                return Err(SessionError::Postgres { action, source });
            }
            retried = true;
        }
    }

    async fn query(
        &self,
        action: &'static str,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>> {
        self.ensure_schema().await?;
        self.with_retry(action, |client| async move {
            let result = match client.prepare_cached(sql).await {
                Ok(stmt) => client.query(&stmt, params).await,
                Err(e) => Err(e),
            };
            (client, result)
        })
        .await
    }

    async fn execute(&self, action: &'static str, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        self.ensure_schema().await?;
        self.with_retry(action, |client| async move {
            let result = match client.prepare_cached(sql).await {
                Ok(stmt) => client.execute(&stmt, params).await,
                Err(e) => Err(e),
            };
            (client, result)
        })
        .await
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

/// Whether the error means the connection is gone (server restart or shutdown, network
/// failure), so that the same statement may succeed on a new connection.
fn connection_lost(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        return *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::IDLE_SESSION_TIMEOUT;
    }
    // Socket errors (reset, broken pipe) carry the io::Error as their source.
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
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
        self.closed.store(true, Ordering::Release);
        // Idle connections are closed now; ones in use close when their call finishes.
        self.pool.close();
        Ok(())
    }
}

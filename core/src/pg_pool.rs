//! The PostgreSQL connection handling shared by the session adapter (`crate::postgres`) and
//! the OAuth storage (`crate::oauth::postgres`): a bounded deadpool pool that connects
//! lazily, a schema created once on first use, the per-call time limit, and one retry on a
//! fresh connection when a connection proves dead (every statement of both callers is safe
//! to run twice).

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::error::{Result, SessionError};
use crate::postgres::PostgresOptions;

pub(crate) type Param<'a> = &'a (dyn ToSql + Sync);

/// What a pool's owner creates on first use.
pub(crate) struct Schema {
    /// `CREATE ... IF NOT EXISTS` statements, run in one transaction.
    pub sql: &'static str,
    /// Serialises schema creation across processes: concurrent `CREATE TABLE IF NOT EXISTS`
    /// can fail with a unique violation in the catalog.
    pub advisory_lock_key: i64,
    /// For errors: "create the sessions table".
    pub action: &'static str,
}

/// A lazily connecting pool with its schema, closed state and limits.
pub(crate) struct PgPool {
    pool: Pool,
    schema: Schema,
    /// Set once the schema exists; a failed attempt leaves it empty, so the next call retries.
    schema_ready: tokio::sync::OnceCell<()>,
    closed: AtomicBool,
    /// The public type's name, for the "outside a Tokio runtime" error.
    owner: &'static str,
    max_connections: usize,
    wait_timeout_ms: u64,
    connect_timeout_ms: u64,
    query_timeout: Option<Duration>,
}

impl std::fmt::Debug for PgPool {
    // Not derived: the pool's configuration holds the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(self.owner)
            .field("max_connections", &self.max_connections)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl PgPool {
    /// Checks `connection_string` and `options` and prepares the pool; does not connect.
    /// Applies our connect timeout unless the URL sets one, and names the connections
    /// `application_name` unless the URL does.
    pub fn new(
        connection_string: &str,
        options: &PostgresOptions,
        application_name: &str,
        owner: &'static str,
        schema: Schema,
    ) -> Result<PgPool> {
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
        Ok(PgPool {
            pool,
            schema,
            schema_ready: tokio::sync::OnceCell::new(),
            closed: AtomicBool::new(false),
            owner,
            max_connections: options.max_connections,
            wait_timeout_ms: options.wait_timeout_ms,
            connect_timeout_ms,
            query_timeout: limit(options.query_timeout_ms),
        })
    }

    /// Creates the schema if missing (at most once per pool; safe from several processes).
    pub async fn ensure_schema(&self) -> Result<()> {
        // Checked here too: once the schema exists, no call would reach the pool's check.
        if self.closed.load(Ordering::Acquire) {
            return Err(SessionError::AdapterClosed);
        }
        self.schema_ready
            .get_or_try_init(|| self.create_schema())
            .await
            .map(|_| ())
    }

    async fn create_schema(&self) -> Result<()> {
        let Schema {
            sql,
            advisory_lock_key,
            action,
        } = self.schema;
        self.with_retry(action, |mut client| async move {
            let result = async {
                let tx = client.transaction().await?;
                tx.execute(
                    "SELECT pg_advisory_xact_lock($1::bigint)",
                    &[&advisory_lock_key],
                )
                .await?;
                tx.batch_execute(sql).await?;
                tx.commit().await
            }
            .await;
            (client, result)
        })
        .await
    }

    /// Refuses new calls and closes the idle connections; ones in use close when their call
    /// finishes.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.pool.close();
    }

    /// A pooled connection, or the reason there is none.
    async fn client(&self) -> Result<Object> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SessionError::AdapterClosed);
        }
        // The pool's timeouts and the connection tasks need Tokio; without it they would
        // panic, so say so instead.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SessionError::Internal(format!(
                "{} was called outside a Tokio runtime",
                self.owner
            )));
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
                            ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
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

    /// One prepared (and per-connection cached) statement returning rows.
    pub async fn query(
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

    /// One prepared (and per-connection cached) statement; the number of rows it changed.
    pub async fn execute(
        &self,
        action: &'static str,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<u64> {
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

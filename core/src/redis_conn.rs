//! The Redis connection handling shared by the session adapter (`crate::redis`) and the OAuth
//! storage (`crate::oauth::redis`): a few multiplexed connections (the `redis` crate's
//! `ConnectionManager`, which pipelines concurrent calls on one socket and reconnects after a
//! server restart), opened lazily on the first call, the per-call time limit, and one retry
//! after a lost connection for the calls that are safe to run twice.
//!
//! Every operation is one command or one Lua script (`EVALSHA`, loaded on first use), so each
//! call is one round trip and atomic on the server.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, Script};

use crate::error::{Result, SessionError};

/// Options for [`crate::redis::RedisAdapter`] and [`crate::oauth::RedisOAuthStorage`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisOptions {
    /// Prepended to every key this store writes; the default is the store's own
    /// (`slices:session:` for sessions, `slices:oauth:` for OAuth).
    pub prefix: Option<String>,
    /// Multiplexed connections to open (`maxConnections`): each carries any number of
    /// concurrent calls, pipelined.
    pub max_connections: usize,
    /// Limit for opening one connection, in ms (0: no limit).
    pub connect_timeout_ms: u64,
    /// Limit for one call, from sending it to the answer, in ms (0: no limit). A server that
    /// stops answering (paused, network cut) would otherwise hold the call for as long as TCP
    /// does.
    pub query_timeout_ms: u64,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: None,
            max_connections: 2,
            connect_timeout_ms: 10_000,
            query_timeout_ms: 10_000,
        }
    }
}

/// Whether a call may be sent again after its connection was lost: the first attempt may have
/// run on the server before the connection dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Running it twice has the effect of running it once.
    Safe,
    /// It must run at most once (it removes what it returns, or moves a key).
    Never,
}

/// Lazily opened multiplexed connections with the closed state and the limits.
pub(crate) struct RedisConn {
    client: Client,
    /// Opened on the first call: `ConnectionManager` needs a Tokio runtime, which the
    /// constructor (called from JS) may not be in.
    managers: tokio::sync::OnceCell<Vec<ConnectionManager>>,
    next: AtomicUsize,
    closed: AtomicBool,
    /// The public type's name, for errors.
    owner: &'static str,
    max_connections: usize,
    connect_timeout: Option<Duration>,
    query_timeout: Option<Duration>,
    pub prefix: String,
}

impl std::fmt::Debug for RedisConn {
    // Not derived: the client's connection info holds the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(self.owner)
            .field("prefix", &self.prefix)
            .field("max_connections", &self.max_connections)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl RedisConn {
    /// Checks `url` and `options`; does not connect.
    pub fn new(
        url: &str,
        options: &RedisOptions,
        default_prefix: &str,
        owner: &'static str,
    ) -> Result<RedisConn> {
        let scheme = url.split_once("://").map(|(s, _)| s);
        if !matches!(
            scheme,
            Some("redis" | "rediss" | "valkey" | "valkeys" | "redis+unix" | "valkey+unix" | "unix")
        ) {
            // The URL itself is not repeated: it may hold a password.
            return Err(SessionError::invalid_argument(
                "url",
                "not a Redis URL: expected redis://, rediss://, valkey://, valkeys:// or \
                 redis+unix:// (Redis Cluster and Sentinel are not supported)",
            ));
        }
        let client = Client::open(url).map_err(|e| {
            SessionError::invalid_argument("url", format!("not a valid Redis URL ({e})"))
        })?;
        if options.max_connections == 0 {
            return Err(SessionError::invalid_argument(
                "maxConnections",
                "must be at least 1",
            ));
        }
        let prefix = options
            .prefix
            .clone()
            .unwrap_or_else(|| default_prefix.to_owned());
        let limit = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        Ok(RedisConn {
            client,
            managers: tokio::sync::OnceCell::new(),
            next: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            owner,
            max_connections: options.max_connections,
            connect_timeout: limit(options.connect_timeout_ms),
            query_timeout: limit(options.query_timeout_ms),
            prefix,
        })
    }

    /// Refuses new calls; the connections close when the last call using them ends.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// One of the connections, round robin.
    async fn connection(&self) -> Result<ConnectionManager> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SessionError::AdapterClosed);
        }
        // The connections' tasks and timers need Tokio; without it they would panic.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SessionError::Internal(format!(
                "{} was called outside a Tokio runtime",
                self.owner
            )));
        }
        let managers = self
            .managers
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(self.connect_timeout)
                    .set_response_timeout(self.query_timeout)
                    // Reconnect quickly and give up soon: a call waiting for a reconnect is
                    // still bounded by the query timeout, and the next call tries again.
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(1_000));
                (0..self.max_connections)
                    .map(|_| {
                        ConnectionManager::new_lazy_with_config(self.client.clone(), config.clone())
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|source| SessionError::Redis {
                        action: "prepare the connections",
                        source,
                    })
            })
            .await?;
        let i = self.next.fetch_add(1, Ordering::Relaxed) % managers.len();
        Ok(managers[i].clone())
    }

    /// Runs `op` on a connection within the call's time limit; after a lost connection, once
    /// more when `retry` allows (the connection manager has started reconnecting by then).
    pub async fn call<T, F, Fut>(&self, action: &'static str, retry: Retry, mut op: F) -> Result<T>
    where
        F: FnMut(ConnectionManager, bool) -> Fut,
        Fut: Future<Output = std::result::Result<T, RedisError>>,
    {
        // The time limit needs Tokio's timer: checked before it is armed, not only in
        // `connection()`.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SessionError::Internal(format!(
                "{} was called outside a Tokio runtime",
                self.owner
            )));
        }
        let attempts = async {
            // A retry goes to the same connection: its manager started reconnecting when it
            // saw the loss, while the next one round robin may be just as dead (a restart or a
            // network cut ends them all).
            let conn = self.connection().await?;
            let mut retried = false;
            loop {
                match op(conn.clone(), retried).await {
                    Ok(value) => return Ok(value),
                    Err(source) => {
                        let lost = source.is_connection_dropped()
                            || source.is_io_error()
                            || source.is_unrecoverable_error();
                        if !lost || retried || retry == Retry::Never {
                            return Err(self.error(action, source));
                        }
                        retried = true;
                    }
                }
            }
        };
        match self.query_timeout {
            None => attempts.await,
            Some(limit) => match tokio::time::timeout(limit, attempts).await {
                Ok(done) => done,
                Err(_) => Err(SessionError::Timeout {
                    backend: "Redis",
                    action,
                    ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                }),
            },
        }
    }

    fn error(&self, action: &'static str, source: RedisError) -> SessionError {
        if source.is_timeout() {
            if let Some(limit) = self.query_timeout {
                return SessionError::Timeout {
                    backend: "Redis",
                    action,
                    ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                };
            }
        }
        SessionError::Redis { action, source }
    }

    /// Runs a Lua script (`EVALSHA`, loading it on a `NOSCRIPT` answer) with `prefix` as
    /// `ARGV[1]` and `args` after it.
    pub async fn script<T: redis::FromRedisValue>(
        &self,
        action: &'static str,
        retry: Retry,
        script: &Script,
        args: &[&dyn ArgLike],
    ) -> Result<T> {
        self.call(action, retry, |mut conn, _| async move {
            let mut invocation = script.prepare_invoke();
            invocation.arg(self.prefix.as_str());
            for a in args {
                a.push(&mut invocation);
            }
            invocation.invoke_async(&mut conn).await
        })
        .await
    }
}

/// A script argument: strings and integers, passed as the decimal or UTF-8 text Redis keeps.
pub(crate) trait ArgLike: Sync {
    fn push(&self, invocation: &mut redis::ScriptInvocation<'_>);
}

impl ArgLike for str {
    fn push(&self, invocation: &mut redis::ScriptInvocation<'_>) {
        invocation.arg(self);
    }
}

impl ArgLike for &str {
    fn push(&self, invocation: &mut redis::ScriptInvocation<'_>) {
        invocation.arg(*self);
    }
}

impl ArgLike for String {
    fn push(&self, invocation: &mut redis::ScriptInvocation<'_>) {
        invocation.arg(self.as_str());
    }
}

impl ArgLike for i64 {
    fn push(&self, invocation: &mut redis::ScriptInvocation<'_>) {
        invocation.arg(*self);
    }
}

impl ArgLike for usize {
    fn push(&self, invocation: &mut redis::ScriptInvocation<'_>) {
        invocation.arg(*self);
    }
}

/// The text of a reply element, `None` for a nil one.
pub(crate) fn reply_text(value: &redis::Value) -> std::result::Result<Option<String>, String> {
    match value {
        redis::Value::Nil => Ok(None),
        redis::Value::BulkString(bytes) => String::from_utf8(bytes.clone())
            .map(Some)
            .map_err(|_| "a field is not UTF-8 text".to_owned()),
        redis::Value::SimpleString(s) => Ok(Some(s.clone())),
        redis::Value::VerbatimString { text, .. } => Ok(Some(text.clone())),
        redis::Value::Int(n) => Ok(Some(n.to_string())),
        other => Err(format!("unexpected reply element {other:?}")),
    }
}

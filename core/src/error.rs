//! Typed errors. Every failure the core can report is one of these; the bindings map
//! [`ErrorKind`] to the JS error classes of SPEC §1 (`TypeError` for bad arguments).

use thiserror::Error;

pub type Result<T, E = SessionError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum SessionError {
    #[error("the session store is closed")]
    StoreClosed,

    #[error("the adapter is closed")]
    AdapterClosed,

    /// A caller passed a value of the wrong type or shape; `name` is the argument.
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument { name: String, reason: String },

    /// Cookie options that browsers would silently drop (SPEC §4 [beyond]).
    #[error("invalid cookie options: {0}")]
    InvalidCookieOptions(String),

    /// An optional adapter capability a custom adapter does not implement.
    #[error("{operation} is not supported by this adapter (it does not implement `{method}`)")]
    Unsupported {
        operation: &'static str,
        method: &'static str,
    },

    #[error("SQLite error while trying to {action}: {source}")]
    Sqlite {
        action: &'static str,
        #[source]
        source: rusqlite::Error,
    },

    #[error(
        "PostgreSQL error while trying to {action}: {}",
        postgres_detail(source)
    )]
    Postgres {
        action: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },

    #[error("Redis error while trying to {action}: {source}")]
    Redis {
        action: &'static str,
        #[source]
        source: redis::RedisError,
    },

    #[error("PostgreSQL connection pool: {0}")]
    Pool(String),

    /// A new session id (from `generateId`) that another session already has: writing it
    /// would hand that session to someone else.
    #[error("session id `{0}` is already in use (generateId returned a duplicate)")]
    IdInUse(String),

    /// The database did not answer in time; the connection is dropped.
    #[error("{backend} did not answer within {ms} ms while trying to {action}")]
    Timeout {
        backend: &'static str,
        action: &'static str,
        ms: u64,
    },

    /// A stored row that cannot be turned into a session (e.g. `data` that is not JSON).
    #[error("stored session `{session_id}` is corrupt: {reason}")]
    Corrupt { session_id: String, reason: String },

    /// A custom (JS) adapter rejected or returned something unusable.
    #[error("adapter `{method}` failed: {message}")]
    Adapter {
        method: &'static str,
        message: String,
    },

    /// A lock (mutex) was poisoned by a panic elsewhere; reported, never propagated as a panic.
    #[error("internal error: {0}")]
    Internal(String),

    /// An OAuth failure (SPEC §6): `code` is the server's OAuth error code when it sent one
    /// (`invalid_grant`, `invalid_client`, ...), else one of ours (`timeout`,
    /// `network_error`, `refresh_response_lost`, ...; see docs/oauth.md).
    #[error("OAuth error ({code}): {message}")]
    OAuth { code: String, message: String },
}

/// Coarse classification used by the bindings to pick an error class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `SessionStoreClosedError`
    Closed,
    /// `TypeError`
    InvalidArgument,
    /// `SessionError` with a clear message (configuration problem).
    Config,
    /// `AdapterError`: the storage failed.
    Adapter,
    /// `OAuthError` (with `code`).
    OAuth,
}

impl SessionError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SessionError::StoreClosed => ErrorKind::Closed,
            SessionError::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            SessionError::InvalidCookieOptions(_)
            | SessionError::Unsupported { .. }
            | SessionError::IdInUse(_) => ErrorKind::Config,
            SessionError::AdapterClosed
            | SessionError::Sqlite { .. }
            | SessionError::Postgres { .. }
            | SessionError::Redis { .. }
            | SessionError::Pool(_)
            | SessionError::Timeout { .. }
            | SessionError::Corrupt { .. }
            | SessionError::Adapter { .. }
            | SessionError::Internal(_) => ErrorKind::Adapter,
            SessionError::OAuth { .. } => ErrorKind::OAuth,
        }
    }

    pub fn invalid_argument(name: impl Into<String>, reason: impl Into<String>) -> Self {
        SessionError::InvalidArgument {
            name: name.into(),
            reason: reason.into(),
        }
    }
}

/// `tokio_postgres::Error` prints only its kind ("db error"); the server's message and the
/// I/O cause are in the source chain, and users need them.
fn postgres_detail(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

//! OAuth sessions (SPEC §6): `withOAuthSession`'s manager, the native `OAuthClient`, OAuth
//! token storages, and single-flight token refresh against an AIP-style authorization
//! server. docs/oauth.md describes the refresh protocol, the locks and the failure rules.
//!
//! | module | concept |
//! |---|---|
//! | [`at_rest`] | sealed tokens and hashed session ids, around any storage |
//! | [`config`] | `OAuthConfig`, `OAuthTokens`, `PkceState`, the resolved endpoints |
//! | [`storage`] | the `OAuthStorage` trait (three required methods, the rest provided) |
//! | [`memory`], [`sqlite`], [`postgres`], [`redis`](self::redis) | the native storages |
//! | `http` | token and userinfo requests, and the classification of their failures |
//! | `pkce` | random state and verifier, S256 challenge |
//! | `refresh` | the refresh coordinator: single flight in a process, a lease across processes |
//! | [`manager`] | `OAuthSessionManager` (`withOAuthSession`) and its events |
//! | [`client`] | `OAuthClient` |

pub mod at_rest;
pub mod client;
pub mod config;
pub(crate) mod http;
pub mod manager;
pub mod memory;
pub(crate) mod pkce;
pub mod postgres;
pub mod redis;
pub(crate) mod refresh;
pub mod sqlite;
pub mod storage;

pub use self::redis::RedisOAuthStorage;
pub use at_rest::{AtRest, AtRestOptions};
pub use client::{AuthorizationRequest, OAuthClient, OAuthClientOptions};
pub use config::{OAuthConfig, OAuthTokens, PkceState};
pub use manager::{NoopEvents, OAuthEvents, OAuthSessionManager, OAuthSessionOptions};
pub use memory::MemoryOAuthStorage;
pub use postgres::PostgresOAuthStorage;
pub use refresh::RefreshAttempt;
pub use sqlite::SqliteOAuthStorage;
pub use storage::OAuthStorage;

use crate::error::SessionError;

/// Shorthand for `SessionError::OAuth`.
pub(crate) fn oauth_error(code: impl Into<String>, message: impl Into<String>) -> SessionError {
    SessionError::OAuth {
        code: code.into(),
        message: message.into(),
    }
}

/// The OAuth error code of `error`, when it is an OAuth error.
pub fn oauth_error_code(error: &SessionError) -> Option<&str> {
    match error {
        SessionError::OAuth { code, .. } => Some(code),
        _ => None,
    }
}

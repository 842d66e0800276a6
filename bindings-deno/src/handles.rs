//! What the handles of `registry.rs` hold, and every operation on them.
//!
//! Operations are numbered (the JS shim keeps the same table in jsr/native.ts) and take their
//! arguments as one JSON array, parsed here into owned values before any future runs, so the
//! caller's buffer is no longer needed once the future exists.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use slices_session_core::adapter::SessionAdapter;
use slices_session_core::error::{Result, SessionError};
use slices_session_core::memory::MemoryAdapter;
use slices_session_core::postgres::{PostgresAdapter, PostgresOptions};
use slices_session_core::redis::RedisAdapter;
use slices_session_core::session::{Millis, SessionData, SessionPatch};
use slices_session_core::sqlite::{SqliteAdapter, SqliteOptions};
use slices_session_core::store::{SessionStore, StoreConfig};

use crate::buffer::Reply;
use crate::error::{FfiError, FfiResult};
use crate::js_bridge::{self, JsAdapter};
use crate::ops::numbered_ops;
use crate::registry::Registry;
use crate::wire::{AdapterSpec, JsInt, StoreSpec, WirePatch, WireSession};

pub static ADAPTERS: LazyLock<Registry<AdapterHandle>> = LazyLock::new(Registry::default);
pub static STORES: LazyLock<Registry<StoreHandle>> = LazyLock::new(Registry::default);

/// A call's work: run here with [`crate::runtime::complete`], or started on the runtime with
/// [`crate::channel::start`].
pub type Work = Pin<Box<dyn Future<Output = FfiResult<Reply>> + Send>>;

pub(crate) fn ready(reply: FfiResult<Reply>) -> Work {
    Box::pin(std::future::ready(reply))
}

pub(crate) fn args<T: DeserializeOwned>(op: &'static str, json: &[u8]) -> FfiResult<T> {
    serde_json::from_slice(json).map_err(|source| FfiError::Arguments { op, source })
}

/// Counts cross as JS numbers.
fn count(n: u64) -> FfiResult<Reply> {
    Reply::json(&n)
}

// ---- adapters ---------------------------------------------------------------------------------

pub enum AdapterHandle {
    Memory(Arc<MemoryAdapter>),
    Sqlite(Arc<SqliteAdapter>),
    Postgres(Arc<PostgresAdapter>),
    Redis(Arc<RedisAdapter>),
}

impl AdapterHandle {
    pub fn open(spec: AdapterSpec) -> FfiResult<AdapterHandle> {
        Ok(match spec {
            AdapterSpec::Memory => AdapterHandle::Memory(Arc::new(MemoryAdapter::new())),
            AdapterSpec::Sqlite {
                path,
                busy_timeout_ms,
            } => {
                let mut options = SqliteOptions::default();
                if let Some(JsInt(ms)) = busy_timeout_ms {
                    options.busy_timeout_ms = u32::try_from(ms.max(0)).unwrap_or(u32::MAX);
                }
                AdapterHandle::Sqlite(Arc::new(SqliteAdapter::open(&path, options)?))
            }
            AdapterSpec::Postgres {
                url,
                max_connections,
                query_timeout_ms,
            } => {
                let mut options = PostgresOptions::default();
                if let Some(JsInt(n)) = max_connections {
                    options.max_connections = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
                }
                if let Some(JsInt(ms)) = query_timeout_ms {
                    options.query_timeout_ms = u64::try_from(ms.max(0)).unwrap_or(u64::MAX);
                }
                AdapterHandle::Postgres(Arc::new(PostgresAdapter::new(&url, options)?))
            }
            AdapterSpec::Redis { url, options } => {
                AdapterHandle::Redis(Arc::new(RedisAdapter::new(&url, options.into())?))
            }
        })
    }

    pub fn shared(&self) -> Arc<dyn SessionAdapter> {
        match self {
            AdapterHandle::Memory(a) => a.clone(),
            AdapterHandle::Sqlite(a) => a.clone(),
            AdapterHandle::Postgres(a) => a.clone(),
            AdapterHandle::Redis(a) => a.clone(),
        }
    }

    fn memory(&self, method: &str) -> FfiResult<&MemoryAdapter> {
        match self {
            AdapterHandle::Memory(a) => Ok(a),
            _ => Err(FfiError::Usage(format!(
                "{method}() exists only on MemoryAdapter"
            ))),
        }
    }
}

numbered_ops!(
    /// The operations of `NativeAdapter` (npm/native.d.ts), by number.
    AdapterOp, "adapter", {
        Get => "get",
        Set => "set",
        Update => "update",
        Delete => "delete",
        Cleanup => "cleanup",
        Exists => "exists",
        ListByUser => "listByUser",
        DeleteByUser => "deleteByUser",
        Initialize => "initialize",
        Close => "close",
        Clear => "clear",
        Size => "size",
        Keys => "keys",
    }
);

/// Parses the arguments of `op` and returns its work.
pub fn adapter_call(handle: &AdapterHandle, op: AdapterOp, json: &[u8]) -> FfiResult<Work> {
    let name = op.name();
    let a = handle.shared();
    Ok(match op {
        AdapterOp::Get => {
            let (id,): (String,) = args(name, json)?;
            Box::pin(async move { Reply::session(a.get(&id).await?) })
        }
        AdapterOp::Set => {
            let (id, data): (String, WireSession) = args(name, json)?;
            let data = SessionData::from(data);
            Box::pin(async move {
                a.set(&id, &data).await?;
                Ok(Reply::null())
            })
        }
        AdapterOp::Update => {
            let (id, patch): (String, WirePatch) = args(name, json)?;
            let patch = SessionPatch::from(patch);
            Box::pin(async move { Reply::json(&a.update(&id, &patch).await?) })
        }
        AdapterOp::Delete => {
            let (id,): (String,) = args(name, json)?;
            Box::pin(async move {
                a.delete(&id).await?;
                Ok(Reply::null())
            })
        }
        AdapterOp::Cleanup => {
            let (JsInt(before),): (JsInt,) = args(name, json)?;
            Box::pin(async move { count(a.cleanup(before).await?) })
        }
        AdapterOp::Exists => {
            let (id,): (String,) = args(name, json)?;
            Box::pin(async move { Reply::json(&a.exists(&id).await?) })
        }
        AdapterOp::ListByUser => {
            let (user_id,): (String,) = args(name, json)?;
            Box::pin(async move { Reply::sessions(&a.list_by_user(&user_id).await?) })
        }
        AdapterOp::DeleteByUser => {
            let (user_id, except): (String, Option<String>) = args(name, json)?;
            Box::pin(async move { count(a.delete_by_user(&user_id, except.as_deref()).await?) })
        }
        AdapterOp::Initialize => match handle {
            AdapterHandle::Postgres(pg) => {
                let pg = pg.clone();
                Box::pin(async move {
                    pg.initialize().await?;
                    Ok(Reply::null())
                })
            }
            AdapterHandle::Redis(r) => {
                let r = r.clone();
                Box::pin(async move {
                    r.initialize().await?;
                    Ok(Reply::null())
                })
            }
            // The other adapters have nothing to do.
            _ => ready(Ok(Reply::null())),
        },
        AdapterOp::Close => Box::pin(async move {
            a.close().await?;
            Ok(Reply::null())
        }),
        AdapterOp::Clear => ready(
            handle
                .memory(name)
                .and_then(|m| Ok(m.clear()?))
                .map(|()| Reply::null()),
        ),
        AdapterOp::Size => ready(
            handle
                .memory(name)
                .and_then(|m| Ok(m.size()?))
                .and_then(|n| count(n as u64)),
        ),
        AdapterOp::Keys => ready(
            handle
                .memory(name)
                .and_then(|m| Ok(m.keys()?))
                .and_then(|keys| Reply::json(&keys)),
        ),
    })
}

// ---- stores -----------------------------------------------------------------------------------

pub struct StoreHandle {
    store: Arc<SessionStore>,
    /// `Some(channel)` when the adapter is JS code reached through that channel.
    js_channel: Option<u64>,
}

impl StoreHandle {
    pub fn open(spec: StoreSpec) -> FfiResult<StoreHandle> {
        let config = StoreConfig::from(spec.config);
        let (adapter, js_channel): (Arc<dyn SessionAdapter>, Option<u64>) =
            match (spec.adapter, spec.js) {
                (Some(id), None) => {
                    let handle = ADAPTERS
                        .get(id)
                        .ok_or(FfiError::Session(SessionError::AdapterClosed))?;
                    (handle.shared(), None)
                }
                (None, Some(js)) => {
                    let adapter = JsAdapter::new(&js)?;
                    let channel = adapter.channel_id();
                    (Arc::new(adapter), Some(channel))
                }
                _ => {
                    return Err(FfiError::Usage(
                        "a store needs exactly one of a native adapter or a JS adapter".into(),
                    ))
                }
            };
        Ok(StoreHandle {
            store: Arc::new(SessionStore::new(adapter, config)?),
            js_channel,
        })
    }

    pub fn is_sync(&self) -> bool {
        self.store.is_sync()
    }

    /// The store itself, for `withOAuthSession` (the manager keeps it alive).
    pub fn shared(&self) -> Arc<SessionStore> {
        self.store.clone()
    }

    /// Refuses a call that would block the JS thread on JS (see `js_bridge`).
    pub fn check_thread(&self, op: StoreOp) -> FfiResult<()> {
        match self.js_channel {
            Some(channel) if !op.is_immediate() => {
                js_bridge::ensure_not_js_thread(channel, "a store over a JS adapter")
            }
            _ => Ok(()),
        }
    }

    /// What the handle keeps after `close()`: only the configuration, for the cookie methods
    /// that keep working (SPEC §3). The adapter is let go here, not when JS garbage-collects
    /// the store: for a JS adapter that also releases the user's object on the JS side.
    pub fn released(&self) -> Option<StoreHandle> {
        let store = SessionStore::new(Arc::new(Released), self.store.config().clone()).ok()?;
        store.close();
        Some(StoreHandle {
            store: Arc::new(store),
            js_channel: None,
        })
    }
}

/// The adapter of a closed store. Never called: a closed store fails every adapter call first.
struct Released;

#[async_trait]
impl SessionAdapter for Released {
    async fn get(&self, _id: &str) -> Result<Option<SessionData>> {
        Err(SessionError::StoreClosed)
    }
    async fn set(&self, _id: &str, _data: &SessionData) -> Result<()> {
        Err(SessionError::StoreClosed)
    }
    async fn update(&self, _id: &str, _patch: &SessionPatch) -> Result<bool> {
        Err(SessionError::StoreClosed)
    }
    async fn delete(&self, _id: &str) -> Result<()> {
        Err(SessionError::StoreClosed)
    }
    async fn cleanup(&self, _expires_before: Millis) -> Result<u64> {
        Err(SessionError::StoreClosed)
    }
    async fn exists(&self, _id: &str) -> Result<bool> {
        Err(SessionError::StoreClosed)
    }
    fn is_sync(&self) -> bool {
        true
    }
}

numbered_ops!(
    /// The operations of `NativeStore` (npm/native.d.ts), by number.
    StoreOp, "store", {
        CreateSession => "createSession",
        GetSession => "getSession",
        UpdateSession => "updateSession",
        DeleteSession => "deleteSession",
        GetSessionFromCookieHeader => "getSessionFromCookieHeader",
        CurrentUser => "currentUser",
        SessionCookie => "sessionCookie",
        LogoutCookie => "logoutCookie",
        Cleanup => "cleanup",
        ListUserSessions => "listUserSessions",
        DeleteUserSessions => "deleteUserSessions",
        RegenerateSession => "regenerateSession",
        Close => "close",
    }
);

impl StoreOp {
    /// Done without the adapter: synchronous on every store.
    pub fn is_immediate(self) -> bool {
        matches!(
            self,
            StoreOp::SessionCookie | StoreOp::LogoutCookie | StoreOp::Close
        )
    }
}

/// Parses the arguments of `op` and returns its work. `Close` is handled by the export (it
/// swaps the registry entry).
pub fn store_call(handle: &StoreHandle, op: StoreOp, json: &[u8]) -> FfiResult<Work> {
    let name = op.name();
    let s = handle.store.clone();
    Ok(match op {
        StoreOp::CreateSession => {
            let (id, user_id, handle, data): (
                Option<String>,
                String,
                Option<String>,
                Option<String>,
            ) = args(name, json)?;
            Box::pin(
                async move { Reply::json(&s.create_session(id, user_id, handle, data).await?) },
            )
        }
        StoreOp::GetSession => {
            let (id,): (String,) = args(name, json)?;
            Box::pin(async move { Reply::session(s.get_session(&id).await?) })
        }
        StoreOp::UpdateSession => {
            let (id, patch): (String, WirePatch) = args(name, json)?;
            let patch = SessionPatch::from(patch);
            Box::pin(async move { Reply::json(&s.update_session(&id, &patch).await?) })
        }
        StoreOp::DeleteSession => {
            let (id,): (String,) = args(name, json)?;
            Box::pin(async move {
                s.delete_session(&id).await?;
                Ok(Reply::null())
            })
        }
        StoreOp::GetSessionFromCookieHeader => {
            let (header,): (Option<String>,) = args(name, json)?;
            Box::pin(async move {
                Reply::session(s.get_session_from_cookie_header(header.as_deref()).await?)
            })
        }
        StoreOp::CurrentUser => {
            let (header,): (Option<String>,) = args(name, json)?;
            Box::pin(async move { Reply::json(&s.current_user(header.as_deref()).await?) })
        }
        StoreOp::SessionCookie => {
            let (id,): (String,) = args(name, json)?;
            ready(Reply::json(&s.session_cookie(&id)))
        }
        StoreOp::LogoutCookie => ready(Reply::json(&s.logout_cookie())),
        StoreOp::Cleanup => Box::pin(async move { count(s.cleanup().await?) }),
        StoreOp::ListUserSessions => {
            let (user_id,): (String,) = args(name, json)?;
            Box::pin(async move { Reply::sessions(&s.list_user_sessions(&user_id).await?) })
        }
        StoreOp::DeleteUserSessions => {
            let (user_id, except): (String, Option<String>) = args(name, json)?;
            Box::pin(
                async move { count(s.delete_user_sessions(&user_id, except.as_deref()).await?) },
            )
        }
        StoreOp::RegenerateSession => {
            let (id, new_id): (String, Option<String>) = args(name, json)?;
            Box::pin(async move { Reply::json(&s.regenerate_session(&id, new_id).await?) })
        }
        StoreOp::Close => ready(Reply::json(&s.close())),
    })
}

//! OAuth (SPEC §6) through FFI: token storages, `withOAuthSession`'s manager and
//! `OAuthClient`, as numbered handles with numbered operations, mirroring the N-API binding's
//! `NativeOAuthStorage`, `NativeOAuthManager` and `NativeOAuthClient` (npm/native.d.ts).
//! Marshalling only; the rules live in `core::oauth`.
//!
//! | handle | opened from | calls |
//! |---|---|---|
//! | storage | `{"kind":"memory" \| "sqlite" \| "postgres" \| "redis" \| "js", ...}` | [`StorageOp`]; memory and SQLite synchronous, the others started (`channel.rs`) |
//! | manager | a store handle, a storage handle, the config, the options, the `onEvent` bridge | [`ManagerOp`]; always started (HTTP, and events go to JS) |
//! | client | the config, a storage handle, the session id | [`ClientOp`]; always started (HTTP) |
//!
//! One storage handle per JS storage object (npm/session.js keeps it), so the manager and every
//! client over that object share the core's refresh flight, which is keyed by the storage
//! `Arc`. Managers and clients hold their storage and store themselves: freeing a handle never
//! pulls anything from under another.

mod js;
pub mod wire;

use std::sync::{Arc, LazyLock};

use slices_session_core::error::SessionError;
use slices_session_core::oauth::at_rest::parse_hex_key;
use slices_session_core::oauth::{
    AtRest, AtRestOptions, MemoryOAuthStorage, OAuthClient, OAuthSessionManager, OAuthStorage,
    OAuthTokens, PostgresOAuthStorage, RedisOAuthStorage, SqliteOAuthStorage,
};
use slices_session_core::postgres::PostgresOptions;

use crate::buffer::Reply;
use crate::error::{FfiError, FfiResult};
use crate::handles::{args, ready, Work, STORES};
use crate::js_bridge::{self, Bridge};
use crate::ops::numbered_ops;
use crate::registry::Registry;
use crate::runtime;
use crate::wire::{JsInt, Opened};
use js::{JsOAuthEvents, JsOAuthStorage};
use wire::{
    ClientSpec, ManagerSpec, OAuthStorageOpen, OAuthStorageSpec, WireOAuthSession, WireTokens,
};

pub static STORAGES: LazyLock<Registry<StorageHandle>> = LazyLock::new(Registry::default);
pub static MANAGERS: LazyLock<Registry<ManagerHandle>> = LazyLock::new(Registry::default);
pub static CLIENTS: LazyLock<Registry<ClientHandle>> = LazyLock::new(Registry::default);

numbered_ops!(
    /// The methods of `NativeOAuthStorage` (npm/native.d.ts), by number.
    StorageOp, "OAuth storage", {
        GetTokens => "getTokens",
        SetTokens => "setTokens",
        ClearTokens => "clearTokens",
        Initialize => "initialize",
        Close => "close",
        Size => "size",
    }
);

numbered_ops!(
    /// The methods of `NativeOAuthManager`, by number.
    ManagerOp, "OAuth manager", {
        CreateOAuthSession => "createOAuthSession",
        GetOAuthSession => "getOAuthSession",
        GetAccessToken => "getAccessToken",
        HasValidOAuthTokens => "hasValidOAuthTokens",
        Logout => "logout",
    }
);

numbered_ops!(
    /// The methods of `NativeOAuthClient`, by number.
    ClientOp, "OAuth client", {
        Authorize => "authorize",
        HandleCallback => "handleCallback",
        GetUserInfo => "getUserInfo",
        RefreshAccessToken => "refreshAccessToken",
        EnsureValidToken => "ensureValidToken",
        Logout => "logout",
    }
);

/// Refuses to block a JS thread that one of `channels` calls into (see `js_bridge`).
fn check_threads(channels: &[u64], what: &str) -> FfiResult<()> {
    channels
        .iter()
        .try_for_each(|&channel| js_bridge::ensure_not_js_thread(channel, what))
}

// ---- storages ---------------------------------------------------------------------------------

enum Backend {
    Memory(Arc<MemoryOAuthStorage>),
    Postgres(Arc<PostgresOAuthStorage>),
    Redis(Arc<RedisOAuthStorage>),
    Other,
}

pub struct StorageHandle {
    storage: Arc<dyn OAuthStorage>,
    backend: Backend,
    /// `Some(channel)` when the storage is a JS object reached through that channel.
    js_channel: Option<u64>,
}

impl StorageHandle {
    pub fn open(open: OAuthStorageOpen) -> FfiResult<StorageHandle> {
        let OAuthStorageOpen { spec, at_rest } = open;
        let at_rest = match at_rest {
            None => AtRestOptions::default(),
            Some(w) => AtRestOptions {
                keys: w
                    .keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| parse_hex_key(k, &format!("options.encryptionKey[{i}]")))
                    .collect::<Result<_, _>>()?,
                hash_ids: w.hash_ids,
            },
        };
        let (storage, backend, js_channel): (Arc<dyn OAuthStorage>, Backend, Option<u64>) =
            match spec {
                OAuthStorageSpec::Memory => {
                    let storage = Arc::new(MemoryOAuthStorage::new());
                    (storage.clone(), Backend::Memory(storage), None)
                }
                OAuthStorageSpec::Sqlite { path } => (
                    Arc::new(SqliteOAuthStorage::open(&path)?),
                    Backend::Other,
                    None,
                ),
                OAuthStorageSpec::Postgres {
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
                    let storage = Arc::new(PostgresOAuthStorage::new(&url, options)?);
                    (storage.clone(), Backend::Postgres(storage), None)
                }
                OAuthStorageSpec::Redis { url, options } => {
                    let storage = Arc::new(RedisOAuthStorage::new(&url, options.into())?);
                    (storage.clone(), Backend::Redis(storage), None)
                }
                OAuthStorageSpec::Js {
                    channel,
                    bridge,
                    methods,
                } => (
                    Arc::new(JsOAuthStorage::new(Bridge::new(channel, bridge)?, &methods)),
                    Backend::Other,
                    Some(channel),
                ),
            };
        // A user's JS storage is used as it is unless it asked for protection.
        let storage = if js_channel.is_some() && at_rest.is_plain() {
            storage
        } else {
            AtRest::wrap(storage, &at_rest)
        };
        Ok(StorageHandle {
            storage,
            backend,
            js_channel,
        })
    }

    /// Memory and SQLite: every call completes on its first poll.
    pub fn is_sync(&self) -> bool {
        self.storage.is_sync()
    }

    fn channels(&self) -> Vec<u64> {
        self.js_channel.into_iter().collect()
    }

    fn call(&self, op: StorageOp, json: &[u8]) -> FfiResult<Work> {
        let name = op.name();
        let s = self.storage.clone();
        Ok(match op {
            StorageOp::GetTokens => {
                let (session_id,): (String,) = args(name, json)?;
                Box::pin(async move { Reply::json(&s.get_tokens(&session_id).await?) })
            }
            StorageOp::SetTokens => {
                let (tokens, session_id): (WireTokens, String) = args(name, json)?;
                let tokens = OAuthTokens::from(tokens);
                Box::pin(async move {
                    s.set_tokens(&tokens, &session_id).await?;
                    Ok(Reply::null())
                })
            }
            StorageOp::ClearTokens => {
                let (session_id,): (String,) = args(name, json)?;
                Box::pin(async move {
                    s.clear_tokens(&session_id).await?;
                    Ok(Reply::null())
                })
            }
            StorageOp::Initialize => match &self.backend {
                Backend::Postgres(pg) => {
                    let pg = pg.clone();
                    Box::pin(async move {
                        pg.initialize().await?;
                        Ok(Reply::null())
                    })
                }
                Backend::Redis(r) => {
                    let r = r.clone();
                    Box::pin(async move {
                        r.initialize().await?;
                        Ok(Reply::null())
                    })
                }
                // The other storages have nothing to do.
                _ => ready(Ok(Reply::null())),
            },
            StorageOp::Close => Box::pin(async move {
                s.close().await?;
                Ok(Reply::null())
            }),
            StorageOp::Size => ready(match &self.backend {
                Backend::Memory(m) => m
                    .size()
                    .map_err(FfiError::from)
                    .and_then(|n| Reply::json(&u32::try_from(n).unwrap_or(u32::MAX))),
                _ => Err(FfiError::Usage(
                    "size() exists only on MemoryOAuthStorage".into(),
                )),
            }),
        })
    }
}

fn storage(id: u64) -> FfiResult<Arc<StorageHandle>> {
    STORAGES.get(id).ok_or(FfiError::StaleHandle {
        kind: "OAuth storage",
        id,
    })
}

/// `ssd_oauth_storage_open`.
pub fn storage_open(open: OAuthStorageOpen) -> FfiResult<Reply> {
    let handle = StorageHandle::open(open)?;
    let is_sync = handle.is_sync();
    let id = STORAGES.insert(handle);
    Reply::json(&Opened { id, is_sync })
}

/// The work of operation `op` of storage `id`, and whether it completes on its first poll.
/// `close` closes the storage but keeps the handle, as the N-API object stays usable: managers
/// and clients over it then get the storage's own errors. `blocking`: the caller will wait for
/// the work on this thread (`ssd_oauth_storage_call`), which must not be a JS thread the work
/// needs.
pub fn storage_work(id: u64, op: u32, json: &[u8], blocking: bool) -> FfiResult<(Work, bool)> {
    let op = StorageOp::from_code(op)?;
    let handle = storage(id)?;
    let sync = handle.is_sync() || op == StorageOp::Size;
    if blocking && !sync {
        check_threads(&handle.channels(), "a JS OAuth storage")?;
    }
    Ok((handle.call(op, json)?, sync))
}

/// `ssd_oauth_storage_call`: waits for the work on this thread.
pub fn storage_call(id: u64, op: u32, json: &[u8]) -> FfiResult<Reply> {
    let (work, sync) = storage_work(id, op, json, true)?;
    runtime::complete(sync, work)?
}

// ---- managers ---------------------------------------------------------------------------------

/// What `withOAuthSession` returns.
pub struct ManagerHandle {
    manager: Arc<OAuthSessionManager>,
}

/// `ssd_oauth_manager_open`.
pub fn manager_open(spec: ManagerSpec) -> FfiResult<Reply> {
    let store = STORES
        .get(spec.store)
        .ok_or(FfiError::Session(SessionError::StoreClosed))?;
    let storage = storage(spec.storage)?;
    let events = JsOAuthEvents::new(Bridge::new(spec.events.channel, spec.events.bridge)?);
    let manager = OAuthSessionManager::new(
        store.shared(),
        spec.config.into(),
        storage.storage.clone(),
        spec.options.into(),
        Arc::new(events),
    )?;
    let id = MANAGERS.insert(ManagerHandle {
        manager: Arc::new(manager),
    });
    Reply::json(&Opened { id, is_sync: false })
}

impl ManagerHandle {
    fn call(&self, op: ManagerOp, json: &[u8]) -> FfiResult<Work> {
        let name = op.name();
        let m = self.manager.clone();
        Ok(match op {
            ManagerOp::CreateOAuthSession => {
                let (tokens, session_id): (WireTokens, Option<String>) = args(name, json)?;
                let tokens = OAuthTokens::from(tokens);
                Box::pin(async move {
                    Reply::json(&m.create_oauth_session_with_id(&tokens, session_id).await?)
                })
            }
            ManagerOp::GetOAuthSession => {
                let (session_id,): (String,) = args(name, json)?;
                Box::pin(async move {
                    let found = m.get_oauth_session(&session_id).await?;
                    Reply::json(
                        &found.map(|(session, tokens)| WireOAuthSession { session, tokens }),
                    )
                })
            }
            ManagerOp::GetAccessToken => {
                let (session_id,): (String,) = args(name, json)?;
                Box::pin(async move { Reply::json(&m.get_access_token(&session_id).await?) })
            }
            ManagerOp::HasValidOAuthTokens => {
                let (session_id,): (String,) = args(name, json)?;
                Box::pin(async move { Reply::json(&m.has_valid_oauth_tokens(&session_id).await?) })
            }
            ManagerOp::Logout => {
                let (session_id,): (String,) = args(name, json)?;
                Box::pin(async move {
                    m.logout(&session_id).await?;
                    Ok(Reply::null())
                })
            }
        })
    }
}

/// The work of operation `op` of manager `id` (`ssd_oauth_manager_start`: always started).
pub fn manager_work(id: u64, op: u32, json: &[u8]) -> FfiResult<Work> {
    let op = ManagerOp::from_code(op)?;
    let handle = MANAGERS.get(id).ok_or(FfiError::StaleHandle {
        kind: "OAuth manager",
        id,
    })?;
    handle.call(op, json)
}

// ---- clients ----------------------------------------------------------------------------------

/// `OAuthClient(config, storage, sessionId)`.
pub struct ClientHandle {
    client: Arc<OAuthClient>,
}

/// `ssd_oauth_client_open`.
pub fn client_open(spec: ClientSpec) -> FfiResult<Reply> {
    let storage = storage(spec.storage)?;
    let client = OAuthClient::new(spec.config.into(), storage.storage.clone(), spec.session_id)?;
    let id = CLIENTS.insert(ClientHandle {
        client: Arc::new(client),
    });
    Reply::json(&Opened { id, is_sync: false })
}

impl ClientHandle {
    fn call(&self, op: ClientOp, json: &[u8]) -> FfiResult<Work> {
        let name = op.name();
        let c = self.client.clone();
        Ok(match op {
            ClientOp::Authorize => {
                let (login_hint,): (Option<String>,) = args(name, json)?;
                Box::pin(async move { Reply::json(&c.authorize(login_hint.as_deref()).await?) })
            }
            ClientOp::HandleCallback => {
                let (code, state): (String, String) = args(name, json)?;
                Box::pin(async move { Reply::json(&c.handle_callback(&code, &state).await?) })
            }
            ClientOp::GetUserInfo => {
                Box::pin(async move { Reply::json(&c.get_user_info().await?) })
            }
            ClientOp::RefreshAccessToken => {
                Box::pin(async move { Reply::json(&c.refresh_access_token().await?) })
            }
            ClientOp::EnsureValidToken => {
                Box::pin(async move { Reply::json(&c.ensure_valid_token().await?) })
            }
            ClientOp::Logout => Box::pin(async move {
                c.logout().await?;
                Ok(Reply::null())
            }),
        })
    }
}

/// The work of operation `op` of client `id` (`ssd_oauth_client_start`: always started).
pub fn client_work(id: u64, op: u32, json: &[u8]) -> FfiResult<Work> {
    let op = ClientOp::from_code(op)?;
    let handle = CLIENTS.get(id).ok_or(FfiError::StaleHandle {
        kind: "OAuth client",
        id,
    })?;
    handle.call(op, json)
}

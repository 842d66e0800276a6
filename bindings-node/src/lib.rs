//! N-API binding of `slices-session-core`: marshalling only. Calls on synchronous adapters
//! (memory, SQLite) run on the JS thread and return plain values (the JS layer turns them
//! into settled Promises); PostgreSQL, Redis and JS adapters run on napi's tokio runtime.

mod completion;
pub mod fast;
mod js_adapter;
mod oauth;
mod wire;

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use napi::bindgen_prelude::{Either, Object, PromiseRaw};
use napi::{Env, Status};
use napi_derive::napi;
use slices_session_core::adapter::SessionAdapter;
use slices_session_core::cookie::{self, CookieOptions, CookieOptionsPatch};
use slices_session_core::error::{ErrorKind, SessionError};
use slices_session_core::memory::MemoryAdapter;
use slices_session_core::postgres::{PostgresAdapter, PostgresOptions};
use slices_session_core::redis::{RedisAdapter, RedisOptions};
use slices_session_core::session::{sessions_to_js_json, SessionData};
use slices_session_core::sqlite::{SqliteAdapter, SqliteOptions};
use slices_session_core::store::{SessionStore, StoreConfig};

use js_adapter::{JsAdapter, JsAdapterFns};
use wire::{WireCookieOptions, WirePatch, WireSession, WireStoreConfig, WireUser};

/// A value now, or a Promise of it.
pub(crate) type Settled<'env, T> = napi::Result<Either<T, PromiseRaw<'env, T>>>;

/// The JS layer reads the class name (and, for OAuth errors, the code in parentheses)
/// before the first ": " to pick the error class.
pub(crate) fn js_error(e: SessionError) -> napi::Error {
    let class = match e.kind() {
        ErrorKind::Closed => "SessionStoreClosedError",
        ErrorKind::InvalidArgument => "TypeError",
        ErrorKind::Config => "SessionError",
        ErrorKind::Adapter => "AdapterError",
        ErrorKind::OAuth => {
            let code = slices_session_core::oauth::oauth_error_code(&e).unwrap_or("oauth_error");
            return napi::Error::new(Status::GenericFailure, format!("OAuthError({code}): {e}"));
        }
    };
    napi::Error::new(Status::GenericFailure, format!("{class}: {e}"))
}

/// Runs `fut` to completion now when the adapter is synchronous (its futures never pend),
/// else on the runtime, returning a Promise.
fn settle<'env, T, F>(env: &'env Env, sync: bool, fut: F) -> Settled<'env, T>
where
    T: napi::bindgen_prelude::ToNapiValue + Send + 'static,
    F: Future<Output = slices_session_core::error::Result<T>> + Send + 'static,
{
    let mut fut = Box::pin(fut);
    if sync {
        if let Some(out) = (&mut fut).now_or_never() {
            return out.map(Either::A).map_err(js_error);
        }
    }
    let promise = completion::spawn_promise(env, async move { fut.await.map_err(js_error) })?;
    Ok(Either::B(PromiseRaw::new(env.raw(), promise)))
}

enum Backend {
    Memory(Arc<MemoryAdapter>),
    Sqlite(Arc<SqliteAdapter>),
    Postgres(Arc<PostgresAdapter>),
    Redis(Arc<RedisAdapter>),
}

/// `RedisAdapter` / `RedisOAuthStorage` options as the JS layer passes them (checked there).
pub(crate) fn redis_options(
    prefix: Option<String>,
    max_connections: Option<u32>,
    query_timeout_ms: Option<u32>,
) -> RedisOptions {
    let mut options = RedisOptions {
        prefix,
        ..RedisOptions::default()
    };
    if let Some(n) = max_connections {
        options.max_connections = n as usize;
    }
    if let Some(ms) = query_timeout_ms {
        options.query_timeout_ms = u64::from(ms);
    }
    options
}

/// One of the native adapters of SPEC §5.
#[napi]
pub struct NativeAdapter {
    backend: Backend,
}

impl NativeAdapter {
    fn shared(&self) -> Arc<dyn SessionAdapter> {
        match &self.backend {
            Backend::Memory(a) => a.clone(),
            Backend::Sqlite(a) => a.clone(),
            Backend::Postgres(a) => a.clone(),
            Backend::Redis(a) => a.clone(),
        }
    }

    fn memory(&self, method: &str) -> napi::Result<&MemoryAdapter> {
        match &self.backend {
            Backend::Memory(a) => Ok(a),
            _ => Err(napi::Error::new(
                Status::GenericFailure,
                format!("SessionError: {method}() exists only on MemoryAdapter"),
            )),
        }
    }
}

#[napi]
impl NativeAdapter {
    #[napi(factory)]
    pub fn memory_adapter() -> Self {
        NativeAdapter {
            backend: Backend::Memory(Arc::new(MemoryAdapter::new())),
        }
    }

    #[napi(factory)]
    pub fn sqlite_adapter(path: String, busy_timeout_ms: Option<u32>) -> napi::Result<Self> {
        let mut options = SqliteOptions::default();
        if let Some(ms) = busy_timeout_ms {
            options.busy_timeout_ms = ms;
        }
        let adapter = SqliteAdapter::open(&path, options).map_err(js_error)?;
        Ok(NativeAdapter {
            backend: Backend::Sqlite(Arc::new(adapter)),
        })
    }

    #[napi(factory)]
    pub fn postgres_adapter(
        url: String,
        max_connections: Option<u32>,
        query_timeout_ms: Option<u32>,
    ) -> napi::Result<Self> {
        let mut options = PostgresOptions::default();
        if let Some(n) = max_connections {
            options.max_connections = n as usize;
        }
        if let Some(ms) = query_timeout_ms {
            options.query_timeout_ms = u64::from(ms);
        }
        let adapter = PostgresAdapter::new(&url, options).map_err(js_error)?;
        Ok(NativeAdapter {
            backend: Backend::Postgres(Arc::new(adapter)),
        })
    }

    #[napi(factory)]
    pub fn redis_adapter(
        url: String,
        prefix: Option<String>,
        max_connections: Option<u32>,
        query_timeout_ms: Option<u32>,
    ) -> napi::Result<Self> {
        let options = redis_options(prefix, max_connections, query_timeout_ms);
        let adapter = RedisAdapter::new(&url, options).map_err(js_error)?;
        Ok(NativeAdapter {
            backend: Backend::Redis(Arc::new(adapter)),
        })
    }

    #[napi(getter)]
    pub fn is_sync(&self) -> bool {
        self.shared().is_sync()
    }

    /// The session as JSON text (`SessionData::to_js_json`), or null.
    #[napi(ts_return_type = "string | null | Promise<string | null>")]
    pub fn get<'env>(&self, env: &'env Env, id: String) -> Settled<'env, Option<String>> {
        let a = self.shared();
        settle(env, a.is_sync(), async move {
            a.get(&id)
                .await?
                .as_ref()
                .map(SessionData::to_js_json)
                .transpose()
        })
    }

    #[napi(ts_return_type = "void | Promise<void>")]
    pub fn set<'env>(&self, env: &'env Env, id: String, data: WireSession) -> Settled<'env, ()> {
        let a = self.shared();
        settle(
            env,
            a.is_sync(),
            async move { a.set(&id, &data.into()).await },
        )
    }

    #[napi(ts_return_type = "boolean | Promise<boolean>")]
    pub fn update<'env>(
        &self,
        env: &'env Env,
        id: String,
        patch: WirePatch,
    ) -> Settled<'env, bool> {
        let a = self.shared();
        settle(env, a.is_sync(), async move {
            a.update(&id, &patch.into()).await
        })
    }

    #[napi(ts_return_type = "void | Promise<void>")]
    pub fn delete<'env>(&self, env: &'env Env, id: String) -> Settled<'env, ()> {
        let a = self.shared();
        settle(env, a.is_sync(), async move { a.delete(&id).await })
    }

    #[napi(ts_return_type = "number | Promise<number>")]
    pub fn cleanup<'env>(&self, env: &'env Env, expires_before: i64) -> Settled<'env, i64> {
        let a = self.shared();
        settle(env, a.is_sync(), async move {
            Ok(a.cleanup(expires_before).await? as i64)
        })
    }

    #[napi(ts_return_type = "boolean | Promise<boolean>")]
    pub fn exists<'env>(&self, env: &'env Env, id: String) -> Settled<'env, bool> {
        let a = self.shared();
        settle(env, a.is_sync(), async move { a.exists(&id).await })
    }

    /// A JSON array of sessions (`sessions_to_js_json`).
    #[napi(ts_return_type = "string | Promise<string>")]
    pub fn list_by_user<'env>(&self, env: &'env Env, user_id: String) -> Settled<'env, String> {
        let a = self.shared();
        settle(env, a.is_sync(), async move {
            sessions_to_js_json(&a.list_by_user(&user_id).await?)
        })
    }

    #[napi(ts_return_type = "number | Promise<number>")]
    pub fn delete_by_user<'env>(
        &self,
        env: &'env Env,
        user_id: String,
        except: Option<String>,
    ) -> Settled<'env, i64> {
        let a = self.shared();
        settle(env, a.is_sync(), async move {
            Ok(a.delete_by_user(&user_id, except.as_deref()).await? as i64)
        })
    }

    /// PostgreSQL: creates the schema now; Redis: checks the server answers; the other
    /// adapters have nothing to do.
    #[napi(ts_return_type = "void | Promise<void>")]
    pub fn initialize<'env>(&self, env: &'env Env) -> Settled<'env, ()> {
        match &self.backend {
            Backend::Postgres(a) => {
                let a = a.clone();
                settle(env, false, async move { a.initialize().await })
            }
            Backend::Redis(a) => {
                let a = a.clone();
                settle(env, false, async move { a.initialize().await })
            }
            _ => Ok(Either::A(())),
        }
    }

    #[napi(ts_return_type = "void | Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> Settled<'env, ()> {
        let a = self.shared();
        settle(env, a.is_sync(), async move { a.close().await })
    }

    #[napi]
    pub fn clear(&self) -> napi::Result<()> {
        self.memory("clear")?.clear().map_err(js_error)
    }

    #[napi]
    pub fn size(&self) -> napi::Result<u32> {
        let n = self.memory("size")?.size().map_err(js_error)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    #[napi]
    pub fn keys(&self) -> napi::Result<Vec<String>> {
        self.memory("keys")?.keys().map_err(js_error)
    }
}

fn store_config(config: WireStoreConfig) -> StoreConfig {
    let mut out = StoreConfig::default();
    if let Some(name) = config.cookie_name {
        out.cookie_name = name;
    }
    if let Some(options) = config.cookie_options {
        out.cookie_options = out.cookie_options.overlay(&options.into());
    }
    if let Some(ttl) = config.session_ttl {
        out.session_ttl = ttl;
    }
    if let Some(t) = config.touch_after {
        out.touch_after = t;
    }
    if let Some(r) = config.rolling {
        out.rolling = r;
    }
    if let Some(h) = config.hash_ids {
        out.hash_ids = h;
    }
    out
}

/// `SessionStore` of SPEC §3 (the JS class wraps this one).
#[napi]
pub struct NativeStore {
    inner: Arc<SessionStore>,
}

impl NativeStore {
    pub(crate) fn shared(&self) -> Arc<SessionStore> {
        self.inner.clone()
    }

    fn new(adapter: Arc<dyn SessionAdapter>, config: WireStoreConfig) -> napi::Result<Self> {
        let store = SessionStore::new(adapter, store_config(config)).map_err(js_error)?;
        Ok(NativeStore {
            inner: Arc::new(store),
        })
    }
}

#[napi]
impl NativeStore {
    #[napi(factory)]
    pub fn with_native_adapter(
        adapter: &NativeAdapter,
        config: WireStoreConfig,
    ) -> napi::Result<Self> {
        NativeStore::new(adapter.shared(), config)
    }

    #[napi(factory)]
    pub fn with_js_adapter(adapter: JsAdapterFns, config: WireStoreConfig) -> napi::Result<Self> {
        NativeStore::new(Arc::new(JsAdapter::new(adapter)), config)
    }

    #[napi(getter)]
    pub fn is_sync(&self) -> bool {
        self.inner.is_sync()
    }

    #[napi(ts_return_type = "string | Promise<string>")]
    pub fn create_session<'env>(
        &self,
        env: &'env Env,
        id: Option<String>,
        user_id: String,
        handle: Option<String>,
        data: Option<String>,
    ) -> Settled<'env, String> {
        let s = self.inner.clone();
        settle(env, s.is_sync(), async move {
            s.create_session(id, user_id, handle, data).await
        })
    }

    /// The session as JSON text (`SessionData::to_js_json`), or null.
    #[napi(ts_return_type = "string | null | Promise<string | null>")]
    pub fn get_session<'env>(&self, env: &'env Env, id: String) -> Settled<'env, Option<String>> {
        let s = self.inner.clone();
        settle(env, s.is_sync(), async move {
            s.get_session(&id)
                .await?
                .as_ref()
                .map(SessionData::to_js_json)
                .transpose()
        })
    }

    /// `updateSession`, the wire patch's fields as arguments in `WirePatch` order: N-API
    /// reads positional arguments far cheaper than an object's named properties (each one a
    /// property lookup by an internalized name: about a quarter of an in-memory update).
    #[allow(clippy::too_many_arguments)]
    #[napi(ts_return_type = "boolean | Promise<boolean>")]
    pub fn update_session_fields<'env>(
        &self,
        env: &'env Env,
        id: String,
        user_id: Option<String>,
        handle: Option<String>,
        clear_handle: Option<bool>,
        is_authenticated: Option<bool>,
        data: Option<String>,
        clear_data: Option<bool>,
        created_at: Option<i64>,
        expires_at: Option<i64>,
        last_accessed_at: Option<i64>,
    ) -> Settled<'env, bool> {
        let patch = WirePatch {
            user_id,
            handle,
            clear_handle,
            is_authenticated,
            data,
            clear_data,
            created_at,
            expires_at,
            last_accessed_at,
        };
        let s = self.inner.clone();
        settle(env, s.is_sync(), async move {
            s.update_session(&id, &patch.into()).await
        })
    }

    #[napi(ts_return_type = "void | Promise<void>")]
    pub fn delete_session<'env>(&self, env: &'env Env, id: String) -> Settled<'env, ()> {
        let s = self.inner.clone();
        settle(env, s.is_sync(), async move { s.delete_session(&id).await })
    }

    /// `header`: the request's `Cookie` header, if any. The session as JSON text, or null.
    #[napi(ts_return_type = "string | null | Promise<string | null>")]
    pub fn get_session_from_cookie_header<'env>(
        &self,
        env: &'env Env,
        header: Option<String>,
    ) -> Settled<'env, Option<String>> {
        let s = self.inner.clone();
        settle(env, s.is_sync(), async move {
            let session = s.get_session_from_cookie_header(header.as_deref()).await?;
            session.as_ref().map(SessionData::to_js_json).transpose()
        })
    }

    #[napi(ts_return_type = "WireUser | Promise<WireUser>")]
    pub fn current_user<'env>(
        &self,
        env: &'env Env,
        header: Option<String>,
    ) -> Settled<'env, WireUser> {
        let s = self.inner.clone();
        settle(env, s.is_sync(), async move {
            Ok(s.current_user(header.as_deref()).await?.into())
        })
    }

    #[napi]
    pub fn session_cookie(&self, id: String) -> String {
        self.inner.session_cookie(&id)
    }

    #[napi]
    pub fn logout_cookie(&self) -> String {
        self.inner.logout_cookie()
    }

    #[napi(ts_return_type = "number | Promise<number>")]
    pub fn cleanup<'env>(&self, env: &'env Env) -> Settled<'env, i64> {
        let s = self.inner.clone();
        settle(
            env,
            s.is_sync(),
            async move { Ok(s.cleanup().await? as i64) },
        )
    }

    /// A JSON array of sessions (`sessions_to_js_json`).
    #[napi(ts_return_type = "string | Promise<string>")]
    pub fn list_user_sessions<'env>(
        &self,
        env: &'env Env,
        user_id: String,
    ) -> Settled<'env, String> {
        let s = self.inner.clone();
        settle(env, s.is_sync(), async move {
            sessions_to_js_json(&s.list_user_sessions(&user_id).await?)
        })
    }

    #[napi(ts_return_type = "number | Promise<number>")]
    pub fn delete_user_sessions<'env>(
        &self,
        env: &'env Env,
        user_id: String,
        except: Option<String>,
    ) -> Settled<'env, i64> {
        let s = self.inner.clone();
        settle(env, s.is_sync(), async move {
            Ok(s.delete_user_sessions(&user_id, except.as_deref()).await? as i64)
        })
    }

    #[napi(ts_return_type = "string | null | Promise<string | null>")]
    pub fn regenerate_session<'env>(
        &self,
        env: &'env Env,
        id: String,
        new_id: Option<String>,
    ) -> Settled<'env, Option<String>> {
        let s = self.inner.clone();
        settle(env, s.is_sync(), async move {
            s.regenerate_session(&id, new_id).await
        })
    }

    /// Returns false when the store was already closed.
    #[napi]
    pub fn close(&self) -> bool {
        self.inner.close()
    }
}

/// SPEC §4 `parseCookie`: an object whose keys keep first-seen order, later duplicates winning.
#[napi(ts_return_type = "Record<string, string>")]
pub fn parse_cookie<'env>(env: &'env Env, header: String) -> napi::Result<Object<'env>> {
    let mut out = Object::new(env)?;
    for (key, value) in cookie::parse_cookie(&header) {
        out.set(key, value)?;
    }
    Ok(out)
}

/// SPEC §4 `serializeCookie`.
#[napi]
pub fn serialize_cookie(name: String, value: String, options: Option<WireCookieOptions>) -> String {
    let patch: CookieOptionsPatch = options.unwrap_or_default().into();
    cookie::serialize_cookie(&name, &value, &CookieOptions::default().overlay(&patch))
}

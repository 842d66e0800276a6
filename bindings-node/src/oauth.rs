//! OAuth (SPEC §6) for Node: native token storages, JS storages, `withOAuthSession`'s
//! manager and `OAuthClient`. Marshalling only; the rules live in `core::oauth`.
//! A call that completes on its first poll returns its value at once; one that waits (a
//! refresh over HTTP, PostgreSQL, Redis, a JS storage) continues on napi's tokio runtime.

use std::sync::Arc;

use async_trait::async_trait;
use futures::FutureExt;
use napi::bindgen_prelude::{
    within_runtime_if_available, Either, FnArgs, FromNapiValue, JsValuesTupleIntoVec, Promise,
    PromiseRaw,
};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{Env, Status};
use napi_derive::napi;
use slices_session_core::error::{Result, SessionError};
use slices_session_core::oauth::at_rest::parse_hex_key;
use slices_session_core::oauth::client::reissue;
use slices_session_core::oauth::{
    AtRest, AtRestOptions, AuthorizationRequest, MemoryOAuthStorage, OAuthClient, OAuthConfig,
    OAuthEvents, OAuthSessionManager, OAuthSessionOptions, OAuthStorage, OAuthTokens, PkceState,
    PostgresOAuthStorage, RedisOAuthStorage, RefreshAttempt, SqliteOAuthStorage,
};
use slices_session_core::postgres::PostgresOptions;
use slices_session_core::session::Millis;

use crate::wire::WireSession;
use crate::{js_error, redis_options, NativeStore, Settled};

#[napi(object)]
pub struct WireOAuthConfig {
    pub client_id: String,
    pub client_secret: String,
    pub auth_base_url: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
}

impl From<WireOAuthConfig> for OAuthConfig {
    fn from(c: WireOAuthConfig) -> Self {
        OAuthConfig {
            client_id: c.client_id,
            client_secret: c.client_secret,
            auth_base_url: c.auth_base_url,
            redirect_uri: c.redirect_uri,
            scopes: c.scopes,
        }
    }
}

#[napi(object)]
pub struct WireTokens {
    pub access_token: String,
    pub token_type: String,
    pub refresh_token: Option<String>,
    pub expires_at: Option<i64>,
    pub scope: Option<String>,
}

impl From<WireTokens> for OAuthTokens {
    fn from(t: WireTokens) -> Self {
        OAuthTokens {
            access_token: t.access_token,
            token_type: t.token_type,
            refresh_token: t.refresh_token,
            expires_at: t.expires_at,
            scope: t.scope,
        }
    }
}

impl From<OAuthTokens> for WireTokens {
    fn from(t: OAuthTokens) -> Self {
        WireTokens {
            access_token: t.access_token,
            token_type: t.token_type,
            refresh_token: t.refresh_token,
            expires_at: t.expires_at,
            scope: t.scope,
        }
    }
}

#[napi(object)]
pub struct WireOAuthSession {
    pub session: WireSession,
    pub tokens: Option<WireTokens>,
}

#[napi(object)]
pub struct WireAuthorization {
    pub authorization_url: String,
    pub state: String,
    pub code_verifier: String,
}

impl From<AuthorizationRequest> for WireAuthorization {
    fn from(a: AuthorizationRequest) -> Self {
        WireAuthorization {
            authorization_url: a.authorization_url,
            state: a.state,
            code_verifier: a.code_verifier,
        }
    }
}

#[napi(object)]
#[derive(Default)]
pub struct WireOAuthOptions {
    pub auto_refresh: Option<bool>,
    pub refresh_skew: Option<i64>,
    pub request_timeout: Option<i64>,
    pub lock_wait: Option<i64>,
}

/// A JS function returning a Promise; weak, `this`-less, JS throws come back as errors.
type JsFn<Args, Ret> = ThreadsafeFunction<Args, Promise<Ret>, Args, Status, false, true>;
type SetTokensFn = JsFn<FnArgs<(WireTokens, String)>, ()>;
type PutStateFn = JsFn<FnArgs<(String, WirePkceState, i64)>, ()>;
type TryLockFn = JsFn<FnArgs<(String, String, i64)>, bool>;
type SetAttemptFn = JsFn<FnArgs<(String, Option<WireRefreshAttempt>)>, ()>;

async fn call<Args, Ret>(method: &'static str, f: &JsFn<Args, Ret>, args: Args) -> Result<Ret>
where
    Args: 'static + JsValuesTupleIntoVec,
    Ret: 'static + Send + FromNapiValue,
{
    let failed = |e: napi::Error| SessionError::Adapter {
        method,
        message: e.reason.clone(),
    };
    let promise = f.call_async_catch(args).await.map_err(failed)?;
    promise.await.map_err(failed)
}

/// What `authorize()` keeps under its state, as a JS storage sees it.
#[napi(object)]
pub struct WirePkceState {
    pub code_verifier: String,
    pub created_at: i64,
}

/// A recorded refresh attempt (docs/oauth.md, "Lost responses"), as a JS storage sees it.
#[napi(object)]
pub struct WireRefreshAttempt {
    pub token_fingerprint: String,
    pub started_at: i64,
    pub lost: bool,
}

/// Any JS object with `getTokens` / `setTokens(tokens, sessionId)` / `clearTokens`, and
/// optionally the coordination methods of docs/oauth.md ("JS storages"), in pairs:
/// `putState`/`takeState`, `tryLockRefresh`/`unlockRefresh`,
/// `getRefreshAttempt`/`setRefreshAttempt` (npm/session.js checks the pairs).
#[napi(object, object_to_js = false)]
pub struct JsOAuthStorageFns {
    pub get_tokens: JsFn<String, Option<WireTokens>>,
    pub set_tokens: SetTokensFn,
    pub clear_tokens: JsFn<String, ()>,
    pub put_state: Option<PutStateFn>,
    pub take_state: Option<JsFn<String, Option<WirePkceState>>>,
    pub try_lock_refresh: Option<TryLockFn>,
    pub unlock_refresh: Option<JsFn<FnArgs<(String, String)>, ()>>,
    pub get_refresh_attempt: Option<JsFn<String, Option<WireRefreshAttempt>>>,
    pub set_refresh_attempt: Option<SetAttemptFn>,
}

struct JsOAuthStorage {
    fns: JsOAuthStorageFns,
}

#[async_trait]
impl OAuthStorage for JsOAuthStorage {
    async fn get_tokens(&self, session_id: &str) -> Result<Option<OAuthTokens>> {
        let tokens = call("getTokens", &self.fns.get_tokens, session_id.to_owned()).await?;
        Ok(tokens.map(OAuthTokens::from))
    }

    async fn set_tokens(&self, tokens: &OAuthTokens, session_id: &str) -> Result<()> {
        let args = (WireTokens::from(tokens.clone()), session_id.to_owned()).into();
        call("setTokens", &self.fns.set_tokens, args).await
    }

    async fn clear_tokens(&self, session_id: &str) -> Result<()> {
        call("clearTokens", &self.fns.clear_tokens, session_id.to_owned()).await
    }

    async fn put_state(&self, state: &str, pkce: &PkceState, expires_at: Millis) -> Result<()> {
        let Some(f) = &self.fns.put_state else {
            return Err(SessionError::Unsupported {
                operation: "storing OAuth state (authorize)",
                method: "putState",
            });
        };
        let wire = WirePkceState {
            code_verifier: pkce.code_verifier.clone(),
            created_at: pkce.created_at,
        };
        call("putState", f, (state.to_owned(), wire, expires_at).into()).await
    }

    async fn take_state(&self, state: &str) -> Result<Option<PkceState>> {
        let Some(f) = &self.fns.take_state else {
            return Err(SessionError::Unsupported {
                operation: "reading OAuth state (handleCallback)",
                method: "takeState",
            });
        };
        let taken = call("takeState", f, state.to_owned()).await?;
        Ok(taken.map(|w| PkceState {
            code_verifier: w.code_verifier,
            created_at: w.created_at,
        }))
    }

    async fn try_lock_refresh(
        &self,
        session_id: &str,
        owner: &str,
        lease_ms: Millis,
    ) -> Result<bool> {
        match &self.fns.try_lock_refresh {
            Some(f) => {
                let args = (session_id.to_owned(), owner.to_owned(), lease_ms).into();
                call("tryLockRefresh", f, args).await
            }
            None => Ok(true),
        }
    }

    async fn unlock_refresh(&self, session_id: &str, owner: &str) -> Result<()> {
        match &self.fns.unlock_refresh {
            Some(f) => {
                let args = (session_id.to_owned(), owner.to_owned()).into();
                call("unlockRefresh", f, args).await
            }
            None => Ok(()),
        }
    }

    fn persists_refresh_attempts(&self) -> bool {
        self.fns.get_refresh_attempt.is_some() && self.fns.set_refresh_attempt.is_some()
    }

    async fn get_refresh_attempt(&self, session_id: &str) -> Result<Option<RefreshAttempt>> {
        let Some(f) = &self.fns.get_refresh_attempt else {
            return Ok(None);
        };
        let attempt = call("getRefreshAttempt", f, session_id.to_owned()).await?;
        Ok(attempt.map(|w| RefreshAttempt {
            token_fingerprint: w.token_fingerprint,
            started_at: w.started_at,
            lost: w.lost,
        }))
    }

    async fn set_refresh_attempt(
        &self,
        session_id: &str,
        attempt: Option<&RefreshAttempt>,
    ) -> Result<()> {
        let Some(f) = &self.fns.set_refresh_attempt else {
            return Ok(());
        };
        let wire = attempt.map(|a| WireRefreshAttempt {
            token_fingerprint: a.token_fingerprint.clone(),
            started_at: a.started_at,
            lost: a.lost,
        });
        call("setRefreshAttempt", f, (session_id.to_owned(), wire).into()).await
    }
}

/// `withOAuthSession`'s callbacks, as ONE JS function taking an event object: one threadsafe
/// function is one FIFO queue, so events reach JS in the order they happened.
#[napi(object, object_to_js = false)]
pub struct JsOAuthEventsFns {
    pub on_event: JsFn<WireOAuthEvent, ()>,
}

/// `kind`: "tokenRefresh" (sessionId, tokens), "logout" (sessionId) or "error" (`error`: the
/// native error message, `"<Class>: ..."`, which the JS layer turns into the error class).
#[napi(object)]
pub struct WireOAuthEvent {
    pub kind: String,
    pub session_id: Option<String>,
    pub tokens: Option<WireTokens>,
    pub error: Option<String>,
}

struct JsOAuthEvents {
    fns: JsOAuthEventsFns,
}

impl JsOAuthEvents {
    /// Awaits the application's callback; a callback that throws is reported as an error
    /// event (and one that throws on an error event is left to the JS layer's console.error).
    async fn emit(&self, event: WireOAuthEvent) {
        let is_error = event.kind == "error";
        if let Err(e) = call("onEvent", &self.fns.on_event, event).await {
            if !is_error {
                self.on_error(&e).await;
            }
        }
    }
}

#[async_trait]
impl OAuthEvents for JsOAuthEvents {
    async fn on_token_refresh(&self, session_id: &str, tokens: &OAuthTokens) {
        self.emit(WireOAuthEvent {
            kind: "tokenRefresh".into(),
            session_id: Some(session_id.to_owned()),
            tokens: Some(tokens.clone().into()),
            error: None,
        })
        .await;
    }

    async fn on_logout(&self, session_id: &str) {
        self.emit(WireOAuthEvent {
            kind: "logout".into(),
            session_id: Some(session_id.to_owned()),
            tokens: None,
            error: None,
        })
        .await;
    }

    async fn on_error(&self, error: &SessionError) {
        self.emit(WireOAuthEvent {
            kind: "error".into(),
            session_id: None,
            tokens: None,
            error: Some(js_error(reissue(error)).reason),
        })
        .await;
    }
}

/// What a native storage protects at rest (docs/security.md): `keys` (`encryptionKey`,
/// normalised to hex by npm/session.js; the first seals, all open) and `hashIds`.
#[napi(object)]
pub struct WireAtRest {
    pub keys: Vec<String>,
    pub hash_ids: bool,
}

impl NativeOAuthStorage {
    /// `storage` wrapped as `at_rest` asks (itself when it asks for nothing).
    fn build(
        storage: Arc<dyn OAuthStorage>,
        backend: StorageBackend,
        at_rest: Option<WireAtRest>,
    ) -> napi::Result<Self> {
        let options = match at_rest {
            None => AtRestOptions::default(),
            Some(w) => AtRestOptions {
                keys: w
                    .keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| parse_hex_key(k, &format!("options.encryptionKey[{i}]")))
                    .collect::<Result<Vec<_>>>()
                    .map_err(js_error)?,
                hash_ids: w.hash_ids,
            },
        };
        Ok(NativeOAuthStorage {
            storage: AtRest::wrap(storage, &options),
            backend,
        })
    }
}

enum StorageBackend {
    Memory(Arc<MemoryOAuthStorage>),
    Postgres(Arc<PostgresOAuthStorage>),
    Redis(Arc<RedisOAuthStorage>),
    Other,
}

/// An OAuth token storage: native, or a JS object. One instance per JS storage object, so
/// the manager and every client over it share one refresh flight (keyed by this `Arc`).
#[napi]
pub struct NativeOAuthStorage {
    storage: Arc<dyn OAuthStorage>,
    backend: StorageBackend,
}

#[napi]
impl NativeOAuthStorage {
    #[napi(factory)]
    pub fn memory_storage(at_rest: Option<WireAtRest>) -> napi::Result<Self> {
        let storage = Arc::new(MemoryOAuthStorage::new());
        Self::build(storage.clone(), StorageBackend::Memory(storage), at_rest)
    }

    #[napi(factory)]
    pub fn sqlite_storage(path: String, at_rest: Option<WireAtRest>) -> napi::Result<Self> {
        let storage = SqliteOAuthStorage::open(&path).map_err(js_error)?;
        Self::build(Arc::new(storage), StorageBackend::Other, at_rest)
    }

    #[napi(factory)]
    pub fn postgres_storage(
        url: String,
        max_connections: Option<u32>,
        query_timeout_ms: Option<u32>,
        at_rest: Option<WireAtRest>,
    ) -> napi::Result<Self> {
        let mut options = PostgresOptions::default();
        if let Some(n) = max_connections {
            options.max_connections = n as usize;
        }
        if let Some(ms) = query_timeout_ms {
            options.query_timeout_ms = u64::from(ms);
        }
        let storage = Arc::new(PostgresOAuthStorage::new(&url, options).map_err(js_error)?);
        Self::build(storage.clone(), StorageBackend::Postgres(storage), at_rest)
    }

    #[napi(factory)]
    pub fn redis_storage(
        url: String,
        prefix: Option<String>,
        max_connections: Option<u32>,
        query_timeout_ms: Option<u32>,
        at_rest: Option<WireAtRest>,
    ) -> napi::Result<Self> {
        let options = redis_options(prefix, max_connections, query_timeout_ms);
        let storage = Arc::new(RedisOAuthStorage::new(&url, options).map_err(js_error)?);
        Self::build(storage.clone(), StorageBackend::Redis(storage), at_rest)
    }

    #[napi(factory)]
    pub fn from_js(fns: JsOAuthStorageFns) -> Self {
        NativeOAuthStorage {
            storage: Arc::new(JsOAuthStorage { fns }),
            backend: StorageBackend::Other,
        }
    }

    #[napi(ts_return_type = "WireTokens | null | Promise<WireTokens | null>")]
    pub fn get_tokens<'env>(
        &self,
        env: &'env Env,
        session_id: String,
    ) -> Settled<'env, Option<WireTokens>> {
        let s = self.storage.clone();
        spawn(env, async move {
            Ok(s.get_tokens(&session_id).await?.map(WireTokens::from))
        })
    }

    #[napi(ts_return_type = "void | Promise<void>")]
    pub fn set_tokens<'env>(
        &self,
        env: &'env Env,
        tokens: WireTokens,
        session_id: String,
    ) -> Settled<'env, ()> {
        let s = self.storage.clone();
        spawn(env, async move {
            s.set_tokens(&tokens.into(), &session_id).await
        })
    }

    #[napi(ts_return_type = "void | Promise<void>")]
    pub fn clear_tokens<'env>(&self, env: &'env Env, session_id: String) -> Settled<'env, ()> {
        let s = self.storage.clone();
        spawn(env, async move { s.clear_tokens(&session_id).await })
    }

    #[napi(ts_return_type = "void | Promise<void>")]
    pub fn initialize<'env>(&self, env: &'env Env) -> Settled<'env, ()> {
        let (pg, redis) = match &self.backend {
            StorageBackend::Postgres(pg) => (Some(pg.clone()), None),
            StorageBackend::Redis(r) => (None, Some(r.clone())),
            _ => (None, None),
        };
        spawn(env, async move {
            match (pg, redis) {
                (Some(pg), _) => pg.initialize().await,
                (_, Some(r)) => r.initialize().await,
                _ => Ok(()),
            }
        })
    }

    #[napi(ts_return_type = "void | Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> Settled<'env, ()> {
        let s = self.storage.clone();
        spawn(env, async move { s.close().await })
    }

    /// Memory storage only: how many sessions have tokens.
    #[napi]
    pub fn size(&self) -> napi::Result<u32> {
        match &self.backend {
            StorageBackend::Memory(m) => {
                let n = m.size().map_err(js_error)?;
                Ok(u32::try_from(n).unwrap_or(u32::MAX))
            }
            _ => Err(napi::Error::new(
                Status::GenericFailure,
                "SessionError: size() exists only on MemoryOAuthStorage",
            )),
        }
    }
}

/// Runs `fut` now when it completes on its first poll (fresh tokens in a memory or SQLite
/// storage: no I/O), else on napi's tokio runtime, returning a Promise. The first poll runs
/// inside the runtime's context, so a refresh can start its timers and HTTP request from it;
/// the task spawned after a pending poll registers its real waker on its own first poll. The
/// Deno binding's `channel::start` follows the same rule.
fn spawn<'env, T, F>(env: &'env Env, fut: F) -> Settled<'env, T>
where
    T: napi::bindgen_prelude::ToNapiValue + Send + 'static,
    F: std::future::Future<Output = Result<T>> + Send + 'static,
{
    let mut fut = Box::pin(fut);
    if let Some(out) = within_runtime_if_available(|| (&mut fut).now_or_never()) {
        return out.map(Either::A).map_err(js_error);
    }
    let promise =
        crate::completion::spawn_promise(env, async move { fut.await.map_err(js_error) })?;
    Ok(Either::B(PromiseRaw::new(env.raw(), promise)))
}

fn ms(value: Option<i64>, default: u64) -> u64 {
    value.map_or(default, |v| v.max(0) as u64)
}

/// What `withOAuthSession` returns.
#[napi]
pub struct NativeOAuthManager {
    inner: Arc<OAuthSessionManager>,
}

#[napi]
impl NativeOAuthManager {
    #[napi(factory)]
    pub fn create(
        store: &NativeStore,
        config: WireOAuthConfig,
        storage: &NativeOAuthStorage,
        options: WireOAuthOptions,
        events: JsOAuthEventsFns,
    ) -> napi::Result<Self> {
        let defaults = OAuthSessionOptions::default();
        let options = OAuthSessionOptions {
            auto_refresh: options.auto_refresh.unwrap_or(defaults.auto_refresh),
            refresh_skew_ms: options.refresh_skew.unwrap_or(defaults.refresh_skew_ms),
            request_timeout_ms: ms(options.request_timeout, defaults.request_timeout_ms),
            lock_wait_ms: ms(options.lock_wait, defaults.lock_wait_ms),
        };
        let manager = OAuthSessionManager::new(
            store.shared(),
            config.into(),
            storage.storage.clone(),
            options,
            Arc::new(JsOAuthEvents { fns: events }),
        )
        .map_err(js_error)?;
        Ok(NativeOAuthManager {
            inner: Arc::new(manager),
        })
    }

    #[napi(
        js_name = "createOAuthSession",
        ts_return_type = "string | null | Promise<string | null>"
    )]
    pub fn create_oauth_session<'env>(
        &self,
        env: &'env Env,
        tokens: WireTokens,
        session_id: Option<String>,
    ) -> Settled<'env, Option<String>> {
        let m = self.inner.clone();
        spawn(env, async move {
            m.create_oauth_session_with_id(&tokens.into(), session_id)
                .await
        })
    }

    #[napi(
        js_name = "getOAuthSession",
        ts_return_type = "WireOAuthSession | null | Promise<WireOAuthSession | null>"
    )]
    pub fn get_oauth_session<'env>(
        &self,
        env: &'env Env,
        session_id: String,
    ) -> Settled<'env, Option<WireOAuthSession>> {
        let m = self.inner.clone();
        spawn(env, async move {
            Ok(m.get_oauth_session(&session_id)
                .await?
                .map(|(session, tokens)| WireOAuthSession {
                    session: session.into(),
                    tokens: tokens.map(WireTokens::from),
                }))
        })
    }

    #[napi(ts_return_type = "string | null | Promise<string | null>")]
    pub fn get_access_token<'env>(
        &self,
        env: &'env Env,
        session_id: String,
    ) -> Settled<'env, Option<String>> {
        let m = self.inner.clone();
        spawn(env, async move { m.get_access_token(&session_id).await })
    }

    #[napi(
        js_name = "hasValidOAuthTokens",
        ts_return_type = "boolean | Promise<boolean>"
    )]
    pub fn has_valid_oauth_tokens<'env>(
        &self,
        env: &'env Env,
        session_id: String,
    ) -> Settled<'env, bool> {
        let m = self.inner.clone();
        spawn(
            env,
            async move { m.has_valid_oauth_tokens(&session_id).await },
        )
    }

    #[napi(ts_return_type = "void | Promise<void>")]
    pub fn logout<'env>(&self, env: &'env Env, session_id: String) -> Settled<'env, ()> {
        let m = self.inner.clone();
        spawn(env, async move { m.logout(&session_id).await })
    }
}

/// `OAuthClient(config, storage, sessionId)`.
#[napi]
pub struct NativeOAuthClient {
    inner: Arc<OAuthClient>,
}

#[napi]
impl NativeOAuthClient {
    #[napi(constructor)]
    pub fn new(
        config: WireOAuthConfig,
        storage: &NativeOAuthStorage,
        session_id: String,
    ) -> napi::Result<Self> {
        let client = OAuthClient::new(config.into(), storage.storage.clone(), session_id)
            .map_err(js_error)?;
        Ok(NativeOAuthClient {
            inner: Arc::new(client),
        })
    }

    #[napi(ts_return_type = "WireAuthorization | Promise<WireAuthorization>")]
    pub fn authorize<'env>(
        &self,
        env: &'env Env,
        login_hint: Option<String>,
    ) -> Settled<'env, WireAuthorization> {
        let c = self.inner.clone();
        spawn(env, async move {
            Ok(c.authorize(login_hint.as_deref()).await?.into())
        })
    }

    #[napi(ts_return_type = "WireTokens | Promise<WireTokens>")]
    pub fn handle_callback<'env>(
        &self,
        env: &'env Env,
        code: String,
        state: String,
    ) -> Settled<'env, WireTokens> {
        let c = self.inner.clone();
        spawn(env, async move {
            Ok(c.handle_callback(&code, &state).await?.into())
        })
    }

    #[napi(ts_return_type = "Record<string, unknown> | Promise<Record<string, unknown>>")]
    pub fn get_user_info<'env>(&self, env: &'env Env) -> Settled<'env, serde_json::Value> {
        let c = self.inner.clone();
        spawn(env, async move { c.get_user_info().await })
    }

    #[napi(ts_return_type = "WireTokens | Promise<WireTokens>")]
    pub fn refresh_access_token<'env>(&self, env: &'env Env) -> Settled<'env, WireTokens> {
        let c = self.inner.clone();
        spawn(
            env,
            async move { Ok(c.refresh_access_token().await?.into()) },
        )
    }

    #[napi(ts_return_type = "string | Promise<string>")]
    pub fn ensure_valid_token<'env>(&self, env: &'env Env) -> Settled<'env, String> {
        let c = self.inner.clone();
        spawn(env, async move { c.ensure_valid_token().await })
    }

    #[napi(ts_return_type = "void | Promise<void>")]
    pub fn logout<'env>(&self, env: &'env Env) -> Settled<'env, ()> {
        let c = self.inner.clone();
        spawn(env, async move { c.logout().await })
    }
}

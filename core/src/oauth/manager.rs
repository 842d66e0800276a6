//! `OAuthSessionManager`: what `withOAuthSession(sessionStore, oauthConfig, oauthStorage,
//! options)` returns (SPEC §6 table and edge rules).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::{Result, SessionError};
use crate::oauth::config::{OAuthConfig, OAuthEndpoints, OAuthTokens};
use crate::oauth::http;
use crate::oauth::oauth_error;
use crate::oauth::refresh::{self, FlightResult, RefreshOutcome, RefreshSettings};
use crate::oauth::storage::OAuthStorage;
use crate::session::{now_millis, Millis, SessionData};
use crate::store::SessionStore;

/// Options of `withOAuthSession` (the callbacks are [`OAuthEvents`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthSessionOptions {
    /// Refresh tokens that expire within `refresh_skew_ms` on read. Default true.
    pub auto_refresh: bool,
    /// `refreshSkew`: how long before expiry a token is refreshed (ms). Default 60 000.
    pub refresh_skew_ms: Millis,
    /// Limit for one HTTP request to the authorization server (ms). Default 10 000.
    pub request_timeout_ms: u64,
    /// Limit for waiting on another process's refresh of the same session (ms). Default
    /// 15 000: longer than a request may take, so a waiter normally sees its result.
    pub lock_wait_ms: u64,
}

impl Default for OAuthSessionOptions {
    fn default() -> Self {
        OAuthSessionOptions {
            auto_refresh: true,
            refresh_skew_ms: 60_000,
            request_timeout_ms: 10_000,
            lock_wait_ms: 15_000,
        }
    }
}

/// The callbacks of `withOAuthSession`'s options. Each refresh, logout and failure is
/// reported once, however many concurrent callers shared it.
#[async_trait]
pub trait OAuthEvents: Send + Sync {
    /// `onTokenRefresh(sessionId, tokens)`: new tokens were stored.
    async fn on_token_refresh(&self, _session_id: &str, _tokens: &OAuthTokens) {}
    /// `onLogout(sessionId)`: after `logout`, or after a refresh proved the session dead.
    async fn on_logout(&self, _session_id: &str) {}
    /// `onError(error)`: a failure that did not fail the call (a refresh that failed and
    /// kept the session, `invalid_client`, `refresh_response_lost`, a login that resolved
    /// `null`). The JS layer's default is `console.error`. Awaited, so reports reach the
    /// application in the order they happened and before the call that made them resolves.
    async fn on_error(&self, _error: &SessionError) {}
}

/// Events that do nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopEvents;

impl OAuthEvents for NoopEvents {}

pub struct OAuthSessionManager {
    store: Arc<SessionStore>,
    config: Arc<OAuthConfig>,
    endpoints: Arc<OAuthEndpoints>,
    storage: Arc<dyn OAuthStorage>,
    options: OAuthSessionOptions,
    events: Arc<dyn OAuthEvents>,
}

impl std::fmt::Debug for OAuthSessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthSessionManager")
            .field("config", &self.config)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// What a refresh left the caller with.
enum Settled {
    Tokens(Option<OAuthTokens>),
    LoggedOut,
}

impl OAuthSessionManager {
    /// Checks the configuration (`authBaseUrl` must be an http(s) URL) and the options.
    pub fn new(
        store: Arc<SessionStore>,
        config: OAuthConfig,
        storage: Arc<dyn OAuthStorage>,
        options: OAuthSessionOptions,
        events: Arc<dyn OAuthEvents>,
    ) -> Result<Self> {
        let endpoints = config.endpoints()?;
        if options.refresh_skew_ms < 0 {
            return Err(SessionError::invalid_argument(
                "refreshSkew",
                "must not be negative",
            ));
        }
        if options.request_timeout_ms == 0 {
            return Err(SessionError::invalid_argument(
                "requestTimeout",
                "must be positive",
            ));
        }
        Ok(OAuthSessionManager {
            store,
            config: Arc::new(config),
            endpoints: Arc::new(endpoints),
            storage,
            options,
            events,
        })
    }

    pub fn store(&self) -> &Arc<SessionStore> {
        &self.store
    }

    pub fn storage(&self) -> &Arc<dyn OAuthStorage> {
        &self.storage
    }

    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    pub fn options(&self) -> &OAuthSessionOptions {
        &self.options
    }

    fn settings(&self) -> RefreshSettings {
        RefreshSettings {
            request_timeout_ms: self.options.request_timeout_ms,
            lock_wait_ms: self.options.lock_wait_ms,
        }
    }

    fn ensure_open(&self) -> Result<()> {
        if self.store.is_closed() {
            Err(SessionError::StoreClosed)
        } else {
            Ok(())
        }
    }

    /// `createOAuthSession(tokens)` with a session id from the store's generator.
    pub async fn create_oauth_session(&self, tokens: &OAuthTokens) -> Result<Option<String>> {
        self.create_oauth_session_with_id(tokens, None).await
    }

    /// `createOAuthSession(tokens)`: userinfo with the access token, a session for its `sub`
    /// (handle = `name`), then the tokens stored under the new id. `session_id` is the id to
    /// use (the JS layer's `generateId()`), `None` for a random UUID.
    ///
    /// Any failure resolves `None`, is reported through `on_error`, and leaves neither a
    /// session nor tokens behind; only a closed store is an error.
    pub async fn create_oauth_session_with_id(
        &self,
        tokens: &OAuthTokens,
        session_id: Option<String>,
    ) -> Result<Option<String>> {
        self.ensure_open()?;
        let timeout = Duration::from_millis(self.options.request_timeout_ms);
        let info =
            match http::userinfo(&self.endpoints.userinfo, &tokens.access_token, timeout).await {
                Ok(info) => info,
                Err(e) => return self.login_failed(e).await,
            };
        let Some(sub) = info
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        else {
            return self
                .login_failed(oauth_error(
                    "invalid_response",
                    "the userinfo response has no `sub`",
                ))
                .await;
        };
        let handle = info.get("name").and_then(Value::as_str).map(str::to_owned);
        let id = match self
            .store
            .create_session(session_id, sub.to_owned(), handle, None)
            .await
        {
            Ok(id) => id,
            Err(SessionError::StoreClosed) => return Err(SessionError::StoreClosed),
            Err(e) => return self.login_failed(e).await,
        };
        if let Err(e) = self.storage.set_tokens(tokens, &id).await {
            // Undo: no session without its tokens. A failure here is reported too.
            if let Err(cleanup) = self.store.delete_session(&id).await {
                self.events.on_error(&cleanup).await;
            }
            if let Err(cleanup) = self.storage.clear_tokens(&id).await {
                self.events.on_error(&cleanup).await;
            }
            return self.login_failed(e).await;
        }
        Ok(Some(id))
    }

    async fn login_failed(&self, error: SessionError) -> Result<Option<String>> {
        self.events.on_error(&error).await;
        Ok(None)
    }

    /// `getOAuthSession(id)`: the session and its tokens (refreshed first with
    /// `auto_refresh` when they expire within `refresh_skew_ms`), `None` when the session is
    /// missing, expired, or proved dead by the refresh.
    pub async fn get_oauth_session(
        &self,
        session_id: &str,
    ) -> Result<Option<(SessionData, Option<OAuthTokens>)>> {
        self.ensure_open()?;
        // A refresh that ends after this instant counts this call among its burst.
        let read_at = tokio::time::Instant::now();
        let Some(session) = self.store.get_session(session_id).await? else {
            // Missing or expired: its tokens must not outlive it.
            self.storage.clear_tokens(session_id).await?;
            refresh::forget(&self.storage, session_id);
            return Ok(None);
        };
        let Some(tokens) = self.storage.get_tokens(session_id).await? else {
            // No tokens: a session that never had any, or one being logged out right now
            // (a logout deletes the session before it clears the tokens, so it is gone by
            // the time its tokens are): only the first is still a session.
            let exists = self.store.session_exists(session_id).await?;
            return Ok(exists.then_some((session, None)));
        };
        if !self.options.auto_refresh
            || !tokens.needs_refresh(now_millis(), self.options.refresh_skew_ms)
        {
            return Ok(Some((session, Some(tokens))));
        }
        let result = refresh::refresh(
            &self.storage,
            &self.config,
            &self.endpoints,
            session_id,
            &tokens,
            read_at,
            self.settings(),
        )
        .await;
        match self.settle(session_id, result).await {
            Settled::LoggedOut => Ok(None),
            Settled::Tokens(Some(tokens)) => Ok(Some((session, Some(tokens)))),
            // Tokens cleared elsewhere meanwhile (a logout in another process): the session
            // may be gone as well.
            Settled::Tokens(None) => Ok(self
                .store
                .get_session(session_id)
                .await?
                .map(|session| (session, None))),
        }
    }

    /// Acts on a flight's outcome once (events, logout); every caller gets what it left.
    async fn settle(&self, session_id: &str, result: FlightResult) -> Settled {
        let FlightResult { outcome, handled } = result;
        match outcome {
            RefreshOutcome::Refreshed(tokens) => {
                handled
                    .get_or_init(|| async {
                        self.events.on_token_refresh(session_id, &tokens).await;
                        false
                    })
                    .await;
                Settled::Tokens(Some(tokens))
            }
            RefreshOutcome::Adopted(tokens) => Settled::Tokens(tokens),
            RefreshOutcome::Dead(_) => {
                handled
                    .get_or_init(|| async {
                        self.logout_dead(session_id).await;
                        true
                    })
                    .await;
                Settled::LoggedOut
            }
            RefreshOutcome::Lost {
                tokens,
                error,
                newly_detected,
            } => {
                let logged_out = *handled
                    .get_or_init(|| async {
                        if newly_detected {
                            self.events.on_error(&error).await;
                        }
                        // The access token still works until it expires: keep the user
                        // signed in until then (docs/oauth.md, "lost responses").
                        if tokens.is_expired(now_millis()) {
                            // Say why, also when the loss was found earlier (perhaps by an
                            // OAuthClient, which has no onError): never a silent logout.
                            if !newly_detected {
                                self.events.on_error(&error).await;
                            }
                            self.logout_dead(session_id).await;
                            true
                        } else {
                            false
                        }
                    })
                    .await;
                if logged_out {
                    Settled::LoggedOut
                } else {
                    Settled::Tokens(Some(tokens))
                }
            }
            RefreshOutcome::Failed { tokens, error } => {
                handled
                    .get_or_init(|| async {
                        self.events.on_error(&error).await;
                        false
                    })
                    .await;
                Settled::Tokens(Some(tokens))
            }
        }
    }

    /// The logout of a session whose refresh token is dead. Failures are reported, not
    /// returned: the caller's answer (`None`) is right either way.
    ///
    /// The session goes before its tokens, so that a concurrent read which finds no tokens
    /// can tell a logout in progress (session gone) from a session without tokens.
    async fn logout_dead(&self, session_id: &str) {
        if let Err(e) = self.store.delete_session(session_id).await {
            self.events.on_error(&e).await;
        }
        if let Err(e) = self.storage.clear_tokens(session_id).await {
            self.events.on_error(&e).await;
        }
        refresh::forget(&self.storage, session_id);
        self.events.on_logout(session_id).await;
    }

    /// `getAccessToken(id)`: an unexpired access token (refreshed if needed), or `None`.
    pub async fn get_access_token(&self, session_id: &str) -> Result<Option<String>> {
        let now = now_millis();
        Ok(self
            .get_oauth_session(session_id)
            .await?
            .and_then(|(_, tokens)| tokens)
            .filter(|t| !t.is_expired(now))
            .map(|t| t.access_token))
    }

    /// `hasValidOAuthTokens(id)`: tokens exist and are unexpired (after a refresh attempt
    /// with `auto_refresh`).
    pub async fn has_valid_oauth_tokens(&self, session_id: &str) -> Result<bool> {
        Ok(self.get_access_token(session_id).await?.is_some())
    }

    /// `logout(id)`: clears the tokens, deletes the session, calls `on_logout`. Idempotent.
    pub async fn logout(&self, session_id: &str) -> Result<()> {
        self.ensure_open()?;
        self.storage.clear_tokens(session_id).await?;
        refresh::forget(&self.storage, session_id);
        self.store.delete_session(session_id).await?;
        self.events.on_logout(session_id).await;
        Ok(())
    }
}

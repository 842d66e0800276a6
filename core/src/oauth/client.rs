//! The native `OAuthClient` (SPEC §6 \[beyond\], mirrors `@slices/oauth`): the authorization
//! code flow with PKCE, and session-scoped token use.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, SessionError};
use crate::oauth::config::{OAuthConfig, OAuthEndpoints, OAuthTokens, PkceState};
use crate::oauth::http;
use crate::oauth::oauth_error;
use crate::oauth::pkce::{code_challenge, random_token};
use crate::oauth::refresh::{self, RefreshOutcome, RefreshSettings};
use crate::oauth::storage::OAuthStorage;
use crate::session::{now_millis, Millis};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthClientOptions {
    /// `ensureValidToken` refreshes tokens that expire within this (ms). Default 60 000.
    pub refresh_skew_ms: Millis,
    /// Limit for one HTTP request (ms). Default 10 000.
    pub request_timeout_ms: u64,
    /// Limit for waiting on another process's refresh (ms). Default 15 000.
    pub lock_wait_ms: u64,
    /// How long an `authorize()` state stays usable (ms). Default 10 minutes.
    pub state_ttl_ms: Millis,
}

impl Default for OAuthClientOptions {
    fn default() -> Self {
        OAuthClientOptions {
            refresh_skew_ms: 60_000,
            request_timeout_ms: 10_000,
            lock_wait_ms: 15_000,
            state_ttl_ms: 10 * 60 * 1000,
        }
    }
}

/// What `authorize()` resolves to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationRequest {
    /// Where to send the user's browser.
    pub authorization_url: String,
    pub state: String,
    pub code_verifier: String,
}

pub struct OAuthClient {
    config: Arc<OAuthConfig>,
    endpoints: Arc<OAuthEndpoints>,
    storage: Arc<dyn OAuthStorage>,
    session_id: String,
    options: OAuthClientOptions,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("config", &self.config)
            .field("session_id", &self.session_id)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    /// `new OAuthClient(config, storage, sessionId)`.
    pub fn new(
        config: OAuthConfig,
        storage: Arc<dyn OAuthStorage>,
        session_id: impl Into<String>,
    ) -> Result<Self> {
        Self::with_options(config, storage, session_id, OAuthClientOptions::default())
    }

    pub fn with_options(
        config: OAuthConfig,
        storage: Arc<dyn OAuthStorage>,
        session_id: impl Into<String>,
        options: OAuthClientOptions,
    ) -> Result<Self> {
        let endpoints = config.endpoints()?;
        if options.request_timeout_ms == 0 {
            return Err(SessionError::invalid_argument(
                "requestTimeout",
                "must be positive",
            ));
        }
        if options.refresh_skew_ms < 0 || options.state_ttl_ms <= 0 {
            return Err(SessionError::invalid_argument(
                "options",
                "refreshSkew must not be negative and stateTTL must be positive",
            ));
        }
        Ok(OAuthClient {
            config: Arc::new(config),
            endpoints: Arc::new(endpoints),
            storage,
            session_id: session_id.into(),
            options,
        })
    }

    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.options.request_timeout_ms)
    }

    /// `authorize({ loginHint })`: a fresh state and PKCE verifier (OS CSPRNG), the state
    /// stored (keyed by itself) for `state_ttl_ms`, and the URL
    /// `{authBaseUrl}/oauth/authorize?response_type=code&client_id&redirect_uri&scope&state
    /// &code_challenge&code_challenge_method=S256[&login_hint]`.
    pub async fn authorize(&self, login_hint: Option<&str>) -> Result<AuthorizationRequest> {
        let state = random_token()?;
        let code_verifier = random_token()?;
        let now = now_millis();
        self.storage
            .put_state(
                &state,
                &PkceState {
                    code_verifier: code_verifier.clone(),
                    created_at: now,
                },
                now.saturating_add(self.options.state_ttl_ms),
            )
            .await?;
        let mut url = self.endpoints.authorize.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.config.client_id)
                .append_pair("redirect_uri", &self.config.redirect_uri)
                .append_pair("scope", &self.config.scopes.join(" "))
                .append_pair("state", &state)
                .append_pair("code_challenge", &code_challenge(&code_verifier))
                .append_pair("code_challenge_method", "S256");
            if let Some(hint) = login_hint.filter(|h| !h.is_empty()) {
                query.append_pair("login_hint", hint);
            }
        }
        Ok(AuthorizationRequest {
            authorization_url: url.into(),
            state,
            code_verifier,
        })
    }

    /// `handleCallback({ code, state })`: exchanges the code (with the state's PKCE
    /// verifier) for tokens. The state is consumed: an unknown, expired or reused state is
    /// an `invalid_state` error. The tokens are returned, not stored.
    pub async fn handle_callback(&self, code: &str, state: &str) -> Result<OAuthTokens> {
        if code.is_empty() {
            return Err(SessionError::invalid_argument("code", "must not be empty"));
        }
        let pkce = match state {
            "" => None,
            state => self.storage.take_state(state).await?,
        };
        let Some(pkce) = pkce else {
            return Err(oauth_error(
                "invalid_state",
                "the OAuth state is unknown, expired or already used (start the login again)",
            ));
        };
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.config.redirect_uri.as_str()),
            ("code_verifier", pkce.code_verifier.as_str()),
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.as_str()),
        ];
        let sent_at = now_millis();
        http::token_request(&self.endpoints.token, &form, self.timeout())
            .await
            .map(|response| response.into_tokens(sent_at, None))
            .map_err(|failure| failure.error)
    }

    /// `getUserInfo()`: the userinfo JSON as the server sent it, plus `handle` copied from
    /// `name` when present. Uses (and if needed refreshes) this session's access token.
    pub async fn get_user_info(&self) -> Result<Value> {
        let access_token = self.ensure_valid_token().await?;
        let mut info =
            http::userinfo(&self.endpoints.userinfo, &access_token, self.timeout()).await?;
        if let Some(object) = info.as_object_mut() {
            if let Some(name) = object
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
            {
                object.insert("handle".to_owned(), Value::String(name));
            }
        }
        Ok(info)
    }

    async fn stored_tokens(&self) -> Result<OAuthTokens> {
        self.storage
            .get_tokens(&self.session_id)
            .await?
            .ok_or_else(|| {
                oauth_error(
                    "no_tokens",
                    format!(
                        "no OAuth tokens are stored for session `{}`",
                        self.session_id
                    ),
                )
            })
    }

    /// `read_at`: when the caller began reading `seen` (see `refresh::refresh`).
    async fn run_refresh(&self, seen: &OAuthTokens, read_at: Instant) -> RefreshOutcome {
        refresh::refresh(
            &self.storage,
            &self.config,
            &self.endpoints,
            &self.session_id,
            seen,
            read_at,
            RefreshSettings {
                request_timeout_ms: self.options.request_timeout_ms,
                lock_wait_ms: self.options.lock_wait_ms,
            },
        )
        .await
        .outcome
    }

    /// `refreshAccessToken()`: refreshes now (joining a refresh already in flight for this
    /// session, in this process or another) and returns the new tokens, which are stored.
    pub async fn refresh_access_token(&self) -> Result<OAuthTokens> {
        let read_at = Instant::now();
        let tokens = self.stored_tokens().await?;
        if tokens.refresh_token.is_none() {
            return Err(oauth_error(
                "no_refresh_token",
                "the session's tokens have no refresh token",
            ));
        }
        match self.run_refresh(&tokens, read_at).await {
            RefreshOutcome::Refreshed(new) | RefreshOutcome::Adopted(Some(new)) => Ok(new),
            RefreshOutcome::Adopted(None) => self.stored_tokens().await,
            RefreshOutcome::Dead(error)
            | RefreshOutcome::Lost { error, .. }
            | RefreshOutcome::Failed { error, .. } => Err(reissue(&error)),
        }
    }

    /// `ensureValidToken()`: an access token that is valid now, refreshing first when it
    /// expires within `refresh_skew_ms`. When that refresh fails but the current token has
    /// not expired yet, the current token is returned.
    pub async fn ensure_valid_token(&self) -> Result<String> {
        let read_at = Instant::now();
        let tokens = self.stored_tokens().await?;
        let now = now_millis();
        if !tokens.needs_refresh(now, self.options.refresh_skew_ms) {
            if tokens.is_expired(now) {
                return Err(oauth_error(
                    "token_expired",
                    "the access token has expired and there is no refresh token",
                ));
            }
            return Ok(tokens.access_token);
        }
        match self.run_refresh(&tokens, read_at).await {
            RefreshOutcome::Refreshed(new) | RefreshOutcome::Adopted(Some(new))
                if !new.is_expired(now_millis()) =>
            {
                Ok(new.access_token)
            }
            RefreshOutcome::Adopted(_) | RefreshOutcome::Refreshed(_) => Err(oauth_error(
                "token_expired",
                "the session has no valid access token",
            )),
            RefreshOutcome::Dead(error) => Err(reissue(&error)),
            RefreshOutcome::Lost { tokens, error, .. }
            | RefreshOutcome::Failed { tokens, error } => {
                if tokens.is_expired(now_millis()) {
                    Err(reissue(&error))
                } else {
                    Ok(tokens.access_token)
                }
            }
        }
    }

    /// `logout()`: clears this session's tokens (the session itself belongs to the store).
    pub async fn logout(&self) -> Result<()> {
        self.storage.clear_tokens(&self.session_id).await?;
        refresh::forget(&self.storage, &self.session_id);
        Ok(())
    }
}

/// A copy of a shared error for one caller. `SessionError` is not `Clone` (database errors
/// are not); those are carried as their text, with the same error class.
pub fn reissue(error: &SessionError) -> SessionError {
    match error {
        SessionError::OAuth { code, message } => SessionError::OAuth {
            code: code.clone(),
            message: message.clone(),
        },
        SessionError::StoreClosed => SessionError::StoreClosed,
        SessionError::AdapterClosed => SessionError::AdapterClosed,
        SessionError::InvalidArgument { name, reason } => SessionError::InvalidArgument {
            name: name.clone(),
            reason: reason.clone(),
        },
        SessionError::InvalidCookieOptions(s) => SessionError::InvalidCookieOptions(s.clone()),
        SessionError::Unsupported { operation, method } => {
            SessionError::Unsupported { operation, method }
        }
        SessionError::Pool(s) => SessionError::Pool(s.clone()),
        SessionError::Corrupt { session_id, reason } => SessionError::Corrupt {
            session_id: session_id.clone(),
            reason: reason.clone(),
        },
        SessionError::Adapter { method, message } => SessionError::Adapter {
            method,
            message: message.clone(),
        },
        SessionError::Internal(s) => SessionError::Internal(s.clone()),
        SessionError::IdInUse(id) => SessionError::IdInUse(id.clone()),
        SessionError::Timeout {
            backend,
            action,
            ms,
        } => SessionError::Timeout {
            backend,
            action,
            ms: *ms,
        },
        SessionError::Sqlite { action, .. }
        | SessionError::Postgres { action, .. }
        | SessionError::Redis { action, .. } => SessionError::Adapter {
            method: action,
            message: error.to_string(),
        },
    }
}

//! The JS side of OAuth: custom token storages (any object with `getTokens` /
//! `setTokens(tokens, sessionId)` / `clearTokens`) and `withOAuthSession`'s callbacks, both
//! reached through the request protocol of `js_bridge.rs`.
//!
//! The callbacks are ONE JS function, `onEvent(event)`, on one bridge: the core awaits each
//! event before it goes on, and the channel delivers requests to JS in the order they were
//! queued, so JS sees events in the order they happened (an `onLogout` never overtakes the
//! `onError` that preceded it) and each is done before the call that caused it resolves. This
//! is what the N-API binding gets from its single threadsafe function.

use async_trait::async_trait;
use serde_json::{json, Value};
use slices_session_core::error::{Result, SessionError};
use slices_session_core::oauth::client::reissue;
use slices_session_core::oauth::{
    OAuthEvents, OAuthStorage, OAuthTokens, PkceState, RefreshAttempt,
};
use slices_session_core::session::Millis;

use crate::error::FfiError;
use crate::js_bridge::{to_value, Bridge};
use crate::oauth::wire::{WireOAuthEvent, WireTokens};

/// A user's OAuth storage object: the three methods of the original interface, and the
/// optional coordination methods (docs/oauth.md, "JS storages") it declared, in pairs. What
/// it lacks, the core provides (state unsupported, leases and attempts in process memory).
pub struct JsOAuthStorage {
    bridge: Bridge,
    state: bool,
    lease: bool,
    attempts: bool,
}

impl JsOAuthStorage {
    pub fn new(bridge: Bridge, methods: &[String]) -> JsOAuthStorage {
        let has =
            |a: &str, b: &str| methods.iter().any(|m| m == a) && methods.iter().any(|m| m == b);
        JsOAuthStorage {
            bridge,
            state: has("putState", "takeState"),
            lease: has("tryLockRefresh", "unlockRefresh"),
            attempts: has("getRefreshAttempt", "setRefreshAttempt"),
        }
    }
}

#[async_trait]
impl OAuthStorage for JsOAuthStorage {
    async fn get_tokens(&self, session_id: &str) -> Result<Option<OAuthTokens>> {
        let tokens: Option<WireTokens> = self.bridge.call("getTokens", json!([session_id])).await?;
        Ok(tokens.map(OAuthTokens::from))
    }

    async fn set_tokens(&self, tokens: &OAuthTokens, session_id: &str) -> Result<()> {
        // Tokens first, as in the original interface.
        let args = json!([to_value("setTokens", tokens)?, session_id]);
        self.bridge
            .call::<Value>("setTokens", args)
            .await
            .map(|_| ())
    }

    async fn clear_tokens(&self, session_id: &str) -> Result<()> {
        self.bridge
            .call::<Value>("clearTokens", json!([session_id]))
            .await
            .map(|_| ())
    }

    async fn put_state(&self, state: &str, pkce: &PkceState, expires_at: Millis) -> Result<()> {
        if !self.state {
            return Err(SessionError::Unsupported {
                operation: "storing OAuth state (authorize)",
                method: "putState",
            });
        }
        let args = json!([state, to_value("putState", pkce)?, expires_at]);
        self.bridge
            .call::<Value>("putState", args)
            .await
            .map(|_| ())
    }

    async fn take_state(&self, state: &str) -> Result<Option<PkceState>> {
        if !self.state {
            return Err(SessionError::Unsupported {
                operation: "reading OAuth state (handleCallback)",
                method: "takeState",
            });
        }
        self.bridge.call("takeState", json!([state])).await
    }

    async fn try_lock_refresh(
        &self,
        session_id: &str,
        owner: &str,
        lease_ms: Millis,
    ) -> Result<bool> {
        if !self.lease {
            return Ok(true);
        }
        self.bridge
            .call("tryLockRefresh", json!([session_id, owner, lease_ms]))
            .await
    }

    async fn unlock_refresh(&self, session_id: &str, owner: &str) -> Result<()> {
        if !self.lease {
            return Ok(());
        }
        self.bridge
            .call::<Value>("unlockRefresh", json!([session_id, owner]))
            .await
            .map(|_| ())
    }

    fn persists_refresh_attempts(&self) -> bool {
        self.attempts
    }

    async fn get_refresh_attempt(&self, session_id: &str) -> Result<Option<RefreshAttempt>> {
        if !self.attempts {
            return Ok(None);
        }
        self.bridge
            .call("getRefreshAttempt", json!([session_id]))
            .await
    }

    async fn set_refresh_attempt(
        &self,
        session_id: &str,
        attempt: Option<&RefreshAttempt>,
    ) -> Result<()> {
        if !self.attempts {
            return Ok(());
        }
        let attempt = match attempt {
            Some(a) => to_value("setRefreshAttempt", a)?,
            None => Value::Null,
        };
        self.bridge
            .call::<Value>("setRefreshAttempt", json!([session_id, attempt]))
            .await
            .map(|_| ())
    }
}

/// `withOAuthSession`'s `onTokenRefresh` / `onLogout` / `onError`, through `onEvent`.
pub struct JsOAuthEvents {
    bridge: Bridge,
}

impl JsOAuthEvents {
    pub fn new(bridge: Bridge) -> JsOAuthEvents {
        JsOAuthEvents { bridge }
    }

    /// Awaits the application's callback; a callback that throws is reported as an error
    /// event (and one that throws on an error event is left to the JS layer's console.error).
    async fn emit(&self, event: WireOAuthEvent<'_>) {
        let is_error = event.kind == "error";
        let delivered = match to_value("onEvent", &event) {
            Ok(event) => self
                .bridge
                .call::<Value>("onEvent", Value::Array(vec![event]))
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = delivered {
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
            kind: "tokenRefresh",
            session_id: Some(session_id),
            tokens: Some(tokens),
            error: None,
        })
        .await;
    }

    async fn on_logout(&self, session_id: &str) {
        self.emit(WireOAuthEvent {
            kind: "logout",
            session_id: Some(session_id),
            tokens: None,
            error: None,
        })
        .await;
    }

    async fn on_error(&self, error: &SessionError) {
        self.emit(WireOAuthEvent {
            kind: "error",
            session_id: None,
            tokens: None,
            error: Some(FfiError::from(reissue(error)).to_js_message()),
        })
        .await;
    }
}

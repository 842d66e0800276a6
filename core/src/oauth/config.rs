//! The OAuth value types of SPEC §6 and the endpoints derived from the configuration.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Result, SessionError};
use crate::session::Millis;

/// `OAuthConfig` \[orig\]: the client's registration at the authorization server.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthConfig {
    pub client_id: String,
    pub client_secret: String,
    /// The server's base URL; endpoints are `{authBaseUrl}/oauth/...`.
    pub auth_base_url: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for OAuthConfig {
    // Not derived: the secret must not reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("auth_base_url", &self.auth_base_url)
            .field("redirect_uri", &self.redirect_uri)
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl OAuthConfig {
    /// Checks the configuration and derives the endpoint URLs.
    pub fn endpoints(&self) -> Result<OAuthEndpoints> {
        if self.client_id.is_empty() {
            return Err(SessionError::invalid_argument(
                "clientId",
                "must be a non-empty string",
            ));
        }
        let base = Url::parse(&self.auth_base_url).map_err(|e| {
            SessionError::invalid_argument("authBaseUrl", format!("not a valid URL ({e})"))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(SessionError::invalid_argument(
                "authBaseUrl",
                format!("must be an http(s) URL, not `{}:`", base.scheme()),
            ));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(SessionError::invalid_argument(
                "authBaseUrl",
                "must not have a query or a fragment",
            ));
        }
        // `{authBaseUrl}/oauth/token` as the original builds it, whether or not the base ends
        // with a slash; a base path (`https://host/auth`) is kept.
        let trimmed = base.as_str().trim_end_matches('/');
        let endpoint = |path: &str| {
            Url::parse(&format!("{trimmed}{path}")).map_err(|e| {
                SessionError::invalid_argument("authBaseUrl", format!("cannot append {path} ({e})"))
            })
        };
        Ok(OAuthEndpoints {
            authorize: endpoint("/oauth/authorize")?,
            token: endpoint("/oauth/token")?,
            userinfo: endpoint("/oauth/userinfo")?,
        })
    }
}

/// The server endpoints of an [`OAuthConfig`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthEndpoints {
    pub authorize: Url,
    pub token: Url,
    pub userinfo: Url,
}

/// `OAuthTokens` \[decided\]: what the storages keep per session.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthTokens {
    pub access_token: String,
    pub token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Epoch milliseconds; absent: the server gave no lifetime (never refreshed proactively).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl std::fmt::Debug for OAuthTokens {
    // Not derived: tokens are credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthTokens")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish()
    }
}

impl OAuthTokens {
    /// The access token can no longer be used (`expiresAt <= now`). Without `expiresAt` it
    /// never expires as far as we know.
    pub fn is_expired(&self, now: Millis) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Due for a proactive refresh: it expires within `skew_ms` and can be refreshed.
    pub fn needs_refresh(&self, now: Millis, skew_ms: Millis) -> bool {
        self.refresh_token.is_some()
            && self
                .expires_at
                .is_some_and(|at| at.saturating_sub(skew_ms) <= now)
    }

    /// Whether `other` is a different token set (another caller or process stored new ones).
    pub(crate) fn same_grant(&self, other: &OAuthTokens) -> bool {
        self.access_token == other.access_token && self.refresh_token == other.refresh_token
    }
}

/// What `authorize()` remembers under its `state` until the callback (PKCE, RFC 7636).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PkceState {
    pub code_verifier: String,
    /// When `authorize()` ran (epoch ms).
    pub created_at: Millis,
}

impl std::fmt::Debug for PkceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PkceState")
            .field("code_verifier", &"<redacted>")
            .field("created_at", &self.created_at)
            .finish()
    }
}

//! JSON shapes of the OAuth exports. Field for field the objects of the N-API binding's
//! `oauth.rs` (`WireOAuthConfig`, `WireTokens`, `WireOAuthOptions`, `WireOAuthSession`,
//! `WireOAuthEvent` in npm/native.d.ts), so npm/session.js sees the same values from both.
//! Tokens, sessions and authorization requests going out use the core's own serialisation,
//! which already is that shape (absent optional keys omitted).

use serde::{Deserialize, Serialize};
use slices_session_core::oauth::{OAuthConfig, OAuthSessionOptions, OAuthTokens};
use slices_session_core::session::{Millis, SessionData};

use crate::wire::{opt_millis, JsInt, JsObjectSpec, WireRedisOptions};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
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

/// Tokens coming from JS (a user's `setTokens`, a custom storage's `getTokens`). `expiresAt`
/// is read leniently, as napi's `i64` conversion reads it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireTokens {
    pub access_token: String,
    pub token_type: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default, deserialize_with = "opt_millis")]
    pub expires_at: Option<Millis>,
    #[serde(default)]
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

/// `withOAuthSession`'s options without the callbacks (absent: the core's default).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireOAuthOptions {
    #[serde(default)]
    pub auto_refresh: Option<bool>,
    #[serde(default, deserialize_with = "opt_millis")]
    pub refresh_skew: Option<Millis>,
    #[serde(default, deserialize_with = "opt_millis")]
    pub request_timeout: Option<Millis>,
    #[serde(default, deserialize_with = "opt_millis")]
    pub lock_wait: Option<Millis>,
}

fn ms(value: Option<Millis>, default: u64) -> u64 {
    value.map_or(default, |v| v.max(0) as u64)
}

impl From<WireOAuthOptions> for OAuthSessionOptions {
    /// As the N-API binding converts them: a negative `refreshSkew` reaches the core (which
    /// refuses it), negative durations become 0 (a zero `requestTimeout` is refused too).
    fn from(o: WireOAuthOptions) -> Self {
        let defaults = OAuthSessionOptions::default();
        OAuthSessionOptions {
            auto_refresh: o.auto_refresh.unwrap_or(defaults.auto_refresh),
            refresh_skew_ms: o.refresh_skew.unwrap_or(defaults.refresh_skew_ms),
            request_timeout_ms: ms(o.request_timeout, defaults.request_timeout_ms),
            lock_wait_ms: ms(o.lock_wait, defaults.lock_wait_ms),
        }
    }
}

/// `ssd_oauth_storage_open`'s argument: the storage, and what to protect at rest.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthStorageOpen {
    #[serde(flatten)]
    pub spec: OAuthStorageSpec,
    #[serde(default)]
    pub at_rest: Option<WireAtRest>,
}

/// `encryptionKey` (normalised to hex by npm/session.js, the first seals) and `hashIds`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireAtRest {
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub hash_ids: bool,
}

impl std::fmt::Debug for WireAtRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireAtRest")
            .field("keys", &format_args!("<{} redacted>", self.keys.len()))
            .field("hash_ids", &self.hash_ids)
            .finish()
    }
}

/// The storage kinds of `ssd_oauth_storage_open`.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum OAuthStorageSpec {
    Memory,
    Sqlite {
        path: String,
    },
    #[serde(rename_all = "camelCase")]
    Postgres {
        url: String,
        #[serde(default)]
        max_connections: Option<JsInt>,
        #[serde(default)]
        query_timeout_ms: Option<JsInt>,
    },
    #[serde(rename_all = "camelCase")]
    Redis {
        url: String,
        #[serde(flatten)]
        options: WireRedisOptions,
    },
    /// A JS object with `getTokens` / `setTokens` / `clearTokens`, reached through a channel;
    /// `methods` names the optional coordination methods it also has (docs/oauth.md).
    Js {
        channel: u64,
        bridge: u64,
        #[serde(default)]
        methods: Vec<String>,
    },
}

/// `ssd_oauth_manager_open`'s argument: `NativeOAuthManager.create(store, config, storage,
/// options, events)` with the store and the storage as handles and the events as the JS
/// object holding `onEvent`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagerSpec {
    pub store: u64,
    pub config: WireOAuthConfig,
    pub storage: u64,
    #[serde(default)]
    pub options: WireOAuthOptions,
    pub events: JsObjectSpec,
}

/// `ssd_oauth_client_open`'s argument: `new NativeOAuthClient(config, storage, sessionId)`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientSpec {
    pub config: WireOAuthConfig,
    pub storage: u64,
    pub session_id: String,
}

/// What `getOAuthSession` resolves to on the native side.
#[derive(Debug, Serialize)]
pub struct WireOAuthSession {
    pub session: SessionData,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<OAuthTokens>,
}

/// One event for the JS `onEvent` callback. `kind`: "tokenRefresh" (sessionId, tokens),
/// "logout" (sessionId) or "error" (`error`: the error text `"<Class>: ..."`, which the JS
/// layer turns into the error class).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WireOAuthEvent<'a> {
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<&'a OAuthTokens>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_options_parse_like_napi_reads_them() {
        let t: WireTokens =
            serde_json::from_str(r#"{"accessToken":"a","tokenType":"Bearer","expiresAt":1e+21}"#)
                .unwrap();
        let t = OAuthTokens::from(t);
        assert_eq!(t.expires_at, Some(i64::MAX));
        assert_eq!(t.refresh_token, None);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            format!(
                r#"{{"accessToken":"a","tokenType":"Bearer","expiresAt":{}}}"#,
                i64::MAX
            )
        );

        let o = OAuthSessionOptions::from(
            serde_json::from_str::<WireOAuthOptions>(r#"{"refreshSkew":-1,"lockWait":-5}"#)
                .unwrap(),
        );
        assert_eq!(o.refresh_skew_ms, -1);
        assert_eq!(o.lock_wait_ms, 0);
        assert_eq!(o.request_timeout_ms, 10_000);
        assert!(o.auto_refresh);
    }

    #[test]
    fn specs_parse() {
        let s: OAuthStorageSpec =
            serde_json::from_str(r#"{"kind":"postgres","url":"postgres://x","maxConnections":3}"#)
                .unwrap();
        assert!(matches!(
            s,
            OAuthStorageSpec::Postgres {
                max_connections: Some(JsInt(3)),
                ..
            }
        ));
        let s: OAuthStorageSpec =
            serde_json::from_str(r#"{"kind":"js","channel":1,"bridge":2}"#).unwrap();
        assert!(matches!(
            s,
            OAuthStorageSpec::Js { channel: 1, bridge: 2, ref methods } if methods.is_empty()
        ));
        let s: OAuthStorageSpec = serde_json::from_str(
            r#"{"kind":"js","channel":1,"bridge":2,"methods":["putState","takeState"]}"#,
        )
        .unwrap();
        assert!(matches!(
            s,
            OAuthStorageSpec::Js { ref methods, .. } if methods == &["putState", "takeState"]
        ));
        let m: ManagerSpec = serde_json::from_str(
            r#"{"store":1,"storage":2,"config":{"clientId":"c","clientSecret":"s","authBaseUrl":"http://a","redirectUri":"http://r","scopes":["atproto"]},"options":{},"events":{"channel":3,"bridge":4}}"#,
        )
        .unwrap();
        assert_eq!((m.store, m.storage, m.events.bridge), (1, 2, 4));
    }

    #[test]
    fn events_omit_absent_keys() {
        let e = WireOAuthEvent {
            kind: "logout",
            session_id: Some("s"),
            tokens: None,
            error: None,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"kind":"logout","sessionId":"s"}"#
        );
    }
}

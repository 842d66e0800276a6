//! JSON shapes exchanged with the JS shim (jsr/native.ts). They mirror the N-API binding's
//! `wire.rs` field for field (npm/native.d.ts is the interface both bindings implement), so
//! npm/session.js sees the same objects from both. Session records going out use the core's
//! own `SessionData` serialisation, which already is that shape.

use serde::{Deserialize, Deserializer, Serialize};
use slices_session_core::cookie::CookieOptionsPatch;
use slices_session_core::redis::RedisOptions;
use slices_session_core::session::{Millis, SessionData, SessionPatch};
use slices_session_core::store::StoreConfig;

/// A JS number as an integer, the way N-API's `i64` conversion reads it: fractions dropped,
/// out-of-range values saturated. (`JSON.stringify(1e21)` is `1e+21`, which a strict `i64`
/// field would refuse.)
fn js_int(number: &serde_json::Number) -> i64 {
    if let Some(i) = number.as_i64() {
        i
    } else if let Some(u) = number.as_u64() {
        i64::try_from(u).unwrap_or(i64::MAX)
    } else {
        // `as` saturates and maps NaN to 0, which is what we want here.
        number.as_f64().map_or(0, |f| f as i64)
    }
}

fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
    serde_json::Number::deserialize(d).map(|n| js_int(&n))
}

pub(crate) fn opt_millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Millis>, D::Error> {
    Option::<serde_json::Number>::deserialize(d).map(|n| n.map(|n| js_int(&n)))
}

/// A JS number that may be non-finite: JSON cannot carry NaN or ±Infinity, so the JS shim
/// sends them as the strings JS prints for them (only where the core validates the value).
fn opt_js_float<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Float {
        Number(f64),
        Text(String),
    }
    Ok(match Option::<Float>::deserialize(d)? {
        None => None,
        Some(Float::Number(f)) => Some(f),
        Some(Float::Text(t)) => Some(match t.as_str() {
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            // "NaN", and anything else a number field should not hold.
            _ => f64::NAN,
        }),
    })
}

/// An integer argument (`expiresBefore`, a busy timeout, a pool size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsInt(pub i64);

impl<'de> Deserialize<'de> for JsInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        millis(d).map(JsInt)
    }
}

/// A session record coming from JS (`adapter.set`, a custom adapter's `get`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireSession {
    pub session_id: String,
    pub user_id: String,
    #[serde(default)]
    pub handle: Option<String>,
    pub is_authenticated: bool,
    /// JSON text of the `data` object.
    #[serde(default)]
    pub data: Option<String>,
    #[serde(deserialize_with = "millis")]
    pub created_at: Millis,
    #[serde(deserialize_with = "millis")]
    pub expires_at: Millis,
    #[serde(deserialize_with = "millis")]
    pub last_accessed_at: Millis,
}

impl From<WireSession> for SessionData {
    fn from(s: WireSession) -> Self {
        SessionData {
            session_id: s.session_id,
            user_id: s.user_id,
            handle: s.handle,
            is_authenticated: s.is_authenticated,
            data: s.data,
            created_at: s.created_at,
            expires_at: s.expires_at,
            last_accessed_at: s.last_accessed_at,
        }
    }
}

/// `Partial<SessionData>`: `clearHandle` / `clearData` say the key was given as `undefined`.
/// Absent keys are omitted on the way out (session.js tests them against `undefined`).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WirePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_handle: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_authenticated: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_data: Option<bool>,
    #[serde(
        default,
        deserialize_with = "opt_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<Millis>,
    #[serde(
        default,
        deserialize_with = "opt_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<Millis>,
    #[serde(
        default,
        deserialize_with = "opt_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_accessed_at: Option<Millis>,
}

fn given_or_cleared<T>(value: Option<T>, cleared: Option<bool>) -> Option<Option<T>> {
    match (value, cleared) {
        (Some(v), _) => Some(Some(v)),
        (None, Some(true)) => Some(None),
        (None, _) => None,
    }
}

impl From<WirePatch> for SessionPatch {
    fn from(p: WirePatch) -> Self {
        SessionPatch {
            user_id: p.user_id,
            handle: given_or_cleared(p.handle, p.clear_handle),
            is_authenticated: p.is_authenticated,
            data: given_or_cleared(p.data, p.clear_data),
            created_at: p.created_at,
            expires_at: p.expires_at,
            last_accessed_at: p.last_accessed_at,
        }
    }
}

impl From<&SessionPatch> for WirePatch {
    fn from(p: &SessionPatch) -> Self {
        WirePatch {
            user_id: p.user_id.clone(),
            handle: p.handle.clone().flatten(),
            clear_handle: p.handle.as_ref().map(Option::is_none),
            is_authenticated: p.is_authenticated,
            data: p.data.clone().flatten(),
            clear_data: p.data.as_ref().map(Option::is_none),
            created_at: p.created_at,
            expires_at: p.expires_at,
            last_accessed_at: p.last_accessed_at,
        }
    }
}

/// Cookie options as given; `unset` lists keys given as `undefined` (JS spread removes them).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireCookieOptions {
    #[serde(default)]
    pub http_only: Option<bool>,
    #[serde(default)]
    pub secure: Option<bool>,
    #[serde(default)]
    pub same_site: Option<String>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default, deserialize_with = "opt_js_float")]
    pub max_age: Option<f64>,
    #[serde(default)]
    pub unset: Option<Vec<String>>,
}

impl From<WireCookieOptions> for CookieOptionsPatch {
    fn from(o: WireCookieOptions) -> Self {
        let unset = o.unset.unwrap_or_default();
        let is_unset = |key: &str| unset.iter().any(|k| k == key);
        fn pick<T>(value: Option<T>, unset: bool) -> Option<Option<T>> {
            match value {
                Some(v) => Some(Some(v)),
                None if unset => Some(None),
                None => None,
            }
        }
        CookieOptionsPatch {
            http_only: pick(o.http_only, is_unset("httpOnly")),
            secure: pick(o.secure, is_unset("secure")),
            same_site: pick(o.same_site, is_unset("sameSite")),
            domain: pick(o.domain, is_unset("domain")),
            path: pick(o.path, is_unset("path")),
            max_age: pick(o.max_age, is_unset("maxAge")),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireStoreConfig {
    #[serde(default)]
    pub cookie_name: Option<String>,
    #[serde(default)]
    pub cookie_options: Option<WireCookieOptions>,
    #[serde(default, deserialize_with = "opt_millis")]
    pub session_ttl: Option<Millis>,
    #[serde(default, deserialize_with = "opt_millis")]
    pub touch_after: Option<Millis>,
    #[serde(default)]
    pub rolling: Option<bool>,
    #[serde(default)]
    pub hash_ids: Option<bool>,
}

impl From<WireStoreConfig> for StoreConfig {
    fn from(config: WireStoreConfig) -> Self {
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
}

/// `ssd_adapter_open`'s argument: which native adapter to make.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum AdapterSpec {
    Memory,
    #[serde(rename_all = "camelCase")]
    Sqlite {
        path: String,
        #[serde(default)]
        busy_timeout_ms: Option<JsInt>,
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
}

/// `RedisAdapter` / `RedisOAuthStorage` options (checked by the JS layer).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireRedisOptions {
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub max_connections: Option<JsInt>,
    #[serde(default)]
    pub query_timeout_ms: Option<JsInt>,
}

impl From<WireRedisOptions> for RedisOptions {
    fn from(w: WireRedisOptions) -> Self {
        let mut options = RedisOptions {
            prefix: w.prefix,
            ..RedisOptions::default()
        };
        if let Some(JsInt(n)) = w.max_connections {
            options.max_connections = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
        }
        if let Some(JsInt(ms)) = w.query_timeout_ms {
            options.query_timeout_ms = u64::try_from(ms.max(0)).unwrap_or(u64::MAX);
        }
        options
    }
}

/// Where a JS object's calls go (an OAuth storage, `withOAuthSession`'s event callback): the JS
/// module instance's channel, and the key under which that instance keeps the functions.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JsObjectSpec {
    pub channel: u64,
    pub bridge: u64,
}

/// Where a JS adapter's calls go: the JS module instance's channel, and the key under which
/// that instance keeps the adapter's functions.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JsAdapterSpec {
    pub channel: u64,
    pub bridge: u64,
    #[serde(default)]
    pub list_by_user: bool,
    #[serde(default)]
    pub delete_by_user: bool,
}

/// `ssd_store_open`'s argument: a native adapter handle or a JS adapter, and the options.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreSpec {
    #[serde(default)]
    pub adapter: Option<u64>,
    #[serde(default)]
    pub js: Option<JsAdapterSpec>,
    #[serde(default)]
    pub config: WireStoreConfig,
}

/// What the factories return.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Opened {
    pub id: u64,
    pub is_sync: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_read_like_napi_reads_them() {
        let s: WireSession = serde_json::from_str(
            r#"{"sessionId":"a","userId":"u","isAuthenticated":true,"createdAt":1.9,"expiresAt":1e+21,"lastAccessedAt":-5}"#,
        )
        .unwrap();
        assert_eq!(
            (s.created_at, s.expires_at, s.last_accessed_at),
            (1, i64::MAX, -5)
        );
        assert_eq!(s.handle, None);
    }

    #[test]
    fn a_patch_round_trips_and_omits_absent_keys() {
        let patch = SessionPatch {
            handle: Some(None),
            data: Some(Some("{}".into())),
            ..SessionPatch::default()
        };
        let text = serde_json::to_string(&WirePatch::from(&patch)).unwrap();
        assert_eq!(
            text,
            r#"{"clearHandle":true,"data":"{}","clearData":false}"#
        );
        let back: WirePatch = serde_json::from_str(&text).unwrap();
        assert_eq!(SessionPatch::from(back), patch);
    }

    #[test]
    fn specs_parse() {
        let spec: AdapterSpec =
            serde_json::from_str(r#"{"kind":"sqlite","path":":memory:","busyTimeoutMs":null}"#)
                .unwrap();
        assert!(matches!(
            spec,
            AdapterSpec::Sqlite {
                busy_timeout_ms: None,
                ..
            }
        ));
        let store: StoreSpec = serde_json::from_str(
            r#"{"js":{"channel":1,"bridge":2,"listByUser":true},"config":{"cookieOptions":{"secure":false,"unset":["path"]}}}"#,
        )
        .unwrap();
        let config = StoreConfig::from(store.config);
        assert_eq!(config.cookie_options.secure, Some(false));
        let o: WireCookieOptions = serde_json::from_str(r#"{"maxAge":"NaN"}"#).unwrap();
        assert!(o.max_age.is_some_and(f64::is_nan));
        let o: WireCookieOptions = serde_json::from_str(r#"{"maxAge":"-Infinity"}"#).unwrap();
        assert_eq!(o.max_age, Some(f64::NEG_INFINITY));
        assert_eq!(config.cookie_options.path, None);
    }
}

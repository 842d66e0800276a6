//! The shapes that cross N-API. The JS layer (npm/session.js) converts user values to and
//! from these: `data` travels as JSON text, and type checks that name arguments happen there.

use napi_derive::napi;
use slices_session_core::cookie::CookieOptionsPatch;
use slices_session_core::session::{SessionData, SessionPatch, SessionUser};

#[napi(object)]
pub struct WireSession {
    pub session_id: String,
    pub user_id: String,
    pub handle: Option<String>,
    pub is_authenticated: bool,
    /// JSON text of the `data` object.
    pub data: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_accessed_at: i64,
}

impl From<SessionData> for WireSession {
    fn from(s: SessionData) -> Self {
        WireSession {
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
#[napi(object)]
#[derive(Default)]
pub struct WirePatch {
    pub user_id: Option<String>,
    pub handle: Option<String>,
    pub clear_handle: Option<bool>,
    pub is_authenticated: Option<bool>,
    pub data: Option<String>,
    pub clear_data: Option<bool>,
    pub created_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub last_accessed_at: Option<i64>,
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

#[napi(object)]
pub struct WireUser {
    pub session_id: Option<String>,
    pub sub: Option<String>,
    pub handle: Option<String>,
    pub is_authenticated: bool,
}

impl From<SessionUser> for WireUser {
    fn from(u: SessionUser) -> Self {
        WireUser {
            session_id: u.session_id,
            sub: u.sub,
            handle: u.handle,
            is_authenticated: u.is_authenticated,
        }
    }
}

/// Cookie options as given; `unset` lists keys given as `undefined` (JS spread removes them).
#[napi(object)]
#[derive(Default)]
pub struct WireCookieOptions {
    pub http_only: Option<bool>,
    pub secure: Option<bool>,
    pub same_site: Option<String>,
    pub domain: Option<String>,
    pub path: Option<String>,
    pub max_age: Option<f64>,
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

#[napi(object)]
#[derive(Default)]
pub struct WireStoreConfig {
    pub cookie_name: Option<String>,
    pub cookie_options: Option<WireCookieOptions>,
    pub session_ttl: Option<i64>,
    pub touch_after: Option<i64>,
    pub rolling: Option<bool>,
    pub hash_ids: Option<bool>,
}

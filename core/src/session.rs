//! The session record and partial updates to it (SPEC §2).

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SessionError};

/// Milliseconds since the Unix epoch, as JavaScript's `Date.now()`.
pub type Millis = i64;

/// Current wall-clock time in epoch milliseconds.
pub fn now_millis() -> Millis {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as Millis,
        // A clock before 1970 is a broken machine; treat it as the epoch rather than panic.
        Err(_) => 0,
    }
}

/// One stored session.
///
/// `data` is kept as JSON text of an object, exactly as the SQLite schema stores it: the
/// bindings hand it to JavaScript's `JSON.parse`, and storage never has to re-encode it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionData {
    pub session_id: String,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    pub is_authenticated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub last_accessed_at: Millis,
}

impl SessionData {
    pub fn is_expired(&self, now: Millis) -> bool {
        self.expires_at <= now
    }

    /// The record as JavaScript sees it (SPEC §2), as JSON text: `handle` and `data` left out
    /// when absent, `data` embedded as the JSON it is stored as. The bindings hand this to one
    /// `JSON.parse`, which is cheaper than building the object field by field across N-API or
    /// FFI and then parsing `data` on its own. `data` is checked to be one JSON value, so a
    /// stored value can never add keys to the record.
    pub fn to_js_json(&self) -> Result<String> {
        let mut out = Vec::with_capacity(192 + self.data.as_ref().map_or(0, String::len));
        self.write_js_json(&mut out)?;
        String::from_utf8(out).map_err(|e| SessionError::Internal(e.to_string()))
    }

    /// Written by hand rather than derived: the field names are constants, and the derived
    /// serializer escapes each of them again on every call (callgrind, per call: 5 300
    /// instructions derived, with `RawValue` for `data`, against 3 900 written by hand).
    fn write_js_json(&self, out: &mut Vec<u8>) -> Result<()> {
        if let Some(data) = &self.data {
            serde_json::from_str::<IgnoredAny>(data).map_err(|e| self.not_json(e))?;
        }
        out.extend_from_slice(b"{\"sessionId\":");
        push_json(out, &self.session_id)?;
        out.extend_from_slice(b",\"userId\":");
        push_json(out, &self.user_id)?;
        if let Some(handle) = &self.handle {
            out.extend_from_slice(b",\"handle\":");
            push_json(out, handle)?;
        }
        out.extend_from_slice(if self.is_authenticated {
            b",\"isAuthenticated\":true"
        } else {
            b",\"isAuthenticated\":false"
        });
        if let Some(data) = &self.data {
            out.extend_from_slice(b",\"data\":");
            let json_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
            out.extend_from_slice(data.trim_matches(json_space).as_bytes());
        }
        out.extend_from_slice(b",\"createdAt\":");
        push_json(out, &self.created_at)?;
        out.extend_from_slice(b",\"expiresAt\":");
        push_json(out, &self.expires_at)?;
        out.extend_from_slice(b",\"lastAccessedAt\":");
        push_json(out, &self.last_accessed_at)?;
        out.push(b'}');
        Ok(())
    }

    fn not_json(&self, e: serde_json::Error) -> SessionError {
        SessionError::Corrupt {
            session_id: self.session_id.clone(),
            reason: format!("`data` is not JSON ({e})"),
        }
    }
}

/// Several sessions as one JSON array of [`SessionData::to_js_json`] records.
pub fn sessions_to_js_json(sessions: &[SessionData]) -> Result<String> {
    let mut out = Vec::with_capacity(256 * sessions.len() + 2);
    out.push(b'[');
    for (i, session) in sessions.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        session.write_js_json(&mut out)?;
    }
    out.push(b']');
    String::from_utf8(out).map_err(|e| SessionError::Internal(e.to_string()))
}

/// `value` (a string or an integer) as JSON at the end of `out`, with serde_json's escaping.
fn push_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<()> {
    serde_json::to_writer(out, value).map_err(|e| SessionError::Internal(e.to_string()))
}

/// A shallow update (`Partial<SessionData>`). The outer `Option` says whether the key was
/// given; for `handle` and `data` the inner `None` means "given as undefined" (removes it).
/// There is no `session_id`: an update never renames a session (SPEC §3 [decided]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionPatch {
    pub user_id: Option<String>,
    pub handle: Option<Option<String>>,
    pub is_authenticated: Option<bool>,
    pub data: Option<Option<String>>,
    pub created_at: Option<Millis>,
    pub expires_at: Option<Millis>,
    pub last_accessed_at: Option<Millis>,
}

impl SessionPatch {
    /// Applies the update in place (the shallow merge of the original: `data` is replaced whole).
    pub fn apply_to(&self, session: &mut SessionData) {
        if let Some(v) = &self.user_id {
            session.user_id.clone_from(v);
        }
        if let Some(v) = &self.handle {
            session.handle.clone_from(v);
        }
        if let Some(v) = self.is_authenticated {
            session.is_authenticated = v;
        }
        if let Some(v) = &self.data {
            session.data.clone_from(v);
        }
        if let Some(v) = self.created_at {
            session.created_at = v;
        }
        if let Some(v) = self.expires_at {
            session.expires_at = v;
        }
        if let Some(v) = self.last_accessed_at {
            session.last_accessed_at = v;
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == SessionPatch::default()
    }
}

/// What `getCurrentUser` returns (SPEC §3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    pub is_authenticated: bool,
}

impl SessionUser {
    pub fn anonymous() -> Self {
        SessionUser {
            session_id: None,
            sub: None,
            handle: None,
            is_authenticated: false,
        }
    }

    pub fn from_session(session: SessionData) -> Self {
        SessionUser {
            session_id: Some(session.session_id),
            sub: Some(session.user_id),
            handle: session.handle,
            is_authenticated: session.is_authenticated,
        }
    }
}

/// The at-rest form of a session id under `hashIds` (docs/security.md): `sha256:` and the
/// lower-case hex of SHA-256(id). A leaked table then yields no cookie value; the prefix keeps
/// such keys apart from ids and tells a reader of the table what they are.
pub fn hashed_session_id(id: &str) -> String {
    use sha2::{Digest, Sha256};
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(id.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(handle: Option<&str>, data: Option<&str>) -> SessionData {
        SessionData {
            session_id: "id \"1\"".into(),
            user_id: "did:plc:ü".into(),
            handle: handle.map(Into::into),
            is_authenticated: false,
            data: data.map(Into::into),
            created_at: 1,
            expires_at: -2,
            last_accessed_at: 9_007_199_254_740_993,
        }
    }

    #[test]
    fn js_json_has_the_users_shape_and_order() {
        let s = session(Some("a.b"), Some(r#" {"n":[1,{"x":null}],"s":"\u2028"} "#));
        assert_eq!(
            s.to_js_json().unwrap(),
            r#"{"sessionId":"id \"1\"","userId":"did:plc:ü","handle":"a.b","isAuthenticated":false,"data":{"n":[1,{"x":null}],"s":"\u2028"},"createdAt":1,"expiresAt":-2,"lastAccessedAt":9007199254740993}"#
        );
        let bare = session(None, None).to_js_json().unwrap();
        assert_eq!(
            bare,
            r#"{"sessionId":"id \"1\"","userId":"did:plc:ü","isAuthenticated":false,"createdAt":1,"expiresAt":-2,"lastAccessedAt":9007199254740993}"#
        );
        let list = sessions_to_js_json(&[session(None, None), session(None, None)]).unwrap();
        assert_eq!(list, format!("[{bare},{bare}]"));
        assert_eq!(sessions_to_js_json(&[]).unwrap(), "[]");
    }

    #[test]
    fn js_json_refuses_data_that_is_not_one_json_value() {
        // Text that would add or replace keys of the record if it were pasted in as it is.
        for bad in [r#"1,"userId":"admin""#, "{", "", "{} {}", "undefined"] {
            let err = session(None, Some(bad)).to_js_json().unwrap_err();
            assert!(
                matches!(&err, SessionError::Corrupt { session_id, .. } if session_id == "id \"1\""),
                "{bad:?}: {err:?}"
            );
            assert!(sessions_to_js_json(&[session(None, Some(bad))]).is_err());
        }
    }
}

//! The session record and partial updates to it (SPEC §2).

use serde::{Deserialize, Serialize};

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

//! The storage interface (SPEC §2 `SessionAdapter`), implemented by the native adapters
//! (memory, SQLite, PostgreSQL) and by the bindings' wrappers around JS adapter objects.
//!
//! The six required methods are the original interface. The provided methods are the
//! request-path and [beyond] operations: their defaults are built from the six, so a custom
//! adapter gets them for free, and native adapters override them to do the work in one
//! statement.

use std::borrow::Cow;

use async_trait::async_trait;

use crate::error::{Result, SessionError};
use crate::reply::{fingerprint, Fingerprint};
use crate::session::{Millis, SessionData, SessionPatch};

/// What [`SessionAdapter::load_reply`] found (core/src/reply.rs).
#[derive(Debug, PartialEq)]
pub enum Loaded {
    None,
    /// The stored record's stable fields have the hinted fingerprint.
    Same {
        expires_at: Millis,
        last_accessed_at: Millis,
    },
    /// The record, as stored, and its fingerprint.
    Record(SessionData, Fingerprint),
}

impl Loaded {
    /// `Same` when the record's fingerprint `fp` is the caller's `hint`, else the record
    /// (copied only then, when borrowed).
    pub fn answer(
        session: Cow<'_, SessionData>,
        fp: Fingerprint,
        hint: Option<Fingerprint>,
    ) -> Loaded {
        if hint == Some(fp) {
            Loaded::Same {
                expires_at: session.expires_at,
                last_accessed_at: session.last_accessed_at,
            }
        } else {
            Loaded::Record(session.into_owned(), fp)
        }
    }
}

/// How a successful read records the access (SPEC §3 `touchAfter`, `rolling`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Touch {
    /// The time of this access.
    pub now: Millis,
    /// Skip the write when the stored `last_accessed_at` is younger than this (0: always write).
    pub touch_after: Millis,
    /// With `rolling`, the TTL to push `expires_at` to (`now + ttl`) whenever we write.
    pub rolling_ttl: Option<Millis>,
}

impl Touch {
    /// Whether an access at `self.now` should be written for a record last accessed at `last`.
    pub fn is_due(&self, last_accessed_at: Millis) -> bool {
        self.now.saturating_sub(last_accessed_at) >= self.touch_after
    }

    /// Writes a due access into `session` in place: what applying [`Self::patch`] does,
    /// without building the patch (the in-memory request path).
    pub fn apply_to(&self, session: &mut SessionData) {
        session.last_accessed_at = self.now;
        if let Some(ttl) = self.rolling_ttl {
            session.expires_at = self.now.saturating_add(ttl);
        }
    }

    /// The fields written by a due access.
    pub fn patch(&self) -> SessionPatch {
        SessionPatch {
            last_accessed_at: Some(self.now),
            expires_at: self.rolling_ttl.map(|ttl| self.now.saturating_add(ttl)),
            ..SessionPatch::default()
        }
    }
}

#[async_trait]
pub trait SessionAdapter: Send + Sync {
    /// The stored record, expired or not (the store checks expiry).
    async fn get(&self, id: &str) -> Result<Option<SessionData>>;
    /// Insert or replace.
    async fn set(&self, id: &str, data: &SessionData) -> Result<()>;
    /// Shallow merge; `false` when there is no such row.
    async fn update(&self, id: &str, patch: &SessionPatch) -> Result<bool>;
    /// No-op when missing.
    async fn delete(&self, id: &str) -> Result<()>;
    /// Removes rows with `expires_at < expires_before`; returns how many.
    async fn cleanup(&self, expires_before: Millis) -> Result<u64>;
    async fn exists(&self, id: &str) -> Result<bool>;

    /// True when every future this adapter returns completes on its first poll (memory,
    /// SQLite). The bindings then run calls on the caller's thread instead of a runtime.
    fn is_sync(&self) -> bool {
        false
    }

    /// All sessions of a user (expired ones may be included; the store filters and sorts).
    async fn list_by_user(&self, _user_id: &str) -> Result<Vec<SessionData>> {
        Err(SessionError::Unsupported {
            operation: "listUserSessions",
            method: "listByUser",
        })
    }

    /// Deletes all sessions of a user but `except`; returns how many.
    async fn delete_by_user(&self, _user_id: &str, _except: Option<&str>) -> Result<u64> {
        Err(SessionError::Unsupported {
            operation: "deleteUserSessions",
            method: "deleteByUser",
        })
    }

    /// Stores a NEW session: fails with `IdInUse` rather than overwrite another session. The
    /// default checks then sets (not atomic); native adapters do it in one step.
    async fn insert(&self, id: &str, data: &SessionData) -> Result<()> {
        if self.exists(id).await? {
            return Err(SessionError::IdInUse(id.to_owned()));
        }
        self.set(id, data).await
    }

    /// The request path: the live session under `id` with the access recorded, or `None`.
    /// An expired record is deleted. Native adapters do this in one statement.
    async fn load(&self, id: &str, touch: &Touch) -> Result<Option<SessionData>> {
        let Some(mut session) = self.get(id).await? else {
            return Ok(None);
        };
        if session.is_expired(touch.now) {
            self.delete(id).await?;
            return Ok(None);
        }
        if touch.is_due(session.last_accessed_at) {
            let patch = touch.patch();
            if !self.update(id, &patch).await? {
                // Deleted between our read and write: it is gone for this caller too.
                return Ok(None);
            }
            patch.apply_to(&mut session);
        }
        Ok(Some(session))
    }

    /// [`Self::load`], answered as [`Loaded::Same`] when the record's fingerprint is `hint`
    /// (core/src/reply.rs). The memory adapter keeps fingerprints, so it neither hashes nor
    /// copies the record for a `Same` answer.
    async fn load_reply(
        &self,
        id: &str,
        touch: &Touch,
        hint: Option<Fingerprint>,
    ) -> Result<Loaded> {
        Ok(match self.load(id, touch).await? {
            None => Loaded::None,
            Some(session) => {
                let fp = fingerprint(&session);
                Loaded::answer(Cow::Owned(session), fp, hint)
            }
        })
    }

    /// Moves the live session `old_id` to `new_id` (same record); `None` when missing or
    /// expired; `IdInUse` when `new_id` is taken. The default is not atomic (set, then
    /// delete); native adapters are.
    async fn rename(&self, old_id: &str, new_id: &str, now: Millis) -> Result<Option<SessionData>> {
        let Some(mut session) = self.get(old_id).await? else {
            return Ok(None);
        };
        if session.is_expired(now) {
            return Ok(None);
        }
        if new_id == old_id {
            return Ok(Some(session));
        }
        if self.exists(new_id).await? {
            return Err(SessionError::IdInUse(new_id.to_owned()));
        }
        session.session_id = new_id.to_owned();
        self.set(new_id, &session).await?;
        self.delete(old_id).await?;
        Ok(Some(session))
    }

    /// Releases connections and files. Later calls fail with `AdapterClosed`.
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

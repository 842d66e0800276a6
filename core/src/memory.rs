//! In-process adapter (SPEC §5 MemoryAdapter): a map behind a mutex.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::adapter::{Loaded, SessionAdapter, Touch};
use crate::error::{Result, SessionError};
use crate::reply::{fingerprint, Fingerprint};
use crate::session::{Millis, SessionData, SessionPatch};

/// A stored session and, once asked for, the fingerprint of its stable fields
/// (core/src/reply.rs), so that the request path neither hashes nor copies an unchanged record.
/// Every write that can change a stable field clears it.
struct Entry {
    session: SessionData,
    fingerprint: Option<Fingerprint>,
}

impl Entry {
    fn new(session: SessionData) -> Self {
        Entry {
            session,
            fingerprint: None,
        }
    }

    fn fingerprint(&mut self) -> Fingerprint {
        *self
            .fingerprint
            .get_or_insert_with(|| fingerprint(&self.session))
    }
}

#[derive(Default)]
pub struct MemoryAdapter {
    sessions: Mutex<HashMap<String, Entry>>,
}

impl MemoryAdapter {
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> Result<MutexGuard<'_, HashMap<String, Entry>>> {
        self.sessions
            .lock()
            .map_err(|_| SessionError::Internal("memory adapter lock poisoned".into()))
    }

    pub fn clear(&self) -> Result<()> {
        self.map()?.clear();
        Ok(())
    }

    pub fn size(&self) -> Result<usize> {
        Ok(self.map()?.len())
    }

    pub fn keys(&self) -> Result<Vec<String>> {
        Ok(self.map()?.keys().cloned().collect())
    }
}

#[async_trait]
impl SessionAdapter for MemoryAdapter {
    async fn get(&self, id: &str) -> Result<Option<SessionData>> {
        // A copy, never a live reference (SPEC §5 [decided]).
        Ok(self.map()?.get(id).map(|e| e.session.clone()))
    }

    async fn set(&self, id: &str, data: &SessionData) -> Result<()> {
        let mut record = data.clone();
        record.session_id = id.to_owned();
        self.map()?.insert(id.to_owned(), Entry::new(record));
        Ok(())
    }

    async fn insert(&self, id: &str, data: &SessionData) -> Result<()> {
        let mut map = self.map()?;
        match map.entry(id.to_owned()) {
            std::collections::hash_map::Entry::Occupied(_) => {
                Err(SessionError::IdInUse(id.to_owned()))
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                let mut record = data.clone();
                record.session_id = id.to_owned();
                slot.insert(Entry::new(record));
                Ok(())
            }
        }
    }

    async fn update(&self, id: &str, patch: &SessionPatch) -> Result<bool> {
        Ok(match self.map()?.get_mut(id) {
            Some(entry) => {
                patch.apply_to(&mut entry.session);
                entry.fingerprint = None;
                true
            }
            None => false,
        })
    }

    async fn delete(&self, id: &str) -> Result<()> {
        self.map()?.remove(id);
        Ok(())
    }

    async fn cleanup(&self, expires_before: Millis) -> Result<u64> {
        let mut map = self.map()?;
        let before = map.len();
        map.retain(|_, e| e.session.expires_at >= expires_before);
        Ok((before - map.len()) as u64)
    }

    async fn exists(&self, id: &str) -> Result<bool> {
        Ok(self.map()?.contains_key(id))
    }

    fn is_sync(&self) -> bool {
        true
    }

    async fn list_by_user(&self, user_id: &str) -> Result<Vec<SessionData>> {
        Ok(self
            .map()?
            .values()
            .filter(|e| e.session.user_id == user_id)
            .map(|e| e.session.clone())
            .collect())
    }

    async fn delete_by_user(&self, user_id: &str, except: Option<&str>) -> Result<u64> {
        let mut map = self.map()?;
        let before = map.len();
        map.retain(|id, e| e.session.user_id != user_id || Some(id.as_str()) == except);
        Ok((before - map.len()) as u64)
    }

    async fn load(&self, id: &str, touch: &Touch) -> Result<Option<SessionData>> {
        let mut map = self.map()?;
        Ok(touched(&mut map, id, touch).map(|e| e.session.clone()))
    }

    async fn load_reply(
        &self,
        id: &str,
        touch: &Touch,
        hint: Option<Fingerprint>,
    ) -> Result<Loaded> {
        let mut map = self.map()?;
        let Some(entry) = touched(&mut map, id, touch) else {
            return Ok(Loaded::None);
        };
        let fp = entry.fingerprint();
        Ok(Loaded::answer(Cow::Borrowed(&entry.session), fp, hint))
    }

    async fn rename(&self, old_id: &str, new_id: &str, now: Millis) -> Result<Option<SessionData>> {
        let mut map = self.map()?;
        match map.get(old_id) {
            Some(e) if !e.session.is_expired(now) => {}
            _ => return Ok(None),
        }
        if new_id != old_id && map.contains_key(new_id) {
            return Err(SessionError::IdInUse(new_id.to_owned()));
        }
        let Some(Entry { mut session, .. }) = map.remove(old_id) else {
            return Ok(None);
        };
        session.session_id = new_id.to_owned();
        map.insert(new_id.to_owned(), Entry::new(session.clone()));
        Ok(Some(session))
    }
}

/// The request path on the map: the live entry under `id` with the access recorded (touching
/// only timestamps, which the fingerprint leaves out), or None; an expired entry is removed.
fn touched<'m>(
    map: &'m mut HashMap<String, Entry>,
    id: &str,
    touch: &Touch,
) -> Option<&'m mut Entry> {
    let expired = map.get(id)?.session.is_expired(touch.now);
    if expired {
        map.remove(id);
        return None;
    }
    let entry = map.get_mut(id)?;
    if touch.is_due(entry.session.last_accessed_at) {
        touch.apply_to(&mut entry.session);
    }
    Some(entry)
}

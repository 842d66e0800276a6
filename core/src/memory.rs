//! In-process adapter (SPEC §5 MemoryAdapter): a map behind a mutex.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::adapter::{SessionAdapter, Touch};
use crate::error::{Result, SessionError};
use crate::session::{Millis, SessionData, SessionPatch};

#[derive(Default)]
pub struct MemoryAdapter {
    sessions: Mutex<HashMap<String, SessionData>>,
}

impl MemoryAdapter {
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> Result<MutexGuard<'_, HashMap<String, SessionData>>> {
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
        Ok(self.map()?.get(id).cloned())
    }

    async fn set(&self, id: &str, data: &SessionData) -> Result<()> {
        let mut record = data.clone();
        record.session_id = id.to_owned();
        self.map()?.insert(id.to_owned(), record);
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
                slot.insert(record);
                Ok(())
            }
        }
    }

    async fn update(&self, id: &str, patch: &SessionPatch) -> Result<bool> {
        Ok(match self.map()?.get_mut(id) {
            Some(session) => {
                patch.apply_to(session);
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
        map.retain(|_, s| s.expires_at >= expires_before);
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
            .filter(|s| s.user_id == user_id)
            .cloned()
            .collect())
    }

    async fn delete_by_user(&self, user_id: &str, except: Option<&str>) -> Result<u64> {
        let mut map = self.map()?;
        let before = map.len();
        map.retain(|id, s| s.user_id != user_id || Some(id.as_str()) == except);
        Ok((before - map.len()) as u64)
    }

    async fn load(&self, id: &str, touch: &Touch) -> Result<Option<SessionData>> {
        let mut map = self.map()?;
        let Some(session) = map.get_mut(id) else {
            return Ok(None);
        };
        if session.is_expired(touch.now) {
            map.remove(id);
            return Ok(None);
        }
        if touch.is_due(session.last_accessed_at) {
            touch.patch().apply_to(session);
        }
        Ok(Some(session.clone()))
    }

    async fn rename(&self, old_id: &str, new_id: &str, now: Millis) -> Result<Option<SessionData>> {
        let mut map = self.map()?;
        match map.get(old_id) {
            Some(s) if !s.is_expired(now) => {}
            _ => return Ok(None),
        }
        if new_id != old_id && map.contains_key(new_id) {
            return Err(SessionError::IdInUse(new_id.to_owned()));
        }
        let Some(mut session) = map.remove(old_id) else {
            return Ok(None);
        };
        session.session_id = new_id.to_owned();
        map.insert(new_id.to_owned(), session.clone());
        Ok(Some(session))
    }
}

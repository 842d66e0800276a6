//! `MemoryOAuthStorage`: tokens, PKCE states and refresh attempts in process memory.
//!
//! One process only, so the cross-process lease is the trait's default (always acquired):
//! the process-local single flight already makes refreshes exclusive.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::error::{Result, SessionError};
use crate::oauth::config::{OAuthTokens, PkceState};
use crate::oauth::refresh::RefreshAttempt;
use crate::oauth::storage::OAuthStorage;
use crate::session::{now_millis, Millis};

#[derive(Default)]
struct Inner {
    tokens: HashMap<String, (OAuthTokens, Option<RefreshAttempt>)>,
    states: HashMap<String, (PkceState, Millis)>,
    closed: bool,
}

#[derive(Default)]
pub struct MemoryOAuthStorage {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MemoryOAuthStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryOAuthStorage").finish_non_exhaustive()
    }
}

impl MemoryOAuthStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many sessions have tokens.
    pub fn size(&self) -> Result<usize> {
        Ok(self.lock()?.tokens.len())
    }

    /// Removes everything.
    pub fn clear(&self) -> Result<()> {
        let mut inner = self.lock()?;
        inner.tokens.clear();
        inner.states.clear();
        Ok(())
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>> {
        let inner = self.inner.lock().map_err(|_| {
            SessionError::Internal("the OAuth memory storage lock was poisoned by a panic".into())
        })?;
        if inner.closed {
            return Err(SessionError::AdapterClosed);
        }
        Ok(inner)
    }
}

#[async_trait]
impl OAuthStorage for MemoryOAuthStorage {
    async fn get_tokens(&self, session_id: &str) -> Result<Option<OAuthTokens>> {
        Ok(self.lock()?.tokens.get(session_id).map(|(t, _)| t.clone()))
    }

    async fn set_tokens(&self, tokens: &OAuthTokens, session_id: &str) -> Result<()> {
        self.lock()?
            .tokens
            .insert(session_id.to_owned(), (tokens.clone(), None));
        Ok(())
    }

    async fn clear_tokens(&self, session_id: &str) -> Result<()> {
        self.lock()?.tokens.remove(session_id);
        Ok(())
    }

    fn is_sync(&self) -> bool {
        true
    }

    async fn put_state(&self, state: &str, pkce: &PkceState, expires_at: Millis) -> Result<()> {
        let now = now_millis();
        let mut inner = self.lock()?;
        // Abandoned logins would otherwise accumulate for the life of the process.
        inner.states.retain(|_, (_, at)| *at > now);
        inner
            .states
            .insert(state.to_owned(), (pkce.clone(), expires_at));
        Ok(())
    }

    async fn take_state(&self, state: &str) -> Result<Option<PkceState>> {
        let now = now_millis();
        Ok(self
            .lock()?
            .states
            .remove(state)
            .and_then(|(pkce, at)| (at > now).then_some(pkce)))
    }

    fn persists_refresh_attempts(&self) -> bool {
        true
    }

    async fn get_refresh_attempt(&self, session_id: &str) -> Result<Option<RefreshAttempt>> {
        Ok(self
            .lock()?
            .tokens
            .get(session_id)
            .and_then(|(_, a)| a.clone()))
    }

    async fn set_refresh_attempt(
        &self,
        session_id: &str,
        attempt: Option<&RefreshAttempt>,
    ) -> Result<()> {
        if let Some((_, slot)) = self.lock()?.tokens.get_mut(session_id) {
            *slot = attempt.cloned();
        }
        Ok(())
    }

    async fn close(&self) -> Result<()> {
        let mut inner = self.inner.lock().map_err(|_| {
            SessionError::Internal("the OAuth memory storage lock was poisoned by a panic".into())
        })?;
        inner.closed = true;
        inner.tokens.clear();
        inner.states.clear();
        Ok(())
    }
}

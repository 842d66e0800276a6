//! `SessionStore` (SPEC §3): the session rules on top of any [`SessionAdapter`].
//!
//! Every method is an `async fn` over the adapter. With a synchronous adapter (memory,
//! SQLite) the whole future completes on its first poll, so the bindings can run it on the
//! caller's thread; with PostgreSQL or a JS adapter they drive it on a runtime.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::adapter::{Loaded, SessionAdapter, Touch};
use crate::cookie::{
    cookie_value, encode_uri_component, serialize_cookie, validate_cookie_options, CookieOptions,
};
use crate::error::{Result, SessionError};
use crate::reply::{Fingerprint, Reply};
use std::borrow::Cow;

use crate::session::{
    hashed_session_id, now_millis, Millis, SessionData, SessionPatch, SessionUser,
};

pub const DEFAULT_COOKIE_NAME: &str = "slice-session";
/// 30 days.
pub const DEFAULT_SESSION_TTL: Millis = 30 * 24 * 60 * 60 * 1000;
/// 1 hour (the timer itself lives in the bindings, on the JS event loop).
pub const DEFAULT_CLEANUP_INTERVAL: Millis = 60 * 60 * 1000;

#[derive(Clone, Debug, PartialEq)]
pub struct StoreConfig {
    pub cookie_name: String,
    /// Already overlaid on [`CookieOptions::session_defaults`].
    pub cookie_options: CookieOptions,
    pub session_ttl: Millis,
    /// Skip the `lastAccessedAt` write when the stored value is younger than this.
    pub touch_after: Millis,
    /// Push `expiresAt` to `now + session_ttl` on every recorded access.
    pub rolling: bool,
    /// Store each session under [`hashed_session_id`] of its id (docs/security.md).
    pub hash_ids: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            cookie_name: DEFAULT_COOKIE_NAME.to_owned(),
            cookie_options: CookieOptions::session_defaults(),
            session_ttl: DEFAULT_SESSION_TTL,
            touch_after: 0,
            rolling: false,
            hash_ids: false,
        }
    }
}

pub struct SessionStore {
    adapter: Arc<dyn SessionAdapter>,
    config: StoreConfig,
    /// The cookie's name as `serialize_cookie` writes it (parsing does not decode names, so
    /// lookups use this form; for ordinary names it is the name itself).
    encoded_cookie_name: String,
    closed: AtomicBool,
}

impl SessionStore {
    /// Validates the configuration; a store that would hand out cookies browsers drop is an error.
    pub fn new(adapter: Arc<dyn SessionAdapter>, config: StoreConfig) -> Result<Self> {
        if config.cookie_name.is_empty() {
            return Err(SessionError::invalid_argument(
                "cookieName",
                "must be a non-empty string",
            ));
        }
        if config.session_ttl < 0 {
            return Err(SessionError::invalid_argument(
                "sessionTTL",
                "must not be negative",
            ));
        }
        if config.touch_after < 0 {
            return Err(SessionError::invalid_argument(
                "touchAfter",
                "must not be negative",
            ));
        }
        validate_cookie_options(&config.cookie_name, &config.cookie_options)?;
        Ok(SessionStore {
            adapter,
            encoded_cookie_name: encode_uri_component(&config.cookie_name),
            config,
            closed: AtomicBool::new(false),
        })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub fn adapter(&self) -> &Arc<dyn SessionAdapter> {
        &self.adapter
    }

    /// See [`SessionAdapter::is_sync`].
    pub fn is_sync(&self) -> bool {
        self.adapter.is_sync()
    }

    /// Marks the store closed; returns false when it already was. The adapter is not closed:
    /// several stores may share it.
    pub fn close(&self) -> bool {
        !self.closed.swap(true, Ordering::SeqCst)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn ensure_open(&self) -> Result<()> {
        if self.is_closed() {
            Err(SessionError::StoreClosed)
        } else {
            Ok(())
        }
    }

    /// The adapter's key for `id`: the id, or its hash under `hash_ids`. Every id a caller
    /// gives goes through here, so with `hash_ids` the adapter never sees a clear id, and a
    /// hash read out of the table, given back as an id, names nothing (it is hashed again).
    fn key<'a>(&self, id: &'a str) -> Cow<'a, str> {
        if self.config.hash_ids {
            Cow::Owned(hashed_session_id(id))
        } else {
            Cow::Borrowed(id)
        }
    }

    /// A record read for the caller's `id`, which under `hash_ids` holds the hash: given back
    /// with the caller's id.
    fn as_asked(&self, id: &str, session: Option<SessionData>) -> Option<SessionData> {
        match session {
            Some(mut s) if self.config.hash_ids => {
                s.session_id = id.to_owned();
                Some(s)
            }
            other => other,
        }
    }

    fn touch(&self, now: Millis) -> Touch {
        Touch {
            now,
            touch_after: self.config.touch_after,
            rolling_ttl: self.config.rolling.then_some(self.config.session_ttl),
        }
    }

    /// `id`: from the caller's `generateId`, else a random v4 UUID (OS CSPRNG, 122 random bits).
    pub async fn create_session(
        &self,
        id: Option<String>,
        user_id: String,
        handle: Option<String>,
        data: Option<String>,
    ) -> Result<String> {
        self.ensure_open()?;
        let session_id = match id {
            Some(id) if id.is_empty() => {
                return Err(SessionError::invalid_argument(
                    "generateId",
                    "must return a non-empty string",
                ))
            }
            Some(id) => id,
            None => uuid::Uuid::new_v4().to_string(),
        };
        let now = now_millis();
        let key = self.key(&session_id).into_owned();
        let session = SessionData {
            session_id: key.clone(),
            user_id,
            handle,
            is_authenticated: true,
            data,
            created_at: now,
            expires_at: now.saturating_add(self.config.session_ttl),
            last_accessed_at: now,
        };
        self.adapter.insert(&key, &session).await?;
        Ok(session_id)
    }

    pub async fn get_session(&self, id: &str) -> Result<Option<SessionData>> {
        self.ensure_open()?;
        let found = self
            .adapter
            .load(&self.key(id), &self.touch(now_millis()))
            .await?;
        Ok(self.as_asked(id, found))
    }

    /// [`Self::get_session`] as a [`Reply`] to a caller holding the record of `hint`
    /// (core/src/reply.rs).
    pub async fn session_reply(&self, id: &str, hint: Option<Fingerprint>) -> Result<Reply> {
        self.ensure_open()?;
        let loaded = self
            .adapter
            .load_reply(&self.key(id), &self.touch(now_millis()), hint)
            .await?;
        Ok(match loaded {
            Loaded::None => Reply::None,
            Loaded::Same {
                expires_at,
                last_accessed_at,
            } => Reply::Same {
                expires_at,
                last_accessed_at,
            },
            Loaded::Record(session, fingerprint) => match self.as_asked(id, Some(session)) {
                Some(session) => Reply::Full {
                    json: session.to_js_json()?,
                    fingerprint,
                },
                None => Reply::None,
            },
        })
    }

    /// [`Self::get_session_from_cookie_header`] as a [`Reply`], as [`Self::session_reply`].
    pub async fn session_reply_from_cookie_header(
        &self,
        header: Option<&str>,
        hint: Option<Fingerprint>,
    ) -> Result<Reply> {
        self.ensure_open()?;
        match header.and_then(|h| cookie_value(h, &self.encoded_cookie_name)) {
            Some(id) if !id.is_empty() => self.session_reply(&id, hint).await,
            _ => Ok(Reply::None),
        }
    }

    pub async fn update_session(&self, id: &str, patch: &SessionPatch) -> Result<bool> {
        self.ensure_open()?;
        self.adapter.update(&self.key(id), patch).await
    }

    /// Whether a record is stored under `id` (expired or not; nothing is written).
    pub async fn session_exists(&self, id: &str) -> Result<bool> {
        self.ensure_open()?;
        self.adapter.exists(&self.key(id)).await
    }

    pub async fn delete_session(&self, id: &str) -> Result<()> {
        self.ensure_open()?;
        self.adapter.delete(&self.key(id)).await
    }

    /// The session named by this store's cookie in a `Cookie` header. Never fails on the
    /// header's content: a missing or malformed cookie is `None`.
    pub async fn get_session_from_cookie_header(
        &self,
        header: Option<&str>,
    ) -> Result<Option<SessionData>> {
        self.ensure_open()?;
        match header.and_then(|h| cookie_value(h, &self.encoded_cookie_name)) {
            Some(id) if !id.is_empty() => self.get_session(&id).await,
            _ => Ok(None),
        }
    }

    pub async fn current_user(&self, header: Option<&str>) -> Result<SessionUser> {
        Ok(match self.get_session_from_cookie_header(header).await? {
            Some(session) => SessionUser::from_session(session),
            None => SessionUser::anonymous(),
        })
    }

    pub fn session_cookie(&self, id: &str) -> String {
        let mut options = self.config.cookie_options.clone();
        if options.max_age.is_none() {
            options.max_age = Some(self.config.session_ttl.div_euclid(1000) as f64);
        }
        serialize_cookie(&self.config.cookie_name, id, &options)
    }

    pub fn logout_cookie(&self) -> String {
        let options = CookieOptions {
            max_age: Some(0.0),
            ..self.config.cookie_options.clone()
        };
        serialize_cookie(&self.config.cookie_name, "", &options)
    }

    /// Removes sessions that expired before now; resolves to how many.
    pub async fn cleanup(&self) -> Result<u64> {
        self.ensure_open()?;
        self.adapter.cleanup(now_millis()).await
    }

    /// The user's unexpired sessions, oldest first. Under `hash_ids` their `session_id` is
    /// the stored hash: the clear ids are not kept anywhere.
    pub async fn list_user_sessions(&self, user_id: &str) -> Result<Vec<SessionData>> {
        self.ensure_open()?;
        let now = now_millis();
        let mut sessions = self.adapter.list_by_user(user_id).await?;
        sessions.retain(|s| !s.is_expired(now));
        sessions.sort_by(|a, b| (a.created_at, &a.session_id).cmp(&(b.created_at, &b.session_id)));
        Ok(sessions)
    }

    /// "Log out everywhere" (but `except`); resolves to how many sessions were removed.
    pub async fn delete_user_sessions(&self, user_id: &str, except: Option<&str>) -> Result<u64> {
        self.ensure_open()?;
        let except = except.map(|id| self.key(id));
        self.adapter
            .delete_by_user(user_id, except.as_deref())
            .await
    }

    /// Moves a live session to a new id (after a privilege change, against fixation).
    pub async fn regenerate_session(
        &self,
        id: &str,
        new_id: Option<String>,
    ) -> Result<Option<String>> {
        self.ensure_open()?;
        let new_id = match new_id {
            Some(n) if n.is_empty() => {
                return Err(SessionError::invalid_argument(
                    "generateId",
                    "must return a non-empty string",
                ))
            }
            Some(n) => n,
            None => uuid::Uuid::new_v4().to_string(),
        };
        let renamed = self
            .adapter
            .rename(&self.key(id), &self.key(&new_id), now_millis())
            .await?;
        Ok(renamed.map(|s| {
            if self.config.hash_ids {
                new_id
            } else {
                s.session_id
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryAdapter;

    #[tokio::test]
    async fn hash_ids_keep_only_hashes_in_the_adapter() {
        let adapter = Arc::new(MemoryAdapter::new());
        let config = StoreConfig {
            hash_ids: true,
            ..StoreConfig::default()
        };
        let store = SessionStore::new(adapter.clone(), config).unwrap();
        let id = store
            .create_session(None, "u".into(), None, None)
            .await
            .unwrap();
        let key = hashed_session_id(&id);
        assert!(adapter.get(&id).await.unwrap().is_none());
        let stored = adapter.get(&key).await.unwrap().unwrap();
        assert_eq!(stored.session_id, key);
        assert_eq!(
            store.get_session(&id).await.unwrap().unwrap().session_id,
            id
        );
        assert!(store.get_session(&key).await.unwrap().is_none());
        assert!(store.session_exists(&id).await.unwrap());
        let header = format!("slice-session={id}");
        let user = store.current_user(Some(&header)).await.unwrap();
        assert_eq!(user.session_id.as_deref(), Some(id.as_str()));
        let renewed = store.regenerate_session(&id, None).await.unwrap().unwrap();
        assert!(adapter
            .get(&hashed_session_id(&renewed))
            .await
            .unwrap()
            .is_some());
        assert!(adapter.get(&key).await.unwrap().is_none());
    }
}

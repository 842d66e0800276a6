//! OAuth sessions (SPEC §6) against the loopback AIP server (tests/aip/server.mjs, run with
//! Node as a child process): every row of the §6 table and its edge rules on the memory and
//! SQLite storages (and a minimal storage that implements only the three required methods,
//! as a JS object does), single-flight refresh in one process and across 4 processes, the
//! failure classification, lost responses, and the PKCE flow of `OAuthClient`.
//!
//! PostgreSQL: `oauth_postgres.rs`.

mod oauth_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use serde_json::{json, Value};
use slices_session_core::error::{ErrorKind, Result, SessionError};
use slices_session_core::memory::MemoryAdapter;
use slices_session_core::oauth::{
    oauth_error_code, MemoryOAuthStorage, OAuthClient, OAuthClientOptions, OAuthConfig,
    OAuthSessionManager, OAuthSessionOptions, OAuthStorage, OAuthTokens, PkceState, RefreshAttempt,
    SqliteOAuthStorage,
};
use slices_session_core::session::{now_millis, Millis, SessionPatch};
use slices_session_core::sqlite::{SqliteAdapter, SqliteOptions};
use slices_session_core::store::{SessionStore, StoreConfig};
use tempfile::TempDir;

use oauth_support::*;

const ALICE: &str = "did:plc:alice";

#[derive(Clone, Copy, Debug)]
enum Kind {
    Memory,
    Sqlite,
    /// Only getTokens/setTokens/clearTokens, like a JS storage object.
    Minimal,
}

/// A JS-like storage: the three required methods, every provided method left default.
struct Minimal(MemoryOAuthStorage);

#[async_trait]
impl OAuthStorage for Minimal {
    async fn get_tokens(&self, session_id: &str) -> Result<Option<OAuthTokens>> {
        self.0.get_tokens(session_id).await
    }
    async fn set_tokens(&self, tokens: &OAuthTokens, session_id: &str) -> Result<()> {
        self.0.set_tokens(tokens, session_id).await
    }
    async fn clear_tokens(&self, session_id: &str) -> Result<()> {
        self.0.clear_tokens(session_id).await
    }
}

struct Fx {
    aip: Aip,
    store: Arc<SessionStore>,
    storage: Arc<dyn OAuthStorage>,
    events: Arc<Recorder>,
    manager: OAuthSessionManager,
    _dir: TempDir,
}

impl Fx {
    async fn new(kind: Kind) -> Fx {
        Self::with(kind, OAuthSessionOptions::default()).await
    }

    async fn with(kind: Kind, options: OAuthSessionOptions) -> Fx {
        let aip = Aip::start();
        let dir = tempfile::tempdir().unwrap();
        let (store, storage): (Arc<SessionStore>, Arc<dyn OAuthStorage>) = match kind {
            Kind::Memory | Kind::Minimal => {
                let store =
                    SessionStore::new(Arc::new(MemoryAdapter::new()), StoreConfig::default())
                        .unwrap();
                let storage: Arc<dyn OAuthStorage> = match kind {
                    Kind::Minimal => Arc::new(Minimal(MemoryOAuthStorage::new())),
                    _ => Arc::new(MemoryOAuthStorage::new()),
                };
                (Arc::new(store), storage)
            }
            Kind::Sqlite => {
                let sessions = dir.path().join("sessions.db");
                let oauth = dir.path().join("oauth.db");
                let adapter =
                    SqliteAdapter::open(sessions.to_str().unwrap(), SqliteOptions::default())
                        .unwrap();
                let store = SessionStore::new(Arc::new(adapter), StoreConfig::default()).unwrap();
                let storage = SqliteOAuthStorage::open(oauth.to_str().unwrap()).unwrap();
                (Arc::new(store), Arc::new(storage))
            }
        };
        let events = recorder();
        let manager = OAuthSessionManager::new(
            store.clone(),
            aip.config(),
            storage.clone(),
            options,
            events.clone(),
        )
        .unwrap();
        Fx {
            aip,
            store,
            storage,
            events,
            manager,
            _dir: dir,
        }
    }

    /// Another manager over the same store and storage.
    fn manager(
        &self,
        config: OAuthConfig,
        options: OAuthSessionOptions,
    ) -> (OAuthSessionManager, Arc<Recorder>) {
        let events = recorder();
        let manager = OAuthSessionManager::new(
            self.store.clone(),
            config,
            self.storage.clone(),
            options,
            events.clone(),
        )
        .unwrap();
        (manager, events)
    }

    /// A session for alice with `tokens` stored under it (no userinfo call).
    async fn session(&self, tokens: &OAuthTokens) -> String {
        let id = self
            .store
            .create_session(None, ALICE.into(), Some("alice.test".into()), None)
            .await
            .unwrap();
        self.storage.set_tokens(tokens, &id).await.unwrap();
        id
    }

    async fn tokens(&self, id: &str) -> Option<OAuthTokens> {
        self.storage.get_tokens(id).await.unwrap()
    }

    fn client(&self, session_id: &str) -> OAuthClient {
        OAuthClient::new(self.aip.config(), self.storage.clone(), session_id).unwrap()
    }
}

/// Runs each case on every storage kind, as separate tests.
macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Kind::Memory).await })*
        }
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Kind::Sqlite).await })*
        }
        mod minimal_storage {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Kind::Minimal).await })*
        }
    };
}

cases!(
    create_oauth_session_fetches_userinfo_and_stores_tokens,
    create_oauth_session_failure_leaves_nothing_behind,
    missing_or_expired_session_is_null_and_its_tokens_are_cleared,
    session_without_tokens_has_tokens_absent,
    fresh_tokens_are_not_refreshed,
    tokens_within_refresh_skew_are_refreshed_once,
    tokens_without_expires_at_are_never_refreshed,
    expired_tokens_without_refresh_token,
    auto_refresh_false_never_refreshes,
    invalid_grant_logs_out,
    invalid_grant_rereads_storage_and_adopts_newer_tokens,
    server_error_keeps_session_and_next_call_retries,
    timeout_keeps_session_then_lost_response_is_reported,
    dropped_response_after_rotation_is_reported_then_logged_out,
    invalid_client_keeps_session_and_reports,
    logout_is_idempotent,
    access_token_and_validity,
    aip_burns_refresh_after_access_expiry,
    hundred_concurrent_reads_refresh_once,
    manager_and_client_share_one_flight,
    pkce_round_trip_and_state_rules,
    client_token_methods,
);

async fn create_oauth_session_fetches_userinfo_and_stores_tokens(kind: Kind) {
    let fx = Fx::new(kind).await;
    let tokens = fx.aip.issue("alice.test", 3600, Some(3_600_000)).await;
    let id = fx
        .manager
        .create_oauth_session(&tokens)
        .await
        .unwrap()
        .expect("session id");
    let (session, stored) = fx.manager.get_oauth_session(&id).await.unwrap().unwrap();
    assert_eq!(session.user_id, ALICE);
    assert_eq!(session.handle.as_deref(), Some("alice.test"));
    assert!(session.is_authenticated);
    assert_eq!(stored.as_ref(), Some(&tokens));
    assert_eq!(fx.tokens(&id).await.as_ref(), Some(&tokens));
    assert_eq!(fx.aip.counters().await["userinfo"]["byStatus"]["200"], 1);

    // The id can come from the caller (the JS layer's generateId).
    let id = fx
        .manager
        .create_oauth_session_with_id(&tokens, Some("chosen-id".into()))
        .await
        .unwrap();
    assert_eq!(id.as_deref(), Some("chosen-id"));

    // Without the profile scope AIP sends no name: no handle.
    let (plain, _) = fx.manager(
        OAuthConfig {
            scopes: vec!["atproto".into()],
            ..fx.aip.config()
        },
        OAuthSessionOptions::default(),
    );
    let body = fx
        .aip
        .admin("issue", json!({ "handle": "bob.test", "scope": "atproto" }))
        .await;
    let bob = OAuthTokens {
        access_token: body["access_token"].as_str().unwrap().into(),
        token_type: "Bearer".into(),
        refresh_token: None,
        expires_at: None,
        scope: None,
    };
    let id = plain.create_oauth_session(&bob).await.unwrap().unwrap();
    let (session, _) = plain.get_oauth_session(&id).await.unwrap().unwrap();
    assert_eq!(session.user_id, "did:plc:bob");
    assert_eq!(session.handle, None);
}

/// A storage whose `set_tokens` fails, to check that the session is removed again.
struct FailingSet(MemoryOAuthStorage);

#[async_trait]
impl OAuthStorage for FailingSet {
    async fn get_tokens(&self, session_id: &str) -> Result<Option<OAuthTokens>> {
        self.0.get_tokens(session_id).await
    }
    async fn set_tokens(&self, _tokens: &OAuthTokens, _session_id: &str) -> Result<()> {
        Err(SessionError::Adapter {
            method: "setTokens",
            message: "disk full".into(),
        })
    }
    async fn clear_tokens(&self, session_id: &str) -> Result<()> {
        self.0.clear_tokens(session_id).await
    }
}

async fn create_oauth_session_failure_leaves_nothing_behind(kind: Kind) {
    let fx = Fx::new(kind).await;
    // A bad access token: userinfo answers 401.
    let bad = OAuthTokens {
        access_token: "not-a-token".into(),
        token_type: "Bearer".into(),
        refresh_token: Some("rt".into()),
        expires_at: Some(now_millis() + 3_600_000),
        scope: None,
    };
    let id = fx
        .manager
        .create_oauth_session_with_id(&bad, Some("would-be".into()))
        .await
        .unwrap();
    assert_eq!(id, None);
    assert_eq!(fx.store.get_session("would-be").await.unwrap(), None);
    assert_eq!(fx.tokens("would-be").await, None);
    assert_eq!(fx.events.errors(), vec!["invalid_token"]);

    // Storing the tokens fails: the session created for them is removed again.
    let failing: Arc<dyn OAuthStorage> = Arc::new(FailingSet(MemoryOAuthStorage::new()));
    let events = recorder();
    let manager = OAuthSessionManager::new(
        fx.store.clone(),
        fx.aip.config(),
        failing,
        OAuthSessionOptions::default(),
        events.clone(),
    )
    .unwrap();
    let good = fx.aip.issue("alice.test", 3600, Some(3_600_000)).await;
    let id = manager
        .create_oauth_session_with_id(&good, Some("half-made".into()))
        .await
        .unwrap();
    assert_eq!(id, None);
    assert_eq!(fx.store.get_session("half-made").await.unwrap(), None);
    assert_eq!(events.errors().len(), 1);
    assert!(events.errors()[0].contains("disk full"));

    // Server down: null, reported.
    let (down, down_events) = fx.manager(
        OAuthConfig {
            auth_base_url: "http://127.0.0.1:9".into(),
            ..fx.aip.config()
        },
        OAuthSessionOptions::default(),
    );
    assert_eq!(down.create_oauth_session(&good).await.unwrap(), None);
    assert_eq!(down_events.errors(), vec!["network_error"]);

    // A closed store is an error, not null.
    fx.store.close();
    let err = fx.manager.create_oauth_session(&good).await.unwrap_err();
    assert!(matches!(err, SessionError::StoreClosed), "{err}");
}

async fn missing_or_expired_session_is_null_and_its_tokens_are_cleared(kind: Kind) {
    let fx = Fx::new(kind).await;
    let tokens = fx.aip.issue("alice.test", 3600, Some(3_600_000)).await;
    // Tokens without a session.
    fx.storage.set_tokens(&tokens, "ghost").await.unwrap();
    assert_eq!(fx.manager.get_oauth_session("ghost").await.unwrap(), None);
    assert_eq!(fx.tokens("ghost").await, None);

    // An expired session.
    let id = fx.session(&tokens).await;
    fx.store
        .update_session(
            &id,
            &SessionPatch {
                expires_at: Some(now_millis() - 1),
                ..SessionPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(fx.manager.get_oauth_session(&id).await.unwrap(), None);
    assert_eq!(fx.tokens(&id).await, None);
    assert_eq!(fx.store.get_session(&id).await.unwrap(), None);
    assert_eq!(fx.manager.get_access_token(&id).await.unwrap(), None);
    assert!(!fx.manager.has_valid_oauth_tokens(&id).await.unwrap());
    assert_eq!(fx.aip.refreshes().await, 0);
}

async fn session_without_tokens_has_tokens_absent(kind: Kind) {
    let fx = Fx::new(kind).await;
    let id = fx
        .store
        .create_session(None, ALICE.into(), None, None)
        .await
        .unwrap();
    let (session, tokens) = fx.manager.get_oauth_session(&id).await.unwrap().unwrap();
    assert_eq!(session.session_id, id);
    assert_eq!(tokens, None);
    assert_eq!(fx.manager.get_access_token(&id).await.unwrap(), None);
    assert!(!fx.manager.has_valid_oauth_tokens(&id).await.unwrap());
}

async fn fresh_tokens_are_not_refreshed(kind: Kind) {
    let fx = Fx::new(kind).await;
    let tokens = fx.aip.issue("alice.test", 3600, Some(3_600_000)).await;
    let id = fx.session(&tokens).await;
    let (_, got) = fx.manager.get_oauth_session(&id).await.unwrap().unwrap();
    assert_eq!(got, Some(tokens.clone()));
    assert_eq!(
        fx.manager.get_access_token(&id).await.unwrap(),
        Some(tokens.access_token)
    );
    assert_eq!(fx.aip.refreshes().await, 0);
    assert!(fx.events.refreshed().is_empty());
}

async fn tokens_within_refresh_skew_are_refreshed_once(kind: Kind) {
    let fx = Fx::new(kind).await;
    // 30 s left: inside the default 60 s skew.
    let tokens = fx.aip.issue("alice.test", 3600, Some(30_000)).await;
    let id = fx.session(&tokens).await;
    let before = now_millis();
    let (_, got) = fx.manager.get_oauth_session(&id).await.unwrap().unwrap();
    let got = got.unwrap();
    assert_ne!(got.access_token, tokens.access_token);
    assert_ne!(got.refresh_token, tokens.refresh_token);
    assert!(got.refresh_token.is_some());
    assert_eq!(got.scope.as_deref(), Some("atproto profile"));
    // expires_in 3600 s from the moment the request left.
    let expires_at = got.expires_at.unwrap();
    assert!(expires_at >= before + 3_600_000 - 10 && expires_at <= now_millis() + 3_600_000);
    assert_eq!(fx.tokens(&id).await, Some(got.clone()));
    assert_eq!(fx.events.refreshed(), vec![(id.clone(), got.clone())]);
    // Later reads use the new tokens; no further refresh.
    for _ in 0..3 {
        assert_eq!(
            fx.manager.get_access_token(&id).await.unwrap(),
            Some(got.access_token.clone())
        );
    }
    assert_eq!(fx.aip.refreshes().await, 1);
    // The old refresh token was rotated away.
    let presented = fx.aip.counters().await["refreshTokensPresented"].clone();
    assert_eq!(presented, json!([tokens.refresh_token.unwrap()]));
}

async fn tokens_without_expires_at_are_never_refreshed(kind: Kind) {
    let fx = Fx::new(kind).await;
    let tokens = fx.aip.issue("alice.test", 3600, None).await;
    let id = fx.session(&tokens).await;
    let (_, got) = fx.manager.get_oauth_session(&id).await.unwrap().unwrap();
    assert_eq!(got, Some(tokens.clone()));
    assert!(fx.manager.has_valid_oauth_tokens(&id).await.unwrap());
    assert_eq!(fx.aip.refreshes().await, 0);
}

async fn expired_tokens_without_refresh_token(kind: Kind) {
    let fx = Fx::new(kind).await;
    let mut tokens = fx.aip.issue("alice.test", 3600, Some(-1000)).await;
    tokens.refresh_token = None;
    let id = fx.session(&tokens).await;
    let (session, got) = fx.manager.get_oauth_session(&id).await.unwrap().unwrap();
    assert_eq!(session.session_id, id);
    assert_eq!(got, Some(tokens));
    assert!(!fx.manager.has_valid_oauth_tokens(&id).await.unwrap());
    assert_eq!(fx.manager.get_access_token(&id).await.unwrap(), None);
    assert_eq!(fx.aip.refreshes().await, 0);
}

async fn auto_refresh_false_never_refreshes(kind: Kind) {
    let fx = Fx::with(
        kind,
        OAuthSessionOptions {
            auto_refresh: false,
            ..OAuthSessionOptions::default()
        },
    )
    .await;
    let soon = fx.aip.issue("alice.test", 3600, Some(30_000)).await;
    let expired = fx.aip.issue("alice.test", 3600, Some(-1000)).await;
    let a = fx.session(&soon).await;
    let b = fx.session(&expired).await;
    assert_eq!(
        fx.manager.get_oauth_session(&a).await.unwrap().unwrap().1,
        Some(soon.clone())
    );
    assert_eq!(
        fx.manager.get_access_token(&a).await.unwrap(),
        Some(soon.access_token)
    );
    assert_eq!(
        fx.manager.get_oauth_session(&b).await.unwrap().unwrap().1,
        Some(expired)
    );
    assert_eq!(fx.manager.get_access_token(&b).await.unwrap(), None);
    assert!(!fx.manager.has_valid_oauth_tokens(&b).await.unwrap());
    assert_eq!(fx.aip.refreshes().await, 0);
}

async fn invalid_grant_logs_out(kind: Kind) {
    let fx = Fx::new(kind).await;
    let mut tokens = fx.aip.issue("alice.test", 3600, Some(-1000)).await;
    tokens.refresh_token = Some("rt_unknown".into());
    let id = fx.session(&tokens).await;
    assert_eq!(fx.manager.get_oauth_session(&id).await.unwrap(), None);
    assert_eq!(fx.store.get_session(&id).await.unwrap(), None);
    assert_eq!(fx.tokens(&id).await, None);
    assert_eq!(fx.events.logouts(), vec![id.clone()]);
    assert!(fx.events.errors().is_empty(), "{:?}", fx.events.errors());
    assert_eq!(fx.aip.counters().await["refresh"]["byStatus"]["400"], 1);
    // Gone for good: no further request.
    assert_eq!(fx.manager.get_access_token(&id).await.unwrap(), None);
    assert_eq!(fx.aip.refreshes().await, 1);
    assert_eq!(fx.events.logouts().len(), 1);
}

/// Delegates to memory; after the `swap_at`-th `get_tokens`, replaces the tokens (as
/// another process's refresh landing while ours is in flight).
struct SwapAfter {
    inner: MemoryOAuthStorage,
    calls: AtomicUsize,
    swap_at: usize,
    replacement: Mutex<Option<(String, OAuthTokens)>>,
}

#[async_trait]
impl OAuthStorage for SwapAfter {
    async fn get_tokens(&self, session_id: &str) -> Result<Option<OAuthTokens>> {
        let got = self.inner.get_tokens(session_id).await;
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.swap_at {
            let replacement = self.replacement.lock().unwrap().take();
            if let Some((id, tokens)) = replacement {
                self.inner.set_tokens(&tokens, &id).await?;
            }
        }
        got
    }
    async fn set_tokens(&self, tokens: &OAuthTokens, session_id: &str) -> Result<()> {
        self.inner.set_tokens(tokens, session_id).await
    }
    async fn clear_tokens(&self, session_id: &str) -> Result<()> {
        self.inner.clear_tokens(session_id).await
    }
    fn persists_refresh_attempts(&self) -> bool {
        true
    }
    async fn get_refresh_attempt(&self, session_id: &str) -> Result<Option<RefreshAttempt>> {
        self.inner.get_refresh_attempt(session_id).await
    }
    async fn set_refresh_attempt(
        &self,
        session_id: &str,
        attempt: Option<&RefreshAttempt>,
    ) -> Result<()> {
        self.inner.set_refresh_attempt(session_id, attempt).await
    }
}

async fn invalid_grant_rereads_storage_and_adopts_newer_tokens(kind: Kind) {
    let fx = Fx::new(kind).await;
    let old = fx.aip.issue("alice.test", 3600, Some(-1000)).await;
    // "Another process" refreshes with the old refresh token first.
    let answer: Value = fx
        .aip
        .refresh_directly(old.refresh_token.as_deref().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let newer = OAuthTokens {
        access_token: answer["access_token"].as_str().unwrap().into(),
        token_type: "Bearer".into(),
        refresh_token: answer["refresh_token"].as_str().map(str::to_owned),
        expires_at: Some(now_millis() + 3_600_000),
        scope: Some("atproto profile".into()),
    };
    // Our reads: 1 by getOAuthSession, 2 under the lease; the swap lands after the 2nd, so
    // we send the old token, get invalid_grant, and the re-read (3rd) finds the newer tokens.
    let storage = Arc::new(SwapAfter {
        inner: MemoryOAuthStorage::new(),
        calls: AtomicUsize::new(0),
        swap_at: 2,
        replacement: Mutex::new(None),
    });
    let events = recorder();
    let manager = OAuthSessionManager::new(
        fx.store.clone(),
        fx.aip.config(),
        storage.clone(),
        OAuthSessionOptions::default(),
        events.clone(),
    )
    .unwrap();
    let id = fx
        .store
        .create_session(None, ALICE.into(), None, None)
        .await
        .unwrap();
    storage.inner.set_tokens(&old, &id).await.unwrap();
    *storage.replacement.lock().unwrap() = Some((id.clone(), newer.clone()));

    let (session, got) = manager.get_oauth_session(&id).await.unwrap().unwrap();
    assert_eq!(session.session_id, id);
    assert_eq!(got, Some(newer));
    assert!(events.logouts().is_empty());
    assert!(
        events.refreshed().is_empty(),
        "adopted, not refreshed by us"
    );
    assert_eq!(fx.aip.counters().await["refresh"]["byStatus"]["400"], 1);
}

async fn server_error_keeps_session_and_next_call_retries(kind: Kind) {
    let fx = Fx::new(kind).await;
    let soon = fx.aip.issue("alice.test", 3600, Some(30_000)).await;
    let id = fx.session(&soon).await;
    fx.aip.faults(json!([{ "type": "500" }])).await;
    let (_, got) = fx.manager.get_oauth_session(&id).await.unwrap().unwrap();
    assert_eq!(got, Some(soon.clone()), "current tokens kept");
    assert_eq!(fx.tokens(&id).await, Some(soon.clone()));
    assert_eq!(fx.events.errors(), vec!["server_error"]);
    assert_eq!(fx.aip.refreshes().await, 1, "not retried within the call");
    // The next call tries again, and the server did not rotate: it works.
    let (_, got) = fx.manager.get_oauth_session(&id).await.unwrap().unwrap();
    let got = got.unwrap();
    assert_ne!(got.access_token, soon.access_token);
    assert_eq!(fx.aip.refreshes().await, 2);
    assert!(fx.events.logouts().is_empty());

    // Expired tokens and a failing server: the session stays, getAccessToken is null.
    let expired = fx.aip.issue("alice.test", 3600, Some(-1000)).await;
    let id = fx.session(&expired).await;
    fx.aip.faults(json!([{ "type": "500" }])).await;
    let (_, got) = fx.manager.get_oauth_session(&id).await.unwrap().unwrap();
    assert_eq!(got, Some(expired.clone()));
    fx.aip.faults(json!([{ "type": "500" }])).await;
    assert_eq!(fx.manager.get_access_token(&id).await.unwrap(), None);
    assert!(fx.store.get_session(&id).await.unwrap().is_some());
}

async fn timeout_keeps_session_then_lost_response_is_reported(kind: Kind) {
    let fx = Fx::with(
        kind,
        OAuthSessionOptions {
            request_timeout_ms: 200,
            ..OAuthSessionOptions::default()
        },
    )
    .await;
    // 5 s left (inside the skew). The server takes 800 ms, we give up after 200 ms; the
    // server then rotates anyway: the answer is lost.
    let soon = fx.aip.issue("alice.test", 3600, Some(5000)).await;
    let id = fx.session(&soon).await;
    fx.aip
        .faults(json!([{ "type": "latency", "ms": 800 }]))
        .await;
    let (_, got) = fx.manager.get_oauth_session(&id).await.unwrap().unwrap();
    assert_eq!(got, Some(soon.clone()));
    assert_eq!(fx.events.errors(), vec!["timeout"]);
    // Wait until the server has processed (and rotated) the request we gave up on.
    for _ in 0..100 {
        if fx.aip.counters().await["refresh"]["byStatus"]["200"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fx.aip.counters().await["refresh"]["byStatus"]["200"], 1);

    // Next call: invalid_grant for a token whose earlier attempt had an unknown outcome.
    // Reported as refresh_response_lost; the still-valid access token keeps the user in.
    let (_, got) = fx.manager.get_oauth_session(&id).await.unwrap().unwrap();
    assert_eq!(got, Some(soon.clone()));
    assert_eq!(fx.events.errors(), vec!["timeout", "refresh_response_lost"]);
    assert!(fx.events.logouts().is_empty());
    assert_eq!(fx.aip.refreshes().await, 2);
    // Known dead: no further request, no repeated report.
    assert_eq!(
        fx.manager.get_access_token(&id).await.unwrap(),
        Some(soon.access_token.clone())
    );
    assert_eq!(fx.aip.refreshes().await, 2);
    assert_eq!(fx.events.errors().len(), 2);
    // Once the access token expires, the session is logged out.
    tokio::time::sleep(Duration::from_millis(
        (soon.expires_at.unwrap() - now_millis() + 50).max(0) as u64,
    ))
    .await;
    assert_eq!(fx.manager.get_oauth_session(&id).await.unwrap(), None);
    assert_eq!(fx.events.logouts(), vec![id.clone()]);
    assert_eq!(
        fx.events.errors(),
        vec!["timeout", "refresh_response_lost", "refresh_response_lost"],
        "the logout says why"
    );
    assert_eq!(fx.tokens(&id).await, None);
    assert_eq!(fx.aip.refreshes().await, 2);
}

async fn dropped_response_after_rotation_is_reported_then_logged_out(kind: Kind) {
    let fx = Fx::new(kind).await;
    let expired = fx.aip.issue("alice.test", 3600, Some(-1000)).await;
    let id = fx.session(&expired).await;
    fx.aip
        .faults(json!([{ "type": "drop_after_rotate" }]))
        .await;
    let (_, got) = fx.manager.get_oauth_session(&id).await.unwrap().unwrap();
    assert_eq!(
        got,
        Some(expired.clone()),
        "session kept with current tokens"
    );
    assert_eq!(fx.events.errors(), vec!["network_error"]);
    assert_eq!(fx.aip.counters().await["dropped"], 1);
    // The access token has expired, so the lost response ends the session, loudly.
    assert_eq!(fx.manager.get_oauth_session(&id).await.unwrap(), None);
    assert_eq!(
        fx.events.errors(),
        vec!["network_error", "refresh_response_lost"]
    );
    assert_eq!(fx.events.logouts(), vec![id.clone()]);
    assert_eq!(fx.store.get_session(&id).await.unwrap(), None);
    assert_eq!(fx.tokens(&id).await, None);
}

async fn invalid_client_keeps_session_and_reports(kind: Kind) {
    let fx = Fx::new(kind).await;
    let soon = fx.aip.issue("alice.test", 3600, Some(30_000)).await;
    let id = fx.session(&soon).await;
    let (manager, events) = fx.manager(
        OAuthConfig {
            client_secret: "wrong".into(),
            ..fx.aip.config()
        },
        OAuthSessionOptions::default(),
    );
    let (_, got) = manager.get_oauth_session(&id).await.unwrap().unwrap();
    assert_eq!(got, Some(soon.clone()));
    assert_eq!(events.errors(), vec!["invalid_client"]);
    assert!(events.logouts().is_empty());
    assert_eq!(fx.tokens(&id).await, Some(soon.clone()));
    // The refresh token was not spent: the right configuration refreshes fine.
    let (_, got) = fx.manager.get_oauth_session(&id).await.unwrap().unwrap();
    assert_ne!(got.unwrap().access_token, soon.access_token);
    assert_eq!(
        fx.aip.counters().await["refresh"]["byStatus"],
        json!({"200": 1, "401": 1})
    );
}

async fn logout_is_idempotent(kind: Kind) {
    let fx = Fx::new(kind).await;
    let tokens = fx.aip.issue("alice.test", 3600, Some(3_600_000)).await;
    let id = fx.session(&tokens).await;
    fx.manager.logout(&id).await.unwrap();
    assert_eq!(fx.store.get_session(&id).await.unwrap(), None);
    assert_eq!(fx.tokens(&id).await, None);
    fx.manager.logout(&id).await.unwrap();
    fx.manager.logout("never-existed").await.unwrap();
    assert_eq!(
        fx.events.logouts(),
        vec![id.clone(), id, "never-existed".into()]
    );
    // Multi-device: logging out one session leaves the other.
    let laptop = fx.session(&tokens).await;
    let phone = fx.session(&tokens).await;
    fx.manager.logout(&laptop).await.unwrap();
    assert!(fx
        .manager
        .get_oauth_session(&phone)
        .await
        .unwrap()
        .is_some());
    assert_eq!(fx.tokens(&phone).await, Some(tokens));
}

async fn access_token_and_validity(kind: Kind) {
    let fx = Fx::new(kind).await;
    let tokens = fx.aip.issue("alice.test", 3600, Some(3_600_000)).await;
    let id = fx.session(&tokens).await;
    assert_eq!(
        fx.manager.get_access_token(&id).await.unwrap(),
        Some(tokens.access_token.clone())
    );
    assert!(fx.manager.has_valid_oauth_tokens(&id).await.unwrap());
    // Expired: refreshed first.
    let expired = fx.aip.issue("alice.test", 3600, Some(-1)).await;
    let id = fx.session(&expired).await;
    let token = fx.manager.get_access_token(&id).await.unwrap().unwrap();
    assert_ne!(token, expired.access_token);
    assert!(fx.manager.has_valid_oauth_tokens(&id).await.unwrap());
    assert_eq!(fx.aip.refreshes().await, 1);
    assert_eq!(fx.manager.get_access_token("nope").await.unwrap(), None);
}

async fn aip_burns_refresh_after_access_expiry(kind: Kind) {
    let fx = Fx::new(kind).await;
    // Expired at the server too: AIP (2025-09) burns the refresh token.
    let expired = fx.aip.issue("alice.test", -5, Some(-5000)).await;
    let id = fx.session(&expired).await;
    assert_eq!(fx.manager.get_oauth_session(&id).await.unwrap(), None);
    assert_eq!(fx.events.logouts(), vec![id]);
    // With the quirk switched off, the same situation refreshes.
    fx.aip
        .admin("config", json!({ "burnRefreshAfterAccessExpiry": false }))
        .await;
    let expired = fx.aip.issue("alice.test", -5, Some(-5000)).await;
    let id = fx.session(&expired).await;
    let (_, got) = fx.manager.get_oauth_session(&id).await.unwrap().unwrap();
    assert_ne!(got.unwrap().access_token, expired.access_token);
}

async fn hundred_concurrent_reads_refresh_once(kind: Kind) {
    let fx = Fx::new(kind).await;
    let expired = fx.aip.issue("alice.test", 3600, Some(-1000)).await;
    let id = fx.session(&expired).await;
    // Latency so that all 100 are surely waiting while the one request is in flight.
    fx.aip
        .faults(json!([{ "type": "latency", "ms": 200 }]))
        .await;
    let results = join_all((0..100).map(|_| fx.manager.get_oauth_session(&id))).await;
    let tokens: Vec<OAuthTokens> = results
        .into_iter()
        .map(|r| r.unwrap().expect("session").1.expect("tokens"))
        .collect();
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_ne!(tokens[0].access_token, expired.access_token);
    assert_eq!(fx.aip.refreshes().await, 1);
    assert_eq!(fx.events.refreshed().len(), 1, "onTokenRefresh once");
    assert!(fx.events.errors().is_empty());

    // The same with 100 concurrent getAccessToken on another expired session, spread over
    // tasks (threads) instead of one future.
    let expired = fx.aip.issue("alice.test", 3600, Some(-1000)).await;
    let id = Arc::new(fx.session(&expired).await);
    let manager = Arc::new(fx.manager);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (m, id) = (manager.clone(), id.clone());
            tokio::spawn(async move { m.get_access_token(&id).await })
        })
        .collect();
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap().unwrap().expect("token"));
    }
    assert!(got.iter().all(|t| *t == got[0]));
    assert_eq!(fx.aip.refreshes().await, 2);
}

async fn manager_and_client_share_one_flight(kind: Kind) {
    let fx = Fx::new(kind).await;
    let expired = fx.aip.issue("alice.test", 3600, Some(-1000)).await;
    let id = fx.session(&expired).await;
    fx.aip
        .faults(json!([{ "type": "latency", "ms": 200 }]))
        .await;
    let client = fx.client(&id);
    let (second, _) = fx.manager(fx.aip.config(), OAuthSessionOptions::default());
    let (a, b, c, d) = tokio::join!(
        fx.manager.get_access_token(&id),
        client.refresh_access_token(),
        client.ensure_valid_token(),
        second.get_access_token(&id),
    );
    let a = a.unwrap().unwrap();
    assert_eq!(b.unwrap().access_token, a);
    assert_eq!(c.unwrap(), a);
    assert_eq!(d.unwrap().unwrap(), a);
    assert_eq!(fx.aip.refreshes().await, 1);
    // refreshAccessToken always refreshes when called on its own.
    let again = client.refresh_access_token().await.unwrap();
    assert_ne!(again.access_token, a);
    assert_eq!(fx.tokens(&id).await, Some(again));
    assert_eq!(fx.aip.refreshes().await, 2);
}

fn query(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn pkce_round_trip_and_state_rules(kind: Kind) {
    let fx = Fx::new(kind).await;
    let client = fx.client("temp");
    if let Kind::Minimal = kind {
        // A storage without state methods cannot run the flow, and says why.
        let err = client.authorize(None).await.unwrap_err();
        assert!(matches!(err, SessionError::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("putState"), "{err}");
        return;
    }
    let request = client.authorize(Some("bob.test")).await.unwrap();
    let q = query(&request.authorization_url);
    assert!(request
        .authorization_url
        .starts_with(&format!("{}/oauth/authorize?", fx.aip.base)));
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "test-client");
    assert_eq!(q["redirect_uri"], "http://localhost:8000/oauth/callback");
    assert_eq!(q["scope"], "atproto profile");
    assert_eq!(q["state"], request.state);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["login_hint"], "bob.test");
    assert_eq!(request.code_verifier.len(), 43);
    assert_ne!(q["code_challenge"], request.code_verifier);

    // The browser's trip: the server redirects back with code and state.
    let response = fx
        .aip
        .http()
        .get(&request.authorization_url)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let back = query(&location);
    assert_eq!(back["state"], request.state);

    let tokens = client
        .handle_callback(&back["code"], &back["state"])
        .await
        .unwrap();
    assert!(tokens.refresh_token.is_some());
    assert!(tokens.expires_at.unwrap() > now_millis() + 3_500_000);
    // Not stored by handleCallback.
    assert_eq!(fx.tokens("temp").await, None);
    // The README's flow: a session for the user from those tokens.
    let id = fx
        .manager
        .create_oauth_session(&tokens)
        .await
        .unwrap()
        .unwrap();
    let (session, _) = fx.manager.get_oauth_session(&id).await.unwrap().unwrap();
    assert_eq!(session.user_id, "did:plc:bob");
    assert_eq!(session.handle.as_deref(), Some("bob.test"));

    // Reused state: rejected before any request.
    let err = client
        .handle_callback(&back["code"], &back["state"])
        .await
        .unwrap_err();
    assert_eq!(oauth_error_code(&err), Some("invalid_state"), "{err}");
    assert_eq!(err.kind(), ErrorKind::OAuth);
    // Unknown state.
    let err = client.handle_callback("code", "made-up").await.unwrap_err();
    assert_eq!(oauth_error_code(&err), Some("invalid_state"));
    // Expired state.
    let short = OAuthClient::with_options(
        fx.aip.config(),
        fx.storage.clone(),
        "temp",
        OAuthClientOptions {
            state_ttl_ms: 1,
            ..OAuthClientOptions::default()
        },
    )
    .unwrap();
    let request = short.authorize(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let err = short
        .handle_callback("code", &request.state)
        .await
        .unwrap_err();
    assert_eq!(oauth_error_code(&err), Some("invalid_state"));
    // A wrong verifier (a state from another authorize call) fails PKCE at the server.
    let a = client.authorize(None).await.unwrap();
    let b = client.authorize(None).await.unwrap();
    let location = fx
        .aip
        .http()
        .get(&a.authorization_url)
        .send()
        .await
        .unwrap()
        .headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let err = client
        .handle_callback(&query(&location)["code"], &b.state)
        .await
        .unwrap_err();
    assert_eq!(oauth_error_code(&err), Some("invalid_grant"), "{err}");
    assert_eq!(
        fx.aip.counters().await["authorizationCode"]["byStatus"],
        json!({"200": 1, "400": 1})
    );
    // States are one-time at the storage level too.
    let pkce = PkceState {
        code_verifier: "v".into(),
        created_at: now_millis(),
    };
    fx.storage
        .put_state("s1", &pkce, now_millis() + 60_000)
        .await
        .unwrap();
    assert_eq!(fx.storage.take_state("s1").await.unwrap(), Some(pkce));
    assert_eq!(fx.storage.take_state("s1").await.unwrap(), None);
}

async fn client_token_methods(kind: Kind) {
    let fx = Fx::new(kind).await;
    let soon = fx.aip.issue("alice.test", 3600, Some(30_000)).await;
    let id = fx.session(&soon).await;
    let client = fx.client(&id);
    // getUserInfo: the server's JSON plus handle (refreshing first: 30 s < skew).
    let info = client.get_user_info().await.unwrap();
    assert_eq!(
        info,
        json!({"sub": ALICE, "did": ALICE, "name": "alice.test", "handle": "alice.test"})
    );
    assert_eq!(fx.aip.refreshes().await, 1);
    let stored = fx.tokens(&id).await.unwrap();
    assert_eq!(
        client.ensure_valid_token().await.unwrap(),
        stored.access_token
    );
    assert_eq!(fx.aip.refreshes().await, 1);
    // No tokens: a clear OAuth error.
    client.logout().await.unwrap();
    assert_eq!(fx.tokens(&id).await, None);
    let err = client.ensure_valid_token().await.unwrap_err();
    assert_eq!(oauth_error_code(&err), Some("no_tokens"));
    let err = client.refresh_access_token().await.unwrap_err();
    assert_eq!(oauth_error_code(&err), Some("no_tokens"));
    // A dead refresh token: refreshAccessToken rejects with invalid_grant.
    let mut dead = soon.clone();
    dead.refresh_token = Some("rt_dead".into());
    fx.storage.set_tokens(&dead, &id).await.unwrap();
    let err = client.refresh_access_token().await.unwrap_err();
    assert_eq!(oauth_error_code(&err), Some("invalid_grant"));
}

// ---- cross-process and cross-instance coordination (SQLite) ----

/// Two storage instances on one SQLite file in one process: separate flights, so only the
/// file's lease keeps them to one refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_lease_coordinates_separate_instances() {
    let aip = Aip::start();
    let dir = tempfile::tempdir().unwrap();
    let oauth = dir.path().join("oauth.db");
    let oauth = oauth.to_str().unwrap();
    let a: Arc<dyn OAuthStorage> = Arc::new(SqliteOAuthStorage::open(oauth).unwrap());
    let b: Arc<dyn OAuthStorage> = Arc::new(SqliteOAuthStorage::open(oauth).unwrap());
    let store = Arc::new(
        SessionStore::new(Arc::new(MemoryAdapter::new()), StoreConfig::default()).unwrap(),
    );
    let expired = aip.issue("alice.test", 3600, Some(-1000)).await;
    let id = store
        .create_session(None, ALICE.into(), None, None)
        .await
        .unwrap();
    a.set_tokens(&expired, &id).await.unwrap();
    aip.faults(json!([{ "type": "latency", "ms": 300 }])).await;
    let make = |storage: Arc<dyn OAuthStorage>| {
        OAuthSessionManager::new(
            store.clone(),
            aip.config(),
            storage,
            OAuthSessionOptions::default(),
            recorder(),
        )
        .unwrap()
    };
    let (ma, mb) = (make(a.clone()), make(b.clone()));
    let calls = (0..50).flat_map(|_| [ma.get_access_token(&id), mb.get_access_token(&id)]);
    let tokens: Vec<String> = join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_eq!(aip.refreshes().await, 1);
}

#[tokio::test]
async fn sqlite_storage_lease_and_attempt_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oauth.db");
    let s = SqliteOAuthStorage::open(&format!("sqlite://{}", path.to_str().unwrap())).unwrap();
    assert!(s.is_sync());
    // Lease: exclusive until released or expired.
    assert!(s.try_lock_refresh("sid", "a", 60_000).await.unwrap());
    assert!(!s.try_lock_refresh("sid", "b", 60_000).await.unwrap());
    assert!(
        s.try_lock_refresh("sid", "a", 60_000).await.unwrap(),
        "re-entrant"
    );
    s.unlock_refresh("sid", "b").await.unwrap();
    assert!(!s.try_lock_refresh("sid", "b", 60_000).await.unwrap());
    s.unlock_refresh("sid", "a").await.unwrap();
    assert!(s.try_lock_refresh("sid", "b", 1).await.unwrap());
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(
        s.try_lock_refresh("sid", "c", 60_000).await.unwrap(),
        "expired lease taken over"
    );
    // Attempts live with the tokens and are forgotten when tokens are replaced.
    let tokens = OAuthTokens {
        access_token: "at".into(),
        token_type: "Bearer".into(),
        refresh_token: Some("rt".into()),
        expires_at: Some(1),
        scope: None,
    };
    let attempt = RefreshAttempt {
        token_fingerprint: "fp".into(),
        started_at: 7,
        lost: true,
    };
    s.set_refresh_attempt("sid", Some(&attempt)).await.unwrap();
    assert_eq!(
        s.get_refresh_attempt("sid").await.unwrap(),
        None,
        "no tokens"
    );
    s.set_tokens(&tokens, "sid").await.unwrap();
    s.set_refresh_attempt("sid", Some(&attempt)).await.unwrap();
    assert_eq!(s.get_refresh_attempt("sid").await.unwrap(), Some(attempt));
    s.set_tokens(&tokens, "sid").await.unwrap();
    assert_eq!(s.get_refresh_attempt("sid").await.unwrap(), None);
    // Tokens round-trip, absent options included.
    let bare = OAuthTokens {
        access_token: "x".into(),
        token_type: "DPoP".into(),
        refresh_token: None,
        expires_at: None,
        scope: None,
    };
    s.set_tokens(&bare, "other").await.unwrap();
    assert_eq!(s.get_tokens("other").await.unwrap(), Some(bare));
    s.clear_tokens("other").await.unwrap();
    s.clear_tokens("other").await.unwrap();
    assert_eq!(s.get_tokens("other").await.unwrap(), None);
    // Closed.
    s.close().await.unwrap();
    s.close().await.unwrap();
    assert!(matches!(
        s.get_tokens("sid").await.unwrap_err(),
        SessionError::AdapterClosed
    ));
}

/// The multi-process worker: when `SLICES_OAUTH_WORKER` is set, this test (run alone in a
/// child process) opens the shared storages and makes `WORKER_CALLS` concurrent
/// `getAccessToken` calls at `WORKER_START_AT`; otherwise it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_entry() {
    if std::env::var(WORKER_ENV).is_err() {
        return;
    }
    let env = |k: &str| std::env::var(k).unwrap();
    let adapter =
        SqliteAdapter::open(&env("WORKER_SESSIONS_DB"), SqliteOptions::default()).unwrap();
    let store = Arc::new(SessionStore::new(Arc::new(adapter), StoreConfig::default()).unwrap());
    let storage: Arc<dyn OAuthStorage> =
        Arc::new(SqliteOAuthStorage::open(&env("WORKER_OAUTH_DB")).unwrap());
    let config: OAuthConfig = serde_json::from_str(&env("WORKER_CONFIG")).unwrap();
    let events = recorder();
    let manager = OAuthSessionManager::new(
        store,
        config,
        storage,
        OAuthSessionOptions::default(),
        events.clone(),
    )
    .unwrap();
    let id = env("WORKER_SESSION_ID");
    let calls: usize = env("WORKER_CALLS").parse().unwrap();
    sleep_until(env("WORKER_START_AT").parse().unwrap()).await;
    let results = join_all((0..calls).map(|_| manager.get_access_token(&id))).await;
    let mut errors: Vec<String> = events.errors();
    let tokens: Vec<Value> = results
        .into_iter()
        .map(|r| match r {
            Ok(Some(t)) => Value::String(t),
            Ok(None) => Value::Null,
            Err(e) => {
                errors.push(e.to_string());
                Value::Null
            }
        })
        .collect();
    println!(
        "{RESULT_MARKER}{}",
        json!({ "tokens": tokens, "errors": errors, "refreshed": events.refreshed().len() })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_share_sqlite_storage_and_refresh_once() {
    let aip = Aip::start();
    let dir = tempfile::tempdir().unwrap();
    let sessions = dir.path().join("sessions.db").to_str().unwrap().to_owned();
    let oauth = dir.path().join("oauth.db").to_str().unwrap().to_owned();
    let store = SessionStore::new(
        Arc::new(SqliteAdapter::open(&sessions, SqliteOptions::default()).unwrap()),
        StoreConfig::default(),
    )
    .unwrap();
    let storage = SqliteOAuthStorage::open(&oauth).unwrap();
    let expired = aip.issue("alice.test", 3600, Some(-1000)).await;
    let id = store
        .create_session(None, ALICE.into(), None, None)
        .await
        .unwrap();
    storage.set_tokens(&expired, &id).await.unwrap();
    // Some latency, so that the other processes surely arrive while the refresh is running.
    aip.faults(json!([{ "type": "latency", "ms": 300 }])).await;
    let start_at: Millis = now_millis() + 1500;
    let env = [
        ("WORKER_SESSIONS_DB", sessions),
        ("WORKER_OAUTH_DB", oauth),
        (
            "WORKER_CONFIG",
            serde_json::to_string(&aip.config()).unwrap(),
        ),
        ("WORKER_SESSION_ID", id.clone()),
        ("WORKER_CALLS", "25".to_owned()),
        ("WORKER_START_AT", start_at.to_string()),
    ];
    let started = std::time::Instant::now();
    let results = tokio::task::spawn_blocking(move || run_workers("worker_entry", 4, &env))
        .await
        .unwrap();
    let token = assert_workers_agree(&results, 25);
    assert_ne!(token, expired.access_token);
    assert_eq!(aip.refreshes().await, 1, "one refresh across 4 processes");
    let refreshed: u64 = results
        .iter()
        .map(|r| r["refreshed"].as_u64().unwrap())
        .sum();
    assert_eq!(
        refreshed, 1,
        "onTokenRefresh in the one process that refreshed"
    );
    assert_eq!(
        storage.get_tokens(&id).await.unwrap().unwrap().access_token,
        token
    );
    eprintln!("4 processes x 25 calls: {:?}", started.elapsed());
}

#[test]
fn config_is_validated() {
    let storage: Arc<dyn OAuthStorage> = Arc::new(MemoryOAuthStorage::new());
    let config = OAuthConfig {
        client_id: "c".into(),
        client_secret: "s".into(),
        auth_base_url: "ftp://example.com".into(),
        redirect_uri: "http://localhost/cb".into(),
        scopes: vec![],
    };
    let err = OAuthClient::new(config.clone(), storage.clone(), "x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let err = OAuthClient::new(
        OAuthConfig {
            auth_base_url: "not a url".into(),
            ..config.clone()
        },
        storage.clone(),
        "x",
    )
    .unwrap_err();
    assert!(err.to_string().contains("authBaseUrl"), "{err}");
    // A base with a path and a trailing slash.
    let ok = OAuthConfig {
        auth_base_url: "https://auth.example.com/aip/".into(),
        ..config
    };
    assert_eq!(
        ok.endpoints().unwrap().token.as_str(),
        "https://auth.example.com/aip/oauth/token"
    );
    // The secret never reaches Debug output.
    assert!(!format!("{ok:?}").contains("\"s\""));
}

#[test]
fn tokens_serialize_as_the_js_shape() {
    let tokens = OAuthTokens {
        access_token: "a".into(),
        token_type: "Bearer".into(),
        refresh_token: None,
        expires_at: Some(5),
        scope: None,
    };
    assert_eq!(
        serde_json::to_value(&tokens).unwrap(),
        json!({"accessToken": "a", "tokenType": "Bearer", "expiresAt": 5})
    );
    let back: OAuthTokens =
        serde_json::from_value(json!({"accessToken": "a", "tokenType": "Bearer"})).unwrap();
    assert_eq!(back.expires_at, None);
    assert!(
        !format!("{tokens:?}").contains("\"a\""),
        "tokens redacted in Debug"
    );
}

/// With memory or SQLite on both sides, a read that needs no refresh completes on its first
/// poll (the bindings may then answer synchronously), and outside a runtime a refresh is a
/// reported error, never a panic.
#[test]
fn sync_reads_and_no_runtime() {
    use futures::FutureExt;
    let rt = tokio::runtime::Runtime::new().unwrap();
    for kind in [Kind::Memory, Kind::Sqlite] {
        let (fx, fresh, stale) = rt.block_on(async {
            let fx = Fx::new(kind).await;
            let fresh = fx.aip.issue("alice.test", 3600, Some(3_600_000)).await;
            let stale = fx.aip.issue("alice.test", 3600, Some(-1000)).await;
            (fx, fresh, stale)
        });
        assert!(fx.storage.is_sync() && fx.store.is_sync());
        let id = fx.session(&fresh).now_or_never().unwrap();
        let got = fx
            .manager
            .get_oauth_session(&id)
            .now_or_never()
            .expect("ready on first poll")
            .unwrap()
            .unwrap();
        assert_eq!(got.1, Some(fresh));
        let id = fx.session(&stale).now_or_never().unwrap();
        // No runtime on this thread: the refresh cannot run; the session is kept.
        let got = futures::executor::block_on(fx.manager.get_oauth_session(&id))
            .unwrap()
            .unwrap();
        assert_eq!(got.1, Some(stale));
        assert_eq!(fx.events.errors().len(), 1);
        assert!(
            fx.events.errors()[0].contains("Tokio"),
            "{:?}",
            fx.events.errors()
        );
        rt.block_on(async { assert_eq!(fx.aip.refreshes().await, 0) });
        drop(fx);
    }
}

/// A caller that gives up does not strand the refresh: it completes, stores its tokens and
/// releases the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_refresh_still_completes() {
    let fx = Fx::new(Kind::Sqlite).await;
    let expired = fx.aip.issue("alice.test", 3600, Some(-1000)).await;
    let id = fx.session(&expired).await;
    fx.aip
        .faults(json!([{ "type": "latency", "ms": 300 }]))
        .await;
    let gave_up =
        tokio::time::timeout(Duration::from_millis(50), fx.manager.get_oauth_session(&id)).await;
    assert!(gave_up.is_err());
    // Poll (the machine may be busy): the refresh lands without any caller.
    let mut stored = fx.tokens(&id).await.unwrap();
    for _ in 0..100 {
        if stored.access_token != expired.access_token {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        stored = fx.tokens(&id).await.unwrap();
    }
    assert_ne!(stored.access_token, expired.access_token);
    // The lease is released right after the tokens are stored.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(fx
        .storage
        .try_lock_refresh(&id, "probe", 1000)
        .await
        .unwrap());
    fx.storage.unlock_refresh(&id, "probe").await.unwrap();
    let (_, got) = fx.manager.get_oauth_session(&id).await.unwrap().unwrap();
    assert_eq!(got, Some(stored));
    assert_eq!(fx.aip.refreshes().await, 1);
}

/// `take_state` is a `DELETE ... RETURNING`: it must step to SQLITE_DONE, or its commits never
/// run the WAL auto-checkpoint (see core/tests/sqlite.rs, the same rule for the session touch).
#[tokio::test]
async fn sqlite_take_state_lets_the_wal_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oauth.db");
    let path = path.to_str().unwrap().to_owned();
    let storage = SqliteOAuthStorage::open(&path).unwrap();
    let expires_at = now_millis() + 60_000;
    for i in 0..3000 {
        let pkce = PkceState {
            code_verifier: format!("v{i}"),
            created_at: now_millis(),
        };
        storage
            .put_state(&format!("s{i}"), &pkce, expires_at)
            .await
            .unwrap();
    }
    for i in 0..3000 {
        let taken = storage.take_state(&format!("s{i}")).await.unwrap();
        assert_eq!(taken.map(|p| p.code_verifier), Some(format!("v{i}")));
    }
    let wal = std::fs::metadata(format!("{path}-wal")).map_or(0, |m| m.len());
    assert!(
        wal <= 1200 * (4096 + 24),
        "after 3 000 takes the WAL holds {wal} bytes: it is not being checkpointed"
    );
}

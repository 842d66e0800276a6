//! `RedisOAuthStorage` on a real server: tokens, PKCE states, the refresh lease and refresh
//! attempts, and an OAuth session refreshed once against the loopback AIP server.
//!
//! Run with `scripts/with-redis.sh cargo test -p slices-session-core --test oauth_redis`.
//! Without `SLICES_TEST_REDIS_URL` the tests fail (they never skip). Every test has a key
//! prefix of its own. The 4-process single-flight test on Redis is in
//! tests/oauth-concurrency.test.mjs (Node and Deno).

mod oauth_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::future::join_all;
use slices_session_core::error::SessionError;
use slices_session_core::oauth::{
    OAuthSessionManager, OAuthSessionOptions, OAuthStorage, OAuthTokens, PkceState,
    RedisOAuthStorage, RefreshAttempt,
};
use slices_session_core::redis::{RedisAdapter, RedisOptions};
use slices_session_core::session::now_millis;
use slices_session_core::store::{SessionStore, StoreConfig};

use oauth_support::*;

fn options(name: &str) -> RedisOptions {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    RedisOptions {
        prefix: Some(format!(
            "oauth-{name}-{}-{}-{}:",
            std::process::id(),
            now_millis(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        )),
        ..RedisOptions::default()
    }
}

fn url() -> String {
    match std::env::var("SLICES_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "SLICES_TEST_REDIS_URL is not set: run these tests with `scripts/with-redis.sh cargo \
             test -p slices-session-core --test oauth_redis` (it starts a throwaway server)."
        ),
    }
}

fn tokens(access: &str) -> OAuthTokens {
    OAuthTokens {
        access_token: access.into(),
        token_type: "DPoP".into(),
        refresh_token: Some(format!("r-{access}")),
        expires_at: Some(now_millis() + 3_600_000),
        scope: Some("atproto".into()),
    }
}

#[tokio::test]
async fn tokens_states_lease_and_attempts() {
    let s = RedisOAuthStorage::new(&url(), options("contract")).unwrap();
    assert_eq!(s.get_tokens("sid").await.unwrap(), None);
    // No tokens: a refresh attempt is not recorded.
    let attempt = RefreshAttempt {
        token_fingerprint: "fp".into(),
        started_at: 42,
        lost: true,
    };
    s.set_refresh_attempt("sid", Some(&attempt)).await.unwrap();
    assert_eq!(s.get_refresh_attempt("sid").await.unwrap(), None);

    let t = tokens("a1");
    s.set_tokens(&t, "sid").await.unwrap();
    assert_eq!(s.get_tokens("sid").await.unwrap(), Some(t.clone()));
    s.set_refresh_attempt("sid", Some(&attempt)).await.unwrap();
    assert_eq!(
        s.get_refresh_attempt("sid").await.unwrap(),
        Some(attempt.clone())
    );
    // New tokens forget the attempt; optional fields may be absent.
    let bare = OAuthTokens {
        refresh_token: None,
        expires_at: None,
        scope: None,
        ..tokens("a2")
    };
    s.set_tokens(&bare, "sid").await.unwrap();
    assert_eq!(s.get_tokens("sid").await.unwrap(), Some(bare));
    assert_eq!(s.get_refresh_attempt("sid").await.unwrap(), None);
    s.clear_tokens("sid").await.unwrap();
    s.clear_tokens("sid").await.unwrap();
    assert_eq!(s.get_tokens("sid").await.unwrap(), None);

    // PKCE state: one use only; an expired one gives None.
    let pkce = PkceState {
        code_verifier: "v".repeat(64),
        created_at: now_millis(),
    };
    s.put_state("st", &pkce, now_millis() + 60_000)
        .await
        .unwrap();
    assert_eq!(s.take_state("st").await.unwrap(), Some(pkce.clone()));
    assert_eq!(s.take_state("st").await.unwrap(), None);
    s.put_state("old", &pkce, now_millis() - 1).await.unwrap();
    assert_eq!(s.take_state("old").await.unwrap(), None);

    // The lease: one owner at a time, re-taken by its owner, released only by it, and freed
    // by its TTL when the holder never releases it.
    assert!(s.try_lock_refresh("sid", "p1", 60_000).await.unwrap());
    assert!(!s.try_lock_refresh("sid", "p2", 60_000).await.unwrap());
    assert!(s.try_lock_refresh("sid", "p1", 60_000).await.unwrap());
    s.unlock_refresh("sid", "p2").await.unwrap();
    assert!(!s.try_lock_refresh("sid", "p2", 60_000).await.unwrap());
    s.unlock_refresh("sid", "p1").await.unwrap();
    assert!(s.try_lock_refresh("sid", "p2", 150).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(s.try_lock_refresh("sid", "p3", 60_000).await.unwrap());

    s.close().await.unwrap();
    assert!(matches!(
        s.get_tokens("sid").await.unwrap_err(),
        SessionError::AdapterClosed
    ));
}

#[tokio::test]
async fn two_storage_objects_share_state_and_leases() {
    let opts = options("shared");
    let a = RedisOAuthStorage::new(&url(), opts.clone()).unwrap();
    let b = RedisOAuthStorage::new(&url(), opts).unwrap();
    a.set_tokens(&tokens("x"), "sid").await.unwrap();
    assert_eq!(
        b.get_tokens("sid").await.unwrap().unwrap().access_token,
        "x"
    );
    assert!(a.try_lock_refresh("sid", "a", 60_000).await.unwrap());
    assert!(!b.try_lock_refresh("sid", "b", 60_000).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_reads_refresh_once_with_redis_sessions() {
    let aip = Aip::start();
    let adapter = RedisAdapter::new(&url(), options("sessions")).unwrap();
    let store = Arc::new(SessionStore::new(Arc::new(adapter), StoreConfig::default()).unwrap());
    let storage: Arc<dyn OAuthStorage> =
        Arc::new(RedisOAuthStorage::new(&url(), options("tokens")).unwrap());
    let manager = OAuthSessionManager::new(
        store.clone(),
        aip.config(),
        storage.clone(),
        OAuthSessionOptions::default(),
        recorder(),
    )
    .unwrap();
    let expired = aip.issue("alice.test", 3600, Some(-1000)).await;
    let id = store
        .create_session(None, "did:plc:alice".into(), None, None)
        .await
        .unwrap();
    storage.set_tokens(&expired, &id).await.unwrap();
    let results = join_all((0..100).map(|_| manager.get_access_token(&id))).await;
    let stored = storage.get_tokens(&id).await.unwrap().unwrap();
    assert_ne!(stored.access_token, expired.access_token);
    for r in results {
        assert_eq!(r.unwrap().as_deref(), Some(stored.access_token.as_str()));
    }
    assert_eq!(aip.refreshes().await, 1);
}

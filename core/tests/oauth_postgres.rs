//! `PostgresOAuthStorage` and OAuth sessions on PostgreSQL, against the loopback AIP server.
//!
//! Run with `scripts/with-postgres.sh cargo test -p slices-session-core --test oauth_postgres`.
//! Without `SLICES_TEST_PG_URL` the tests fail (they never skip). Each test works in its own
//! schema (through `search_path`), so tests run in parallel.

mod oauth_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use serde_json::{json, Value};
use slices_session_core::oauth::{
    oauth_error_code, OAuthClient, OAuthConfig, OAuthSessionManager, OAuthSessionOptions,
    OAuthStorage, OAuthTokens, PkceState, PostgresOAuthStorage, RefreshAttempt,
};
use slices_session_core::postgres::{PostgresAdapter, PostgresOptions};
use slices_session_core::session::{now_millis, Millis};
use slices_session_core::store::{SessionStore, StoreConfig};
use tokio_postgres::NoTls;

use oauth_support::*;

const ALICE: &str = "did:plc:alice";

fn base_url() -> String {
    match std::env::var("SLICES_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "SLICES_TEST_PG_URL is not set: these tests need a PostgreSQL server. Run them with \
             `scripts/with-postgres.sh cargo test -p slices-session-core --test oauth_postgres` \
             (it starts a throwaway server), or set SLICES_TEST_PG_URL to a database URL."
        ),
    }
}

/// A fresh schema; returns a connection URL whose `search_path` is that schema.
async fn schema_url(name: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let base = base_url();
    let schema = format!(
        "oauth_{name}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let (client, connection) = tokio_postgres::connect(&base, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to SLICES_TEST_PG_URL: {e:?}"));
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    // Identifiers cannot be bound; this one is [a-z0-9_], made by the test itself.
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .unwrap();
    drop(client);
    let _ = driver.await;
    let options: String = format!("-c search_path={schema}")
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let sep = if base.contains('?') { '&' } else { '?' };
    assert!(base.contains("://"), "the tests expect a postgresql:// URL");
    format!("{base}{sep}options={options}")
}

struct Fx {
    aip: Aip,
    url: String,
    store: Arc<SessionStore>,
    storage: Arc<dyn OAuthStorage>,
    events: Arc<Recorder>,
    manager: OAuthSessionManager,
}

impl Fx {
    async fn new(name: &str) -> Fx {
        let aip = Aip::start();
        let url = schema_url(name).await;
        let adapter = PostgresAdapter::new(&url, PostgresOptions::default()).unwrap();
        let store = Arc::new(SessionStore::new(Arc::new(adapter), StoreConfig::default()).unwrap());
        let storage: Arc<dyn OAuthStorage> =
            Arc::new(PostgresOAuthStorage::new(&url, PostgresOptions::default()).unwrap());
        let events = recorder();
        let manager = OAuthSessionManager::new(
            store.clone(),
            aip.config(),
            storage.clone(),
            OAuthSessionOptions::default(),
            events.clone(),
        )
        .unwrap();
        Fx {
            aip,
            url,
            store,
            storage,
            events,
            manager,
        }
    }

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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_operations() {
    let url = schema_url("ops").await;
    let s = PostgresOAuthStorage::new(&url, PostgresOptions::default()).unwrap();
    s.initialize().await.unwrap();
    assert!(!s.is_sync());
    let tokens = OAuthTokens {
        access_token: "at ü 🎉".into(),
        token_type: "Bearer".into(),
        refresh_token: Some("rt".into()),
        expires_at: Some(1_700_000_000_123),
        scope: Some("atproto profile".into()),
    };
    assert_eq!(s.get_tokens("sid").await.unwrap(), None);
    s.set_tokens(&tokens, "sid").await.unwrap();
    assert_eq!(s.get_tokens("sid").await.unwrap(), Some(tokens.clone()));
    let bare = OAuthTokens {
        refresh_token: None,
        expires_at: None,
        scope: None,
        ..tokens.clone()
    };
    s.set_tokens(&bare, "sid").await.unwrap();
    assert_eq!(s.get_tokens("sid").await.unwrap(), Some(bare));
    s.clear_tokens("sid").await.unwrap();
    s.clear_tokens("sid").await.unwrap();
    assert_eq!(s.get_tokens("sid").await.unwrap(), None);
    // Injection attempts are data.
    let evil = "x'; DROP TABLE slices_oauth_tokens; --";
    s.set_tokens(&tokens, evil).await.unwrap();
    assert_eq!(s.get_tokens(evil).await.unwrap(), Some(tokens.clone()));

    // PKCE states: one use, expiry.
    let pkce = PkceState {
        code_verifier: "verifier".into(),
        created_at: now_millis(),
    };
    s.put_state("st", &pkce, now_millis() + 60_000)
        .await
        .unwrap();
    assert_eq!(s.take_state("st").await.unwrap(), Some(pkce.clone()));
    assert_eq!(s.take_state("st").await.unwrap(), None);
    s.put_state("old", &pkce, now_millis() - 1).await.unwrap();
    assert_eq!(s.take_state("old").await.unwrap(), None);

    // The lease.
    assert!(s.try_lock_refresh("sid", "a", 60_000).await.unwrap());
    assert!(!s.try_lock_refresh("sid", "b", 60_000).await.unwrap());
    assert!(s.try_lock_refresh("sid", "a", 60_000).await.unwrap());
    s.unlock_refresh("sid", "b").await.unwrap();
    assert!(!s.try_lock_refresh("sid", "b", 60_000).await.unwrap());
    s.unlock_refresh("sid", "a").await.unwrap();
    assert!(s.try_lock_refresh("sid", "b", 1).await.unwrap());
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(s.try_lock_refresh("sid", "c", 60_000).await.unwrap());
    // Concurrent takers: exactly one wins.
    let s = Arc::new(s);
    let wins = join_all((0..20).map(|i| {
        let s = s.clone();
        async move {
            s.try_lock_refresh("race", &format!("o{i}"), 60_000)
                .await
                .unwrap()
        }
    }))
    .await;
    assert_eq!(wins.iter().filter(|w| **w).count(), 1);

    // Refresh attempts live with the tokens.
    let attempt = RefreshAttempt {
        token_fingerprint: "fp".into(),
        started_at: 9,
        lost: false,
    };
    s.set_tokens(&tokens, "sid").await.unwrap();
    s.set_refresh_attempt("sid", Some(&attempt)).await.unwrap();
    assert_eq!(s.get_refresh_attempt("sid").await.unwrap(), Some(attempt));
    s.set_refresh_attempt("sid", None).await.unwrap();
    assert_eq!(s.get_refresh_attempt("sid").await.unwrap(), None);

    s.close().await.unwrap();
    assert!(s.get_tokens("sid").await.is_err());
}

/// Each call is limited (`query_timeout_ms`, shared with the session adapter): a storage
/// whose table is locked by someone else fails in bounded time with a clear error, and works
/// again once the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_call_is_limited_then_the_storage_recovers() {
    let url = schema_url("limit").await;
    let s = PostgresOAuthStorage::new(
        &url,
        PostgresOptions {
            query_timeout_ms: 300,
            ..PostgresOptions::default()
        },
    )
    .unwrap();
    s.initialize().await.unwrap();
    let tokens = OAuthTokens {
        access_token: "at".into(),
        token_type: "Bearer".into(),
        refresh_token: Some("rt".into()),
        expires_at: None,
        scope: None,
    };
    s.set_tokens(&tokens, "sid").await.unwrap();

    let (admin, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    admin
        .batch_execute("BEGIN; LOCK TABLE slices_oauth_tokens IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = s.get_tokens("sid").await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(
            err,
            slices_session_core::error::SessionError::Timeout {
                backend: "PostgreSQL",
                ms: 300,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    admin.batch_execute("COMMIT").await.unwrap();
    drop(admin);
    let _ = driver.await;
    assert_eq!(s.get_tokens("sid").await.unwrap(), Some(tokens));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_session_rows_of_the_spec_table() {
    let fx = Fx::new("rows").await;
    // createOAuthSession
    let tokens = fx.aip.issue("alice.test", 3600, Some(3_600_000)).await;
    let id = fx
        .manager
        .create_oauth_session(&tokens)
        .await
        .unwrap()
        .unwrap();
    let (session, got) = fx.manager.get_oauth_session(&id).await.unwrap().unwrap();
    assert_eq!(session.user_id, ALICE);
    assert_eq!(session.handle.as_deref(), Some("alice.test"));
    assert_eq!(got, Some(tokens.clone()));
    // getAccessToken / hasValidOAuthTokens
    assert_eq!(
        fx.manager.get_access_token(&id).await.unwrap(),
        Some(tokens.access_token.clone())
    );
    assert!(fx.manager.has_valid_oauth_tokens(&id).await.unwrap());
    // Refresh within the skew.
    let soon = fx.aip.issue("alice.test", 3600, Some(10_000)).await;
    let id2 = fx.session(&soon).await;
    let (_, got) = fx.manager.get_oauth_session(&id2).await.unwrap().unwrap();
    let got = got.unwrap();
    assert_ne!(got.access_token, soon.access_token);
    assert_eq!(fx.tokens(&id2).await, Some(got.clone()));
    assert_eq!(fx.events.refreshed(), vec![(id2.clone(), got)]);
    // 500: kept.
    let soon = fx.aip.issue("alice.test", 3600, Some(10_000)).await;
    let id3 = fx.session(&soon).await;
    fx.aip.faults(json!([{ "type": "500" }])).await;
    assert_eq!(
        fx.manager.get_oauth_session(&id3).await.unwrap().unwrap().1,
        Some(soon)
    );
    // invalid_grant: logged out.
    let mut dead = fx.aip.issue("alice.test", 3600, Some(-1)).await;
    dead.refresh_token = Some("rt_dead".into());
    let id4 = fx.session(&dead).await;
    assert_eq!(fx.manager.get_oauth_session(&id4).await.unwrap(), None);
    assert_eq!(fx.store.get_session(&id4).await.unwrap(), None);
    assert_eq!(fx.tokens(&id4).await, None);
    assert_eq!(fx.events.logouts(), vec![id4]);
    // logout, idempotent.
    fx.manager.logout(&id).await.unwrap();
    fx.manager.logout(&id).await.unwrap();
    assert_eq!(fx.manager.get_oauth_session(&id).await.unwrap(), None);
    assert_eq!(fx.tokens(&id).await, None);
    // Lost response on PostgreSQL: dropped after rotation, then invalid_grant.
    let expired = fx.aip.issue("alice.test", 3600, Some(-1000)).await;
    let id5 = fx.session(&expired).await;
    fx.aip
        .faults(json!([{ "type": "drop_after_rotate" }]))
        .await;
    assert!(fx.manager.get_oauth_session(&id5).await.unwrap().is_some());
    assert_eq!(fx.manager.get_oauth_session(&id5).await.unwrap(), None);
    let errors = fx.events.errors();
    assert!(
        errors.ends_with(&["network_error".into(), "refresh_response_lost".into()]),
        "{errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_reads_refresh_once() {
    let fx = Fx::new("hundred").await;
    let expired = fx.aip.issue("alice.test", 3600, Some(-1000)).await;
    let id = fx.session(&expired).await;
    fx.aip
        .faults(json!([{ "type": "latency", "ms": 200 }]))
        .await;
    let results = join_all((0..100).map(|_| fx.manager.get_oauth_session(&id))).await;
    let tokens: Vec<OAuthTokens> = results
        .into_iter()
        .map(|r| r.unwrap().unwrap().1.unwrap())
        .collect();
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_ne!(tokens[0].access_token, expired.access_token);
    assert_eq!(fx.aip.refreshes().await, 1);
    assert_eq!(fx.events.refreshed().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_instances_coordinate_through_the_lease() {
    let fx = Fx::new("instances").await;
    let expired = fx.aip.issue("alice.test", 3600, Some(-1000)).await;
    let id = fx.session(&expired).await;
    let other: Arc<dyn OAuthStorage> =
        Arc::new(PostgresOAuthStorage::new(&fx.url, PostgresOptions::default()).unwrap());
    let second = OAuthSessionManager::new(
        fx.store.clone(),
        fx.aip.config(),
        other,
        OAuthSessionOptions::default(),
        recorder(),
    )
    .unwrap();
    fx.aip
        .faults(json!([{ "type": "latency", "ms": 300 }]))
        .await;
    let calls = (0..25).flat_map(|_| {
        [
            fx.manager.get_access_token(&id),
            second.get_access_token(&id),
        ]
    });
    let tokens: Vec<String> = join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_eq!(fx.aip.refreshes().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_round_trip() {
    let fx = Fx::new("pkce").await;
    let client = OAuthClient::new(fx.aip.config(), fx.storage.clone(), "temp").unwrap();
    let request = client.authorize(None).await.unwrap();
    let location = fx
        .aip
        .http()
        .get(&request.authorization_url)
        .send()
        .await
        .unwrap()
        .headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let q: std::collections::HashMap<String, String> = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let tokens = client
        .handle_callback(&q["code"], &q["state"])
        .await
        .unwrap();
    let id = fx
        .manager
        .create_oauth_session(&tokens)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        OAuthClient::new(fx.aip.config(), fx.storage.clone(), id.as_str())
            .unwrap()
            .get_user_info()
            .await
            .unwrap()["handle"],
        "alice.test"
    );
    let err = client
        .handle_callback(&q["code"], &q["state"])
        .await
        .unwrap_err();
    assert_eq!(oauth_error_code(&err), Some("invalid_state"));
}

/// The multi-process worker (see `oauth.rs`), on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_entry() {
    if std::env::var(WORKER_ENV).is_err() {
        return;
    }
    let env = |k: &str| std::env::var(k).unwrap();
    let url = env("WORKER_PG_URL");
    let adapter = PostgresAdapter::new(&url, PostgresOptions::default()).unwrap();
    let store = Arc::new(SessionStore::new(Arc::new(adapter), StoreConfig::default()).unwrap());
    let storage: Arc<dyn OAuthStorage> =
        Arc::new(PostgresOAuthStorage::new(&url, PostgresOptions::default()).unwrap());
    // Connect before the start barrier, so the calls race for the lease, not for a login.
    storage.get_tokens("warm-up").await.unwrap();
    store.get_session("warm-up").await.unwrap();
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
    let mut errors = events.errors();
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
async fn four_processes_share_postgres_storage_and_refresh_once() {
    let fx = Fx::new("procs").await;
    let expired = fx.aip.issue("alice.test", 3600, Some(-1000)).await;
    let id = fx.session(&expired).await;
    fx.aip
        .faults(json!([{ "type": "latency", "ms": 300 }]))
        .await;
    let start_at: Millis = now_millis() + 2500;
    let env = [
        ("WORKER_PG_URL", fx.url.clone()),
        (
            "WORKER_CONFIG",
            serde_json::to_string(&fx.aip.config()).unwrap(),
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
    assert_eq!(
        fx.aip.refreshes().await,
        1,
        "one refresh across 4 processes"
    );
    let refreshed: u64 = results
        .iter()
        .map(|r| r["refreshed"].as_u64().unwrap())
        .sum();
    assert_eq!(refreshed, 1);
    assert_eq!(fx.tokens(&id).await.unwrap().access_token, token);
    eprintln!(
        "4 processes x 25 calls on PostgreSQL: {:?}",
        started.elapsed()
    );
}

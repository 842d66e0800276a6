//! PostgresAdapter against SPEC §2, §3 (expiry) and §5, on a real server.
//!
//! Run with `scripts/with-postgres.sh cargo test -p slices-session-core --test postgres`.
//! Without `SLICES_TEST_PG_URL` the tests that need a server fail (they never skip).
//! Each test works in its own schema (through `search_path`), so tests run in parallel and
//! counts are exact.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::Value;
use slices_session_core::adapter::{SessionAdapter, Touch};
use slices_session_core::error::SessionError;
use slices_session_core::postgres::{PostgresAdapter, PostgresOptions};
use slices_session_core::session::{SessionData, SessionPatch};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio_postgres::NoTls;

const NOW: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

/// The restart test stops the server: it takes this lock for writing, every other test
/// for reading.
static SERVER: RwLock<()> = RwLock::const_new(());

fn base_url() -> String {
    match std::env::var("SLICES_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "SLICES_TEST_PG_URL is not set: these tests need a PostgreSQL server. Run them with \
             `scripts/with-postgres.sh cargo test -p slices-session-core --test postgres` \
             (it starts a throwaway server), or set SLICES_TEST_PG_URL to a database URL."
        ),
    }
}

/// `url` with extra connection parameters, for URLs and for `key=value` strings alike.
fn with_params(url: &str, params: &[(&str, &str)]) -> String {
    let mut out = url.to_owned();
    for (key, value) in params {
        if url.contains("://") {
            out.push(if out.contains('?') { '&' } else { '?' });
            out.push_str(key);
            out.push('=');
            for b in value.bytes() {
                if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.' {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        } else {
            let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
            out.push_str(&format!(" {key}='{escaped}'"));
        }
    }
    out
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to SLICES_TEST_PG_URL: {e:?}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

#[allow(dead_code)]
enum Guard {
    Shared(RwLockReadGuard<'static, ()>),
    Exclusive(RwLockWriteGuard<'static, ()>),
}

/// One test's private schema, a plain-SQL client in it, and the adapter URL for it.
struct Ctx {
    schema: String,
    url: String,
    admin: tokio_postgres::Client,
    _guard: Guard,
}

impl Ctx {
    async fn new(name: &str) -> Ctx {
        Self::with_guard(name, Guard::Shared(SERVER.read().await)).await
    }

    async fn with_guard(name: &str, guard: Guard) -> Ctx {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let base = base_url();
        let schema = format!(
            "t_{name}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let admin = connect(&base).await;
        // Identifiers cannot be bound; this one is made of [a-z0-9_] by the test itself.
        admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; \
                 SET search_path TO {schema}"
            ))
            .await
            .unwrap();
        let url = with_params(
            &base,
            &[
                ("options", &format!("-c search_path={schema}")),
                ("application_name", &schema),
            ],
        );
        Ctx {
            schema,
            url,
            admin,
            _guard: guard,
        }
    }

    fn adapter(&self) -> PostgresAdapter {
        self.adapter_with(PostgresOptions::default())
    }

    fn adapter_with(&self, options: PostgresOptions) -> PostgresAdapter {
        PostgresAdapter::new(&self.url, options).unwrap()
    }

    async fn table_exists(&self) -> bool {
        self.admin
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&format!("{}.sessions", self.schema)],
            )
            .await
            .unwrap()
            .get(0)
    }

    async fn finish(self) {
        let _ = self
            .admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            .await;
    }
}

fn session(id: &str, user: &str) -> SessionData {
    SessionData {
        session_id: id.to_owned(),
        user_id: user.to_owned(),
        handle: Some(format!("{user}.example.com")),
        is_authenticated: true,
        // Already in JSONB's output form, so records compare equal after a round trip.
        data: Some(r#"{"n": 1, "theme": "dark"}"#.to_owned()),
        created_at: NOW - HOUR,
        expires_at: NOW + HOUR,
        last_accessed_at: NOW - HOUR,
    }
}

fn touch(now: i64, touch_after: i64, rolling_ttl: Option<i64>) -> Touch {
    Touch {
        now,
        touch_after,
        rolling_ttl,
    }
}

fn json(text: Option<&str>) -> Value {
    serde_json::from_str(text.expect("data present")).expect("data is JSON")
}

#[tokio::test]
async fn constructor_does_not_connect_and_checks_its_arguments() {
    let err = PostgresAdapter::new("postgresql://host:notaport/db", PostgresOptions::default())
        .unwrap_err();
    match &err {
        SessionError::InvalidArgument { name, reason } => {
            assert_eq!(name, "connectionString");
            assert!(
                reason.contains("not a valid PostgreSQL connection string"),
                "{reason}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = PostgresAdapter::new(
        "postgresql://u:secret@localhost/db",
        PostgresOptions {
            max_connections: 0,
            ..PostgresOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(&err, SessionError::InvalidArgument { name, .. } if name == "maxConnections"));
    let err = PostgresAdapter::new(
        "postgresql://localhost/db?sslmode=require",
        PostgresOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("sslmode=require"), "{err}");

    assert_eq!(
        PostgresOptions::default(),
        PostgresOptions {
            max_connections: 10,
            connect_timeout_ms: 10_000,
            wait_timeout_ms: 10_000,
            query_timeout_ms: 10_000,
        }
    );
    // Nothing listens on port 1: construction succeeds, the first call reports the failure.
    let adapter = PostgresAdapter::new(
        "postgresql://postgres@127.0.0.1:1/postgres",
        PostgresOptions::default(),
    )
    .unwrap();
    assert!(!adapter.is_sync());
    let err = adapter.get("x").await.unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::Postgres {
                action: "connect to the server",
                ..
            }
        ),
        "{err:?}"
    );
    // The failed schema creation is retried by the next call (it fails the same way here).
    assert!(adapter.initialize().await.is_err());
}

#[tokio::test]
async fn schema_is_the_spec_schema() {
    let ctx = Ctx::new("schema").await;
    let adapter = ctx.adapter();
    adapter.initialize().await.unwrap();
    adapter.initialize().await.unwrap();
    let columns: Vec<(String, String, String, Option<String>)> = ctx
        .admin
        .query(
            "SELECT column_name::text, data_type::text, is_nullable::text, column_default::text
             FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'sessions'
             ORDER BY ordinal_position",
            &[&ctx.schema],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let col = |n: &str, t: &str, null: &str, default: Option<&str>| {
        (
            n.to_owned(),
            t.to_owned(),
            null.to_owned(),
            default.map(str::to_owned),
        )
    };
    assert_eq!(
        columns,
        vec![
            col("session_id", "text", "NO", None),
            col("user_id", "text", "NO", None),
            col("handle", "text", "YES", None),
            col("is_authenticated", "boolean", "NO", Some("true")),
            col("data", "jsonb", "YES", None),
            col("created_at", "bigint", "NO", None),
            col("expires_at", "bigint", "NO", None),
            col("last_accessed_at", "bigint", "NO", None),
        ]
    );
    let indexes: Vec<(String, String)> = ctx
        .admin
        .query(
            "SELECT indexname::text, indexdef FROM pg_indexes
             WHERE schemaname = $1 AND tablename = 'sessions' ORDER BY indexname",
            &[&ctx.schema],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let s = &ctx.schema;
    assert_eq!(
        indexes,
        vec![
            (
                "idx_sessions_expires_at".to_owned(),
                format!(
                    "CREATE INDEX idx_sessions_expires_at ON {s}.sessions USING btree (expires_at)"
                )
            ),
            (
                "idx_sessions_user_id".to_owned(),
                format!("CREATE INDEX idx_sessions_user_id ON {s}.sessions USING btree (user_id)")
            ),
            (
                "sessions_pkey".to_owned(),
                format!(
                    "CREATE UNIQUE INDEX sessions_pkey ON {s}.sessions USING btree (session_id)"
                )
            ),
        ]
    );
    ctx.finish().await;
}

#[tokio::test]
async fn every_method_works_before_initialize() {
    type Call = fn(&PostgresAdapter) -> futures::future::BoxFuture<'_, Result<(), SessionError>>;
    let calls: [(&str, Call); 11] = [
        ("get", |a| {
            Box::pin(async move { a.get("x").await.map(|r| assert_eq!(r, None)) })
        }),
        ("set", |a| Box::pin(a.set("x", &SESSION))),
        ("update", |a| {
            Box::pin(async move {
                let patch = SessionPatch {
                    user_id: Some("u".into()),
                    ..SessionPatch::default()
                };
                a.update("x", &patch).await.map(|r| assert!(!r))
            })
        }),
        ("delete", |a| Box::pin(a.delete("x"))),
        ("cleanup", |a| {
            Box::pin(async move { a.cleanup(NOW).await.map(|n| assert_eq!(n, 0)) })
        }),
        ("exists", |a| {
            Box::pin(async move { a.exists("x").await.map(|r| assert!(!r)) })
        }),
        ("list_by_user", |a| {
            Box::pin(async move { a.list_by_user("u").await.map(|r| assert!(r.is_empty())) })
        }),
        ("delete_by_user", |a| {
            Box::pin(async move { a.delete_by_user("u", None).await.map(|n| assert_eq!(n, 0)) })
        }),
        ("load", |a| {
            Box::pin(async move {
                let t = Touch {
                    now: NOW,
                    touch_after: 0,
                    rolling_ttl: None,
                };
                a.load("x", &t).await.map(|r| assert_eq!(r, None))
            })
        }),
        ("rename", |a| {
            Box::pin(async move { a.rename("x", "y", NOW).await.map(|r| assert_eq!(r, None)) })
        }),
        ("update_empty", |a| {
            Box::pin(async move {
                a.update("x", &SessionPatch::default())
                    .await
                    .map(|r| assert!(!r))
            })
        }),
    ];
    for (name, call) in calls {
        let ctx = Ctx::new("first").await;
        assert!(!ctx.table_exists().await);
        let adapter = ctx.adapter();
        call(&adapter)
            .await
            .unwrap_or_else(|e| panic!("{name} before initialize: {e:?}"));
        assert!(ctx.table_exists().await, "{name} created the table");
        ctx.finish().await;
    }
}

static SESSION: std::sync::LazyLock<SessionData> = std::sync::LazyLock::new(|| session("x", "u"));

#[tokio::test]
async fn concurrent_initialize_from_several_adapters() {
    let ctx = Ctx::new("init").await;
    let adapters: Vec<PostgresAdapter> = (0..8).map(|_| ctx.adapter()).collect();
    let results = join_all(adapters.iter().map(|a| a.initialize())).await;
    for r in results {
        r.unwrap();
    }
    // And first calls racing on fresh adapters (schema creation on first use).
    let more: Vec<PostgresAdapter> = (0..8).map(|_| ctx.adapter()).collect();
    let results = join_all(more.iter().enumerate().map(|(i, a)| async move {
        let id = format!("s{i}");
        a.set(&id, &session(&id, "u")).await
    }))
    .await;
    for r in results {
        r.unwrap();
    }
    assert_eq!(adapters[0].list_by_user("u").await.unwrap().len(), 8);
    ctx.finish().await;
}

#[tokio::test]
async fn concurrent_initialize_on_a_fresh_schema_from_first_calls() {
    let ctx = Ctx::new("race").await;
    let adapters: Vec<PostgresAdapter> = (0..6).map(|_| ctx.adapter()).collect();
    let results = join_all(adapters.iter().map(|a| a.exists("nothing"))).await;
    for r in results {
        assert!(!r.unwrap());
    }
    assert!(ctx.table_exists().await);
    ctx.finish().await;
}

/// A table as the original TypeScript package creates and fills it.
#[tokio::test]
async fn reads_a_table_written_by_the_original_package() {
    let ctx = Ctx::new("orig").await;
    ctx.admin
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS sessions (
                session_id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL,
                handle TEXT,
                is_authenticated BOOLEAN NOT NULL DEFAULT true,
                data JSONB,
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                last_accessed_at BIGINT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS idx_sessions_expires_at ON sessions(expires_at);
            CREATE INDEX IF NOT EXISTS idx_sessions_user_id ON sessions(user_id);",
        )
        .await
        .unwrap();
    // Values bound the way a JS driver sends them (data as JSON text).
    ctx.admin
        .execute(
            "INSERT INTO sessions VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8)",
            &[
                &"s1",
                &"did:plc:abc",
                &"alice.bsky.social",
                &true,
                &r#"{"accessToken":"t","nested":{"a":[1,2]}}"#,
                &1_700_000_000_000_i64,
                &1_702_592_000_000_i64,
                &1_700_000_000_500_i64,
            ],
        )
        .await
        .unwrap();
    ctx.admin
        .batch_execute(
            "INSERT INTO sessions VALUES ('s2', 'did:plc:abc', NULL, false, NULL,
                1700000001000, 1702592001000, 1700000001000);
             INSERT INTO sessions (session_id, user_id, created_at, expires_at, last_accessed_at)
                VALUES ('s3', 'bob', 1, 2, 3);",
        )
        .await
        .unwrap();
    let adapter = ctx.adapter();
    let s1 = adapter.get("s1").await.unwrap().unwrap();
    assert_eq!(
        json(s1.data.as_deref()),
        serde_json::json!({"accessToken": "t", "nested": {"a": [1, 2]}})
    );
    assert_eq!(
        s1,
        SessionData {
            session_id: "s1".into(),
            user_id: "did:plc:abc".into(),
            handle: Some("alice.bsky.social".into()),
            is_authenticated: true,
            data: s1.data.clone(),
            created_at: 1_700_000_000_000,
            expires_at: 1_702_592_000_000,
            last_accessed_at: 1_700_000_000_500,
        }
    );
    assert_eq!(
        adapter.get("s2").await.unwrap(),
        Some(SessionData {
            session_id: "s2".into(),
            user_id: "did:plc:abc".into(),
            handle: None,
            is_authenticated: false,
            data: None,
            created_at: 1_700_000_001_000,
            expires_at: 1_702_592_001_000,
            last_accessed_at: 1_700_000_001_000,
        })
    );
    let s3 = adapter.get("s3").await.unwrap().unwrap();
    assert!(s3.is_authenticated);
    assert_eq!(
        (s3.created_at, s3.expires_at, s3.last_accessed_at),
        (1, 2, 3)
    );
    let ids: Vec<String> = adapter
        .list_by_user("did:plc:abc")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(ids, ["s1", "s2"]);
    // initialize() on an existing table changes nothing.
    adapter.initialize().await.unwrap();
    assert!(adapter.exists("s3").await.unwrap());
    ctx.finish().await;
}

#[tokio::test]
async fn what_the_adapter_writes_reads_back_with_plain_sql() {
    let ctx = Ctx::new("plain").await;
    let adapter = ctx.adapter();
    let mut s = session("s1", "u1");
    s.data = Some(r#"{"b":1,"a":[true,null,"x"],"nested":{"z":"😀"}}"#.into());
    adapter.set("s1", &s).await.unwrap();
    let mut anon = session("s2", "u2");
    anon.handle = None;
    anon.data = None;
    anon.is_authenticated = false;
    adapter.set("s2", &anon).await.unwrap();

    let row = ctx
        .admin
        .query_one(
            "SELECT session_id, user_id, handle, is_authenticated, jsonb_typeof(data),
                    data->'nested'->>'z', data = $2::text::jsonb, created_at, expires_at,
                    last_accessed_at
             FROM sessions WHERE session_id = $1",
            &[&"s1", &r#"{"a":[true,null,"x"],"b":1,"nested":{"z":"😀"}}"#],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "s1");
    assert_eq!(row.get::<_, String>(1), "u1");
    assert_eq!(
        row.get::<_, Option<String>>(2).as_deref(),
        Some("u1.example.com")
    );
    assert!(row.get::<_, bool>(3));
    assert_eq!(row.get::<_, String>(4), "object");
    assert_eq!(row.get::<_, String>(5), "😀");
    assert!(row.get::<_, bool>(6));
    assert_eq!(
        (
            row.get::<_, i64>(7),
            row.get::<_, i64>(8),
            row.get::<_, i64>(9)
        ),
        (NOW - HOUR, NOW + HOUR, NOW - HOUR)
    );
    let row = ctx
        .admin
        .query_one(
            "SELECT handle IS NULL, data IS NULL, is_authenticated FROM sessions WHERE session_id = 's2'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, bool>(0),
            row.get::<_, bool>(1),
            row.get::<_, bool>(2)
        ),
        (true, true, false)
    );
    ctx.finish().await;
}

#[tokio::test]
async fn get_set_exists_delete() {
    let ctx = Ctx::new("crud").await;
    let adapter = ctx.adapter();
    assert_eq!(adapter.get("missing").await.unwrap(), None);
    assert!(!adapter.exists("missing").await.unwrap());
    adapter.delete("missing").await.unwrap();

    let s = session("s1", "u1");
    adapter.set("s1", &s).await.unwrap();
    assert_eq!(adapter.get("s1").await.unwrap(), Some(s.clone()));
    assert!(adapter.exists("s1").await.unwrap());

    let mut replaced = session("s1", "u9");
    replaced.handle = None;
    replaced.data = None;
    adapter.set("s1", &replaced).await.unwrap();
    assert_eq!(adapter.get("s1").await.unwrap(), Some(replaced));

    let mut expired = session("old", "u1");
    expired.expires_at = NOW - 1;
    adapter.set("old", &expired).await.unwrap();
    assert_eq!(adapter.get("old").await.unwrap(), Some(expired));
    assert!(adapter.exists("old").await.unwrap());

    adapter.delete("s1").await.unwrap();
    assert_eq!(adapter.get("s1").await.unwrap(), None);
    assert!(!adapter.exists("s1").await.unwrap());
    ctx.finish().await;
}

#[tokio::test]
async fn update_merges_only_the_given_fields() {
    let ctx = Ctx::new("update").await;
    let adapter = ctx.adapter();
    assert!(!adapter
        .update("missing", &SessionPatch::default())
        .await
        .unwrap());
    let s = session("s1", "u1");
    adapter.set("s1", &s).await.unwrap();
    assert!(adapter
        .update("s1", &SessionPatch::default())
        .await
        .unwrap());
    assert_eq!(adapter.get("s1").await.unwrap(), Some(s.clone()));

    let mut expected = s.clone();
    let one = SessionPatch {
        handle: Some(None),
        ..SessionPatch::default()
    };
    assert!(adapter.update("s1", &one).await.unwrap());
    one.apply_to(&mut expected);
    assert_eq!(adapter.get("s1").await.unwrap(), Some(expected.clone()));

    let all = SessionPatch {
        user_id: Some("u2".into()),
        handle: Some(Some("new.handle".into())),
        is_authenticated: Some(false),
        data: Some(Some(r#"{"replaced": true}"#.into())),
        created_at: Some(1),
        expires_at: Some(2),
        last_accessed_at: Some(3),
    };
    assert!(adapter.update("s1", &all).await.unwrap());
    all.apply_to(&mut expected);
    assert_eq!(adapter.get("s1").await.unwrap(), Some(expected));

    let clear = SessionPatch {
        data: Some(None),
        is_authenticated: Some(true),
        ..SessionPatch::default()
    };
    assert!(adapter.update("s1", &clear).await.unwrap());
    let got = adapter.get("s1").await.unwrap().unwrap();
    assert_eq!((got.data, got.is_authenticated), (None, true));
    assert!(!adapter
        .update(
            "missing",
            &SessionPatch {
                expires_at: Some(5),
                ..SessionPatch::default()
            }
        )
        .await
        .unwrap());
    ctx.finish().await;
}

#[tokio::test]
async fn load_missing_and_expired() {
    let ctx = Ctx::new("expired").await;
    let adapter = ctx.adapter();
    assert_eq!(
        adapter.load("missing", &touch(NOW, 0, None)).await.unwrap(),
        None
    );
    let mut at_now = session("at-now", "u");
    at_now.expires_at = NOW;
    adapter.set("at-now", &at_now).await.unwrap();
    let mut past = session("past", "u");
    past.expires_at = NOW - 1;
    adapter.set("past", &past).await.unwrap();
    for id in ["at-now", "past"] {
        assert_eq!(adapter.load(id, &touch(NOW, 0, None)).await.unwrap(), None);
        assert!(!adapter.exists(id).await.unwrap(), "{id} should be deleted");
    }
    let mut fbe = session("fbe", "u");
    fbe.expires_at = NOW;
    fbe.last_accessed_at = NOW;
    adapter.set("fbe", &fbe).await.unwrap();
    assert_eq!(
        adapter
            .load("fbe", &touch(NOW, HOUR, Some(HOUR)))
            .await
            .unwrap(),
        None
    );
    assert!(!adapter.exists("fbe").await.unwrap());
    ctx.finish().await;
}

#[tokio::test]
async fn load_touch_rules() {
    let ctx = Ctx::new("touch").await;
    let adapter = ctx.adapter();
    let s = session("s", "u");

    adapter.set("s", &s).await.unwrap();
    let got = adapter
        .load("s", &touch(NOW, 0, None))
        .await
        .unwrap()
        .unwrap();
    let mut expected = s.clone();
    expected.last_accessed_at = NOW;
    assert_eq!(got, expected);
    assert_eq!(adapter.get("s").await.unwrap(), Some(expected));

    adapter.set("s", &s).await.unwrap();
    let got = adapter
        .load("s", &touch(NOW, HOUR + 1, Some(5 * HOUR)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, s);
    assert_eq!(adapter.get("s").await.unwrap(), Some(s.clone()));

    let got = adapter
        .load("s", &touch(NOW, HOUR, None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.last_accessed_at, got.expires_at), (NOW, s.expires_at));

    adapter.set("s", &s).await.unwrap();
    let got = adapter
        .load("s", &touch(NOW, 0, Some(5 * HOUR)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.last_accessed_at, got.expires_at),
        (NOW, NOW + 5 * HOUR)
    );
    assert_eq!(adapter.get("s").await.unwrap(), Some(got));

    let mut future = s.clone();
    future.last_accessed_at = NOW + 10;
    adapter.set("s", &future).await.unwrap();
    assert_eq!(
        adapter.load("s", &touch(NOW, 0, None)).await.unwrap(),
        Some(future)
    );

    adapter.set("s", &s).await.unwrap();
    let got = adapter
        .load("s", &touch(NOW, i64::MAX, Some(i64::MAX)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, s);
    let got = adapter
        .load("s", &touch(NOW, 0, Some(i64::MAX)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.expires_at, i64::MAX);
    ctx.finish().await;
}

#[tokio::test]
async fn rename_moves_a_live_session_atomically() {
    let ctx = Ctx::new("rename").await;
    let adapter = ctx.adapter();
    assert_eq!(adapter.rename("missing", "new", NOW).await.unwrap(), None);
    let s = session("old", "u");
    adapter.set("old", &s).await.unwrap();
    let moved = adapter.rename("old", "new", NOW).await.unwrap().unwrap();
    let mut expected = s.clone();
    expected.session_id = "new".into();
    assert_eq!(moved, expected);
    assert_eq!(adapter.get("new").await.unwrap(), Some(expected));
    assert_eq!(adapter.get("old").await.unwrap(), None);

    let mut expired = session("exp", "u");
    expired.expires_at = NOW;
    adapter.set("exp", &expired).await.unwrap();
    assert_eq!(adapter.rename("exp", "exp2", NOW).await.unwrap(), None);
    assert!(adapter.exists("exp").await.unwrap());
    assert!(!adapter.exists("exp2").await.unwrap());

    adapter.set("other", &session("other", "u")).await.unwrap();
    let err = adapter.rename("new", "other", NOW).await.unwrap_err();
    assert!(
        matches!(&err, SessionError::IdInUse(id) if id == "other"),
        "{err:?}"
    );
    assert!(adapter.exists("new").await.unwrap());
    ctx.finish().await;
}

#[tokio::test]
async fn list_and_delete_by_user() {
    let ctx = Ctx::new("byuser").await;
    let adapter = ctx.adapter();
    assert_eq!(adapter.list_by_user("nobody").await.unwrap(), vec![]);
    let mut a = session("b-second", "u1");
    a.created_at = 20;
    let mut b = session("a-first", "u1");
    b.created_at = 10;
    // Same created_at: ordered by id in code-point order ("B" < "a"), whatever the locale.
    let mut c = session("B-same-time", "u1");
    c.created_at = 20;
    let mut expired = session("d-expired", "u1");
    expired.created_at = 30;
    expired.expires_at = 1;
    for s in [&a, &b, &c, &expired, &session("other", "u2")] {
        adapter.set(&s.session_id, s).await.unwrap();
    }
    assert_eq!(
        adapter.list_by_user("u1").await.unwrap(),
        vec![b.clone(), c.clone(), a.clone(), expired.clone()]
    );
    assert_eq!(
        adapter.delete_by_user("u1", Some("a-first")).await.unwrap(),
        3
    );
    assert_eq!(adapter.list_by_user("u1").await.unwrap(), vec![b]);
    assert_eq!(
        adapter
            .delete_by_user("u1", Some("not-there"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(adapter.delete_by_user("u1", None).await.unwrap(), 0);
    assert!(adapter.exists("other").await.unwrap());
    assert_eq!(adapter.delete_by_user("u2", None).await.unwrap(), 1);
    ctx.finish().await;
}

#[tokio::test]
async fn cleanup_removes_strictly_older_rows() {
    let ctx = Ctx::new("cleanup").await;
    let adapter = ctx.adapter();
    let t = NOW;
    for (id, expires_at) in [
        ("before", t - 1),
        ("at", t),
        ("after", t + 1),
        ("long-ago", 0),
    ] {
        let mut s = session(id, "u");
        s.expires_at = expires_at;
        adapter.set(id, &s).await.unwrap();
    }
    assert_eq!(adapter.cleanup(t).await.unwrap(), 2);
    assert!(!adapter.exists("before").await.unwrap());
    assert!(!adapter.exists("long-ago").await.unwrap());
    assert!(adapter.exists("at").await.unwrap());
    assert!(adapter.exists("after").await.unwrap());
    assert_eq!(adapter.cleanup(t).await.unwrap(), 0);
    ctx.finish().await;
}

/// PostgreSQL cannot store U+0000 (SPEC §7), so unlike the SQLite list there is none here.
const TRICKY: &[&str] = &[
    "😀🎉👩‍👩‍👧‍👦🇫🇷",
    "שלום עולם مرحبا",
    "e\u{301}\u{308}a\u{30A}",
    "'; DROP TABLE sessions; --",
    "\" OR 1=1 --",
    "Robert'); DELETE FROM sessions WHERE ('1'='1",
    "$1 $2 ?1 :name @x",
    "\\x00 \\' %s %n E'\\\\'",
    "tab\tnew\nline\r",
    "",
];

#[tokio::test]
async fn unicode_and_injection_strings_round_trip() {
    let ctx = Ctx::new("unicode").await;
    let adapter = ctx.adapter();
    for (i, text) in TRICKY.iter().enumerate() {
        let id = format!("{text}#{i}");
        let user = format!("user {text}");
        let data = serde_json::json!({ "k": text, *text: [text] });
        let s = SessionData {
            session_id: id.clone(),
            user_id: user.clone(),
            handle: Some(text.to_string()),
            is_authenticated: true,
            data: Some(data.to_string()),
            created_at: NOW,
            expires_at: NOW + HOUR,
            last_accessed_at: NOW,
        };
        adapter.set(&id, &s).await.unwrap();
        let got = adapter.get(&id).await.unwrap().unwrap();
        assert_eq!(json(got.data.as_deref()), data, "{text:?}");
        assert_eq!(
            SessionData { data: None, ..got },
            SessionData {
                data: None,
                ..s.clone()
            },
            "{text:?}"
        );
        assert_eq!(adapter.list_by_user(&user).await.unwrap().len(), 1);
        let patch = SessionPatch {
            handle: Some(Some(format!("{text}!"))),
            ..SessionPatch::default()
        };
        assert!(adapter.update(&id, &patch).await.unwrap());
        let renamed = format!("{id}→{text}");
        let moved = adapter.rename(&id, &renamed, NOW).await.unwrap().unwrap();
        assert_eq!(moved.session_id, renamed);
        assert_eq!(moved.handle.as_deref(), Some(format!("{text}!").as_str()));
        assert_eq!(json(moved.data.as_deref()), data);
        let loaded = adapter
            .load(&renamed, &touch(NOW + 1, 0, None))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(loaded.user_id, user);
    }
    let count: i64 = ctx
        .admin
        .query_one("SELECT count(*) FROM sessions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, TRICKY.len() as i64);
    assert_eq!(
        adapter
            .delete_by_user("user '; DROP TABLE sessions; --", None)
            .await
            .unwrap(),
        1
    );
    ctx.finish().await;
}

#[tokio::test]
async fn jsonb_data_round_trips_as_json() {
    let ctx = Ctx::new("jsonb").await;
    let adapter = ctx.adapter();
    let value = serde_json::json!({
        "zeta": 1, "alpha": [1, 2.5, -3e-7, "x", null, true, {"deep": {"deeper": []}}],
        "unicode": "😀 שלום e\u{301}", "escape": "quote\" backslash\\ newline\n",
        "big": 9007199254740993_u64, "empty": {}
    });
    let mut s = session("j", "u");
    s.data = Some(value.to_string());
    adapter.set("j", &s).await.unwrap();
    let got = adapter.get("j").await.unwrap().unwrap();
    // JSONB reorders keys and respaces: compare as JSON values.
    assert_eq!(json(got.data.as_deref()), value);
    // Through update and the request path too.
    let replaced = serde_json::json!({"b": [1, {"a": "x"}], "a": null});
    let patch = SessionPatch {
        data: Some(Some(replaced.to_string())),
        ..SessionPatch::default()
    };
    assert!(adapter.update("j", &patch).await.unwrap());
    let loaded = adapter
        .load("j", &touch(NOW, 0, None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(json(loaded.data.as_deref()), replaced);
    // JSON null is "no data".
    let patch = SessionPatch {
        data: Some(Some("null".into())),
        ..SessionPatch::default()
    };
    assert!(adapter.update("j", &patch).await.unwrap());
    assert_eq!(adapter.get("j").await.unwrap().unwrap().data, None);
    // Text that is not JSON is refused by the server with a typed error; nothing written.
    s.data = Some("{not json".into());
    let err = adapter.set("j", &s).await.unwrap_err();
    assert!(
        matches!(&err, SessionError::Postgres { action: "store the session", source }
            if source.code().is_some()),
        "{err:?}"
    );
    assert_eq!(adapter.get("j").await.unwrap().unwrap().data, None);
    ctx.finish().await;
}

#[tokio::test]
async fn numbers_round_trip_as_i64() {
    let ctx = Ctx::new("numbers").await;
    let adapter = ctx.adapter();
    let mut s = session("n", "u");
    s.created_at = 9_007_199_254_740_993; // 2^53 + 1: not representable as f64
    s.expires_at = i64::MAX;
    s.last_accessed_at = i64::MIN;
    adapter.set("n", &s).await.unwrap();
    assert_eq!(adapter.get("n").await.unwrap(), Some(s.clone()));
    let row = ctx
        .admin
        .query_one(
            "SELECT created_at, expires_at, last_accessed_at FROM sessions WHERE session_id = 'n'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2)
        ),
        (9_007_199_254_740_993, i64::MAX, i64::MIN)
    );
    // Touch arithmetic with extreme values does not overflow in SQL.
    let got = adapter
        .load("n", &touch(NOW, 0, Some(i64::MAX)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.last_accessed_at, got.expires_at), (NOW, i64::MAX));
    let got = adapter
        .load("n", &touch(i64::MIN + 1, i64::MAX, None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.last_accessed_at, NOW);
    assert_eq!(adapter.cleanup(i64::MAX).await.unwrap(), 0);
    assert_eq!(adapter.cleanup(i64::MIN).await.unwrap(), 0);
    ctx.finish().await;
}

#[tokio::test]
async fn many_concurrent_calls_share_a_small_pool() {
    let ctx = Ctx::new("pool").await;
    let adapter = Arc::new(ctx.adapter_with(PostgresOptions {
        max_connections: 3,
        ..PostgresOptions::default()
    }));
    let tasks = (0..60).map(|i| {
        let adapter = Arc::clone(&adapter);
        tokio::spawn(async move {
            let id = format!("c{i}");
            adapter.set(&id, &session(&id, "u")).await?;
            adapter.load(&id, &touch(NOW, 0, Some(HOUR))).await?;
            adapter
                .update(
                    &id,
                    &SessionPatch {
                        data: Some(Some(format!(r#"{{"i": {i}}}"#))),
                        ..SessionPatch::default()
                    },
                )
                .await?;
            adapter.get(&id).await
        })
    });
    for (i, r) in join_all(tasks).await.into_iter().enumerate() {
        let got = r.unwrap().unwrap().unwrap();
        assert_eq!(
            got.data.as_deref(),
            Some(format!(r#"{{"i": {i}}}"#).as_str())
        );
    }
    let busy: i64 = ctx
        .admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&ctx.schema],
        )
        .await
        .unwrap()
        .get(0);
    assert!(busy <= 3, "{busy} connections open, maxConnections is 3");
    ctx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_pooled_connection_is_bounded() {
    let ctx = Ctx::new("wait").await;
    let adapter = Arc::new(ctx.adapter_with(PostgresOptions {
        max_connections: 1,
        wait_timeout_ms: 200,
        ..PostgresOptions::default()
    }));
    adapter.initialize().await.unwrap();
    // Block the table so that a call holds the only connection.
    ctx.admin
        .batch_execute("BEGIN; LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let holder = {
        let adapter = Arc::clone(&adapter);
        tokio::spawn(async move { adapter.get("held").await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let err = adapter.get("waiting").await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(&err, SessionError::Pool(m) if m.contains("200 ms")),
        "{err:?}"
    );
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    ctx.admin.batch_execute("COMMIT").await.unwrap();
    assert_eq!(holder.await.unwrap().unwrap(), None);
    assert_eq!(adapter.get("waiting").await.unwrap(), None);
    ctx.finish().await;
}

#[tokio::test]
async fn close_then_adapter_closed() {
    let ctx = Ctx::new("close").await;
    let adapter = ctx.adapter();
    adapter.set("s", &session("s", "u")).await.unwrap();
    adapter.close().await.unwrap();
    adapter.close().await.unwrap();
    let t = touch(NOW, 0, None);
    let results = [
        adapter.get("s").await.map(|_| ()),
        adapter.set("s", &session("s", "u")).await,
        adapter
            .update("s", &SessionPatch::default())
            .await
            .map(|_| ()),
        adapter
            .update(
                "s",
                &SessionPatch {
                    user_id: Some("x".into()),
                    ..SessionPatch::default()
                },
            )
            .await
            .map(|_| ()),
        adapter.delete("s").await,
        adapter.cleanup(NOW).await.map(|_| ()),
        adapter.exists("s").await.map(|_| ()),
        adapter.list_by_user("u").await.map(|_| ()),
        adapter.delete_by_user("u", None).await.map(|_| ()),
        adapter.load("s", &t).await.map(|_| ()),
        adapter.rename("s", "t", NOW).await.map(|_| ()),
        adapter.initialize().await,
    ];
    for (i, r) in results.into_iter().enumerate() {
        assert!(
            matches!(r, Err(SessionError::AdapterClosed)),
            "call {i}: {r:?}"
        );
    }
    // Closing also a never-used adapter is fine, and its calls fail the same way.
    let unused = ctx.adapter();
    unused.close().await.unwrap();
    assert!(matches!(
        unused.initialize().await,
        Err(SessionError::AdapterClosed)
    ));
    ctx.finish().await;
}

/// Server restart: the connections in the pool die. The first call afterwards must succeed.
/// Part 1 kills our connections from the server side (what a restart does to them); part 2
/// restarts the server for real when `SLICES_TEST_PG_RESTART` says how (with-postgres.sh).
#[tokio::test]
async fn first_call_after_a_server_restart_succeeds() {
    let ctx = Ctx::with_guard("restart", Guard::Exclusive(SERVER.write().await)).await;
    let adapter = ctx.adapter_with(PostgresOptions {
        max_connections: 4,
        ..PostgresOptions::default()
    });
    let s = session("s", "u");
    adapter.set("s", &s).await.unwrap();
    // Several pooled connections.
    let results = join_all((0..4).map(|_| adapter.get("s"))).await;
    assert!(results.into_iter().all(|r| r.is_ok()));

    // Part 1: terminate every connection of this adapter.
    let killed: i64 = ctx
        .admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
            &[&ctx.schema],
        )
        .await
        .unwrap()
        .get(0);
    assert!(killed >= 1, "no pooled connection was found to kill");
    let got = adapter.load("s", &touch(NOW, 0, None)).await;
    assert_eq!(got.unwrap().map(|g| g.session_id), Some("s".to_owned()));
    // All methods keep working.
    let results = join_all((0..8).map(|_| adapter.get("s"))).await;
    assert!(results.into_iter().all(|r| r.is_ok()));

    // Part 2: a real restart. The thread is blocked while it runs, so the connection tasks
    // cannot notice the shutdown first: the first call meets a dead connection and must
    // retry on a fresh one.
    match std::env::var("SLICES_TEST_PG_RESTART") {
        Ok(cmd) if !cmd.is_empty() => {
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .stdout(std::process::Stdio::null())
                .status()
                .expect("run SLICES_TEST_PG_RESTART");
            assert!(status.success(), "restart command failed: {status}");
            let started = Instant::now();
            let got = adapter.get("s").await;
            assert_eq!(
                got.unwrap_or_else(|e| panic!("first call after the restart failed: {e:?}")),
                Some(SessionData {
                    last_accessed_at: NOW,
                    ..s.clone()
                })
            );
            assert!(started.elapsed() < Duration::from_secs(5));
            let results = join_all((0..8).map(|_| adapter.exists("s"))).await;
            assert!(results.into_iter().all(|r| r.unwrap()));
            // The old admin connection died with the server.
            let admin = connect(&base_url()).await;
            admin
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", ctx.schema))
                .await
                .unwrap();
        }
        _ => {
            eprintln!(
                "note: SLICES_TEST_PG_RESTART is not set, so the real-restart half of this test \
                 did not run (scripts/with-postgres.sh sets it)"
            );
            ctx.finish().await;
        }
    }
}

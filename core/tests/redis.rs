//! RedisAdapter against SPEC §2, §3 (expiry) and §5, on a real server, and the key layout of
//! src/redis.rs read back with a plain Redis client.
//!
//! Run with `scripts/with-redis.sh cargo test -p slices-session-core --test redis`.
//! Without `SLICES_TEST_REDIS_URL` the tests that need a server fail (they never skip).
//! Each test works under its own random key prefix, so tests run in parallel and counts are
//! exact.
//!
//! Redis expires keys itself, so a record whose `expires_at` is in the past is never stored:
//! the tests use real, future times (`now()`), and pass `Touch::now` explicitly where the SQL
//! tests use a fixed past instant.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use redis::aio::MultiplexedConnection;
use redis::FromRedisValue;
use slices_session_core::adapter::{SessionAdapter, Touch};
use slices_session_core::error::{ErrorKind, SessionError};
use slices_session_core::redis::{RedisAdapter, RedisOptions};
use slices_session_core::session::{now_millis, SessionData, SessionPatch};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

const HOUR: i64 = 3_600_000;

/// The tests that pause, disconnect or restart the server take this lock for writing, every
/// other test that uses the server for reading.
static SERVER: RwLock<()> = RwLock::const_new(());

fn base_url() -> String {
    match std::env::var("SLICES_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "SLICES_TEST_REDIS_URL is not set: these tests need a Redis server. Run them with \
             `scripts/with-redis.sh cargo test -p slices-session-core --test redis` (it starts \
             a throwaway server), or set SLICES_TEST_REDIS_URL to a redis:// URL."
        ),
    }
}

fn now() -> i64 {
    now_millis()
}

async fn raw_connection(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to SLICES_TEST_REDIS_URL: {e:?}"))
}

#[allow(dead_code)]
enum Guard {
    Shared(RwLockReadGuard<'static, ()>),
    Exclusive(RwLockWriteGuard<'static, ()>),
}

/// One test's private key prefix and a plain Redis client.
struct Ctx {
    prefix: String,
    url: String,
    raw: MultiplexedConnection,
    _guard: Guard,
}

impl Ctx {
    async fn new(name: &str) -> Ctx {
        Self::with_guard(name, Guard::Shared(SERVER.read().await)).await
    }

    async fn with_guard(name: &str, guard: Guard) -> Ctx {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let url = base_url();
        let prefix = format!(
            "test:{name}:{}:{}:{}:",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            uuid::Uuid::new_v4().simple()
        );
        let raw = raw_connection(&url).await;
        Ctx {
            prefix,
            url,
            raw,
            _guard: guard,
        }
    }

    fn options(&self) -> RedisOptions {
        RedisOptions {
            prefix: Some(self.prefix.clone()),
            ..RedisOptions::default()
        }
    }

    fn adapter(&self) -> RedisAdapter {
        self.adapter_with(self.options())
    }

    fn adapter_with(&self, options: RedisOptions) -> RedisAdapter {
        RedisAdapter::new(&self.url, options).unwrap()
    }

    fn skey(&self, id: &str) -> String {
        format!("{}s:{id}", self.prefix)
    }

    fn ukey(&self, user: &str) -> String {
        format!("{}u:{user}", self.prefix)
    }

    fn expiry_key(&self) -> String {
        format!("{}expiry", self.prefix)
    }

    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        let mut raw = self.raw.clone();
        cmd.query_async(&mut raw)
            .await
            .unwrap_or_else(|e| panic!("raw {cmd:?}: {e:?}"))
    }

    /// Every key under the prefix, without the prefix, sorted.
    async fn keys(&self) -> Vec<String> {
        // The prefix is made of [a-z0-9:] by the test itself: no glob characters.
        let keys: Vec<String> = self
            .query(redis::cmd("KEYS").arg(format!("{}*", self.prefix)))
            .await;
        let mut keys: Vec<String> = keys
            .into_iter()
            .map(|k| k[self.prefix.len()..].to_owned())
            .collect();
        keys.sort();
        keys
    }

    /// The members of a sorted set with their scores, in order.
    async fn zset(&self, key: &str) -> Vec<(String, f64)> {
        self.query(
            redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES"),
        )
        .await
    }

    async fn pexpiretime(&self, key: &str) -> i64 {
        self.query(redis::cmd("PEXPIRETIME").arg(key)).await
    }

    async fn finish(self) {
        let keys: Vec<Vec<u8>> = self
            .query(redis::cmd("KEYS").arg(format!("{}*", self.prefix)))
            .await;
        if !keys.is_empty() {
            let _: i64 = self.query(redis::cmd("DEL").arg(keys)).await;
        }
    }
}

fn session(id: &str, user: &str, now: i64) -> SessionData {
    SessionData {
        session_id: id.to_owned(),
        user_id: user.to_owned(),
        handle: Some(format!("{user}.example.com")),
        is_authenticated: true,
        // Redis keeps the text as it is: records compare equal after a round trip.
        data: Some(r#"{"n":1,"theme":"dark"}"#.to_owned()),
        created_at: now - HOUR,
        expires_at: now + HOUR,
        last_accessed_at: now - HOUR,
    }
}

fn touch(now: i64, touch_after: i64, rolling_ttl: Option<i64>) -> Touch {
    Touch {
        now,
        touch_after,
        rolling_ttl,
    }
}

fn zs(members: &[(&str, i64)]) -> Vec<(String, f64)> {
    members
        .iter()
        .map(|(m, s)| ((*m).to_owned(), *s as f64))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn ids(sessions: &[SessionData]) -> Vec<&str> {
    sessions.iter().map(|s| s.session_id.as_str()).collect()
}

#[test]
fn constructor_checks_its_arguments_and_does_not_connect() {
    // No runtime here: construction must not need one (the bindings construct from JS).
    for bad in [
        "http://x",
        "",
        "localhost:6379",
        "redis://[bad",
        "redis://user:secret@[bad",
    ] {
        let err = RedisAdapter::new(bad, RedisOptions::default()).unwrap_err();
        match &err {
            SessionError::InvalidArgument { name, .. } => assert_eq!(name, "url", "{bad:?}"),
            other => panic!("{bad:?}: unexpected {other:?}"),
        }
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        let text = format!("{err} {err:?}");
        assert!(!text.contains("secret"), "{bad:?}: {text}");
    }
    let err = RedisAdapter::new("http://user:secret@x", RedisOptions::default()).unwrap_err();
    assert!(err.to_string().contains("not a Redis URL"), "{err}");
    assert!(!format!("{err:?}").contains("secret"));

    let err = RedisAdapter::new(
        "redis://127.0.0.1:1",
        RedisOptions {
            max_connections: 0,
            ..RedisOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, SessionError::InvalidArgument { name, .. } if name == "maxConnections"),
        "{err:?}"
    );

    assert_eq!(
        RedisOptions::default(),
        RedisOptions {
            prefix: None,
            max_connections: 2,
            connect_timeout_ms: 10_000,
            query_timeout_ms: 10_000,
        }
    );
    let adapter =
        RedisAdapter::new("redis://user:secret@127.0.0.1:1/3", RedisOptions::default()).unwrap();
    assert_eq!(adapter.prefix(), "slices:session:");
    assert!(!adapter.is_sync());
    // Debug output is for logs: no password in it.
    let debug = format!("{adapter:?}");
    assert!(!debug.contains("secret"), "{debug}");
    for url in [
        "rediss://h",
        "valkey://h",
        "redis+unix:///tmp/x.sock",
        "unix:///tmp/x.sock",
    ] {
        RedisAdapter::new(url, RedisOptions::default()).unwrap_or_else(|e| panic!("{url}: {e:?}"));
    }
}

#[test]
fn a_call_outside_a_tokio_runtime_is_an_error_not_a_panic() {
    let adapter = RedisAdapter::new("redis://127.0.0.1:1", RedisOptions::default()).unwrap();
    let err = futures::executor::block_on(adapter.get("x")).unwrap_err();
    assert!(
        matches!(&err, SessionError::Internal(m) if m.contains("outside a Tokio runtime")),
        "{err:?}"
    );
}

#[tokio::test]
async fn nothing_listening_is_an_adapter_error_within_the_query_timeout() {
    // Nothing listens on port 1 (privileged, never bound by the tests).
    let adapter = RedisAdapter::new(
        "redis://user:secret@127.0.0.1:1",
        RedisOptions {
            query_timeout_ms: 2_000,
            ..RedisOptions::default()
        },
    )
    .unwrap();
    for attempt in 0..2 {
        let started = Instant::now();
        let err = adapter.get("x").await.unwrap_err();
        let took = started.elapsed();
        assert_eq!(err.kind(), ErrorKind::Adapter, "{err:?}");
        assert!(
            matches!(
                err,
                SessionError::Redis { .. } | SessionError::Timeout { .. }
            ),
            "{err:?}"
        );
        let text = format!("{err} {err:?}");
        assert!(!text.contains("secret"), "attempt {attempt}: {text}");
        assert!(
            took < Duration::from_millis(3_000),
            "attempt {attempt}: {took:?}"
        );
    }
    assert_eq!(
        adapter.initialize().await.unwrap_err().kind(),
        ErrorKind::Adapter
    );
}

/// A loopback TCP server that is not Redis: `reply` is written to every connection (nothing
/// when empty), which is then held open and read from until the test ends.
async fn fake_server(reply: &'static [u8]) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                if !reply.is_empty() {
                    let _ = socket.write_all(reply).await;
                }
                let mut buf = [0u8; 1024];
                while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    (format!("redis://127.0.0.1:{port}"), task)
}

#[tokio::test]
async fn a_server_that_is_not_redis_gives_a_clear_error_in_bounded_time() {
    for reply in [&b"HTTP/1.1 400 Bad Request\r\n\r\n"[..], &b""[..]] {
        let (url, server) = fake_server(reply).await;
        let adapter = RedisAdapter::new(
            &url,
            RedisOptions {
                query_timeout_ms: 500,
                connect_timeout_ms: 500,
                ..RedisOptions::default()
            },
        )
        .unwrap();
        for attempt in 0..2 {
            let started = Instant::now();
            let err = adapter.load("x", &touch(now(), 0, None)).await.unwrap_err();
            let took = started.elapsed();
            assert_eq!(err.kind(), ErrorKind::Adapter, "{err:?}");
            assert!(
                matches!(
                    err,
                    SessionError::Redis { .. } | SessionError::Timeout { ms: 500, .. }
                ),
                "{reply:?} attempt {attempt}: {err:?}"
            );
            assert!(
                took < Duration::from_millis(1_500),
                "{reply:?} attempt {attempt}: {took:?}"
            );
        }
        server.abort();
    }
}

#[tokio::test]
async fn initialize_pings_and_is_optional() {
    let ctx = Ctx::new("init").await;
    let adapter = ctx.adapter();
    adapter.initialize().await.unwrap();
    adapter.initialize().await.unwrap();
    // It writes nothing.
    assert_eq!(ctx.keys().await, Vec::<String>::new());
    let fresh = ctx.adapter();
    assert_eq!(fresh.get("x").await.unwrap(), None);
    ctx.finish().await;
}

#[tokio::test]
async fn the_key_layout_of_the_module_doc() {
    let ctx = Ctx::new("layout").await;
    let adapter = ctx.adapter();
    let t = now();
    let s = session("s1", "u1", t);
    adapter.set("s1", &s).await.unwrap();
    let mut anon = session("s2", "u1", t);
    anon.handle = None;
    anon.data = None;
    anon.is_authenticated = false;
    anon.created_at = t - 2 * HOUR;
    anon.expires_at = t + 3 * HOUR;
    adapter.set("s2", &anon).await.unwrap();

    assert_eq!(
        ctx.keys().await,
        strings(&["expiry", "s:s1", "s:s2", "u:u1"])
    );
    let ty: String = ctx.query(redis::cmd("TYPE").arg(ctx.skey("s1"))).await;
    assert_eq!(ty, "hash");
    let mut fields: Vec<(String, String)> =
        ctx.query(redis::cmd("HGETALL").arg(ctx.skey("s1"))).await;
    fields.sort();
    let f = |k: &str, v: String| (k.to_owned(), v);
    assert_eq!(
        fields,
        vec![
            f("created_at", (t - HOUR).to_string()),
            f("data", r#"{"n":1,"theme":"dark"}"#.to_owned()),
            f("expires_at", (t + HOUR).to_string()),
            f("handle", "u1.example.com".to_owned()),
            f("is_authenticated", "1".to_owned()),
            f("last_accessed_at", (t - HOUR).to_string()),
            f("user_id", "u1".to_owned()),
        ]
    );
    // Absent handle and data are absent fields, not empty ones.
    let mut fields: Vec<String> = ctx.query(redis::cmd("HKEYS").arg(ctx.skey("s2"))).await;
    fields.sort();
    assert_eq!(
        fields,
        strings(&[
            "created_at",
            "expires_at",
            "is_authenticated",
            "last_accessed_at",
            "user_id"
        ])
    );
    let auth: String = ctx
        .query(
            redis::cmd("HGET")
                .arg(ctx.skey("s2"))
                .arg("is_authenticated"),
        )
        .await;
    assert_eq!(auth, "0");

    // TTLs: the record's is its expires_at; the user index lives as long as its longest.
    assert_eq!(ctx.pexpiretime(&ctx.skey("s1")).await, t + HOUR);
    assert_eq!(ctx.pexpiretime(&ctx.skey("s2")).await, t + 3 * HOUR);
    assert_eq!(ctx.pexpiretime(&ctx.ukey("u1")).await, t + 3 * HOUR);
    // The expiry index has no TTL (-1): it holds every user's sessions.
    assert_eq!(ctx.pexpiretime(&ctx.expiry_key()).await, -1);
    assert_eq!(
        ctx.zset(&ctx.ukey("u1")).await,
        zs(&[("s2", t - 2 * HOUR), ("s1", t - HOUR)])
    );
    assert_eq!(
        ctx.zset(&ctx.expiry_key()).await,
        zs(&[("s1", t + HOUR), ("s2", t + 3 * HOUR)])
    );
    // A shorter session added later does not shorten the user index.
    let mut short = session("s3", "u1", t);
    short.expires_at = t + 60_000;
    adapter.set("s3", &short).await.unwrap();
    assert_eq!(ctx.pexpiretime(&ctx.ukey("u1")).await, t + 3 * HOUR);
    // A longer one lengthens it.
    let mut long = session("s4", "u1", t);
    long.expires_at = t + 5 * HOUR;
    adapter.insert("s4", &long).await.unwrap();
    assert_eq!(ctx.pexpiretime(&ctx.ukey("u1")).await, t + 5 * HOUR);
    assert_eq!(ctx.pexpiretime(&ctx.skey("s4")).await, t + 5 * HOUR);
    ctx.finish().await;
}

#[tokio::test]
async fn get_set_exists_delete() {
    let ctx = Ctx::new("crud").await;
    let adapter = ctx.adapter();
    let t = now();
    assert_eq!(adapter.get("missing").await.unwrap(), None);
    assert!(!adapter.exists("missing").await.unwrap());
    adapter.delete("missing").await.unwrap();

    let s = session("s1", "u1", t);
    adapter.set("s1", &s).await.unwrap();
    assert_eq!(adapter.get("s1").await.unwrap(), Some(s.clone()));
    assert!(adapter.exists("s1").await.unwrap());

    // Replacing drops the fields the new record does not have.
    let mut replaced = session("s1", "u9", t);
    replaced.handle = None;
    replaced.data = None;
    replaced.is_authenticated = false;
    adapter.set("s1", &replaced).await.unwrap();
    assert_eq!(adapter.get("s1").await.unwrap(), Some(replaced.clone()));
    let mut fields: Vec<String> = ctx.query(redis::cmd("HKEYS").arg(ctx.skey("s1"))).await;
    fields.sort();
    assert!(!fields.contains(&"handle".to_owned()), "{fields:?}");
    assert!(!fields.contains(&"data".to_owned()), "{fields:?}");
    // And back to one with everything.
    adapter.set("s1", &s).await.unwrap();
    assert_eq!(adapter.get("s1").await.unwrap(), Some(s.clone()));

    adapter.delete("s1").await.unwrap();
    assert_eq!(adapter.get("s1").await.unwrap(), None);
    assert!(!adapter.exists("s1").await.unwrap());
    adapter.delete("s1").await.unwrap();
    // Nothing is left behind: no record, no index entry.
    assert_eq!(ctx.keys().await, Vec::<String>::new());
    ctx.finish().await;
}

#[tokio::test]
async fn a_record_that_expired_already_is_not_stored() {
    let ctx = Ctx::new("past").await;
    let adapter = ctx.adapter();
    let t = now();
    let mut past = session("past", "u", t);
    past.expires_at = t - 1;
    adapter.set("past", &past).await.unwrap();
    assert_eq!(adapter.get("past").await.unwrap(), None);
    assert!(!adapter.exists("past").await.unwrap());
    assert_eq!(ctx.keys().await, Vec::<String>::new());
    // insert too.
    adapter.insert("past", &past).await.unwrap();
    assert_eq!(ctx.keys().await, Vec::<String>::new());
    // Replacing a live record by an expired one removes it and its index entries.
    let live = session("s", "u", t);
    adapter.set("s", &live).await.unwrap();
    assert_eq!(ctx.keys().await, strings(&["expiry", "s:s", "u:u"]));
    let mut dead = live.clone();
    dead.expires_at = 0;
    adapter.set("s", &dead).await.unwrap();
    assert_eq!(adapter.get("s").await.unwrap(), None);
    assert_eq!(ctx.keys().await, Vec::<String>::new());
    // Same through update.
    adapter.set("s", &live).await.unwrap();
    let patch = SessionPatch {
        expires_at: Some(t - HOUR),
        ..SessionPatch::default()
    };
    assert!(adapter.update("s", &patch).await.unwrap());
    assert_eq!(adapter.get("s").await.unwrap(), None);
    assert_eq!(ctx.keys().await, Vec::<String>::new());
    ctx.finish().await;
}

#[tokio::test]
async fn insert_refuses_an_id_in_use() {
    let ctx = Ctx::new("insert").await;
    let adapter = ctx.adapter();
    let t = now();
    let s = session("s", "u1", t);
    adapter.insert("s", &s).await.unwrap();
    assert_eq!(adapter.get("s").await.unwrap(), Some(s.clone()));
    let other = session("s", "intruder", t);
    let err = adapter.insert("s", &other).await.unwrap_err();
    assert!(
        matches!(&err, SessionError::IdInUse(id) if id == "s"),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Config);
    // The first session is untouched, and the intruder is in no index.
    assert_eq!(adapter.get("s").await.unwrap(), Some(s));
    assert_eq!(ctx.keys().await, strings(&["expiry", "s:s", "u:u1"]));
    assert_eq!(adapter.list_by_user("intruder").await.unwrap(), vec![]);
    // Even the very same record is refused: insert is not set.
    let err = adapter
        .insert("s", &session("s", "u1", t))
        .await
        .unwrap_err();
    assert!(matches!(err, SessionError::IdInUse(_)), "{err:?}");
    ctx.finish().await;
}

#[tokio::test]
async fn update_merges_only_the_given_fields() {
    let ctx = Ctx::new("update").await;
    let adapter = ctx.adapter();
    let t = now();
    assert!(!adapter
        .update("missing", &SessionPatch::default())
        .await
        .unwrap());
    assert!(!adapter
        .update(
            "missing",
            &SessionPatch {
                expires_at: Some(t + HOUR),
                user_id: Some("u".into()),
                ..SessionPatch::default()
            }
        )
        .await
        .unwrap());
    // A failed update creates nothing.
    assert_eq!(ctx.keys().await, Vec::<String>::new());

    let s = session("s1", "u1", t);
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
        created_at: Some(t - 5),
        expires_at: Some(t + 2 * HOUR),
        last_accessed_at: Some(t - 3),
    };
    assert!(adapter.update("s1", &all).await.unwrap());
    all.apply_to(&mut expected);
    assert_eq!(adapter.get("s1").await.unwrap(), Some(expected.clone()));
    // The TTL and both indexes follow.
    assert_eq!(ctx.pexpiretime(&ctx.skey("s1")).await, t + 2 * HOUR);
    assert_eq!(
        ctx.zset(&ctx.expiry_key()).await,
        zs(&[("s1", t + 2 * HOUR)])
    );
    assert_eq!(ctx.zset(&ctx.ukey("u2")).await, zs(&[("s1", t - 5)]));
    assert_eq!(ctx.keys().await, strings(&["expiry", "s:s1", "u:u2"]));

    let clear = SessionPatch {
        data: Some(None),
        handle: Some(None),
        is_authenticated: Some(true),
        ..SessionPatch::default()
    };
    assert!(adapter.update("s1", &clear).await.unwrap());
    clear.apply_to(&mut expected);
    let got = adapter.get("s1").await.unwrap().unwrap();
    assert_eq!(got, expected);
    assert_eq!(
        (got.data, got.handle, got.is_authenticated),
        (None, None, true)
    );
    ctx.finish().await;
}

#[tokio::test]
async fn load_missing_and_expired() {
    let ctx = Ctx::new("expired").await;
    let adapter = ctx.adapter();
    let t = now();
    assert_eq!(
        adapter.load("missing", &touch(t, 0, None)).await.unwrap(),
        None
    );
    // Expiry is judged against `Touch::now`: a record that expires at or before it is gone
    // for the caller and deleted, with its index entries.
    let s = session("at-now", "u", t);
    adapter.set("at-now", &s).await.unwrap();
    let mut before = session("before", "u", t);
    before.expires_at = t + HOUR - 1;
    adapter.set("before", &before).await.unwrap();
    for id in ["at-now", "before"] {
        assert_eq!(
            adapter.load(id, &touch(t + HOUR, 0, None)).await.unwrap(),
            None
        );
        assert!(!adapter.exists(id).await.unwrap(), "{id} should be deleted");
    }
    assert_eq!(ctx.keys().await, Vec::<String>::new());
    // Even when the access would not be written and rolling would extend it.
    let mut fbe = session("fbe", "u", t);
    fbe.last_accessed_at = t + HOUR;
    adapter.set("fbe", &fbe).await.unwrap();
    assert_eq!(
        adapter
            .load("fbe", &touch(t + HOUR, HOUR, Some(HOUR)))
            .await
            .unwrap(),
        None
    );
    assert!(!adapter.exists("fbe").await.unwrap());
    // One millisecond earlier it is live.
    adapter.set("fbe", &fbe).await.unwrap();
    assert!(adapter
        .load("fbe", &touch(t + HOUR - 1, HOUR, None))
        .await
        .unwrap()
        .is_some());
    ctx.finish().await;
}

#[tokio::test]
async fn load_touch_rules() {
    let ctx = Ctx::new("touch").await;
    let adapter = ctx.adapter();
    let t = now();
    let s = session("s", "u", t);

    // touch_after 0: always written.
    adapter.set("s", &s).await.unwrap();
    let got = adapter
        .load("s", &touch(t, 0, None))
        .await
        .unwrap()
        .unwrap();
    let mut expected = s.clone();
    expected.last_accessed_at = t;
    assert_eq!(got, expected);
    assert_eq!(adapter.get("s").await.unwrap(), Some(expected));
    // Without rolling the TTL is unchanged.
    assert_eq!(ctx.pexpiretime(&ctx.skey("s")).await, s.expires_at);

    // Last access younger than touch_after: nothing written, not even with rolling.
    adapter.set("s", &s).await.unwrap();
    let got = adapter
        .load("s", &touch(t, HOUR + 1, Some(5 * HOUR)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, s);
    assert_eq!(adapter.get("s").await.unwrap(), Some(s.clone()));
    assert_eq!(ctx.pexpiretime(&ctx.skey("s")).await, s.expires_at);

    // Exactly touch_after old: due.
    let got = adapter
        .load("s", &touch(t, HOUR, None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.last_accessed_at, got.expires_at), (t, s.expires_at));

    // Rolling: expires_at, the key's TTL, the expiry index and the user index move.
    adapter.set("s", &s).await.unwrap();
    let got = adapter
        .load("s", &touch(t, 0, Some(5 * HOUR)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.last_accessed_at, got.expires_at), (t, t + 5 * HOUR));
    assert_eq!(adapter.get("s").await.unwrap(), Some(got));
    assert_eq!(ctx.pexpiretime(&ctx.skey("s")).await, t + 5 * HOUR);
    assert_eq!(ctx.pexpiretime(&ctx.ukey("u")).await, t + 5 * HOUR);
    assert_eq!(
        ctx.zset(&ctx.expiry_key()).await,
        zs(&[("s", t + 5 * HOUR)])
    );
    assert_eq!(ctx.zset(&ctx.ukey("u")).await, zs(&[("s", t - HOUR)]));

    // A last access in the future (clock skew) is not due with touch_after 0... it is:
    // now - last is negative, which is below 0; nothing is written.
    let mut future = s.clone();
    future.last_accessed_at = t + 10;
    adapter.set("s", &future).await.unwrap();
    assert_eq!(
        adapter.load("s", &touch(t, 0, None)).await.unwrap(),
        Some(future)
    );

    // Extreme touch_after does not overflow; a rolling expiry past 2^53-1 ms is refused
    // before anything is written.
    adapter.set("s", &s).await.unwrap();
    let got = adapter
        .load("s", &touch(t, i64::MAX, None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, s);
    let err = adapter
        .load("s", &touch(t, 0, Some(i64::MAX)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err:?}");
    assert_eq!(adapter.get("s").await.unwrap(), Some(s));
    ctx.finish().await;
}

#[tokio::test]
async fn rename_moves_a_live_session_atomically() {
    let ctx = Ctx::new("rename").await;
    let adapter = ctx.adapter();
    let t = now();
    assert_eq!(adapter.rename("missing", "new", t).await.unwrap(), None);
    assert_eq!(ctx.keys().await, Vec::<String>::new());

    let s = session("old", "u", t);
    adapter.set("old", &s).await.unwrap();
    let moved = adapter.rename("old", "new", t).await.unwrap().unwrap();
    let mut expected = s.clone();
    expected.session_id = "new".into();
    assert_eq!(moved, expected);
    assert_eq!(adapter.get("new").await.unwrap(), Some(expected.clone()));
    assert_eq!(adapter.get("old").await.unwrap(), None);
    // The TTL moved with the record, and the indexes name the new id only.
    assert_eq!(ctx.pexpiretime(&ctx.skey("new")).await, s.expires_at);
    assert_eq!(
        ctx.zset(&ctx.expiry_key()).await,
        zs(&[("new", s.expires_at)])
    );
    assert_eq!(ctx.zset(&ctx.ukey("u")).await, zs(&[("new", s.created_at)]));
    assert_eq!(ctx.keys().await, strings(&["expiry", "s:new", "u:u"]));

    // To itself: the record, unchanged.
    assert_eq!(
        adapter.rename("new", "new", t).await.unwrap(),
        Some(expected.clone())
    );

    // Expired by `now` (but still stored): None, nothing moved.
    assert_eq!(
        adapter.rename("new", "newer", s.expires_at).await.unwrap(),
        None
    );
    assert!(adapter.exists("new").await.unwrap());
    assert!(!adapter.exists("newer").await.unwrap());

    adapter
        .set("other", &session("other", "u2", t))
        .await
        .unwrap();
    let err = adapter.rename("new", "other", t).await.unwrap_err();
    assert!(
        matches!(&err, SessionError::IdInUse(id) if id == "other"),
        "{err:?}"
    );
    assert_eq!(adapter.get("new").await.unwrap(), Some(expected));
    assert_eq!(adapter.get("other").await.unwrap().unwrap().user_id, "u2");
    assert_eq!(
        ctx.zset(&ctx.expiry_key()).await,
        zs(&[("new", s.expires_at), ("other", s.expires_at)])
    );
    ctx.finish().await;
}

#[tokio::test]
async fn list_and_delete_by_user() {
    let ctx = Ctx::new("byuser").await;
    let adapter = ctx.adapter();
    let t = now();
    assert_eq!(adapter.list_by_user("nobody").await.unwrap(), vec![]);
    let mut a = session("b-second", "u1", t);
    a.created_at = 20;
    let mut b = session("a-first", "u1", t);
    b.created_at = 10;
    // Same created_at: ordered by id in byte order ("B" < "a").
    let mut c = session("B-same-time", "u1", t);
    c.created_at = 20;
    c.handle = None;
    c.data = None;
    for s in [&a, &b, &c, &session("other", "u2", t)] {
        adapter.set(&s.session_id, s).await.unwrap();
    }
    assert_eq!(
        adapter.list_by_user("u1").await.unwrap(),
        vec![b.clone(), c.clone(), a.clone()]
    );
    assert_eq!(
        adapter.delete_by_user("u1", Some("a-first")).await.unwrap(),
        2
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
    assert_eq!(adapter.list_by_user("u1").await.unwrap(), vec![]);
    assert!(adapter.exists("other").await.unwrap());
    // Only u2's keys are left.
    assert_eq!(ctx.keys().await, strings(&["expiry", "s:other", "u:u2"]));
    assert_eq!(
        ctx.zset(&ctx.expiry_key()).await,
        zs(&[("other", t + HOUR)])
    );
    // `except` naming another user's session does not protect it from this user, nor
    // delete it.
    assert_eq!(
        adapter.delete_by_user("u1", Some("other")).await.unwrap(),
        0
    );
    assert_eq!(adapter.delete_by_user("u2", None).await.unwrap(), 1);
    assert_eq!(ctx.keys().await, Vec::<String>::new());
    ctx.finish().await;
}

/// `set`, `update`, `rename` and `delete` keep the user index and the expiry index equal to
/// what the records say.
#[tokio::test]
async fn the_indexes_follow_every_write() {
    let ctx = Ctx::new("indexes").await;
    let adapter = ctx.adapter();
    let t = now();
    let s = session("s", "alice", t);
    adapter.set("s", &s).await.unwrap();
    // set with another user moves the id between user indexes.
    let mut bob = s.clone();
    bob.user_id = "bob".into();
    bob.created_at = t - 7;
    adapter.set("s", &bob).await.unwrap();
    assert_eq!(ctx.keys().await, strings(&["expiry", "s:s", "u:bob"]));
    assert_eq!(ctx.zset(&ctx.ukey("bob")).await, zs(&[("s", t - 7)]));
    assert_eq!(adapter.list_by_user("alice").await.unwrap(), vec![]);
    assert_eq!(ids(&adapter.list_by_user("bob").await.unwrap()), ["s"]);

    // update of user_id moves it back.
    let patch = SessionPatch {
        user_id: Some("alice".into()),
        ..SessionPatch::default()
    };
    assert!(adapter.update("s", &patch).await.unwrap());
    assert_eq!(ctx.keys().await, strings(&["expiry", "s:s", "u:alice"]));
    assert_eq!(ctx.zset(&ctx.ukey("alice")).await, zs(&[("s", t - 7)]));

    // update of created_at rescores the user index.
    let patch = SessionPatch {
        created_at: Some(t - 9),
        ..SessionPatch::default()
    };
    assert!(adapter.update("s", &patch).await.unwrap());
    assert_eq!(ctx.zset(&ctx.ukey("alice")).await, zs(&[("s", t - 9)]));

    // rename, then delete.
    adapter.set("t", &session("t", "alice", t)).await.unwrap();
    adapter.rename("s", "s2", t).await.unwrap().unwrap();
    assert_eq!(
        ctx.zset(&ctx.ukey("alice")).await,
        zs(&[("t", t - HOUR), ("s2", t - 9)])
    );
    assert_eq!(
        ctx.zset(&ctx.expiry_key()).await,
        zs(&[("s2", t + HOUR), ("t", t + HOUR)])
    );
    adapter.delete("s2").await.unwrap();
    assert_eq!(ctx.zset(&ctx.ukey("alice")).await, zs(&[("t", t - HOUR)]));
    assert_eq!(ctx.zset(&ctx.expiry_key()).await, zs(&[("t", t + HOUR)]));
    // load of an expired record unindexes it too.
    assert_eq!(
        adapter.load("t", &touch(t + HOUR, 0, None)).await.unwrap(),
        None
    );
    assert_eq!(ctx.keys().await, Vec::<String>::new());
    ctx.finish().await;
}

/// A record that Redis expired leaves its id in the indexes; the calls that read the indexes
/// drop it.
#[tokio::test]
async fn ids_of_records_redis_expired_are_dropped_from_the_indexes() {
    let ctx = Ctx::new("lazy").await;
    let adapter = ctx.adapter();
    let t = now();
    let keep = session("keep", "u", t);
    adapter.set("keep", &keep).await.unwrap();
    let mut brief = session("brief", "u", t);
    brief.expires_at = now() + 50;
    adapter.set("brief", &brief).await.unwrap();
    assert_eq!(ctx.zset(&ctx.ukey("u")).await.len(), 2);
    // Wait (bounded) until Redis has expired it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while adapter.exists("brief").await.unwrap() {
        assert!(Instant::now() < deadline, "Redis did not expire the key");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        ctx.zset(&ctx.ukey("u")).await,
        zs(&[("brief", t - HOUR), ("keep", t - HOUR)])
    );
    assert_eq!(ids(&adapter.list_by_user("u").await.unwrap()), ["keep"]);
    assert_eq!(ctx.zset(&ctx.ukey("u")).await, zs(&[("keep", t - HOUR)]));
    // cleanup drops it from the expiry index, and counts only what it deleted.
    assert_eq!(ctx.zset(&ctx.expiry_key()).await.len(), 2);
    assert_eq!(adapter.cleanup(now() + 1).await.unwrap(), 0);
    assert_eq!(ctx.zset(&ctx.expiry_key()).await, zs(&[("keep", t + HOUR)]));

    // deleteByUser does not count it either.
    let mut brief = session("brief2", "u", t);
    brief.expires_at = now() + 50;
    adapter.set("brief2", &brief).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while adapter.exists("brief2").await.unwrap() {
        assert!(Instant::now() < deadline, "Redis did not expire the key");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(adapter.delete_by_user("u", None).await.unwrap(), 1);
    // The expiry index still names brief2 (deleteByUser drops it too).
    assert_eq!(ctx.keys().await, Vec::<String>::new());
    ctx.finish().await;
}

#[tokio::test]
async fn cleanup_removes_strictly_older_records() {
    let ctx = Ctx::new("cleanup").await;
    let adapter = ctx.adapter();
    // Future times: Redis removes past ones itself.
    let t = now() + HOUR;
    for (id, expires_at) in [
        ("before", t - 1),
        ("at", t),
        ("after", t + 1),
        ("well-before", t - HOUR / 2),
    ] {
        let mut s = session(id, "u", now());
        s.expires_at = expires_at;
        adapter.set(id, &s).await.unwrap();
    }
    assert_eq!(adapter.cleanup(t).await.unwrap(), 2);
    assert!(!adapter.exists("before").await.unwrap());
    assert!(!adapter.exists("well-before").await.unwrap());
    assert!(adapter.exists("at").await.unwrap());
    assert!(adapter.exists("after").await.unwrap());
    assert_eq!(adapter.cleanup(t).await.unwrap(), 0);
    assert_eq!(
        ctx.zset(&ctx.expiry_key()).await,
        zs(&[("at", t), ("after", t + 1)])
    );
    let mut left = ids(&adapter.list_by_user("u").await.unwrap())
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    left.sort();
    assert_eq!(left, ["after", "at"]);
    assert_eq!(adapter.cleanup(i64::MIN).await.unwrap(), 0);
    assert_eq!(adapter.cleanup(i64::MAX).await.unwrap(), 2);
    assert_eq!(ctx.keys().await, Vec::<String>::new());
    ctx.finish().await;
}

/// More records than one cleanup script looks at (500): the batches add up.
#[tokio::test]
async fn cleanup_of_several_batches_counts_exactly() {
    let ctx = Ctx::new("batches").await;
    let adapter = ctx.adapter();
    let base = now();
    let t = base + HOUR;
    let writes = (0..1_203).map(|i| {
        let adapter = &adapter;
        async move {
            let id = format!("c{i}");
            let mut s = session(&id, &format!("u{}", i % 7), base);
            // Two thirds expire before t, one third at or after.
            s.expires_at = if i % 3 == 0 { t + i } else { t - 1 - i };
            adapter.set(&id, &s).await
        }
    });
    for r in join_all(writes).await {
        r.unwrap();
    }
    assert_eq!(adapter.cleanup(t).await.unwrap(), 802);
    let left: i64 = ctx.query(redis::cmd("ZCARD").arg(ctx.expiry_key())).await;
    assert_eq!(left, 401);
    assert_eq!(ctx.keys().await.len(), 401 + 1 + 7);
    assert_eq!(adapter.cleanup(t).await.unwrap(), 0);
    ctx.finish().await;
}

/// Strings that break naive key building or escaping; Redis is binary safe, so U+0000 too.
const TRICKY: &[&str] = &[
    "😀🎉👩‍👩‍👧‍👦🇫🇷",
    "שלום עולם مرحبا",
    "e\u{301}\u{308}a\u{30A}",
    "with\0nul",
    "s:nested:s:key",
    "u:looks-like-a-user-index",
    "expiry",
    "* ? [a-z] \\ {tag}",
    "'; DROP TABLE sessions; --",
    "redis.call('FLUSHALL') ]] --[[",
    "%s %n $1 ?1",
    "tab\tnew\nline\r",
    "",
];

#[tokio::test]
async fn unicode_and_nasty_strings_round_trip() {
    let ctx = Ctx::new("unicode").await;
    let adapter = ctx.adapter();
    let t = now();
    for (i, text) in TRICKY.iter().enumerate() {
        let id = format!("{text}#{i}");
        let user = format!("user {text}");
        let data = serde_json::json!({ "k": text, *text: [text] }).to_string();
        let s = SessionData {
            session_id: id.clone(),
            user_id: user.clone(),
            handle: Some(text.to_string()),
            is_authenticated: true,
            data: Some(data.clone()),
            created_at: t,
            expires_at: t + HOUR,
            last_accessed_at: t,
        };
        adapter.insert(&id, &s).await.unwrap();
        assert_eq!(adapter.get(&id).await.unwrap(), Some(s.clone()), "{text:?}");
        assert_eq!(adapter.list_by_user(&user).await.unwrap(), vec![s.clone()]);
        let patch = SessionPatch {
            handle: Some(Some(format!("{text}!"))),
            ..SessionPatch::default()
        };
        assert!(adapter.update(&id, &patch).await.unwrap());
        let renamed = format!("{id}→{text}");
        let moved = adapter.rename(&id, &renamed, t).await.unwrap().unwrap();
        assert_eq!(moved.session_id, renamed);
        assert_eq!(moved.handle.as_deref(), Some(format!("{text}!").as_str()));
        assert_eq!(moved.data.as_deref(), Some(data.as_str()));
        let loaded = adapter
            .load(&renamed, &touch(t + 1, 0, None))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(loaded.user_id, user);
        assert_eq!(loaded.last_accessed_at, t + 1);
        assert!(!adapter.exists(&id).await.unwrap());
    }
    // Exactly one record per string, plus its user index, plus the expiry index.
    assert_eq!(ctx.keys().await.len(), 2 * TRICKY.len() + 1);
    let count: i64 = ctx.query(redis::cmd("ZCARD").arg(ctx.expiry_key())).await;
    assert_eq!(count, TRICKY.len() as i64);
    assert_eq!(
        adapter
            .delete_by_user("user '; DROP TABLE sessions; --", None)
            .await
            .unwrap(),
        1
    );
    // The empty id and the empty user id are ids like any other.
    let empty = session("", "", t);
    adapter.set("", &empty).await.unwrap();
    assert_eq!(adapter.get("").await.unwrap(), Some(empty.clone()));
    assert_eq!(adapter.list_by_user("").await.unwrap(), vec![empty]);
    assert_eq!(adapter.delete_by_user("", None).await.unwrap(), 1);
    ctx.finish().await;
}

#[tokio::test]
async fn numbers_round_trip_as_i64() {
    const MAX_EXACT: i64 = 9_007_199_254_740_991; // 2^53 - 1
    let ctx = Ctx::new("numbers").await;
    let adapter = ctx.adapter();
    let t = now();
    let mut s = session("n", "u", t);
    s.created_at = 9_007_199_254_740_993; // 2^53 + 1: not representable as f64 (Lua's number)
    s.expires_at = MAX_EXACT;
    s.last_accessed_at = i64::MIN;
    adapter.set("n", &s).await.unwrap();
    assert_eq!(adapter.get("n").await.unwrap(), Some(s.clone()));
    assert_eq!(ctx.pexpiretime(&ctx.skey("n")).await, MAX_EXACT);
    let got = adapter
        .load("n", &touch(t, 0, Some(MAX_EXACT - t)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.created_at, got.last_accessed_at, got.expires_at),
        (9_007_199_254_740_993, t, MAX_EXACT)
    );
    let got = adapter
        .load("n", &touch(i64::MIN + 1, i64::MAX, None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.last_accessed_at, t);
    // The update path keeps the text exactly too.
    let patch = SessionPatch {
        last_accessed_at: Some(9_007_199_254_740_995),
        ..SessionPatch::default()
    };
    assert!(adapter.update("n", &patch).await.unwrap());
    assert_eq!(
        adapter.get("n").await.unwrap().unwrap().last_accessed_at,
        9_007_199_254_740_995
    );
    // Expiry times Redis cannot keep exactly are refused before anything is written.
    for bad in [MAX_EXACT + 1, i64::MAX, -MAX_EXACT - 1, i64::MIN] {
        let mut b = s.clone();
        b.expires_at = bad;
        for r in [
            adapter.set("n", &b).await,
            adapter.insert("fresh", &b).await,
            adapter
                .update(
                    "n",
                    &SessionPatch {
                        expires_at: Some(bad),
                        ..SessionPatch::default()
                    },
                )
                .await
                .map(|_| ()),
        ] {
            let err = r.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad}: {err:?}");
        }
    }
    assert_eq!(
        adapter.get("n").await.unwrap().unwrap().expires_at,
        MAX_EXACT
    );
    assert!(!adapter.exists("fresh").await.unwrap());
    assert_eq!(adapter.cleanup(i64::MAX).await.unwrap(), 1);
    assert_eq!(adapter.cleanup(i64::MIN).await.unwrap(), 0);
    assert_eq!(ctx.keys().await, Vec::<String>::new());
    ctx.finish().await;
}

fn assert_wrongtype<T: std::fmt::Debug>(call: &str, r: Result<T, SessionError>) {
    match r {
        Err(e @ SessionError::Redis { .. }) => {
            assert_eq!(e.kind(), ErrorKind::Adapter);
            assert!(e.to_string().contains("WRONGTYPE"), "{call}: {e}");
        }
        other => panic!("{call}: expected a WRONGTYPE error, got {other:?}"),
    }
}

fn assert_corrupt<T: std::fmt::Debug>(
    call: &str,
    id: &str,
    what: &str,
    r: Result<T, SessionError>,
) {
    match r {
        Err(SessionError::Corrupt { session_id, reason }) => {
            assert_eq!(session_id, id, "{call}");
            assert!(reason.contains(what), "{call}: {reason}");
        }
        other => panic!("{call}: expected Corrupt ({what}), got {other:?}"),
    }
}

/// Keys under the prefix that the adapter did not write give clear errors, never a panic
/// and never a silent overwrite.
#[tokio::test]
async fn foreign_data_gives_clear_errors() {
    let ctx = Ctx::new("foreign").await;
    let adapter = ctx.adapter();
    let t = now();
    let _: () = ctx
        .query(redis::cmd("SET").arg(ctx.skey("str")).arg("plain"))
        .await;
    let tt = touch(t, 0, Some(HOUR));
    assert_wrongtype("get", adapter.get("str").await);
    assert_wrongtype("load", adapter.load("str", &tt).await);
    assert_wrongtype("set", adapter.set("str", &session("str", "u", t)).await);
    assert_wrongtype(
        "update",
        adapter
            .update(
                "str",
                &SessionPatch {
                    user_id: Some("u".into()),
                    ..SessionPatch::default()
                },
            )
            .await,
    );
    assert_wrongtype("rename", adapter.rename("str", "elsewhere", t).await);
    assert_wrongtype("delete", adapter.delete("str").await);
    // insert and rename-onto see an id in use.
    let err = adapter
        .insert("str", &session("str", "u", t))
        .await
        .unwrap_err();
    assert!(matches!(err, SessionError::IdInUse(_)), "{err:?}");
    adapter.set("mine", &session("mine", "u", t)).await.unwrap();
    let err = adapter.rename("mine", "str", t).await.unwrap_err();
    assert!(matches!(err, SessionError::IdInUse(_)), "{err:?}");
    assert!(adapter.exists("str").await.unwrap());
    let left: String = ctx.query(redis::cmd("GET").arg(ctx.skey("str"))).await;
    assert_eq!(left, "plain");

    // Hashes with fields that are not what the adapter writes.
    let future = (t + HOUR).to_string();
    // (id, the hash's fields, the field the error must name)
    type BadHash<'a> = (&'a str, &'a [(&'a str, &'a [u8])], &'a str);
    let bad_hashes: [BadHash; 5] = [
        (
            "created",
            &[
                ("user_id", b"u"),
                ("is_authenticated", b"1"),
                ("created_at", b"yesterday"),
                ("expires_at", future.as_bytes()),
                ("last_accessed_at", b"1"),
            ],
            "created_at",
        ),
        (
            "auth",
            &[
                ("user_id", b"u"),
                ("is_authenticated", b"yes"),
                ("created_at", b"1"),
                ("expires_at", future.as_bytes()),
                ("last_accessed_at", b"1"),
            ],
            "is_authenticated",
        ),
        (
            "utf8",
            &[
                ("user_id", b"\xff\xfe"),
                ("is_authenticated", b"1"),
                ("created_at", b"1"),
                ("expires_at", future.as_bytes()),
                ("last_accessed_at", b"1"),
            ],
            "UTF-8",
        ),
        (
            "nouser",
            &[
                ("is_authenticated", b"1"),
                ("created_at", b"1"),
                ("expires_at", future.as_bytes()),
                ("last_accessed_at", b"1"),
            ],
            "user_id",
        ),
        (
            "expires",
            &[
                ("user_id", b"u"),
                ("is_authenticated", b"1"),
                ("created_at", b"1"),
                ("expires_at", b"never"),
                ("last_accessed_at", b"1"),
            ],
            "expires_at",
        ),
    ];
    for (id, fields, what) in bad_hashes {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(ctx.skey(id));
        for (k, v) in fields {
            cmd.arg(*k).arg(*v);
        }
        let _: i64 = ctx.query(&cmd).await;
        assert_corrupt("get", id, what, adapter.get(id).await);
        assert_corrupt("load", id, what, adapter.load(id, &tt).await);
        // Fields the scripts' writes need are checked before writing: the touch wrote
        // nothing (a script failing half-way would have kept its first writes).
        let unindexable = matches!(id, "created" | "nouser" | "expires");
        if unindexable {
            let last: Option<String> = ctx
                .query(redis::cmd("HGET").arg(ctx.skey(id)).arg("last_accessed_at"))
                .await;
            assert_eq!(last.as_deref(), Some("1"), "{id}");
        }
        let moved = format!("{id}-moved");
        assert_corrupt("rename", id, what, adapter.rename(id, &moved, t).await);
        if unindexable {
            // Records the move could not index are not moved.
            assert!(adapter.exists(id).await.unwrap(), "{id}");
            assert!(!adapter.exists(&moved).await.unwrap(), "{id}");
        } else {
            // Fields only the reader checks: moved, and then reported.
            adapter.rename(&moved, id, t).await.unwrap_err();
        }
        // Indexed by hand as the adapter would have: listing the user meets it.
        let _: i64 = ctx
            .query(redis::cmd("ZADD").arg(ctx.ukey("u")).arg(1).arg(id))
            .await;
        if id != "nouser" && id != "utf8" {
            assert_corrupt("list_by_user", id, what, adapter.list_by_user("u").await);
        }
        let _: i64 = ctx
            .query(redis::cmd("ZREM").arg(ctx.ukey("u")).arg(id))
            .await;
        // A patch is refused or applied, but never a panic; the error is an adapter error.
        if let Err(e) = adapter
            .update(
                id,
                &SessionPatch {
                    handle: Some(Some("h".into())),
                    ..SessionPatch::default()
                },
            )
            .await
        {
            assert_eq!(e.kind(), ErrorKind::Adapter, "{id}: {e:?}");
        }
        // delete always works on a hash.
        adapter.delete(id).await.unwrap();
        assert!(!adapter.exists(id).await.unwrap());
    }
    ctx.finish().await;
}

#[tokio::test]
async fn close_then_adapter_closed() {
    let ctx = Ctx::new("close").await;
    let adapter = ctx.adapter();
    let t = now();
    adapter.set("s", &session("s", "u", t)).await.unwrap();
    adapter.close().await.unwrap();
    adapter.close().await.unwrap();
    let tt = touch(t, 0, None);
    let results = [
        adapter.get("s").await.map(|_| ()),
        adapter.set("s", &session("s", "u", t)).await,
        adapter.insert("s2", &session("s2", "u", t)).await,
        adapter
            .update("s", &SessionPatch::default())
            .await
            .map(|_| ()),
        adapter.delete("s").await,
        adapter.cleanup(t).await.map(|_| ()),
        adapter.exists("s").await.map(|_| ()),
        adapter.list_by_user("u").await.map(|_| ()),
        adapter.delete_by_user("u", None).await.map(|_| ()),
        adapter.load("s", &tt).await.map(|_| ()),
        adapter.rename("s", "t", t).await.map(|_| ()),
        adapter.initialize().await,
    ];
    for (i, r) in results.into_iter().enumerate() {
        assert!(
            matches!(r, Err(SessionError::AdapterClosed)),
            "call {i}: {r:?}"
        );
    }
    // Nothing was written after close.
    assert_eq!(ctx.keys().await, strings(&["expiry", "s:s", "u:u"]));
    // A never-used adapter closes too, and its calls fail the same way.
    let unused = ctx.adapter();
    unused.close().await.unwrap();
    assert!(matches!(
        unused.initialize().await,
        Err(SessionError::AdapterClosed)
    ));
    ctx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_operations() {
    let ctx = Ctx::new("many").await;
    let adapter = Arc::new(ctx.adapter_with(RedisOptions {
        max_connections: 3,
        ..ctx.options()
    }));
    let t = now();
    for i in 0..20 {
        let id = format!("c{i}");
        adapter.set(&id, &session(&id, "u", t)).await.unwrap();
    }
    // 200 loads at once on 20 sessions, touching every time.
    let loads = (0..200).map(|i| {
        let adapter = Arc::clone(&adapter);
        async move {
            let id = format!("c{}", i % 20);
            adapter.load(&id, &touch(t + i, 0, Some(HOUR))).await
        }
    });
    for (i, r) in join_all(loads).await.into_iter().enumerate() {
        let got = r
            .unwrap()
            .unwrap_or_else(|| panic!("load {i} found nothing"));
        assert_eq!(got.session_id, format!("c{}", i % 20));
    }
    // Mixed writes from spawned tasks.
    let tasks = (0..60).map(|i| {
        let adapter = Arc::clone(&adapter);
        tokio::spawn(async move {
            let id = format!("m{i}");
            adapter.insert(&id, &session(&id, "m", t)).await?;
            adapter.load(&id, &touch(t, 0, Some(HOUR))).await?;
            adapter
                .update(
                    &id,
                    &SessionPatch {
                        data: Some(Some(format!(r#"{{"i":{i}}}"#))),
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
            Some(format!(r#"{{"i":{i}}}"#).as_str())
        );
    }
    assert_eq!(adapter.list_by_user("m").await.unwrap().len(), 60);
    assert_eq!(adapter.delete_by_user("m", None).await.unwrap(), 60);
    ctx.finish().await;
}

/// A server that stops answering (`CLIENT PAUSE`): the call fails within the query timeout
/// and the adapter works again once the server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_server_times_out_then_the_adapter_recovers() {
    let ctx = Ctx::with_guard("pause", Guard::Exclusive(SERVER.write().await)).await;
    let adapter = ctx.adapter_with(RedisOptions {
        query_timeout_ms: 300,
        ..ctx.options()
    });
    let t = now();
    let s = session("s", "u", t);
    adapter.set("s", &s).await.unwrap();
    let _: () = ctx
        .query(redis::cmd("CLIENT").arg("PAUSE").arg(1_000).arg("ALL"))
        .await;
    let started = Instant::now();
    let err = adapter.get("s").await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            err,
            SessionError::Timeout {
                backend: "Redis",
                ms: 300,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Adapter);
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(900),
        "{took:?}"
    );
    // After the pause: the same connection answers the next calls correctly (the late
    // answer to the timed-out call is not handed to them).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match adapter.get("s").await {
            Ok(got) => {
                assert_eq!(got, Some(s.clone()));
                break;
            }
            Err(SessionError::Timeout { .. }) if Instant::now() < deadline => {}
            Err(e) => panic!("after the pause: {e:?}"),
        }
    }
    assert!(adapter.exists("s").await.unwrap());
    assert_eq!(adapter.list_by_user("u").await.unwrap(), vec![s]);
    ctx.finish().await;
}

/// Lost connections: the first call afterwards succeeds. Part 1 kills the adapter's
/// connections from the server side; part 2 restarts the server for real when
/// `SLICES_TEST_REDIS_STOP` and `SLICES_TEST_REDIS_START` say how (with-redis.sh).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_call_after_lost_connections_succeeds() {
    let ctx = Ctx::with_guard("restart", Guard::Exclusive(SERVER.write().await)).await;
    let adapter = ctx.adapter_with(RedisOptions {
        max_connections: 3,
        ..ctx.options()
    });
    let t = now();
    let s = session("s", "u", t);
    adapter.set("s", &s).await.unwrap();
    // Use every connection.
    for r in join_all((0..6).map(|_| adapter.get("s"))).await {
        assert_eq!(r.unwrap(), Some(s.clone()));
    }

    // Part 1: kill every client connection but the admin one.
    let killed: i64 = ctx
        .query(
            redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("normal")
                .arg("SKIPME")
                .arg("yes"),
        )
        .await;
    assert!(killed >= 1, "no connection was killed");
    for round in 0..2 {
        for r in join_all((0..6).map(|_| adapter.get("s"))).await {
            assert_eq!(
                r.unwrap_or_else(|e| panic!("round {round}: {e:?}")),
                Some(s.clone())
            );
        }
    }
    // Writes too (insert's retry recognises its own first attempt, see src/redis.rs).
    let killed: i64 = ctx
        .query(
            redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("normal")
                .arg("SKIPME")
                .arg("yes"),
        )
        .await;
    assert!(killed >= 1);
    adapter.insert("s2", &session("s2", "u", t)).await.unwrap();

    // Part 2: a real restart; the append-only file keeps the acknowledged writes.
    let stop = std::env::var("SLICES_TEST_REDIS_STOP").unwrap_or_default();
    let start = std::env::var("SLICES_TEST_REDIS_START").unwrap_or_default();
    assert!(
        !stop.is_empty() && !start.is_empty(),
        "SLICES_TEST_REDIS_STOP and SLICES_TEST_REDIS_START are not set: run this test through \
         scripts/with-redis.sh, which starts a throwaway server it may restart"
    );
    let run = |cmd: &str| {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run the server command");
        assert!(status.success(), "{cmd}: {status}");
    };
    run(&stop);
    // While it is down: an adapter error within the query timeout, not a hang.
    let err = adapter.get("s").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Adapter, "{err:?}");
    run(&start);
    let started = Instant::now();
    let got = adapter.get("s").await;
    assert_eq!(
        got.unwrap_or_else(|e| panic!("first call after the restart failed: {e:?}")),
        Some(s.clone())
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    for r in join_all((0..6).map(|_| adapter.exists("s2"))).await {
        assert!(r.unwrap());
    }
    // The admin connection died with the server.
    let raw = raw_connection(&ctx.url).await;
    let ctx = Ctx { raw, ..ctx };
    ctx.finish().await;
}

/// A wrong password is a clear error naming the cause, and once the server accepts the
/// credentials the next call of the same adapter succeeds (the failed handshake does not leave
/// the connection manager stuck).
#[tokio::test]
async fn a_wrong_password_fails_clearly_and_the_adapter_recovers_once_it_is_right() {
    let ctx = Ctx::new("auth").await;
    let user = format!("auth{}", std::process::id());
    let _: () = ctx
        .query(
            redis::cmd("ACL")
                .arg("SETUSER")
                .arg(&user)
                .arg("on")
                .arg(">right")
                .arg("~*")
                .arg("+@all"),
        )
        .await;
    let port = ctx
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let adapter = RedisAdapter::new(
        &format!("redis://{user}:wrong@127.0.0.1:{port}"),
        ctx.options(),
    )
    .unwrap();
    let err = adapter.get("x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Adapter, "{err:?}");
    assert!(err.to_string().contains("authentication failed"), "{err}");
    assert!(
        !err.to_string().contains("wrong"),
        "the password leaked: {err}"
    );
    let _: () = ctx
        .query(redis::cmd("ACL").arg("SETUSER").arg(&user).arg(">wrong"))
        .await;
    assert_eq!(adapter.get("x").await.unwrap(), None);
    let _: () = ctx.query(redis::cmd("ACL").arg("DELUSER").arg(&user)).await;
    ctx.finish().await;
}

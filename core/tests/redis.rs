//! RedisAdapter on a real server: the adapter contract (with Redis's own expiry), the keys it
//! writes, and bad input.
//!
//! Run with `scripts/with-redis.sh cargo test -p slices-session-core --test redis`. Without
//! `SLICES_TEST_REDIS_URL` the tests fail (they never skip). Every test has a key prefix of its
//! own, so tests run in parallel and counts are exact.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use slices_session_core::adapter::{SessionAdapter, Touch};
use slices_session_core::error::{ErrorKind, SessionError};
use slices_session_core::redis::{RedisAdapter, RedisOptions};
use slices_session_core::session::{now_millis, SessionData, SessionPatch};

const HOUR: i64 = 3_600_000;

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

fn unique_prefix(name: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "rt-{name}-{}-{}-{}:",
        std::process::id(),
        now_millis(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// One test's adapter and a raw client on the same server, under the test's prefix.
struct Ctx {
    prefix: String,
    adapter: RedisAdapter,
    raw: redis::aio::MultiplexedConnection,
}

impl Ctx {
    async fn new(name: &str) -> Ctx {
        let prefix = unique_prefix(name);
        let adapter = RedisAdapter::new(
            &base_url(),
            RedisOptions {
                prefix: Some(prefix.clone()),
                ..RedisOptions::default()
            },
        )
        .unwrap();
        let raw = redis::Client::open(base_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to SLICES_TEST_REDIS_URL: {e}"));
        Ctx {
            prefix,
            adapter,
            raw,
        }
    }

    async fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query_async(&mut self.raw.clone()).await.unwrap()
    }

    fn key(&self, id: &str) -> String {
        format!("{}s:{id}", self.prefix)
    }
}

fn session(id: &str, user: &str, now: i64) -> SessionData {
    SessionData {
        session_id: id.to_owned(),
        user_id: user.to_owned(),
        handle: Some(format!("{user}.example.com")),
        is_authenticated: true,
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

#[tokio::test]
async fn get_set_exists_delete_and_the_stored_hash() {
    let ctx = Ctx::new("basic").await;
    let a = &ctx.adapter;
    let now = now_millis();
    assert_eq!(a.get("s").await.unwrap(), None);
    assert!(!a.exists("s").await.unwrap());
    let s = session("s", "u", now);
    a.set("s", &s).await.unwrap();
    assert_eq!(a.get("s").await.unwrap(), Some(s.clone()));
    assert!(a.exists("s").await.unwrap());
    // The record is a hash of plain fields that Redis expires at expires_at.
    let user: String = ctx.cmd(&["HGET", &ctx.key("s"), "user_id"]).await;
    assert_eq!(user, "u");
    let expire_time: i64 = ctx.cmd(&["PEXPIRETIME", &ctx.key("s")]).await;
    assert_eq!(expire_time, s.expires_at);
    let mut bare = session("s", "u2", now);
    bare.handle = None;
    bare.data = None;
    bare.is_authenticated = false;
    a.set("s", &bare).await.unwrap();
    assert_eq!(a.get("s").await.unwrap(), Some(bare));
    let old_index: i64 = ctx.cmd(&["ZCARD", &format!("{}u:u", ctx.prefix)]).await;
    assert_eq!(old_index, 0, "the id left the old user's index");
    a.delete("s").await.unwrap();
    a.delete("s").await.unwrap();
    assert_eq!(a.get("s").await.unwrap(), None);
    let expiry: Option<f64> = ctx
        .cmd(&["ZSCORE", &format!("{}expiry", ctx.prefix), "s"])
        .await;
    assert_eq!(expiry, None);
}

#[tokio::test]
async fn a_record_already_expired_is_not_stored() {
    let ctx = Ctx::new("past").await;
    let now = now_millis();
    let mut s = session("p", "u", now);
    s.expires_at = now - 1;
    ctx.adapter.set("p", &s).await.unwrap();
    assert_eq!(ctx.adapter.get("p").await.unwrap(), None);
    let members: i64 = ctx.cmd(&["ZCARD", &format!("{}expiry", ctx.prefix)]).await;
    assert_eq!(members, 0);
}

#[tokio::test]
async fn insert_never_replaces_another_session() {
    let ctx = Ctx::new("insert").await;
    let now = now_millis();
    ctx.adapter
        .insert("i", &session("i", "first", now))
        .await
        .unwrap();
    let err = ctx
        .adapter
        .insert("i", &session("i", "intruder", now + 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SessionError::IdInUse(ref id) if id == "i"),
        "{err:?}"
    );
    assert_eq!(
        ctx.adapter.get("i").await.unwrap().unwrap().user_id,
        "first"
    );
}

#[tokio::test]
async fn update_merges_and_moves_ttl_and_indexes() {
    let ctx = Ctx::new("update").await;
    let a = &ctx.adapter;
    let now = now_millis();
    let s = session("u1", "alice", now);
    a.set("u1", &s).await.unwrap();
    let patch = SessionPatch {
        user_id: Some("bob".into()),
        handle: Some(None),
        data: Some(Some(r#"{"x":[1,2]}"#.into())),
        expires_at: Some(now + 2 * HOUR),
        ..SessionPatch::default()
    };
    assert!(a.update("u1", &patch).await.unwrap());
    let mut expected = s.clone();
    patch.apply_to(&mut expected);
    assert_eq!(a.get("u1").await.unwrap(), Some(expected));
    let expire_time: i64 = ctx.cmd(&["PEXPIRETIME", &ctx.key("u1")]).await;
    assert_eq!(expire_time, now + 2 * HOUR);
    assert_eq!(a.list_by_user("alice").await.unwrap(), vec![]);
    assert_eq!(a.list_by_user("bob").await.unwrap().len(), 1);
    assert!(!a.update("missing", &patch).await.unwrap());
    assert!(!a.exists("missing").await.unwrap());
    // An update into the past ends the session at once.
    let expire_now = SessionPatch {
        expires_at: Some(now - 1),
        ..SessionPatch::default()
    };
    assert!(a.update("u1", &expire_now).await.unwrap());
    assert!(!a.exists("u1").await.unwrap());
}

#[tokio::test]
async fn load_touch_rules_and_expiry() {
    let ctx = Ctx::new("load").await;
    let a = &ctx.adapter;
    let now = now_millis();
    let s = session("l", "u", now);
    assert_eq!(a.load("missing", &touch(now, 0, None)).await.unwrap(), None);

    a.set("l", &s).await.unwrap();
    let got = a.load("l", &touch(now, 0, None)).await.unwrap().unwrap();
    let mut expected = s.clone();
    expected.last_accessed_at = now;
    assert_eq!(got, expected);
    assert_eq!(a.get("l").await.unwrap(), Some(expected));

    // Not due: nothing written, even with rolling.
    a.set("l", &s).await.unwrap();
    let got = a
        .load("l", &touch(now, HOUR + 1, Some(5 * HOUR)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, s);
    assert_eq!(a.get("l").await.unwrap(), Some(s.clone()));

    // Due, rolling: expires_at, the key's TTL and the expiry index move.
    let got = a
        .load("l", &touch(now, 0, Some(5 * HOUR)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.last_accessed_at, got.expires_at),
        (now, now + 5 * HOUR)
    );
    assert_eq!(a.get("l").await.unwrap(), Some(got));
    let expire_time: i64 = ctx.cmd(&["PEXPIRETIME", &ctx.key("l")]).await;
    assert_eq!(expire_time, now + 5 * HOUR);
    let score: f64 = ctx
        .cmd(&["ZSCORE", &format!("{}expiry", ctx.prefix), "l"])
        .await;
    assert_eq!(score as i64, now + 5 * HOUR);

    // Expired by the caller's clock (the store's): deleted, with its index entries.
    assert_eq!(
        a.load("l", &touch(now + 6 * HOUR, 0, None)).await.unwrap(),
        None
    );
    assert!(!a.exists("l").await.unwrap());
    assert_eq!(a.list_by_user("u").await.unwrap(), vec![]);

    // A rolling TTL past what Redis keeps exactly: refused before anything is written.
    a.set("l", &s).await.unwrap();
    let err = a
        .load("l", &touch(now, 0, Some(i64::MAX)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert_eq!(a.get("l").await.unwrap(), Some(s));
}

#[tokio::test]
async fn rename_list_delete_by_user_and_cleanup() {
    let ctx = Ctx::new("users").await;
    let a = &ctx.adapter;
    let now = now_millis();
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        let mut s = session(id, "alice", now);
        s.created_at = now - 10 + i as i64;
        a.set(id, &s).await.unwrap();
    }
    a.set("x", &session("x", "bob", now)).await.unwrap();
    let ids = |list: Vec<SessionData>| list.into_iter().map(|s| s.session_id).collect::<Vec<_>>();
    assert_eq!(ids(a.list_by_user("alice").await.unwrap()), ["a", "b", "c"]);

    let moved = a.rename("a", "a2", now).await.unwrap().unwrap();
    assert_eq!(moved.session_id, "a2");
    assert!(!a.exists("a").await.unwrap());
    let err = a.rename("b", "x", now).await.unwrap_err();
    assert!(matches!(err, SessionError::IdInUse(_)), "{err:?}");
    assert_eq!(a.rename("missing", "m2", now).await.unwrap(), None);
    assert_eq!(
        a.rename("b", "b2", now + 2 * HOUR).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        ids(a.list_by_user("alice").await.unwrap()),
        ["a2", "b", "c"]
    );

    assert_eq!(a.delete_by_user("alice", Some("c")).await.unwrap(), 2);
    assert_eq!(ids(a.list_by_user("alice").await.unwrap()), ["c"]);

    // cleanup(t) removes live records expiring before t (not at t) and counts them.
    let t = now + 3 * HOUR;
    for (id, e) in [("e1", t - 1), ("e2", t - 500), ("e3", t), ("e4", t + 1)] {
        let mut s = session(id, "carol", now);
        s.expires_at = e;
        a.set(id, &s).await.unwrap();
    }
    // c and x expire at now + HOUR < t too.
    assert_eq!(a.cleanup(t).await.unwrap(), 4);
    assert_eq!(a.cleanup(t).await.unwrap(), 0);
    assert!(a.exists("e3").await.unwrap() && a.exists("e4").await.unwrap());
    assert!(!a.exists("e1").await.unwrap() && !a.exists("c").await.unwrap());
}

#[tokio::test]
async fn cleanup_goes_through_more_than_one_batch() {
    let ctx = Ctx::new("batches").await;
    let now = now_millis();
    let adapter = &ctx.adapter;
    let writes = (0..1_203).map(|i| {
        let id = format!("b{i}");
        let s = session(&id, &format!("user{}", i % 7), now);
        async move { adapter.set(&id, &s).await }
    });
    for r in join_all(writes).await {
        r.unwrap();
    }
    assert_eq!(ctx.adapter.cleanup(now + 2 * HOUR).await.unwrap(), 1_203);
    let left: i64 = ctx.cmd(&["ZCARD", &format!("{}expiry", ctx.prefix)]).await;
    assert_eq!(left, 0);
}

#[tokio::test]
async fn unicode_and_injection_strings_round_trip() {
    let ctx = Ctx::new("unicode").await;
    let now = now_millis();
    for (i, text) in [
        "emoji 😀👩‍👩‍👧‍👦",
        "'; DROP TABLE sessions; --",
        "redis.call('FLUSHALL')",
        "]] .. ARGV[1] .. [[",
        "tab\tnewline\n\u{0}nul",
        "",
    ]
    .iter()
    .enumerate()
    {
        let id = format!("{text}-{i}");
        let mut s = session(&id, text, now);
        s.handle = Some((*text).to_owned());
        s.data = Some(serde_json::to_string(&serde_json::json!({ "t": text })).unwrap());
        ctx.adapter.set(&id, &s).await.unwrap();
        assert_eq!(ctx.adapter.get(&id).await.unwrap(), Some(s.clone()));
        assert_eq!(
            ctx.adapter
                .load(&id, &touch(now, HOUR * 2, None))
                .await
                .unwrap(),
            Some(s.clone())
        );
        assert_eq!(ctx.adapter.list_by_user(text).await.unwrap(), vec![s]);
    }
}

#[tokio::test]
async fn foreign_data_gives_clear_errors_and_is_left_alone() {
    let ctx = Ctx::new("foreign").await;
    let now = now_millis();
    let _: () = ctx.cmd(&["SET", &ctx.key("str"), "not a session"]).await;
    for err in [
        ctx.adapter.get("str").await.unwrap_err(),
        ctx.adapter
            .load("str", &touch(now, 0, None))
            .await
            .unwrap_err(),
        ctx.adapter
            .set("str", &session("str", "u", now))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Adapter);
        assert!(err.to_string().contains("WRONGTYPE"), "{err}");
    }
    let kept: String = ctx.cmd(&["GET", &ctx.key("str")]).await;
    assert_eq!(kept, "not a session");
    let expires = (now + HOUR).to_string();
    let _: () = ctx
        .cmd(&[
            "HSET",
            &ctx.key("h"),
            "user_id",
            "u",
            "is_authenticated",
            "yes",
            "created_at",
            "1",
            "expires_at",
            &expires,
            "last_accessed_at",
            "1",
        ])
        .await;
    let err = ctx.adapter.get("h").await.unwrap_err();
    assert!(
        matches!(&err, SessionError::Corrupt { reason, .. } if reason.contains("is_authenticated")),
        "{err:?}"
    );
}

#[tokio::test]
async fn bad_urls_and_options() {
    for url in [
        "",
        "http://127.0.0.1:6379",
        "postgresql://u:secret@h/db",
        "redis://u:secret@[bad",
    ] {
        let err = RedisAdapter::new(url, RedisOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{url}: {err}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
    let err = RedisAdapter::new(
        "redis://127.0.0.1",
        RedisOptions {
            max_connections: 0,
            ..RedisOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

/// A loopback server that is not Redis: it answers garbage, or nothing.
async fn fake_server(reply: &'static [u8]) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                if !reply.is_empty() {
                    let _ = socket.write_all(reply).await;
                }
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn unreachable_or_foreign_servers_fail_within_the_limit() {
    let http = fake_server(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    let silent = fake_server(b"").await;
    for url in [
        "redis://u:secret@127.0.0.1:1".to_owned(),
        format!("redis://127.0.0.1:{http}"),
        format!("redis://127.0.0.1:{silent}"),
    ] {
        let a = RedisAdapter::new(
            &url,
            RedisOptions {
                query_timeout_ms: 500,
                ..RedisOptions::default()
            },
        )
        .unwrap();
        let started = Instant::now();
        let err = a.get("x").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Adapter, "{url}: {err}");
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(
            started.elapsed() < Duration::from_millis(2_000),
            "{url}: {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn close_refuses_later_calls_and_concurrency_works() {
    let ctx = Ctx::new("close").await;
    let now = now_millis();
    ctx.adapter.set("c", &session("c", "u", now)).await.unwrap();
    let t = touch(now, 0, None);
    let loads = join_all((0..200).map(|_| ctx.adapter.load("c", &t))).await;
    assert!(loads.iter().all(|r| matches!(r, Ok(Some(_)))));
    ctx.adapter.close().await.unwrap();
    assert!(matches!(
        ctx.adapter.get("c").await.unwrap_err(),
        SessionError::AdapterClosed
    ));
}

#[test]
fn calls_outside_a_runtime_are_an_error_not_a_panic() {
    let a = RedisAdapter::new(&base_url(), RedisOptions::default()).unwrap();
    let err = futures::executor::block_on(a.get("x")).unwrap_err();
    assert!(matches!(err, SessionError::Internal(_)), "{err:?}");
}

//! SQLiteAdapter against SPEC §2, §3 (expiry) and §5.

use std::future::Future;
use std::sync::{Arc, Barrier};
use std::thread;

use futures::FutureExt;
use rusqlite::Connection;
use slices_session_core::adapter::{SessionAdapter, Touch};
use slices_session_core::error::SessionError;
use slices_session_core::session::{SessionData, SessionPatch};
use slices_session_core::sqlite::{SqliteAdapter, SqliteOptions};
use tempfile::TempDir;

const NOW: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

/// Runs an adapter future. SQLite is synchronous (`is_sync()`), so every future must be
/// ready on its first poll: this helper checks that on every call of every test.
fn run<F: Future>(f: F) -> F::Output {
    f.now_or_never()
        .expect("an SQLite adapter future was not ready on its first poll")
}

fn temp_db() -> (TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sessions.db");
    let path = path.to_str().expect("utf-8 temp path").to_owned();
    (dir, path)
}

fn open(path: &str) -> SqliteAdapter {
    SqliteAdapter::open(path, SqliteOptions::default()).expect("open adapter")
}

fn session(id: &str, user: &str) -> SessionData {
    SessionData {
        session_id: id.to_owned(),
        user_id: user.to_owned(),
        handle: Some(format!("{user}.example.com")),
        is_authenticated: true,
        data: Some(r#"{"theme":"dark","n":1}"#.to_owned()),
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

const SPEC_TABLE: &str = "CREATE TABLE sessions (
  session_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, handle TEXT,
  is_authenticated INTEGER NOT NULL DEFAULT 1, data TEXT,
  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, last_accessed_at INTEGER NOT NULL)";

#[test]
fn schema_is_exactly_the_spec_schema() {
    let (_dir, path) = temp_db();
    let adapter = open(&path);
    let conn = Connection::open(&path).unwrap();
    let mut stmt = conn
        .prepare("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
        .unwrap();
    let rows: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // SQLite stores the statement text without `IF NOT EXISTS`.
    assert_eq!(
        rows,
        vec![
            (
                "index".to_owned(),
                "idx_sessions_expires_at".to_owned(),
                "CREATE INDEX idx_sessions_expires_at ON sessions(expires_at)".to_owned()
            ),
            (
                "index".to_owned(),
                "idx_sessions_user_id".to_owned(),
                "CREATE INDEX idx_sessions_user_id ON sessions(user_id)".to_owned()
            ),
            (
                "table".to_owned(),
                "sessions".to_owned(),
                SPEC_TABLE.to_owned()
            ),
        ]
    );
    // Opening again (schema present) changes nothing.
    run(adapter.close()).unwrap();
    drop(open(&path));
    let count: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 4); // table, its primary-key autoindex, two indexes
}

#[test]
fn file_databases_use_wal() {
    let (_dir, path) = temp_db();
    let _adapter = open(&path);
    let conn = Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert!(std::path::Path::new(&format!("{path}-wal")).exists());
}

#[test]
fn memory_database_and_sqlite_url_prefix() {
    let memory = open(":memory:");
    run(memory.set("a", &session("a", "u"))).unwrap();
    assert_eq!(run(memory.get("a")).unwrap(), Some(session("a", "u")));
    // A second :memory: adapter is a different database.
    assert_eq!(run(open(":memory:").get("a")).unwrap(), None);
    assert_eq!(run(open("sqlite://:memory:").get("a")).unwrap(), None);

    let (dir, path) = temp_db();
    let url = format!("sqlite://{path}");
    let adapter = open(&url);
    run(adapter.set("a", &session("a", "u"))).unwrap();
    assert!(std::path::Path::new(&path).exists());
    assert!(!dir.path().join("sqlite:").exists());
    // Relative paths after the prefix: `sqlite://./s.db` is `./s.db`. (The working directory
    // is process-wide: every other test here uses absolute paths, so changing it is safe.)
    let cwd = std::env::current_dir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let relative = SqliteAdapter::open("sqlite://./s.db", SqliteOptions::default());
    std::env::set_current_dir(cwd).unwrap();
    relative.unwrap();
    assert!(dir.path().join("s.db").exists());
}

#[test]
fn open_failure_is_a_typed_error() {
    let (dir, _) = temp_db();
    let bad = dir.path().join("no/such/dir/s.db");
    let err = SqliteAdapter::open(bad.to_str().unwrap(), SqliteOptions::default()).unwrap_err();
    match &err {
        SessionError::Sqlite { action, .. } => assert_eq!(*action, "open the database"),
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err
        .to_string()
        .starts_with("SQLite error while trying to open the database: "));
}

/// Rows exactly as the original TypeScript package writes them: is_authenticated 0/1,
/// data JSON text or NULL, handle NULL when absent, integer epoch-ms times.
#[test]
fn reads_a_database_written_by_the_original_package() {
    let (_dir, path) = temp_db();
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS sessions (
                session_id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL,
                handle TEXT,
                is_authenticated INTEGER NOT NULL DEFAULT 1,
                data TEXT,
                created_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL,
                last_accessed_at INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS idx_sessions_expires_at ON sessions(expires_at);
            CREATE INDEX IF NOT EXISTS idx_sessions_user_id ON sessions(user_id);
            INSERT INTO sessions VALUES ('s1', 'did:plc:abc', 'alice.bsky.social', 1,
                '{\"accessToken\":\"t\",\"nested\":{\"a\":[1,2]}}',
                1700000000000, 1702592000000, 1700000000500);
            INSERT INTO sessions VALUES ('s2', 'did:plc:abc', NULL, 0, NULL,
                1700000001000, 1702592001000, 1700000001000);
            INSERT INTO sessions (session_id, user_id, created_at, expires_at, last_accessed_at)
                VALUES ('s3', 'bob', 1, 2, 3);",
        )
        .unwrap();
    }
    let adapter = open(&path);
    assert_eq!(
        run(adapter.get("s1")).unwrap(),
        Some(SessionData {
            session_id: "s1".into(),
            user_id: "did:plc:abc".into(),
            handle: Some("alice.bsky.social".into()),
            is_authenticated: true,
            data: Some(r#"{"accessToken":"t","nested":{"a":[1,2]}}"#.into()),
            created_at: 1_700_000_000_000,
            expires_at: 1_702_592_000_000,
            last_accessed_at: 1_700_000_000_500,
        })
    );
    assert_eq!(
        run(adapter.get("s2")).unwrap(),
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
    // Column default: is_authenticated 1.
    let s3 = run(adapter.get("s3")).unwrap().unwrap();
    assert!(s3.is_authenticated);
    assert_eq!(
        (s3.created_at, s3.expires_at, s3.last_accessed_at),
        (1, 2, 3)
    );
    let listed: Vec<String> = run(adapter.list_by_user("did:plc:abc"))
        .unwrap()
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(listed, ["s1", "s2"]);
    let loaded = run(adapter.load("s1", &touch(1_700_000_002_000, 0, None)))
        .unwrap()
        .unwrap();
    assert_eq!(loaded.last_accessed_at, 1_700_000_002_000);
}

#[test]
fn lenient_and_corrupt_stored_values() {
    let (_dir, path) = temp_db();
    let adapter = open(&path);
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "INSERT INTO sessions VALUES ('json-null', 'u', NULL, 1, 'null', 1, 2, 3);
         INSERT INTO sessions VALUES ('text-bool', 'u', NULL, 'false', NULL, 1, 2, 3);
         INSERT INTO sessions VALUES ('real-time', 'u', NULL, 1, NULL, 1.5, 2.0, 3);
         INSERT INTO sessions VALUES ('bad-json', 'u', NULL, 1, '{not json', 1, 2, 3);
         INSERT INTO sessions VALUES ('bad-time', 'u', NULL, 1, NULL, 'soon', 2, 3);",
    )
    .unwrap();
    assert_eq!(run(adapter.get("json-null")).unwrap().unwrap().data, None);
    assert!(
        !run(adapter.get("text-bool"))
            .unwrap()
            .unwrap()
            .is_authenticated
    );
    let real = run(adapter.get("real-time")).unwrap().unwrap();
    assert_eq!((real.created_at, real.expires_at), (1, 2));
    for id in ["bad-json", "bad-time"] {
        match run(adapter.get(id)).unwrap_err() {
            SessionError::Corrupt { session_id, reason } => {
                assert_eq!(session_id, id);
                assert!(!reason.is_empty());
            }
            other => panic!("unexpected error {other:?}"),
        }
    }
}

#[test]
fn what_the_adapter_writes_reads_back_with_plain_sql() {
    let (_dir, path) = temp_db();
    let adapter = open(&path);
    let data = r#"{ "b" : 1, "a" : [true, null, "x"] }"#; // stored as given, spacing included
    let mut s = session("s1", "u1");
    s.data = Some(data.to_owned());
    run(adapter.set("s1", &s)).unwrap();
    let mut anon = session("s2", "u2");
    anon.handle = None;
    anon.data = None;
    anon.is_authenticated = false;
    run(adapter.set("s2", &anon)).unwrap();

    let conn = Connection::open(&path).unwrap();
    type Raw = (
        String,
        String,
        Option<String>,
        i64,
        Option<String>,
        i64,
        i64,
        i64,
        String,
        String,
        String,
    );
    let raw =
        |id: &str| -> Raw {
            conn.query_row(
            "SELECT session_id, user_id, handle, is_authenticated, data, created_at, expires_at,
                    last_accessed_at, typeof(is_authenticated), typeof(data), typeof(expires_at)
             FROM sessions WHERE session_id = ?1",
            [id],
            |r| {
                Ok((
                    r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?,
                    r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?,
                ))
            },
        )
        .unwrap()
        };
    assert_eq!(
        raw("s1"),
        (
            "s1".into(),
            "u1".into(),
            Some("u1.example.com".into()),
            1,
            Some(data.into()),
            NOW - HOUR,
            NOW + HOUR,
            NOW - HOUR,
            "integer".into(),
            "text".into(),
            "integer".into()
        )
    );
    assert_eq!(
        raw("s2"),
        (
            "s2".into(),
            "u2".into(),
            None,
            0,
            None,
            NOW - HOUR,
            NOW + HOUR,
            NOW - HOUR,
            "integer".into(),
            "null".into(),
            "integer".into()
        )
    );
}

#[test]
fn get_set_exists_delete() {
    let adapter = open(":memory:");
    assert!(adapter.is_sync());
    assert_eq!(run(adapter.get("missing")).unwrap(), None);
    assert!(!run(adapter.exists("missing")).unwrap());
    run(adapter.delete("missing")).unwrap();

    let s = session("s1", "u1");
    run(adapter.set("s1", &s)).unwrap();
    assert_eq!(run(adapter.get("s1")).unwrap(), Some(s.clone()));
    assert!(run(adapter.exists("s1")).unwrap());

    // set replaces the whole record, absent fields included.
    let mut replaced = session("s1", "u9");
    replaced.handle = None;
    replaced.data = None;
    run(adapter.set("s1", &replaced)).unwrap();
    assert_eq!(run(adapter.get("s1")).unwrap(), Some(replaced));

    // get and exists do not check expiry (the store does).
    let mut expired = session("old", "u1");
    expired.expires_at = NOW - 1;
    run(adapter.set("old", &expired)).unwrap();
    assert_eq!(run(adapter.get("old")).unwrap(), Some(expired));
    assert!(run(adapter.exists("old")).unwrap());

    run(adapter.delete("s1")).unwrap();
    assert_eq!(run(adapter.get("s1")).unwrap(), None);
    assert!(!run(adapter.exists("s1")).unwrap());
}

#[test]
fn update_merges_only_the_given_fields() {
    let adapter = open(":memory:");
    assert!(!run(adapter.update("missing", &SessionPatch::default())).unwrap());
    assert!(!run(adapter.update(
        "missing",
        &SessionPatch {
            user_id: Some("x".into()),
            ..SessionPatch::default()
        }
    ))
    .unwrap());

    let s = session("s1", "u1");
    run(adapter.set("s1", &s)).unwrap();
    // Empty patch: true when the row exists, nothing written.
    assert!(run(adapter.update("s1", &SessionPatch::default())).unwrap());
    assert_eq!(run(adapter.get("s1")).unwrap(), Some(s.clone()));

    let one = SessionPatch {
        handle: Some(None),
        ..SessionPatch::default()
    };
    assert!(run(adapter.update("s1", &one)).unwrap());
    let mut expected = s.clone();
    expected.handle = None;
    assert_eq!(run(adapter.get("s1")).unwrap(), Some(expected.clone()));

    let all = SessionPatch {
        user_id: Some("u2".into()),
        handle: Some(Some("new.handle".into())),
        is_authenticated: Some(false),
        data: Some(Some(r#"{"replaced":true}"#.into())),
        created_at: Some(1),
        expires_at: Some(2),
        last_accessed_at: Some(3),
    };
    assert!(run(adapter.update("s1", &all)).unwrap());
    all.apply_to(&mut expected);
    assert_eq!(run(adapter.get("s1")).unwrap(), Some(expected.clone()));
    assert_eq!(expected.user_id, "u2");

    let clear_data = SessionPatch {
        data: Some(None),
        is_authenticated: Some(true),
        ..SessionPatch::default()
    };
    assert!(run(adapter.update("s1", &clear_data)).unwrap());
    let got = run(adapter.get("s1")).unwrap().unwrap();
    assert_eq!((got.data, got.is_authenticated), (None, true));
}

#[test]
fn load_missing_and_expired() {
    let adapter = open(":memory:");
    assert_eq!(
        run(adapter.load("missing", &touch(NOW, 0, None))).unwrap(),
        None
    );

    // expires_at == now is expired (SPEC §3); the row is deleted.
    let mut at_now = session("at-now", "u");
    at_now.expires_at = NOW;
    run(adapter.set("at-now", &at_now)).unwrap();
    let mut past = session("past", "u");
    past.expires_at = NOW - 1;
    run(adapter.set("past", &past)).unwrap();
    for id in ["at-now", "past"] {
        assert_eq!(run(adapter.load(id, &touch(NOW, 0, None))).unwrap(), None);
        assert!(!run(adapter.exists(id)).unwrap(), "{id} should be deleted");
    }
    // Also when the touch would not be due.
    let mut fresh_but_expired = session("fbe", "u");
    fresh_but_expired.expires_at = NOW;
    fresh_but_expired.last_accessed_at = NOW;
    run(adapter.set("fbe", &fresh_but_expired)).unwrap();
    assert_eq!(
        run(adapter.load("fbe", &touch(NOW, HOUR, Some(HOUR)))).unwrap(),
        None
    );
    assert!(!run(adapter.exists("fbe")).unwrap());
}

#[test]
fn load_touch_rules() {
    let adapter = open(":memory:");
    let s = session("s", "u"); // last accessed NOW - HOUR, expires NOW + HOUR

    // touch_after 0: always written.
    run(adapter.set("s", &s)).unwrap();
    let got = run(adapter.load("s", &touch(NOW, 0, None)))
        .unwrap()
        .unwrap();
    let mut expected = s.clone();
    expected.last_accessed_at = NOW;
    assert_eq!(got, expected);
    assert_eq!(run(adapter.get("s")).unwrap(), Some(expected));

    // Not due (accessed 1 h ago, touch_after 1 h + 1 ms): returned as stored, nothing written.
    run(adapter.set("s", &s)).unwrap();
    let got = run(adapter.load("s", &touch(NOW, HOUR + 1, Some(5 * HOUR))))
        .unwrap()
        .unwrap();
    assert_eq!(got, s);
    assert_eq!(run(adapter.get("s")).unwrap(), Some(s.clone()));

    // Exactly touch_after old: due.
    let got = run(adapter.load("s", &touch(NOW, HOUR, None)))
        .unwrap()
        .unwrap();
    assert_eq!(got.last_accessed_at, NOW);
    assert_eq!(got.expires_at, s.expires_at);

    // rolling: expires_at pushed to now + ttl when written.
    run(adapter.set("s", &s)).unwrap();
    let got = run(adapter.load("s", &touch(NOW, 0, Some(5 * HOUR))))
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.last_accessed_at, got.expires_at),
        (NOW, NOW + 5 * HOUR)
    );
    assert_eq!(run(adapter.get("s")).unwrap(), Some(got));

    // A last access in the future (clock skew) is not due with touch_after 0 (Touch::is_due).
    let mut future = s.clone();
    future.last_accessed_at = NOW + 10;
    run(adapter.set("s", &future)).unwrap();
    let got = run(adapter.load("s", &touch(NOW, 0, None)))
        .unwrap()
        .unwrap();
    assert_eq!(got, future);

    // Extreme values do not overflow.
    run(adapter.set("s", &s)).unwrap();
    let got = run(adapter.load("s", &touch(NOW, i64::MAX, Some(i64::MAX))))
        .unwrap()
        .unwrap();
    assert_eq!(got, s);
    let got = run(adapter.load("s", &touch(NOW, 0, Some(i64::MAX))))
        .unwrap()
        .unwrap();
    assert_eq!(got.expires_at, i64::MAX);
}

#[test]
fn rename_moves_a_live_session_atomically() {
    let adapter = open(":memory:");
    assert_eq!(run(adapter.rename("missing", "new", NOW)).unwrap(), None);

    let s = session("old", "u");
    run(adapter.set("old", &s)).unwrap();
    let moved = run(adapter.rename("old", "new", NOW)).unwrap().unwrap();
    let mut expected = s.clone();
    expected.session_id = "new".into();
    assert_eq!(moved, expected);
    assert_eq!(run(adapter.get("new")).unwrap(), Some(expected));
    assert_eq!(run(adapter.get("old")).unwrap(), None);

    // Expired (expires_at == now): not moved, left where it is.
    let mut expired = session("exp", "u");
    expired.expires_at = NOW;
    run(adapter.set("exp", &expired)).unwrap();
    assert_eq!(run(adapter.rename("exp", "exp2", NOW)).unwrap(), None);
    assert!(run(adapter.exists("exp")).unwrap());
    assert!(!run(adapter.exists("exp2")).unwrap());

    // Onto an existing id: an error, and nothing changes.
    run(adapter.set("other", &session("other", "u"))).unwrap();
    let err = run(adapter.rename("new", "other", NOW)).unwrap_err();
    assert!(
        matches!(&err, SessionError::IdInUse(id) if id == "other"),
        "{err:?}"
    );
    assert!(run(adapter.exists("new")).unwrap());
}

#[test]
fn list_and_delete_by_user() {
    let adapter = open(":memory:");
    assert_eq!(run(adapter.list_by_user("nobody")).unwrap(), vec![]);
    let mut a = session("b-second", "u1");
    a.created_at = 20;
    let mut b = session("a-first", "u1");
    b.created_at = 10;
    let mut c = session("c-same-time", "u1");
    c.created_at = 20;
    let mut expired = session("d-expired", "u1");
    expired.created_at = 30;
    expired.expires_at = 1;
    for s in [&a, &b, &c, &expired, &session("other", "u2")] {
        run(adapter.set(&s.session_id, s)).unwrap();
    }
    let listed = run(adapter.list_by_user("u1")).unwrap();
    assert_eq!(
        listed,
        vec![b.clone(), a.clone(), c.clone(), expired.clone()]
    );

    assert_eq!(
        run(adapter.delete_by_user("u1", Some("a-first"))).unwrap(),
        3
    );
    assert_eq!(run(adapter.list_by_user("u1")).unwrap(), vec![b]);
    assert_eq!(
        run(adapter.delete_by_user("u1", Some("not-there"))).unwrap(),
        1
    );
    assert_eq!(run(adapter.delete_by_user("u1", None)).unwrap(), 0);
    assert!(run(adapter.exists("other")).unwrap());
    assert_eq!(run(adapter.delete_by_user("u2", None)).unwrap(), 1);
}

#[test]
fn cleanup_removes_strictly_older_rows() {
    let adapter = open(":memory:");
    let t = NOW;
    for (id, expires_at) in [
        ("before", t - 1),
        ("at", t),
        ("after", t + 1),
        ("long-ago", 0),
    ] {
        let mut s = session(id, "u");
        s.expires_at = expires_at;
        run(adapter.set(id, &s)).unwrap();
    }
    assert_eq!(run(adapter.cleanup(t)).unwrap(), 2);
    assert!(!run(adapter.exists("before")).unwrap());
    assert!(!run(adapter.exists("long-ago")).unwrap());
    assert!(run(adapter.exists("at")).unwrap());
    assert!(run(adapter.exists("after")).unwrap());
    assert_eq!(run(adapter.cleanup(t)).unwrap(), 0);
}

const TRICKY: &[&str] = &[
    "😀🎉👩‍👩‍👧‍👦🇫🇷",
    "שלום עולם مرحبا",
    "e\u{301}\u{308}a\u{30A}",
    "'; DROP TABLE sessions; --",
    "\" OR 1=1 --",
    "Robert'); DELETE FROM sessions WHERE ('1'='1",
    "?1 ?2 $1 :name @x",
    "\\x00 \\' %s %n",
    "tab\tnew\nline\r",
    "nul\u{0}inside",
    "",
];

#[test]
fn unicode_and_injection_strings_round_trip() {
    let (_dir, path) = temp_db();
    let adapter = open(&path);
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
            created_at: NOW,
            expires_at: NOW + HOUR,
            last_accessed_at: NOW,
        };
        run(adapter.set(&id, &s)).unwrap();
        assert_eq!(run(adapter.get(&id)).unwrap(), Some(s.clone()), "{text:?}");
        assert_eq!(run(adapter.list_by_user(&user)).unwrap(), vec![s.clone()]);
        let patch = SessionPatch {
            handle: Some(Some(format!("{text}!"))),
            ..SessionPatch::default()
        };
        assert!(run(adapter.update(&id, &patch)).unwrap());
        let renamed = format!("{id}→{text}");
        let moved = run(adapter.rename(&id, &renamed, NOW)).unwrap().unwrap();
        assert_eq!(moved.session_id, renamed);
        assert_eq!(moved.handle.as_deref(), Some(format!("{text}!").as_str()));
        assert_eq!(moved.data.as_deref(), Some(data.as_str()));
        let loaded = run(adapter.load(&renamed, &touch(NOW + 1, 0, None)))
            .unwrap()
            .unwrap();
        assert_eq!(loaded.user_id, user);
    }
    // Nothing was interpreted as SQL: the table and every row are still there.
    let conn = Connection::open(&path).unwrap();
    let count: i64 = conn
        .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, TRICKY.len() as i64);
    assert_eq!(
        run(adapter.delete_by_user("user '; DROP TABLE sessions; --", None)).unwrap(),
        1
    );
}

#[test]
fn two_adapters_on_one_file_write_concurrently_without_busy_errors() {
    let (_dir, path) = temp_db();
    let adapters = [Arc::new(open(&path)), Arc::new(open(&path))];
    const THREADS_PER_ADAPTER: usize = 3;
    const ROUNDS: usize = 150;
    let barrier = Arc::new(Barrier::new(2 * THREADS_PER_ADAPTER));
    let mut handles = Vec::new();
    for (a, adapter) in adapters.iter().enumerate() {
        for t in 0..THREADS_PER_ADAPTER {
            let adapter = Arc::clone(adapter);
            let barrier = Arc::clone(&barrier);
            handles.push(thread::spawn(move || -> Result<(), SessionError> {
                barrier.wait();
                for r in 0..ROUNDS {
                    let id = format!("a{a}-t{t}-r{r}");
                    let s = session(&id, &format!("user{t}"));
                    run(adapter.set(&id, &s))?;
                    run(adapter.load(&id, &touch(NOW + r as i64, 0, Some(HOUR))))?;
                    run(adapter.update(
                        &id,
                        &SessionPatch {
                            data: Some(Some(format!(r#"{{"round":{r}}}"#))),
                            ..SessionPatch::default()
                        },
                    ))?;
                    if r % 3 == 0 {
                        run(adapter.delete(&id))?;
                    }
                    if r % 50 == 0 {
                        run(adapter.cleanup(0))?;
                        run(adapter.list_by_user(&format!("user{t}")))?;
                    }
                }
                Ok(())
            }));
        }
    }
    for h in handles {
        h.join()
            .expect("writer thread panicked")
            .expect("no SQLite error (SQLITE_BUSY)");
    }
    let conn = Connection::open(&path).unwrap();
    let count: i64 = conn
        .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        count as usize,
        2 * THREADS_PER_ADAPTER * (ROUNDS - ROUNDS.div_ceil(3))
    );
}

#[test]
fn many_adapters_creating_the_schema_at_once() {
    // Many adapters opening a new file at the same moment: WAL switch and schema creation
    // wait for each other instead of failing.
    let (_dir, path) = temp_db();
    let barrier = Arc::new(Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let path = path.clone();
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                SqliteAdapter::open(&path, SqliteOptions::default()).map(|_| ())
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().expect("concurrent open");
    }
}

#[test]
fn close_then_adapter_closed() {
    let adapter = open(":memory:");
    run(adapter.set("s", &session("s", "u"))).unwrap();
    run(adapter.close()).unwrap();
    run(adapter.close()).unwrap(); // a second close is a no-op
    let t = touch(NOW, 0, None);
    let results = [
        run(adapter.get("s")).map(|_| ()),
        run(adapter.set("s", &session("s", "u"))),
        run(adapter.update("s", &SessionPatch::default())).map(|_| ()),
        run(adapter.update(
            "s",
            &SessionPatch {
                user_id: Some("x".into()),
                ..SessionPatch::default()
            },
        ))
        .map(|_| ()),
        run(adapter.delete("s")),
        run(adapter.cleanup(NOW)).map(|_| ()),
        run(adapter.exists("s")).map(|_| ()),
        run(adapter.list_by_user("u")).map(|_| ()),
        run(adapter.delete_by_user("u", None)).map(|_| ()),
        run(adapter.load("s", &t)).map(|_| ()),
        run(adapter.rename("s", "t", NOW)).map(|_| ()),
    ];
    for (i, r) in results.into_iter().enumerate() {
        assert!(
            matches!(r, Err(SessionError::AdapterClosed)),
            "call {i}: {r:?}"
        );
    }
}

#[test]
fn custom_busy_timeout_is_applied() {
    let (_dir, path) = temp_db();
    let adapter = SqliteAdapter::open(
        &path,
        SqliteOptions {
            busy_timeout_ms: 50,
        },
    )
    .unwrap();
    // Another connection holds the write lock: our write waits ~50 ms, then reports BUSY.
    let blocker = Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    let err = run(adapter.set("s", &session("s", "u"))).unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(&err, SessionError::Sqlite { action: "store the session", source }
            if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)),
        "{err:?}"
    );
    assert!(waited >= std::time::Duration::from_millis(40), "{waited:?}");
    blocker.execute_batch("COMMIT").unwrap();
    run(adapter.set("s", &session("s", "u"))).unwrap();
    assert_eq!(SqliteOptions::default().busy_timeout_ms, 5000);
}

/// Size of the database's `-wal` file (0 when there is none).
fn wal_bytes(path: &str) -> u64 {
    std::fs::metadata(format!("{path}-wal")).map_or(0, |m| m.len())
}

/// SQLite checkpoints the WAL only when a statement steps to SQLITE_DONE; the request path's
/// touch is an `UPDATE ... RETURNING` whose first row is all we need. Each touch commits one
/// page, so without stepping to the end 3 000 touches left a 12 MB WAL (and a server's WAL grew
/// without bound). Checkpoints run in the background from 1 000 frames and inline past 4 000
/// (core/src/sqlite_checkpoint.rs), so the WAL never holds much more than 4 000 frames (one
/// commit's worth: a rename writes a few pages).
#[test]
fn the_wal_stays_bounded_when_every_write_is_a_touch() {
    let (_dir, path) = temp_db();
    let adapter = open(&path);
    for i in 0..50 {
        run(adapter.set(&format!("s{i}"), &session(&format!("s{i}"), "u"))).unwrap();
    }
    let pages_bytes = 4096 + 24;
    let bound = 4100 * pages_bytes;
    for n in 0..12_000 {
        let id = format!("s{}", n % 50);
        let rolling = (n % 2 == 0).then_some(HOUR);
        let got = run(adapter.load(&id, &touch(NOW + n, 0, rolling))).unwrap();
        assert_eq!(got.map(|s| s.last_accessed_at), Some(NOW + n));
    }
    let wal = wal_bytes(&path);
    assert!(
        wal <= bound,
        "after 12 000 touches the WAL holds {wal} bytes ({} pages): it is not being checkpointed",
        wal / pages_bytes
    );
    // Renames (also `UPDATE ... RETURNING`) as well.
    for n in 0..12_000 {
        let (from, to) = (format!("r{n}"), format!("r{}", n + 1));
        if n == 0 {
            run(adapter.set(&from, &session(&from, "u"))).unwrap();
        }
        let moved = run(adapter.rename(&from, &to, NOW)).unwrap();
        assert_eq!(moved.map(|s| s.session_id), Some(to));
    }
    let wal = wal_bytes(&path);
    assert!(
        wal <= bound,
        "after 12 000 renames the WAL holds {wal} bytes: it is not being checkpointed"
    );
}

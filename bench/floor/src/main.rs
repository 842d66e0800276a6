//! The floor: the statements `core/src/sqlite.rs` and `core/src/postgres.rs` run for each
//! benchmark operation, issued by raw `rusqlite` / `tokio-postgres`, and the Lua scripts of
//! `core/src/redis.rs`, run by the raw `redis` crate, with no JS, no cookie parsing, no JSON
//! validation and no marshalling. It prints one JSON object on stdout in the
//! shape bench/lib/workload.mjs prints, so the harness treats it as one more contender.
//!
//! Usage: slices-bench-floor --backend sqlite --path FILE | --backend postgres --url URL
//!        | --backend redis --url URL [--prefix P]
//!        [--warmup-ms N] [--run-ms N] [--concurrency 1,64] [--cleanup-rows N] [--pool 10]
//! (`--pool`: PostgreSQL connections, or Redis multiplexed connections.)

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use slices_session_core::sqlite_checkpoint::Checkpointer;
use tokio::sync::{Mutex, Semaphore};

// ---- the statements, copied from core/src/sqlite.rs and core/src/postgres.rs ---------------

const SQLITE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS sessions (
  session_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, handle TEXT,
  is_authenticated INTEGER NOT NULL DEFAULT 1, data TEXT,
  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, last_accessed_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS idx_sessions_expires_at ON sessions(expires_at);
CREATE INDEX IF NOT EXISTS idx_sessions_user_id ON sessions(user_id);";
const SQLITE_COLUMNS: &str =
    "session_id, user_id, handle, is_authenticated, data, created_at, expires_at, last_accessed_at";

fn sqlite_upsert() -> String {
    format!(
        "INSERT INTO sessions ({SQLITE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT (session_id) DO UPDATE SET user_id = excluded.user_id, handle = excluded.handle, \
         is_authenticated = excluded.is_authenticated, data = excluded.data, \
         created_at = excluded.created_at, expires_at = excluded.expires_at, \
         last_accessed_at = excluded.last_accessed_at"
    )
}
/// core/src/sqlite.rs TOUCH (a store without `rolling`, as benchmarked): `?2` is unused.
fn sqlite_touch() -> String {
    format!(
        "UPDATE sessions SET last_accessed_at = CASE WHEN expires_at > ?1 AND last_accessed_at <= ?4 \
         THEN ?1 ELSE last_accessed_at END WHERE session_id = ?3 RETURNING {SQLITE_COLUMNS}"
    )
}
const SQLITE_UPDATE_DATA: &str = "UPDATE sessions SET data = ?1 WHERE session_id = ?2";
const SQLITE_CLEANUP: &str = "DELETE FROM sessions WHERE expires_at < ?1";

const PG_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS sessions (
  session_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, handle TEXT,
  is_authenticated BOOLEAN NOT NULL DEFAULT true, data JSONB,
  created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, last_accessed_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS idx_sessions_expires_at ON sessions(expires_at);
CREATE INDEX IF NOT EXISTS idx_sessions_user_id ON sessions(user_id);";
const PG_COLUMNS: &str = "session_id, user_id, handle, is_authenticated, data::text AS data, \
     created_at, expires_at, last_accessed_at";
const PG_UPSERT: &str = "INSERT INTO sessions (session_id, user_id, handle, is_authenticated, \
     data, created_at, expires_at, last_accessed_at) \
     VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8) \
     ON CONFLICT (session_id) DO UPDATE SET user_id = EXCLUDED.user_id, \
     handle = EXCLUDED.handle, is_authenticated = EXCLUDED.is_authenticated, \
     data = EXCLUDED.data, created_at = EXCLUDED.created_at, \
     expires_at = EXCLUDED.expires_at, last_accessed_at = EXCLUDED.last_accessed_at";
fn pg_load() -> String {
    format!(
        "WITH expired AS (DELETE FROM sessions WHERE session_id = $1 AND expires_at <= $2), \
         touched AS (UPDATE sessions SET last_accessed_at = $2, \
         expires_at = COALESCE($3::bigint, expires_at) \
         WHERE session_id = $1 AND expires_at > $2 AND last_accessed_at <= $4 RETURNING {PG_COLUMNS}) \
         SELECT * FROM touched UNION ALL SELECT {PG_COLUMNS} FROM sessions WHERE session_id = $1 \
         AND expires_at > $2 AND NOT EXISTS (SELECT 1 FROM touched)"
    )
}
const PG_UPDATE_DATA: &str = "UPDATE sessions SET data = $1::text::jsonb WHERE session_id = $2";
const PG_CLEANUP: &str = "DELETE FROM sessions WHERE expires_at < $1";

/// The Lua scripts of core/src/redis.rs (INSERT, UPDATE, TOUCH), text for text: bench/floor/build.rs
/// takes them out of its source, since core keeps them private.
mod redis_scripts {
    include!(concat!(env!("OUT_DIR"), "/redis_scripts.rs"));
}

const TTL_MS: i64 = 30 * 24 * 60 * 60 * 1000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A decoded row, as the core's `SessionData` holds it (owned strings).
#[allow(dead_code)]
struct Row {
    session_id: String,
    user_id: String,
    handle: Option<String>,
    is_authenticated: bool,
    data: Option<String>,
    created_at: i64,
    expires_at: i64,
    last_accessed_at: i64,
}

fn data_json(i: u64) -> String {
    format!("{{\"role\":\"member\",\"theme\":\"dark\",\"n\":{i}}}")
}

// ---- options -------------------------------------------------------------------------------

struct Options {
    backend: String,
    path: String,
    url: String,
    warmup_ms: u64,
    run_ms: u64,
    concurrency: Vec<usize>,
    cleanup_rows: u64,
    pool: usize,
    sessions_cap: usize,
    /// Redis: the key prefix (the store's `prefix`), one per run.
    prefix: String,
    /// Experiments only (not used by bench/run.sh): "ours" (default) runs core's TOUCH;
    /// "with-expires" adds `expires_at = COALESCE(?2, expires_at)` to the SET list (our
    /// statement before the fix), to measure what rewriting the `idx_sessions_expires_at`
    /// entry on every touch costs.
    sqlite_touch: String,
}

fn parse_args() -> Options {
    let mut o = Options {
        backend: String::new(),
        path: String::new(),
        url: String::new(),
        warmup_ms: 200,
        run_ms: 1000,
        concurrency: vec![1, 64],
        cleanup_rows: 10_000,
        pool: 10,
        sessions_cap: 10_000,
        prefix: "slices:session:".into(),
        sqlite_touch: "ours".into(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--backend" => o.backend = value,
            "--path" => o.path = value,
            "--url" => o.url = value,
            "--warmup-ms" => o.warmup_ms = value.parse().expect("--warmup-ms"),
            "--run-ms" => o.run_ms = value.parse().expect("--run-ms"),
            "--cleanup-rows" => o.cleanup_rows = value.parse().expect("--cleanup-rows"),
            "--pool" => o.pool = value.parse().expect("--pool"),
            "--sessions-cap" => o.sessions_cap = value.parse().expect("--sessions-cap"),
            "--sqlite-touch" => o.sqlite_touch = value,
            "--prefix" => o.prefix = value,
            "--concurrency" => {
                o.concurrency = value
                    .split(',')
                    .map(|c| c.parse().expect("--concurrency"))
                    .collect()
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    o
}

// ---- measurement ---------------------------------------------------------------------------

struct Phase {
    op: String,
    concurrency: usize,
    ops: usize,
    wall_ms: f64,
    latencies_us: Vec<f64>,
    removed: Option<u64>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank, as bench/lib/stats.mjs computes it.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Phase {
    fn json(&self) -> String {
        let mut s = self.latencies_us.clone();
        s.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let mean = if s.is_empty() {
            0.0
        } else {
            s.iter().sum::<f64>() / s.len() as f64
        };
        let ops_per_sec = if self.wall_ms > 0.0 {
            self.ops as f64 / (self.wall_ms / 1000.0)
        } else {
            0.0
        };
        let removed = self
            .removed
            .map(|r| format!(",\"removed\":{r}"))
            .unwrap_or_default();
        format!(
            "{{\"op\":\"{}\",\"concurrency\":{},\"ops\":{},\"wallMs\":{:.3},\"opsPerSec\":{:.1},\
             \"p50Us\":{:.2},\"p99Us\":{:.2},\"meanUs\":{:.2}{removed}}}",
            self.op,
            self.concurrency,
            self.ops,
            self.wall_ms,
            ops_per_sec,
            percentile(&s, 50.0),
            percentile(&s, 99.0),
            mean
        )
    }
}

/// Runs `concurrency` callers, each calling `op(i)` in a loop, for `warmup` then `run`;
/// records each call's latency. `i` is a shared counter, as in the JS harness.
async fn phase<F, Fut>(
    name: &str,
    concurrency: usize,
    warmup: Duration,
    run: Duration,
    yield_between: bool,
    op: F,
) -> Phase
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let counter = RefCell::new(0u64);
    let next = || {
        let mut c = counter.borrow_mut();
        *c += 1;
        *c
    };
    // Warm-up.
    let until = Instant::now() + warmup;
    let callers = (0..concurrency).map(|_| async {
        while Instant::now() < until {
            op(next()).await;
            if yield_between {
                tokio::task::yield_now().await;
            }
        }
    });
    futures::future::join_all(callers).await;
    // Timed.
    let start = Instant::now();
    let until = start + run;
    let callers = (0..concurrency).map(|_| async {
        let mut lat = Vec::with_capacity(1 << 16);
        while Instant::now() < until {
            let t0 = Instant::now();
            op(next()).await;
            lat.push(t0.elapsed().as_secs_f64() * 1e6);
            if yield_between {
                tokio::task::yield_now().await;
            }
        }
        lat
    });
    let all: Vec<Vec<f64>> = futures::future::join_all(callers).await;
    let wall_ms = start.elapsed().as_secs_f64() * 1000.0;
    let latencies_us: Vec<f64> = all.into_iter().flatten().collect();
    Phase {
        op: name.to_owned(),
        concurrency,
        ops: latencies_us.len(),
        wall_ms,
        latencies_us,
        removed: None,
    }
}

// ---- SQLite --------------------------------------------------------------------------------

fn sqlite_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        session_id: row.get(0)?,
        user_id: row.get(1)?,
        handle: row.get(2)?,
        is_authenticated: row.get(3)?,
        data: row.get(4)?,
        created_at: row.get(5)?,
        expires_at: row.get(6)?,
        last_accessed_at: row.get(7)?,
    })
}

async fn run_sqlite(o: &Options) -> Vec<Phase> {
    let mut conn = rusqlite::Connection::open(&o.path).expect("open");
    // What SqliteAdapter::open does, including its background WAL checkpointer.
    conn.busy_timeout(Duration::from_millis(5000)).unwrap();
    let _: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    let file = std::path::PathBuf::from(conn.path().expect("a file database"));
    let _checkpointer = Checkpointer::install(&mut conn, file).expect("checkpointer");
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.set_prepared_statement_cache_capacity(64);
    conn.execute_batch(SQLITE_SCHEMA).unwrap();
    let conn = Rc::new(conn);
    let ids: Rc<RefCell<Vec<String>>> = Rc::new(RefCell::new(Vec::new()));
    let touch = match o.sqlite_touch.as_str() {
        "ours" => sqlite_touch(),
        "with-expires" => format!(
            "UPDATE sessions SET last_accessed_at = CASE WHEN expires_at > ?1 AND last_accessed_at <= ?4 \
             THEN ?1 ELSE last_accessed_at END, expires_at = COALESCE(?2, expires_at) \
             WHERE session_id = ?3 RETURNING {SQLITE_COLUMNS}"
        ),
        other => panic!("--sqlite-touch ours|with-expires, got {other}"),
    };
    let upsert = sqlite_upsert();
    let warm = Duration::from_millis(o.warmup_ms);
    let run = Duration::from_millis(o.run_ms);
    let mut out = Vec::new();

    let create = |i: u64| {
        let (conn, ids, upsert) = (conn.clone(), ids.clone(), &upsert);
        async move {
            let id = uuid::Uuid::new_v4().to_string();
            let now = now_ms();
            conn.prepare_cached(upsert)
                .unwrap()
                .execute(rusqlite::params![
                    id,
                    format!("did:plc:user{i}"),
                    format!("user{i}.bsky.social"),
                    true,
                    data_json(i),
                    now,
                    now + TTL_MS,
                    now
                ])
                .unwrap();
            ids.borrow_mut().push(id);
        }
    };
    for &c in &o.concurrency {
        out.push(phase("create", c, warm, run, false, create).await);
    }
    let live: Vec<String> = {
        let ids = ids.borrow();
        ids[..ids.len().min(o.sessions_cap)].to_vec()
    };
    // As core's `query_one`: the first row, then step to SQLITE_DONE (a write reset after its
    // first row never runs the WAL auto-checkpoint, and the WAL would grow without bound).
    let query_one = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> Option<Row> {
        let mut stmt = conn.prepare_cached(sql).unwrap();
        let mut rows = stmt.query(params).unwrap();
        let first = rows.next().unwrap().map(|row| sqlite_row(row).unwrap());
        while rows.next().unwrap().is_some() {}
        first
    };
    let load = |id: &str| -> Option<Row> {
        let now = now_ms();
        // One statement for a hit and for a miss, as the core: the row (touched when live and
        // due) or nothing. The core would then delete an expired row; none is expired here.
        query_one(&touch, rusqlite::params![now, Option::<i64>::None, id, now])
            .filter(|row| row.expires_at > now)
    };
    for &c in &o.concurrency {
        let p = phase("hit", c, warm, run, false, |i| {
            let found = load(&live[(i as usize) % live.len()]);
            assert!(found.is_some(), "hit: the session must exist");
            async {}
        })
        .await;
        out.push(p);
    }
    let misses: Vec<String> = (0..1000)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    for &c in &o.concurrency {
        let p = phase("miss", c, warm, run, false, |i| {
            assert!(load(&misses[(i as usize) % misses.len()]).is_none());
            async {}
        })
        .await;
        out.push(p);
    }
    for &c in &o.concurrency {
        let p = phase("update", c, warm, run, false, |i| {
            let n = conn
                .prepare_cached(SQLITE_UPDATE_DATA)
                .unwrap()
                .execute(rusqlite::params![
                    data_json(i),
                    live[(i as usize) % live.len()]
                ])
                .unwrap();
            assert_eq!(n, 1);
            async {}
        })
        .await;
        out.push(p);
    }
    // Cleanup: seed expired rows in one transaction (not timed), then one timed DELETE.
    if o.cleanup_rows > 0 {
        conn.execute_batch("BEGIN").unwrap();
        {
            let mut stmt = conn.prepare_cached(&upsert).unwrap();
            for k in 0..o.cleanup_rows {
                stmt.execute(rusqlite::params![
                    format!("expired-{k}"),
                    format!("did:plc:old{k}"),
                    Option::<String>::None,
                    true,
                    Option::<String>::None,
                    1_000i64,
                    2_000i64,
                    1_000i64
                ])
                .unwrap();
            }
        }
        conn.execute_batch("COMMIT").unwrap();
        let t0 = Instant::now();
        let n = conn
            .prepare_cached(SQLITE_CLEANUP)
            .unwrap()
            .execute([now_ms()])
            .unwrap();
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        out.push(Phase {
            op: "cleanup".into(),
            concurrency: 1,
            ops: n,
            wall_ms: ms,
            latencies_us: vec![ms * 1000.0],
            removed: Some(n as u64),
        });
    }
    out
}

// ---- PostgreSQL ----------------------------------------------------------------------------

struct PgConn {
    client: tokio_postgres::Client,
    upsert: tokio_postgres::Statement,
    load: tokio_postgres::Statement,
    update: tokio_postgres::Statement,
}

/// A fixed set of connections with exclusive checkout (what a bounded pool gives every
/// pooled contender): a semaphore for the count, a stack of idle connections.
struct Pool {
    idle: std::sync::Mutex<Vec<PgConn>>,
    permits: Semaphore,
}

impl Pool {
    async fn with<T, F, Fut>(&self, f: F) -> T
    where
        F: FnOnce(PgConn) -> Fut,
        Fut: std::future::Future<Output = (PgConn, T)>,
    {
        let permit = self.permits.acquire().await.unwrap();
        let conn = self
            .idle
            .lock()
            .unwrap()
            .pop()
            .expect("a permit means an idle connection");
        let (conn, out) = f(conn).await;
        self.idle.lock().unwrap().push(conn);
        drop(permit);
        out
    }
}

fn pg_row(row: &tokio_postgres::Row) -> Row {
    Row {
        session_id: row.get(0),
        user_id: row.get(1),
        handle: row.get(2),
        is_authenticated: row.get(3),
        data: row.get(4),
        created_at: row.get(5),
        expires_at: row.get(6),
        last_accessed_at: row.get(7),
    }
}

async fn run_postgres(o: &Options) -> Vec<Phase> {
    let load_sql = pg_load();
    let mut conns = Vec::new();
    for k in 0..o.pool {
        let (client, connection) = tokio_postgres::connect(&o.url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("connection error: {e}");
            }
        });
        if k == 0 {
            client.batch_execute(PG_SCHEMA).await.expect("schema");
        }
        let upsert = client.prepare(PG_UPSERT).await.unwrap();
        let load = client.prepare(&load_sql).await.unwrap();
        let update = client.prepare(PG_UPDATE_DATA).await.unwrap();
        conns.push(PgConn {
            client,
            upsert,
            load,
            update,
        });
    }
    let pool = Arc::new(Pool {
        permits: Semaphore::new(conns.len()),
        idle: std::sync::Mutex::new(conns),
    });
    let ids: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let warm = Duration::from_millis(o.warmup_ms);
    let run = Duration::from_millis(o.run_ms);
    let mut out = Vec::new();

    for &c in &o.concurrency {
        let p = phase("create", c, warm, run, false, |i| {
            let (pool, ids) = (pool.clone(), ids.clone());
            async move {
                let id = uuid::Uuid::new_v4().to_string();
                let now = now_ms();
                let id2 = id.clone();
                pool.with(|c| async move {
                    let r = c
                        .client
                        .execute(
                            &c.upsert,
                            &[
                                &id2,
                                &format!("did:plc:user{i}"),
                                &Some(format!("user{i}.bsky.social")),
                                &true,
                                &Some(data_json(i)),
                                &now,
                                &(now + TTL_MS),
                                &now,
                            ],
                        )
                        .await;
                    (c, r)
                })
                .await
                .expect("upsert");
                ids.lock().await.push(id);
            }
        })
        .await;
        out.push(p);
    }
    let live: Arc<Vec<String>> = {
        let ids = ids.lock().await;
        Arc::new(ids[..ids.len().min(o.sessions_cap)].to_vec())
    };
    let load = |id: String| {
        let pool = pool.clone();
        async move {
            let now = now_ms();
            pool.with(|c| async move {
                let rows = c
                    .client
                    .query(&c.load, &[&id, &now, &Option::<i64>::None, &now])
                    .await
                    .expect("load");
                let row = rows.first().map(pg_row);
                (c, row)
            })
            .await
        }
    };
    for &c in &o.concurrency {
        let p = phase("hit", c, warm, run, false, |i| {
            let f = load(live[(i as usize) % live.len()].clone());
            async move {
                assert!(f.await.is_some(), "hit: the session must exist");
            }
        })
        .await;
        out.push(p);
    }
    let misses: Arc<Vec<String>> = Arc::new(
        (0..1000)
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect(),
    );
    for &c in &o.concurrency {
        let p = phase("miss", c, warm, run, false, |i| {
            let f = load(misses[(i as usize) % misses.len()].clone());
            async move {
                assert!(f.await.is_none());
            }
        })
        .await;
        out.push(p);
    }
    for &c in &o.concurrency {
        let p = phase("update", c, warm, run, false, |i| {
            let pool = pool.clone();
            let id = live[(i as usize) % live.len()].clone();
            async move {
                let n = pool
                    .with(|c| async move {
                        let r = c
                            .client
                            .execute(&c.update, &[&data_json(i), &id])
                            .await
                            .expect("update");
                        (c, r)
                    })
                    .await;
                assert_eq!(n, 1);
            }
        })
        .await;
        out.push(p);
    }
    // Cleanup: seed expired rows with one statement (not timed), then one timed DELETE.
    if o.cleanup_rows > 0 {
        let (client, connection) = tokio_postgres::connect(&o.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .execute(
                "INSERT INTO sessions (session_id, user_id, handle, is_authenticated, data, \
                 created_at, expires_at, last_accessed_at) \
                 SELECT 'expired-' || g, 'did:plc:old' || g, NULL, true, NULL, 1000, 2000, 1000 \
                 FROM generate_series(1, $1::bigint) g",
                &[&(o.cleanup_rows as i64)],
            )
            .await
            .unwrap();
        let stmt = client.prepare(PG_CLEANUP).await.unwrap();
        let t0 = Instant::now();
        let n = client.execute(&stmt, &[&now_ms()]).await.unwrap();
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        out.push(Phase {
            op: "cleanup".into(),
            concurrency: 1,
            ops: n as usize,
            wall_ms: ms,
            latencies_us: vec![ms * 1000.0],
            removed: Some(n),
        });
    }
    out
}

// ---- Redis ---------------------------------------------------------------------------------

/// A record from the request path's HMGET (the 7 fields of core's FIELDS order), as core's `read_session`
/// decodes it into owned strings; `None` for nil.
fn redis_row(id: &str, reply: redis::Value) -> Option<Row> {
    let fields = match reply {
        redis::Value::Nil => return None,
        redis::Value::Array(fields) => fields,
        other => panic!("unexpected reply from HMGET: {other:?}"),
    };
    assert_eq!(fields.len(), 7, "HMGET returns the 7 fields");
    let text: Vec<Option<String>> = fields
        .iter()
        .map(|v| match v {
            redis::Value::Nil => None,
            redis::Value::BulkString(b) => Some(String::from_utf8(b.clone()).expect("UTF-8")),
            redis::Value::SimpleString(s) => Some(s.clone()),
            redis::Value::Int(n) => Some(n.to_string()),
            other => panic!("unexpected reply element {other:?}"),
        })
        .collect();
    if text.iter().all(Option::is_none) {
        return None;
    }
    let millis = |i: usize| -> i64 {
        text[i]
            .as_deref()
            .expect("a time field")
            .parse()
            .expect("an integer")
    };
    Some(Row {
        session_id: id.to_owned(),
        user_id: text[0].clone().expect("user_id"),
        handle: text[1].clone(),
        is_authenticated: text[2].as_deref() == Some("1"),
        data: text[3].clone(),
        created_at: millis(4),
        expires_at: millis(5),
        last_accessed_at: millis(6),
    })
}

/// `--pool` multiplexed connections (RedisAdapter's `maxConnections`, default 2), used round
/// robin as core/src/redis_conn.rs does; each carries any number of concurrent calls.
struct RedisConns {
    conns: Vec<redis::aio::ConnectionManager>,
    next: std::sync::atomic::AtomicUsize,
}

impl RedisConns {
    fn get(&self) -> redis::aio::ConnectionManager {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.conns.len();
        self.conns[i].clone()
    }
}

async fn run_redis(o: &Options) -> Vec<Phase> {
    let client = redis::Client::open(o.url.as_str()).expect("a Redis URL");
    let mut conns = Vec::new();
    for _ in 0..o.pool.max(1) {
        conns.push(
            redis::aio::ConnectionManager::new(client.clone())
                .await
                .expect("connect"),
        );
    }
    let conns = Arc::new(RedisConns {
        conns,
        next: std::sync::atomic::AtomicUsize::new(0),
    });
    // EVALSHA, with a SCRIPT LOAD on NOSCRIPT (the first call), as core's `Script`s do.
    let insert = Arc::new(redis::Script::new(redis_scripts::INSERT));
    let touch_script = Arc::new(redis::Script::new(redis_scripts::TOUCH));
    let update = Arc::new(redis::Script::new(redis_scripts::UPDATE));
    let prefix: Arc<str> = Arc::from(o.prefix.as_str());
    let ids: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let warm = Duration::from_millis(o.warmup_ms);
    let run = Duration::from_millis(o.run_ms);
    let mut out = Vec::new();

    for &c in &o.concurrency {
        let p = phase("create", c, warm, run, false, |i| {
            let (conns, ids, insert, prefix) =
                (conns.clone(), ids.clone(), insert.clone(), prefix.clone());
            async move {
                let id = uuid::Uuid::new_v4().to_string();
                let now = now_ms();
                // core's `insert`: ARGV prefix, id, user, has_handle, handle, is_authenticated,
                // has_data, data, created, expires, last, retried.
                let r: i64 = insert
                    .prepare_invoke()
                    .arg(&*prefix)
                    .arg(&id)
                    .arg(format!("did:plc:user{i}"))
                    .arg("1")
                    .arg(format!("user{i}.bsky.social"))
                    .arg("1")
                    .arg("1")
                    .arg(data_json(i))
                    .arg(now)
                    .arg(now + TTL_MS)
                    .arg(now)
                    .arg("0")
                    .invoke_async(&mut conns.get())
                    .await
                    .expect("insert");
                assert_eq!(r, 1, "insert: a fresh id");
                ids.lock().await.push(id);
            }
        })
        .await;
        out.push(p);
    }
    let live: Arc<Vec<String>> = {
        let ids = ids.lock().await;
        Arc::new(ids[..ids.len().min(o.sessions_cap)].to_vec())
    };
    // core's `load` for a store without `rolling` and touchAfter 0 (as benchmarked): one
    // pipeline of HMGET (the record, FIELDS order) and TOUCH (ARGV prefix, id, now,
    // due_before = now - touchAfter), with a SCRIPT LOAD on NOSCRIPT (the first call).
    let fields = [
        "user_id",
        "handle",
        "is_authenticated",
        "data",
        "created_at",
        "expires_at",
        "last_accessed_at",
    ];
    let load = |id: String| {
        let (conns, script, prefix) = (conns.clone(), touch_script.clone(), prefix.clone());
        async move {
            let now = now_ms();
            let mut invocation = script.prepare_invoke();
            invocation.arg(&*prefix).arg(&id).arg(now).arg(now);
            let mut pipe = redis::pipe();
            pipe.cmd("HMGET")
                .arg(format!("{prefix}s:{id}"))
                .arg(&fields[..])
                .invoke_script(&invocation);
            let mut conn = conns.get();
            let reply: redis::RedisResult<(redis::Value, i64)> = pipe.query_async(&mut conn).await;
            let (record, _touched) = match reply {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    invocation.load_async(&mut conn).await.expect("load TOUCH");
                    pipe.query_async(&mut conn).await.expect("load")
                }
                other => other.expect("load"),
            };
            redis_row(&id, record)
        }
    };
    for &c in &o.concurrency {
        let p = phase("hit", c, warm, run, false, |i| {
            let f = load(live[(i as usize) % live.len()].clone());
            async move {
                assert!(f.await.is_some(), "hit: the session must exist");
            }
        })
        .await;
        out.push(p);
    }
    let misses: Arc<Vec<String>> = Arc::new(
        (0..1000)
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect(),
    );
    for &c in &o.concurrency {
        let p = phase("miss", c, warm, run, false, |i| {
            let f = load(misses[(i as usize) % misses.len()].clone());
            async move {
                assert!(f.await.is_none());
            }
        })
        .await;
        out.push(p);
    }
    for &c in &o.concurrency {
        let p = phase("update", c, warm, run, false, |i| {
            let (conns, update, prefix) = (conns.clone(), update.clone(), prefix.clone());
            let id = live[(i as usize) % live.len()].clone();
            async move {
                // core's `update` for a patch of `data` only: ARGV prefix, id, n = 1, then the pair.
                let n: i64 = update
                    .prepare_invoke()
                    .arg(&*prefix)
                    .arg(&id)
                    .arg(1)
                    .arg("data")
                    .arg(data_json(i))
                    .invoke_async(&mut conns.get())
                    .await
                    .expect("update");
                assert_eq!(n, 1);
            }
        })
        .await;
        out.push(p);
    }
    // No cleanup phase: Redis expires the keys itself (bench/run.mjs passes --cleanup-rows 0).
    out
}

fn main() {
    let o = parse_args();
    let phases = match o.backend.as_str() {
        // SQLite calls are synchronous: one thread, like the JS thread of the JS contenders.
        "sqlite" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run_sqlite(&o)),
        // PostgreSQL: a multi-thread runtime, as napi-rs drives our PostgreSQL calls on.
        "postgres" => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run_postgres(&o)),
        // Redis: the same multi-thread runtime (the `redis` crate's connection tasks on it).
        "redis" => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run_redis(&o)),
        other => {
            eprintln!("--backend must be sqlite, postgres or redis, got {other:?}");
            std::process::exit(2);
        }
    };
    let results: Vec<String> = phases.iter().map(Phase::json).collect();
    println!(
        "{{\"runtime\":\"rust (no JS)\",\"results\":[{}]}}",
        results.join(",")
    );
}

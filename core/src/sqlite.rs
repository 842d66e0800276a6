//! SQLite adapter (SPEC §5 SQLiteAdapter): one connection behind a mutex, in WAL mode, whose
//! WAL is checkpointed by a background thread (`sqlite_checkpoint`).
//!
//! Every call does its work synchronously inside the `async fn` (SQLite calls take
//! microseconds), so the futures complete on their first poll and `is_sync()` is true.
//! The schema is the original package's, so files it wrote are read as they are.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::{ToSql, ValueRef};
use rusqlite::{Connection, TransactionBehavior};

use crate::adapter::{SessionAdapter, Touch};
use crate::error::{Result, SessionError};
use crate::session::{Millis, SessionData, SessionPatch};
use crate::sqlite_checkpoint::Checkpointer;

/// Options for [`SqliteAdapter::open`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// How long a statement waits for another connection's lock before failing (ms).
    pub busy_timeout_ms: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout_ms: 5000,
        }
    }
}

/// The schema of SPEC §5, text for text (it ends up in `sqlite_master`).
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS sessions (
  session_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, handle TEXT,
  is_authenticated INTEGER NOT NULL DEFAULT 1, data TEXT,
  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, last_accessed_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS idx_sessions_expires_at ON sessions(expires_at);
CREATE INDEX IF NOT EXISTS idx_sessions_user_id ON sessions(user_id);";

/// The columns of a session, in the order `read_session` decodes them.
macro_rules! columns {
    () => {
        "session_id, user_id, handle, is_authenticated, data, created_at, expires_at, last_accessed_at"
    };
}

const SELECT_ONE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM sessions WHERE session_id = ?1"
);
const UPSERT: &str = concat!(
    "INSERT INTO sessions (",
    columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (session_id) DO UPDATE SET ",
    "user_id = excluded.user_id, handle = excluded.handle, ",
    "is_authenticated = excluded.is_authenticated, data = excluded.data, ",
    "created_at = excluded.created_at, expires_at = excluded.expires_at, ",
    "last_accessed_at = excluded.last_accessed_at"
);
/// `insert`: a new session never replaces another (`changes() == 0` means the id is taken).
const INSERT_NEW: &str = concat!(
    "INSERT INTO sessions (",
    columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (session_id) DO NOTHING"
);
const DELETE_ONE: &str = "DELETE FROM sessions WHERE session_id = ?1";
const EXISTS: &str = "SELECT EXISTS(SELECT 1 FROM sessions WHERE session_id = ?1)";
const CLEANUP: &str = "DELETE FROM sessions WHERE expires_at < ?1";
/// The touch's condition on the row as it was: live at `?1` (now) and due (`?4`: now minus
/// `touch_after`).
macro_rules! live_and_due {
    () => {
        "expires_at > ?1 AND last_accessed_at <= ?4"
    };
}

/// The touch of the request path, one statement whatever the row: it matches the row by id
/// and writes the access only when the row is live and the access due
/// (`last_accessed_at <= now - touch_after`, the overflow-free form of `Touch::is_due`),
/// returning the row either way. So a hit is this one statement, and so is a miss (no row),
/// which a guarded `WHERE` would have followed with a read to tell "missing" from "expired".
/// SET expressions see the row as it was, so both CASEs test the same old values. `?2` is
/// the new `expires_at` with `rolling`.
const TOUCH_ROLLING: &str = concat!(
    "UPDATE sessions SET ",
    "last_accessed_at = CASE WHEN ",
    live_and_due!(),
    " THEN ?1 ELSE last_accessed_at END, ",
    "expires_at = CASE WHEN ",
    live_and_due!(),
    " THEN ?2 ELSE expires_at END ",
    "WHERE session_id = ?3 RETURNING ",
    columns!()
);
/// Without `rolling`: `expires_at` is not assigned at all, because SQLite rewrites the
/// `idx_sessions_expires_at` entry of any assigned indexed column, even to the same value
/// (measured: about 2x the cost of the whole request path).
const TOUCH: &str = concat!(
    "UPDATE sessions SET ",
    "last_accessed_at = CASE WHEN ",
    live_and_due!(),
    " THEN ?1 ELSE last_accessed_at END ",
    "WHERE session_id = ?3 RETURNING ",
    columns!()
);
const DELETE_EXPIRED_ONE: &str = "DELETE FROM sessions WHERE session_id = ?1 AND expires_at <= ?2";
const RENAME: &str = concat!(
    "UPDATE sessions SET session_id = ?2 WHERE session_id = ?1 AND expires_at > ?3 RETURNING ",
    columns!()
);
const LIST_BY_USER: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM sessions WHERE user_id = ?1 ORDER BY created_at, session_id"
);
const DELETE_BY_USER: &str = "DELETE FROM sessions WHERE user_id = ?1";
const DELETE_BY_USER_EXCEPT: &str = "DELETE FROM sessions WHERE user_id = ?1 AND session_id <> ?2";

/// Sessions in one SQLite database file (or `:memory:`).
pub struct SqliteAdapter {
    /// Checkpoints the WAL off the calling thread; `None` for `:memory:` (no WAL). Declared
    /// before `conn` so that a drop stops it first: the last connection to close checkpoints
    /// and removes the `-wal` file.
    checkpointer: Option<Checkpointer>,
    /// `None` once closed.
    conn: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for SqliteAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteAdapter").finish_non_exhaustive()
    }
}

fn sqlite_err(action: &'static str) -> impl FnOnce(rusqlite::Error) -> SessionError {
    move |source| SessionError::Sqlite { action, source }
}

impl SqliteAdapter {
    /// Opens (creating if needed) the database at `path_or_url` and creates the schema.
    /// A leading `sqlite://` is stripped; `":memory:"` gives a private in-memory database.
    pub fn open(path_or_url: &str, options: SqliteOptions) -> Result<SqliteAdapter> {
        let path = path_or_url.strip_prefix("sqlite://").unwrap_or(path_or_url);
        let mut conn = Connection::open(path).map_err(sqlite_err("open the database"))?;
        // First, so that every later step (WAL switch, schema) waits for other processes.
        conn.busy_timeout(Duration::from_millis(u64::from(options.busy_timeout_ms)))
            .map_err(sqlite_err("set the busy timeout"))?;
        let mut checkpointer = None;
        if !is_memory_path(path) {
            // WAL lets readers and one writer work at once across processes. The pragma
            // answers with the resulting mode; a file system that cannot do WAL keeps its
            // old mode, which still works (only with more waiting), so it is not an error.
            let busy = Duration::from_millis(u64::from(options.busy_timeout_ms));
            let mode =
                enable_wal(&conn, busy).map_err(sqlite_err("switch the database to WAL mode"))?;
            // The absolute file name SQLite resolved, so a later chdir cannot redirect it.
            if let (true, Some(file)) = (mode.eq_ignore_ascii_case("wal"), conn.path()) {
                let file = PathBuf::from(file);
                checkpointer = Some(
                    Checkpointer::install(&mut conn, file)
                        .map_err(sqlite_err("install the WAL checkpointer"))?,
                );
            }
        }
        // NORMAL is durable in WAL mode except for the last commits on power loss.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite_err("set synchronous=NORMAL"))?;
        // Room for every statement shape (`update` has one per set of patched columns).
        conn.set_prepared_statement_cache_capacity(64);
        // IMMEDIATE: take the write lock (waiting on busy_timeout) before reading the
        // schema, so two processes creating it at once do not fail with SQLITE_BUSY.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_err("create the sessions table"))?;
        tx.execute_batch(SCHEMA)
            .map_err(sqlite_err("create the sessions table"))?;
        tx.commit()
            .map_err(sqlite_err("create the sessions table"))?;
        Ok(SqliteAdapter {
            checkpointer,
            conn: Mutex::new(Some(conn)),
        })
    }

    /// Runs `f` on the open connection; `AdapterClosed` after `close()`.
    fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let guard = self.lock()?;
        match guard.as_ref() {
            Some(conn) => f(conn),
            None => Err(SessionError::AdapterClosed),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Option<Connection>>> {
        // A poisoned lock means a panic elsewhere while holding it; report, never panic.
        self.conn.lock().map_err(|_| {
            SessionError::Internal("the SQLite connection lock was poisoned by a panic".into())
        })
    }
}

/// `PRAGMA journal_mode = WAL`, retried for up to `busy` while the file is busy. SQLite does
/// not call the busy handler for every lock this pragma can meet: while another process runs
/// WAL recovery (after a writer was killed) or holds the lock to change the mode, it answers
/// SQLITE_BUSY at once, and a process starting at that moment failed to open the file
/// ("database is locked", seen in the SIGKILL fault test). Returns the resulting mode.
pub(crate) fn enable_wal(conn: &Connection, busy: Duration) -> rusqlite::Result<String> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && started.elapsed() < busy =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn is_memory_path(path: &str) -> bool {
    path == ":memory:"
        || path.is_empty()
        || (path.starts_with("file:") && path.contains("mode=memory"))
}

/// Runs a statement expected to return at most one session, stepping it to the end.
///
/// Stepping to the end matters: SQLite calls the WAL hook (its auto-checkpoint, here our
/// `sqlite_checkpoint`) only when a statement's step returns `SQLITE_DONE`. A write with
/// `RETURNING` that is reset after its first row still commits, but never checkpoints, so a
/// store whose writes are all request-path touches grew its `-wal` file by one page per
/// request, without bound (measured: 825 MB per 200 000 requests), until the last connection
/// closed.
fn query_one(
    conn: &Connection,
    action: &'static str,
    sql: &str,
    params: &[&dyn ToSql],
    id: &str,
) -> Result<Option<SessionData>> {
    let mut stmt = conn.prepare_cached(sql).map_err(sqlite_err(action))?;
    let mut rows = stmt.query(params).map_err(sqlite_err(action))?;
    let first = rows
        .next()
        .map_err(sqlite_err(action))?
        .map(|row| read_session(row, id));
    // Every statement here matches by primary key, so this is one step returning DONE.
    while rows.next().map_err(sqlite_err(action))?.is_some() {}
    first.transpose()
}

/// Decodes a row of `columns!()`. Lenient with what the original package (or a person with
/// the sqlite3 shell) may have stored: booleans as 0/1 (or text), times as integers (or reals).
fn read_session(row: &rusqlite::Row<'_>, requested_id: &str) -> Result<SessionData> {
    let get = |i: usize| row.get_ref(i).map_err(sqlite_err("read a session row"));
    let session_id = match text(get(0)?) {
        Some(Some(id)) => id,
        _ => requested_id.to_owned(),
    };
    let corrupt = |reason: String| SessionError::Corrupt {
        session_id: session_id.clone(),
        reason,
    };
    let user_id = match text(get(1)?) {
        Some(Some(v)) => v,
        _ => return Err(corrupt("`user_id` is not text".into())),
    };
    let handle = text(get(2)?).ok_or_else(|| corrupt("`handle` is not text or NULL".into()))?;
    let is_authenticated = boolean(get(3)?)
        .ok_or_else(|| corrupt("`is_authenticated` is not 0, 1, true or false".into()))?;
    let data = match text(get(4)?) {
        Some(Some(json)) => json_object_text(json).map_err(&corrupt)?,
        Some(None) => None,
        None => return Err(corrupt("`data` is not text or NULL".into())),
    };
    let time = |i: usize, name: &str| -> Result<Millis> {
        millis(get(i)?).ok_or_else(|| corrupt(format!("`{name}` is not a number")))
    };
    Ok(SessionData {
        user_id,
        handle,
        is_authenticated,
        data,
        created_at: time(5, "created_at")?,
        expires_at: time(6, "expires_at")?,
        last_accessed_at: time(7, "last_accessed_at")?,
        session_id: session_id.clone(),
    })
}

/// `Some(None)` for NULL, `Some(Some(text))` for UTF-8 text (or a UTF-8 blob), `None` otherwise.
fn text(v: ValueRef<'_>) -> Option<Option<String>> {
    match v {
        ValueRef::Null => Some(None),
        ValueRef::Text(b) | ValueRef::Blob(b) => {
            std::str::from_utf8(b).ok().map(|s| Some(s.to_owned()))
        }
        ValueRef::Integer(_) | ValueRef::Real(_) => None,
    }
}

fn boolean(v: ValueRef<'_>) -> Option<bool> {
    match v {
        ValueRef::Integer(i) => Some(i != 0),
        ValueRef::Real(f) => Some(f != 0.0),
        ValueRef::Text(b) => match std::str::from_utf8(b)
            .ok()?
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "1" | "true" => Some(true),
            "0" | "false" => Some(false),
            _ => None,
        },
        ValueRef::Null | ValueRef::Blob(_) => None,
    }
}

fn millis(v: ValueRef<'_>) -> Option<Millis> {
    match v {
        ValueRef::Integer(i) => Some(i),
        // A JS number with a fraction is stored as REAL; Millis are whole milliseconds.
        ValueRef::Real(f) if f.is_finite() => Some(f.floor() as Millis),
        _ => None,
    }
}

/// Checks that stored `data` is JSON; JSON `null` counts as absent (SPEC §2: never null).
pub(crate) fn json_object_text(json: String) -> std::result::Result<Option<String>, String> {
    match serde_json::from_str::<serde::de::IgnoredAny>(&json) {
        Ok(_) if json.trim() == "null" => Ok(None),
        Ok(_) => Ok(Some(json)),
        Err(e) => Err(format!("`data` is not JSON ({e})")),
    }
}

/// The `UPDATE` of a non-empty patch and its values, the session id last. Column names come
/// only from this fixed list; every value is bound.
fn patch_update<'a>(patch: &'a SessionPatch, id: &'a &'a str) -> (String, Vec<&'a dyn ToSql>) {
    let fields: [(&str, Option<&dyn ToSql>); 7] = [
        ("user_id", patch.user_id.as_ref().map(|v| v as &dyn ToSql)),
        ("handle", patch.handle.as_ref().map(|v| v as &dyn ToSql)),
        (
            "is_authenticated",
            patch.is_authenticated.as_ref().map(|v| v as &dyn ToSql),
        ),
        ("data", patch.data.as_ref().map(|v| v as &dyn ToSql)),
        (
            "created_at",
            patch.created_at.as_ref().map(|v| v as &dyn ToSql),
        ),
        (
            "expires_at",
            patch.expires_at.as_ref().map(|v| v as &dyn ToSql),
        ),
        (
            "last_accessed_at",
            patch.last_accessed_at.as_ref().map(|v| v as &dyn ToSql),
        ),
    ];
    let mut sql = String::from("UPDATE sessions SET ");
    let mut values: Vec<&dyn ToSql> = Vec::with_capacity(8);
    for (column, value) in fields {
        if let Some(value) = value {
            if !values.is_empty() {
                sql.push_str(", ");
            }
            values.push(value);
            sql.push_str(&format!("{column} = ?{}", values.len()));
        }
    }
    values.push(id);
    sql.push_str(&format!(" WHERE session_id = ?{}", values.len()));
    (sql, values)
}

#[async_trait]
impl SessionAdapter for SqliteAdapter {
    async fn get(&self, id: &str) -> Result<Option<SessionData>> {
        self.with_conn(|conn| query_one(conn, "read the session", SELECT_ONE, &[&id], id))
    }

    async fn set(&self, id: &str, data: &SessionData) -> Result<()> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare_cached(UPSERT)
                .map_err(sqlite_err("store the session"))?;
            stmt.execute(rusqlite::params![
                id,
                data.user_id,
                data.handle,
                data.is_authenticated,
                data.data,
                data.created_at,
                data.expires_at,
                data.last_accessed_at,
            ])
            .map_err(sqlite_err("store the session"))?;
            Ok(())
        })
    }

    async fn insert(&self, id: &str, data: &SessionData) -> Result<()> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare_cached(INSERT_NEW)
                .map_err(sqlite_err("store the new session"))?;
            let inserted = stmt
                .execute(rusqlite::params![
                    id,
                    data.user_id,
                    data.handle,
                    data.is_authenticated,
                    data.data,
                    data.created_at,
                    data.expires_at,
                    data.last_accessed_at,
                ])
                .map_err(sqlite_err("store the new session"))?;
            if inserted == 0 {
                return Err(SessionError::IdInUse(id.to_owned()));
            }
            Ok(())
        })
    }

    async fn update(&self, id: &str, patch: &SessionPatch) -> Result<bool> {
        if patch.is_empty() {
            return self.exists(id).await;
        }
        let (sql, values) = patch_update(patch, &id);
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(sqlite_err("update the session"))?;
            let changed = stmt
                .execute(values.as_slice())
                .map_err(sqlite_err("update the session"))?;
            Ok(changed > 0)
        })
    }

    async fn delete(&self, id: &str) -> Result<()> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare_cached(DELETE_ONE)
                .map_err(sqlite_err("delete the session"))?;
            stmt.execute([id])
                .map_err(sqlite_err("delete the session"))?;
            Ok(())
        })
    }

    async fn cleanup(&self, expires_before: Millis) -> Result<u64> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare_cached(CLEANUP)
                .map_err(sqlite_err("delete expired sessions"))?;
            let n = stmt
                .execute([expires_before])
                .map_err(sqlite_err("delete expired sessions"))?;
            Ok(n as u64)
        })
    }

    async fn exists(&self, id: &str) -> Result<bool> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare_cached(EXISTS)
                .map_err(sqlite_err("check whether the session exists"))?;
            stmt.query_row([id], |row| row.get::<_, bool>(0))
                .map_err(sqlite_err("check whether the session exists"))
        })
    }

    fn is_sync(&self) -> bool {
        true
    }

    async fn list_by_user(&self, user_id: &str) -> Result<Vec<SessionData>> {
        const ACTION: &str = "list the user's sessions";
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare_cached(LIST_BY_USER)
                .map_err(sqlite_err(ACTION))?;
            let mut rows = stmt.query([user_id]).map_err(sqlite_err(ACTION))?;
            let mut sessions = Vec::new();
            while let Some(row) = rows.next().map_err(sqlite_err(ACTION))? {
                sessions.push(read_session(row, "")?);
            }
            Ok(sessions)
        })
    }

    async fn delete_by_user(&self, user_id: &str, except: Option<&str>) -> Result<u64> {
        const ACTION: &str = "delete the user's sessions";
        self.with_conn(|conn| {
            let n = match except {
                Some(keep) => conn
                    .prepare_cached(DELETE_BY_USER_EXCEPT)
                    .and_then(|mut stmt| stmt.execute([user_id, keep])),
                None => conn
                    .prepare_cached(DELETE_BY_USER)
                    .and_then(|mut stmt| stmt.execute([user_id])),
            }
            .map_err(sqlite_err(ACTION))?;
            Ok(n as u64)
        })
    }

    async fn load(&self, id: &str, touch: &Touch) -> Result<Option<SessionData>> {
        const ACTION: &str = "load the session";
        let new_expires_at = touch.rolling_ttl.map(|ttl| touch.now.saturating_add(ttl));
        let due_before = touch.now.saturating_sub(touch.touch_after);
        self.with_conn(|conn| {
            // The row as it is after the touch (written only if live and due); `None` if missing.
            let touch_now = || match new_expires_at {
                Some(expires_at) => query_one(
                    conn,
                    ACTION,
                    TOUCH_ROLLING,
                    &[&touch.now, &expires_at, &id, &due_before],
                    id,
                ),
                None => query_one(
                    conn,
                    ACTION,
                    TOUCH,
                    &[&touch.now, &rusqlite::types::Null, &id, &due_before],
                    id,
                ),
            };
            let delete_expired = || {
                // Guarded again by the expiry, so a session renewed meanwhile survives.
                conn.prepare_cached(DELETE_EXPIRED_ONE)
                    .and_then(|mut stmt| stmt.execute(rusqlite::params![id, touch.now]))
                    .map_err(sqlite_err("delete the expired session"))
            };
            // With touch_after 0 nearly every access is due: touch first, so that a hit and a
            // miss are one statement each. The row it returns is expired exactly when it was
            // before, since a touch moves `expires_at` only forward of `now` (a rolling TTL
            // above 0) or not at all. Otherwise read first: with touch_after > 0 most accesses
            // are not due, and even an UPDATE that matches nothing takes the database's write
            // lock, which other processes then wait for.
            let touch_first = touch.touch_after <= 0 && touch.rolling_ttl.is_none_or(|t| t > 0);
            if touch_first {
                return match touch_now()? {
                    Some(session) if session.is_expired(touch.now) => {
                        delete_expired()?;
                        Ok(None)
                    }
                    other => Ok(other),
                };
            }
            let Some(session) = query_one(conn, ACTION, SELECT_ONE, &[&id], id)? else {
                return Ok(None);
            };
            if session.is_expired(touch.now) {
                delete_expired()?;
                return Ok(None);
            }
            if !touch.is_due(session.last_accessed_at) {
                return Ok(Some(session));
            }
            // The touch re-checks the row as it now is (another process may have touched,
            // renewed or removed it since the read). Written: the session as touched. Not
            // written: the row as that process left it, unless it has expired.
            Ok(touch_now()?.filter(|now_row| {
                let touched = now_row.last_accessed_at == touch.now
                    && new_expires_at.is_none_or(|e| now_row.expires_at == e);
                touched || !now_row.is_expired(touch.now)
            }))
        })
    }

    async fn rename(&self, old_id: &str, new_id: &str, now: Millis) -> Result<Option<SessionData>> {
        // One statement: atomic, and an expired or missing session is left as it is.
        self.with_conn(|conn| {
            query_one(
                conn,
                "rename the session",
                RENAME,
                &[&old_id, &new_id, &now],
                new_id,
            )
        })
        .map_err(|e| match e {
            SessionError::Sqlite { source, .. }
                if source.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) =>
            {
                SessionError::IdInUse(new_id.to_owned())
            }
            other => other,
        })
    }

    async fn close(&self) -> Result<()> {
        // First, so that this connection is the last and its close removes the `-wal` file.
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.stop();
        }
        let conn = self.lock()?.take();
        match conn {
            // Already closed: a second close is a no-op.
            None => Ok(()),
            Some(conn) => conn
                .close()
                // On failure rusqlite hands the connection back; dropping it closes it anyway.
                .map_err(|(_conn, source)| SessionError::Sqlite {
                    action: "close the database",
                    source,
                }),
        }
    }
}

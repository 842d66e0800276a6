//! The SQLite adapter checkpoints its WAL on a background thread (core/src/sqlite_checkpoint.rs).
//! One test per file on purpose: it counts the process's checkpoint threads, which adapters
//! opened by tests running in parallel would change.

use std::time::{Duration, Instant};

use futures::FutureExt;
use slices_session_core::adapter::{SessionAdapter, Touch};
use slices_session_core::session::SessionData;
use slices_session_core::sqlite::{SqliteAdapter, SqliteOptions};

const NOW: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;
/// Linux keeps the first 15 bytes of a thread's name ("slices-sqlite-checkpoint").
const THREAD: &str = "slices-sqlite-c";

fn checkpoint_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == THREAD)
        .count()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "waited 10 s for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn session(id: &str) -> SessionData {
    SessionData {
        session_id: id.to_owned(),
        user_id: "did:plc:u".to_owned(),
        handle: None,
        is_authenticated: true,
        data: None,
        created_at: NOW,
        expires_at: NOW + HOUR,
        last_accessed_at: NOW,
    }
}

/// Commits `n` request-path touches, one page each.
fn touches(adapter: &SqliteAdapter, from: i64, n: i64) {
    for k in from..from + n {
        let touch = Touch {
            now: NOW + k,
            touch_after: 0,
            rolling_ttl: None,
        };
        let id = format!("s{}", k % 50);
        let got = adapter.load(&id, &touch).now_or_never().expect("sync");
        assert_eq!(
            got.expect("load").map(|s| s.last_accessed_at),
            Some(NOW + k)
        );
    }
}

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[cfg(target_os = "linux")]
#[test]
fn the_wal_is_checkpointed_in_the_background_and_the_thread_stops_with_the_adapter() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("sessions.db");
    let wal = dir.path().join("sessions.db-wal");
    let open = || SqliteAdapter::open(db.to_str().expect("utf-8"), SqliteOptions::default());

    let adapter = open().expect("open");
    for i in 0..50 {
        let id = format!("s{i}");
        adapter
            .set(&id, &session(&id))
            .now_or_never()
            .expect("sync")
            .expect("set");
    }
    // Everything so far is in the WAL: no checkpoint has copied a page into the file.
    let before = file_len(&db);
    assert_eq!(
        checkpoint_threads(),
        0,
        "the thread starts only when there is work"
    );

    // Past 1 000 frames, far below the inline cap of 4 000: only the thread checkpoints.
    touches(&adapter, 0, 1500);
    wait_for("the checkpoint thread", || checkpoint_threads() == 1);
    wait_for("pages copied into the database file", || {
        file_len(&db) > before
    });
    assert!(file_len(&wal) > 0);

    // close() stops the thread first, so the adapter's connection is the last one and its
    // close checkpoints everything and removes the WAL.
    adapter
        .close()
        .now_or_never()
        .expect("sync")
        .expect("close");
    assert_eq!(checkpoint_threads(), 0, "close() joins the thread");
    assert!(
        !wal.exists(),
        "the last connection's close removes the -wal file"
    );

    // Dropping an adapter without close() stops its thread too, and nothing was lost.
    let adapter = open().expect("reopen");
    touches(&adapter, 1500, 1500);
    wait_for("the checkpoint thread", || checkpoint_threads() == 1);
    drop(adapter);
    assert_eq!(checkpoint_threads(), 0, "drop joins the thread");
    let adapter = open().expect("reopen");
    let s0 = adapter
        .get("s0")
        .now_or_never()
        .expect("sync")
        .expect("get");
    assert_eq!(s0.map(|s| s.last_accessed_at), Some(NOW + 2950));
    adapter
        .close()
        .now_or_never()
        .expect("sync")
        .expect("close");
}

//! Checkpoints a SQLite WAL on a background thread instead of inside a request.
//!
//! SQLite's auto-checkpoint runs inside the commit that takes the WAL past 1 000 frames: that
//! call syncs the WAL, copies its pages into the database file and syncs that too (measured
//! on a 2-core VM: about 4 ms per 1 000 frames, which made the 99.9th percentile of the
//! request path 4 ms instead of 0.3 ms). Here the commit only wakes a thread, which
//! checkpoints through its own connection while requests go on.
//!
//! A checkpoint that races writes cannot make the WAL start over: SQLite rewinds it only when
//! a writer finds every frame already copied, which a steady stream of writes never allows.
//! So past [`INLINE_AFTER`] frames the committing call checkpoints inline, as SQLite would
//! have (after waiting for a background checkpoint in progress); by then the thread has
//! copied and synced all but the latest frames, so that checkpoint is short, and it bounds
//! the WAL file.
//!
//! Public only for the benchmarks' floor (bench/floor), which checkpoints as the adapter does
//! so that it stays the same database work without JS.
//!
//! The thread starts on the first wake-up (a store that never writes 1 000 frames has none)
//! and stops when the adapter closes or is dropped. If it cannot start or cannot open its
//! connection, commits checkpoint inline every [`BACKGROUND_EVERY`] frames, SQLite's default.

use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, OpenFlags};

/// New WAL frames between two background checkpoints (SQLite's default auto-checkpoint).
pub const BACKGROUND_EVERY: c_int = 1000;
/// WAL frames past which the committing call checkpoints inline (about 16 MB of 4 KiB pages).
pub const INLINE_AFTER: c_int = 4000;

/// The background checkpointer of one database file. Stops its thread when dropped.
pub struct Checkpointer {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// The thread could not start or open its connection: commits checkpoint inline.
    failed: AtomicBool,
    /// Held during every checkpoint of this adapter, so that the inline one at the cap waits
    /// for a background one in progress instead of failing with SQLITE_BUSY and letting the
    /// WAL grow past the cap for as long as that one takes.
    checkpointing: Mutex<()>,
}

#[derive(Default)]
struct State {
    /// A checkpoint was asked for and has not started yet.
    wanted: bool,
    stop: bool,
    thread: Option<JoinHandle<()>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few flags, valid whatever a panicking holder was doing.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    fn checkpointing(&self) -> MutexGuard<'_, ()> {
        self.checkpointing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks for a checkpoint, starting the thread the first time.
    fn request(self: &Arc<Self>, path: &Path) {
        let mut state = self.state();
        if state.stop || self.failed() {
            return;
        }
        state.wanted = true;
        if state.thread.is_none() {
            let shared = Arc::clone(self);
            let path = path.to_owned();
            let spawned = std::thread::Builder::new()
                .name("slices-sqlite-checkpoint".into())
                .spawn(move || run(&shared, &path));
            match spawned {
                Ok(handle) => state.thread = Some(handle),
                Err(_) => self.failed.store(true, Ordering::Relaxed),
            }
        }
        self.wake.notify_one();
    }
}

impl Checkpointer {
    /// Installs the WAL hook on `conn` (the adapter's connection to the file at `path`).
    /// Replaces SQLite's auto-checkpoint, which is itself a WAL hook.
    pub fn install(conn: &mut Connection, path: PathBuf) -> rusqlite::Result<Checkpointer> {
        let shared = Arc::new(Shared::default());
        let hook_shared = Arc::clone(&shared);
        let mut next_request = BACKGROUND_EVERY;
        let mut last_frames = 0;
        conn.wal_hook(Some(move |wal: &mut Wal, frames: c_int| {
            if frames < last_frames {
                // The WAL started over.
                next_request = BACKGROUND_EVERY;
            }
            last_frames = frames;
            let inline =
                frames >= INLINE_AFTER || (frames >= BACKGROUND_EVERY && hook_shared.failed());
            if inline {
                // With no write in between (this connection is the process's only writer),
                // it copies every frame, so the next commit starts the WAL over. The commit
                // has happened whatever this returns: an error (SQLITE_BUSY while another
                // process checkpoints) leaves the work to the next commit.
                let _running = hook_shared.checkpointing();
                let _ = wal.checkpoint_v2(CheckpointMode::PASSIVE);
            } else if frames >= next_request {
                next_request = frames.saturating_add(BACKGROUND_EVERY);
                hook_shared.request(&path);
            }
            Ok(())
        }))?;
        Ok(Checkpointer { shared })
    }

    /// Stops the thread, waiting for a checkpoint in progress. Idempotent.
    pub fn stop(&self) {
        let thread = {
            let mut state = self.shared.state();
            state.stop = true;
            self.shared.wake.notify_one();
            state.thread.take()
        };
        if let Some(thread) = thread {
            // A panic in the thread has nothing to hand back; the connection is gone with it.
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(shared: &Shared, path: &Path) {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    // Reading the journal mode also opens the WAL: until a connection has read the database,
    // SQLite does not know it is in WAL mode and a checkpoint through it does nothing.
    let wal_mode = |conn: &Connection| {
        conn.query_row("PRAGMA journal_mode", [], |row| row.get::<_, String>(0))
            .is_ok_and(|mode| mode.eq_ignore_ascii_case("wal"))
    };
    let conn = match Connection::open_with_flags(path, flags) {
        Ok(conn) if wal_mode(&conn) => conn,
        _ => {
            shared.failed.store(true, Ordering::Relaxed);
            return;
        }
    };
    loop {
        {
            let mut state = shared.state();
            while !state.wanted && !state.stop {
                state = shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if state.stop {
                return;
            }
            state.wanted = false;
        }
        // PASSIVE never waits for readers or writers. An error (SQLITE_BUSY while another
        // process checkpoints, an I/O error) is left to the next round or the inline fallback.
        let _running = shared.checkpointing();
        let _ = conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE);
    }
}

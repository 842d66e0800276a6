//! The tokio runtime owned by the library, and how calls run on it.
//!
//! Memory and SQLite futures complete on their first poll: they run right on the calling
//! thread (Deno's JS thread for a synchronous FFI call) and never touch the runtime.
//! PostgreSQL, JS-backed and OAuth manager and client futures pend: JS *starts* them
//! (`channel::start`), they run as tasks on this runtime, and their replies come back through
//! the caller's channel. No Deno thread waits for one of them.

use std::future::Future;
use std::sync::OnceLock;

use futures::FutureExt;
use tokio::runtime::Runtime;

use crate::error::{FfiError, FfiResult};

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

pub fn runtime() -> FfiResult<&'static Runtime> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                // PostgreSQL I/O only: the heavy work is in the database. Two workers keep a
                // small footprint on small machines and still overlap connections.
                .worker_threads(2)
                .thread_name("slices-session-rt")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| FfiError::Runtime(e.clone()))
}

/// Runs `fut` to completion on this thread (the synchronous exports).
///
/// `sync`: the handle's futures complete on their first poll (memory, SQLite), so one poll
/// outside any runtime does it; should one pend all the same, it is finished on the runtime
/// rather than lost. Otherwise the future needs the runtime's context from its first poll
/// (tokio-postgres and deadpool use tokio's timers and `spawn`), and this thread blocks on it.
///
/// Callers make sure this never blocks the JS thread on a future that waits for JS (see
/// `js_bridge::ensure_not_js_thread`): that would deadlock.
pub fn complete<F>(sync: bool, fut: F) -> FfiResult<F::Output>
where
    F: Future,
{
    let mut fut = Box::pin(fut);
    if sync {
        if let Some(out) = (&mut fut).now_or_never() {
            return Ok(out);
        }
    }
    Ok(runtime()?.block_on(fut))
}

//! Promises for calls that finish on the Tokio runtime (PostgreSQL, Redis, JS adapters, OAuth
//! over HTTP), settled through ONE threadsafe function per JS thread instead of one per call.
//!
//! Why: napi-rs's `Env::spawn_future` creates a Node threadsafe function for every call (a
//! `uv_async_t`, an async resource and a cleanup hook, created, then closed, per call) and
//! every completion wakes the JS thread on its own. Profiled on the Redis request path with 64
//! callers, that bookkeeping was about 8 % of the process's time, and the wake-ups a large
//! part of its kernel time. Here a call creates a plain promise (`napi_create_promise`), its
//! future runs on napi-rs's runtime, and its result goes into a queue; the first result into
//! an empty queue wakes the JS thread once, which then settles every queued promise.
//!
//! Lifetimes: the threadsafe function is referenced (keeps the event loop alive) exactly while
//! calls are pending, as the per-call ones did. An environment cleanup hook, registered after
//! the function so it runs before Node finalizes it, marks the queue closed; a result that
//! arrives later is dropped (its promise belongs to a dead environment).

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::future::Future;
use std::ptr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use napi::bindgen_prelude::{spawn, ToNapiValue};
use napi::{sys, Env, JsError, Status};

/// What a finished call hands to the JS thread: its promise and how to settle it there.
type Settle = Box<dyn FnOnce(sys::napi_env) -> napi::Result<sys::napi_value> + Send>;

/// A `napi_deferred` moved to a Tokio thread and back. It is only ever used on the JS thread
/// that created it (in `drain`), which is what makes sending it sound.
struct Deferred(sys::napi_deferred);
// SAFETY: see above: the pointer is carried, never dereferenced, off the JS thread.
unsafe impl Send for Deferred {}

struct Shared {
    /// `None` once the environment is being torn down.
    tsfn: Option<TsfnPtr>,
    /// Results waiting for the JS thread, in completion order.
    done: Vec<(Deferred, napi::Result<Settle>)>,
}

#[derive(Clone, Copy)]
struct TsfnPtr(sys::napi_threadsafe_function);
// SAFETY: Node's threadsafe functions are made to be called from any thread.
unsafe impl Send for TsfnPtr {}

/// The queue of one JS thread (one Node environment).
struct Completer {
    env: sys::napi_env,
    tsfn: sys::napi_threadsafe_function,
    shared: Arc<Mutex<Shared>>,
    /// Calls started and not settled yet (JS thread only).
    pending: Cell<usize>,
}

thread_local! {
    // One per JS thread: the main thread, or a worker's (each has its own environment).
    static COMPLETER: RefCell<Option<Rc<Completer>>> = const { RefCell::new(None) };
}

fn status(code: sys::napi_status, what: &str) -> napi::Result<()> {
    if code == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(
            Status::from(code),
            format!("Node-API call failed: {what}"),
        ))
    }
}

impl Completer {
    fn get(env: &Env) -> napi::Result<Rc<Completer>> {
        COMPLETER.with(|slot| {
            if let Some(c) = slot.borrow().as_ref() {
                if c.env == env.raw() {
                    return Ok(c.clone());
                }
            }
            let made = Rc::new(Completer::new(env.raw())?);
            *slot.borrow_mut() = Some(made.clone());
            Ok(made)
        })
    }

    fn new(env: sys::napi_env) -> napi::Result<Completer> {
        let shared = Arc::new(Mutex::new(Shared {
            tsfn: None,
            done: Vec::new(),
        }));
        let mut name = ptr::null_mut();
        let label = "slices-session completion";
        // SAFETY: plain Node-API calls on the JS thread with valid out-pointers.
        unsafe {
            status(
                sys::napi_create_string_utf8(
                    env,
                    label.as_ptr().cast(),
                    label.len() as isize,
                    &mut name,
                ),
                "create the completion queue's name",
            )?;
            let mut tsfn = ptr::null_mut();
            // The context is a strong reference to the queue, released by `finalize`.
            let context = Arc::into_raw(shared.clone()) as *mut c_void;
            let created = sys::napi_create_threadsafe_function(
                env,
                ptr::null_mut(),
                ptr::null_mut(),
                name,
                0,
                1,
                ptr::null_mut(),
                Some(finalize),
                context,
                Some(call_js),
                &mut tsfn,
            );
            if created != sys::Status::napi_ok {
                drop(Arc::from_raw(context as *const Mutex<Shared>));
                return Err(napi::Error::new(
                    Status::from(created),
                    "Node-API call failed: create the completion queue",
                ));
            }
            // Idle until a call is pending: an idle queue must not keep the process alive.
            status(
                sys::napi_unref_threadsafe_function(env, tsfn),
                "unref the completion queue",
            )?;
            // After the function's own teardown hook, so it runs first (hooks run in reverse).
            let hook_arg = Arc::into_raw(shared.clone()) as *mut c_void;
            status(
                sys::napi_add_env_cleanup_hook(env, Some(close), hook_arg),
                "register the completion queue's cleanup",
            )?;
            lock(&shared).tsfn = Some(TsfnPtr(tsfn));
            Ok(Completer {
                env,
                tsfn,
                shared,
                pending: Cell::new(0),
            })
        }
    }

    fn started(&self) -> napi::Result<()> {
        let n = self.pending.get() + 1;
        self.pending.set(n);
        if n == 1 {
            // SAFETY: JS thread, live function.
            status(
                unsafe { sys::napi_ref_threadsafe_function(self.env, self.tsfn) },
                "ref the completion queue",
            )?;
        }
        Ok(())
    }

    fn settled(&self, count: usize) {
        let n = self.pending.get().saturating_sub(count);
        self.pending.set(n);
        if n == 0 {
            // SAFETY: JS thread, live function. A failure only keeps the loop alive longer.
            let _ = unsafe { sys::napi_unref_threadsafe_function(self.env, self.tsfn) };
        }
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    // A panic while holding it cannot leave the queue inconsistent (push/take only).
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// On the JS thread, once per wake-up: settles every queued promise.
unsafe extern "C" fn call_js(
    env: sys::napi_env,
    _js: sys::napi_value,
    context: *mut c_void,
    _data: *mut c_void,
) {
    if env.is_null() || context.is_null() {
        return; // the function is being torn down
    }
    // SAFETY: `context` is the `Arc<Mutex<Shared>>` given at creation, alive until `finalize`.
    let shared = unsafe { &*(context as *const Mutex<Shared>) };
    let done = std::mem::take(&mut lock(shared).done);
    let count = done.len();
    for (deferred, outcome) in done {
        let settled = match outcome.and_then(|settle| settle(env)) {
            // SAFETY: JS thread, a deferred of this environment, settled once.
            Ok(value) => unsafe { sys::napi_resolve_deferred(env, deferred.0, value) },
            Err(error) => {
                let value = unsafe { JsError::from(error).into_value(env) };
                unsafe { sys::napi_reject_deferred(env, deferred.0, value) }
            }
        };
        let _ = settled; // nothing more can be done for a promise Node refused to settle
    }
    COMPLETER.with(|slot| {
        if let Some(c) = slot.borrow().as_ref() {
            if c.env == env {
                c.settled(count);
            }
        }
    });
}

/// Node finalized the function: release the context's reference.
unsafe extern "C" fn finalize(_env: sys::napi_env, data: *mut c_void, hint: *mut c_void) {
    let _ = data;
    // `hint` is the context for threadsafe-function finalizers.
    if !hint.is_null() {
        // SAFETY: the strong reference taken in `Completer::new`.
        drop(unsafe { Arc::from_raw(hint as *const Mutex<Shared>) });
    }
}

/// The environment is going away: no more calls into the function.
unsafe extern "C" fn close(arg: *mut c_void) {
    // SAFETY: the strong reference taken for the hook in `Completer::new`.
    let shared = unsafe { Arc::from_raw(arg as *const Mutex<Shared>) };
    let mut guard = lock(&shared);
    guard.tsfn = None;
    guard.done.clear();
    drop(guard);
    COMPLETER.with(|slot| slot.borrow_mut().take());
}

/// Runs `fut` on napi-rs's Tokio runtime and returns a promise of its value, settled on this
/// JS thread through the shared queue.
pub fn spawn_promise<T, F>(env: &Env, fut: F) -> napi::Result<sys::napi_value>
where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = napi::Result<T>> + Send + 'static,
{
    let completer = Completer::get(env)?;
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    // SAFETY: JS thread, valid out-pointers.
    status(
        unsafe { sys::napi_create_promise(env.raw(), &mut deferred, &mut promise) },
        "create a promise",
    )?;
    completer.started()?;
    let deferred = Deferred(deferred);
    let shared = completer.shared.clone();
    spawn(async move {
        // A panic in the future must still settle its promise (and release the loop): it
        // becomes a rejection instead of a promise that never settles.
        let outcome = match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
            Ok(result) => result,
            Err(_) => Err(napi::Error::new(
                Status::GenericFailure,
                "SessionError: internal error: a native call panicked",
            )),
        };
        let outcome = outcome.map(|value| -> Settle {
            // SAFETY (in the closure): runs on the JS thread, in `call_js`.
            Box::new(move |env| unsafe { T::to_napi_value(env, value) })
        });
        let mut guard = lock(&shared);
        let Some(tsfn) = guard.tsfn else {
            return; // the environment is gone
        };
        let first = guard.done.is_empty();
        guard.done.push((deferred, outcome));
        if first {
            // SAFETY: a live function: checked, and called, under the lock that `close` takes
            // before Node finalizes it. Non-blocking on an unbounded queue: it does not fail
            // while open. (Node releases its own lock before it calls `call_js`, which takes
            // ours: no lock-order inversion.)
            let _ = unsafe {
                sys::napi_call_threadsafe_function(
                    tsfn.0,
                    ptr::null_mut(),
                    sys::ThreadsafeFunctionCallMode::nonblocking,
                )
            };
        }
        drop(guard);
    });
    Ok(promise)
}

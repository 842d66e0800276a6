//! The completion channel: how asynchronous work reaches the JS thread that asked for it.
//!
//! One channel per JS module instance that loaded the library (a Deno isolate: the main
//! thread, each Worker, each `deno test` module; two copies of the package in one isolate get
//! one each). It carries, in one FIFO queue:
//!
//! - **completions**: the reply of a call JS *started* (`ssd_*_start`): the export checks the
//!   arguments, spawns the call's future on the library's runtime and returns at once; when the
//!   future is done its reply is queued here, under the call number JS chose;
//! - **requests** to JS (`js_bridge.rs`): a custom adapter's method, an OAuth storage's, an
//!   OAuth event; JS answers each with `ssd_channel_reply`;
//! - **releases**: a JS object the native side no longer needs.
//!
//! JS learns about queued items through ONE long poll per channel: `ssd_channel_wait`, a
//! `nonblocking` export that holds one of Deno's blocking threads until the queue has items,
//! the timeout passes, or JS wakes it (`ssd_channel_wake`). JS then drains the queue with the
//! synchronous `ssd_channel_take`, and polls again while it has calls or requests outstanding.
//! No thread ever calls into JS: an isolate that is gone (a terminated Worker) simply never
//! polls again, and its last wait returns into nothing.
//!
//! A channel whose JS side has not polled for [`UNRESPONSIVE_AFTER`] while requests wait for it
//! is presumed gone: those requests fail with an `AdapterError` instead of waiting forever
//! (the calls that made them then finish, and their completions sit in the queue, small and
//! bounded, in case JS comes back after all).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use futures::FutureExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::buffer::Reply;
use crate::error::{panic_detail, FfiError, FfiResult};
use crate::handles::Work;
use crate::registry::Registry;
use crate::runtime;

/// How long a channel may go without JS polling (or taking) while requests wait for it before
/// they fail. Far above any pause of a live JS thread we know of (a synchronous SQLite call
/// waits for a lock up to its busy timeout, 5 s by default), since a live JS thread that comes
/// back after this finds its requests failed.
pub const UNRESPONSIVE_AFTER: Duration = Duration::from_secs(30);

/// How often a request waiting for JS checks that the channel is still polled.
const LIVENESS_CHECK: Duration = Duration::from_secs(1);

/// The outcome of a request: JS's value, or its error message.
pub type Outcome = std::result::Result<Value, String>;

/// What `ssd_channel_wait` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Wait {
    /// Timed out or woken by `ssd_channel_wake`: the queue is empty.
    Idle = 0,
    /// The queue has items: take them.
    Ready = 1,
    /// The channel is closed (or never existed): stop polling.
    Closed = 2,
}

/// A request to JS: call `method` of the object JS keeps under `bridge`.
#[derive(Debug, Serialize)]
struct Request {
    id: u64,
    bridge: u64,
    method: &'static str,
    args: Value,
}

#[derive(Debug, Serialize)]
struct Release {
    release: u64,
}

enum Item {
    Request(Request),
    Release(Release),
    /// The reply of call `call`: JSON, or an error text `"<Class>: message"`.
    Done {
        call: u64,
        reply: std::result::Result<Reply, String>,
    },
}

/// What JS reports for a request: `{ "ok": value }` or `{ "err": "message" }`.
#[derive(Debug, Deserialize)]
struct JsOutcome {
    #[serde(default)]
    ok: Value,
    #[serde(default)]
    err: Option<String>,
}

struct State {
    queue: Vec<Item>,
    /// The JS context is going away (`ssd_channel_close`): queue nothing more.
    closed: bool,
    /// `ssd_channel_wake` was called: the current (or next) wait returns at once.
    woken: bool,
    /// A wait is in progress: JS is polling.
    waiting: bool,
    /// The last time JS showed it is alive (a wait began or ended, a take, a start, a reply).
    last_seen: Instant,
}

pub struct Channel {
    /// The thread that opened the channel: the JS thread of that instance.
    js_thread: ThreadId,
    state: Mutex<State>,
    ready: Condvar,
    /// Requests JS has not answered yet, by id.
    requests: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
    unresponsive_after: Duration,
}

static CHANNELS: LazyLock<Registry<Channel>> = LazyLock::new(Registry::default);
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Our critical sections cannot panic half-way through an update; recover the data.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

const ENDED: &str = "the JS context of this object has ended";

impl Channel {
    fn new(unresponsive_after: Duration) -> Channel {
        Channel {
            js_thread: std::thread::current().id(),
            state: Mutex::new(State {
                queue: Vec::new(),
                closed: false,
                woken: false,
                waiting: false,
                last_seen: Instant::now(),
            }),
            ready: Condvar::new(),
            requests: Mutex::new(HashMap::new()),
            unresponsive_after,
        }
    }

    /// Queues an item and wakes the poller. False when the channel is closed.
    fn push(&self, item: Item) -> bool {
        let mut state = lock(&self.state);
        if state.closed {
            return false;
        }
        state.queue.push(item);
        self.ready.notify_all();
        true
    }

    fn touch(&self) {
        lock(&self.state).last_seen = Instant::now();
    }

    /// `ssd_channel_wait`: blocks until the queue has items, `timeout` passes, or JS wakes it.
    pub fn wait(&self, timeout: Duration) -> Wait {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.state);
        state.waiting = true;
        state.last_seen = Instant::now();
        let outcome = loop {
            if state.closed {
                break Wait::Closed;
            }
            if !state.queue.is_empty() {
                break Wait::Ready;
            }
            if state.woken {
                break Wait::Idle;
            }
            let now = Instant::now();
            if now >= deadline {
                break Wait::Idle;
            }
            state = self
                .ready
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        };
        state.woken = false;
        state.waiting = false;
        state.last_seen = Instant::now();
        outcome
    }

    /// `ssd_channel_wake`: ends the current wait (JS has nothing outstanding any more).
    pub fn wake(&self) {
        lock(&self.state).woken = true;
        self.ready.notify_all();
    }

    /// `ssd_channel_take`: every queued item, as one JSON array, in queue order:
    /// `{"call", "ok": value}` / `{"call", "err": "<Class>: message"}` (completions),
    /// `{"id", "bridge", "method", "args"}` (requests), `{"release"}`.
    pub fn take(&self) -> FfiResult<Reply> {
        let items = {
            let mut state = lock(&self.state);
            state.last_seen = Instant::now();
            std::mem::take(&mut state.queue)
        };
        Reply::write(|out| {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match item {
                    Item::Request(request) => serde_json::to_writer(&mut *out, request)?,
                    Item::Release(release) => serde_json::to_writer(&mut *out, release)?,
                    Item::Done { call, reply } => {
                        out.extend_from_slice(b"{\"call\":");
                        serde_json::to_writer(&mut *out, call)?;
                        match reply {
                            Ok(reply) => {
                                out.extend_from_slice(b",\"ok\":");
                                out.extend_from_slice(reply.json_body());
                            }
                            Err(text) => {
                                out.extend_from_slice(b",\"err\":");
                                serde_json::to_writer(&mut *out, text)?;
                            }
                        }
                        out.push(b'}');
                    }
                }
            }
            out.push(b']');
            Ok(())
        })
    }

    /// `ssd_channel_reply`: settles request `id` with JS's outcome. An unknown id (the request
    /// was abandoned, or failed as unanswered) is ignored.
    pub fn reply(&self, id: u64, outcome: &[u8]) {
        self.touch();
        let outcome = match serde_json::from_slice::<JsOutcome>(outcome) {
            Ok(JsOutcome {
                err: Some(message), ..
            }) => Err(message),
            Ok(JsOutcome { ok, err: None }) => Ok(ok),
            Err(e) => Err(format!("the JS binding sent an unreadable result: {e}")),
        };
        if let Some(tx) = lock(&self.requests).remove(&id) {
            // The receiver may be gone (the call was abandoned): nothing to do then.
            let _ = tx.send(outcome);
        }
    }

    /// Stops the channel: the poller returns, and requests still waiting for JS fail.
    fn close(&self) {
        {
            let mut state = lock(&self.state);
            state.closed = true;
            state.queue.clear();
        }
        self.ready.notify_all();
        for (_, tx) in lock(&self.requests).drain() {
            let _ = tx.send(Err(ENDED.into()));
        }
    }

    /// JS has not polled for a while although requests wait: its isolate is presumably gone.
    fn unresponsive(&self) -> bool {
        let state = lock(&self.state);
        !state.waiting && state.last_seen.elapsed() >= self.unresponsive_after
    }

    fn unresponsive_message(&self) -> String {
        format!(
            "the JS context of this object stopped answering (no poll for {} s; was its Worker \
             terminated?)",
            self.unresponsive_after.as_secs()
        )
    }

    /// Asks JS to call `method` of bridge `bridge`, and waits for the outcome. Requests of one
    /// channel reach JS in the order they were made.
    pub async fn request(&self, bridge: u64, method: &'static str, args: Value) -> Outcome {
        if self.unresponsive() {
            return Err(self.unresponsive_message());
        }
        let id = NEXT_REQUEST.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = oneshot::channel();
        lock(&self.requests).insert(id, tx);
        let request = Request {
            id,
            bridge,
            method,
            args,
        };
        if !self.push(Item::Request(request)) {
            lock(&self.requests).remove(&id);
            return Err(ENDED.into());
        }
        let dropped = |_| "the JS side dropped the call".to_owned();
        // Without tokio's timers (never the case on the library's runtime) there is no
        // liveness check: just wait.
        if tokio::runtime::Handle::try_current().is_err() {
            return rx.await.map_err(dropped)?;
        }
        loop {
            match tokio::time::timeout(LIVENESS_CHECK, &mut rx).await {
                Ok(outcome) => return outcome.map_err(dropped)?,
                Err(_) if self.unresponsive() => {
                    lock(&self.requests).remove(&id);
                    return Err(self.unresponsive_message());
                }
                Err(_) => {}
            }
        }
    }

    /// Lets JS forget bridge `bridge` (with the next take).
    pub fn release(&self, bridge: u64) {
        self.push(Item::Release(Release { release: bridge }));
    }

    /// Refuses to block this channel's JS thread (see `js_bridge`); `what` names the caller.
    pub fn ensure_not_js_thread(&self, what: &str) -> FfiResult<()> {
        if self.js_thread == std::thread::current().id() {
            return Err(FfiError::Usage(format!(
                "{what} was called through a synchronous FFI symbol; it must be started (the JS \
                 thread would wait for itself)"
            )));
        }
        Ok(())
    }
}

/// `ssd_channel_open`: a new channel for the calling JS thread.
pub fn open() -> u64 {
    CHANNELS.insert(Channel::new(UNRESPONSIVE_AFTER))
}

#[cfg(test)]
pub fn open_with(unresponsive_after: Duration) -> u64 {
    CHANNELS.insert(Channel::new(unresponsive_after))
}

/// `ssd_channel_close`: JS calls it when its context unloads.
pub fn close(channel_id: u64) {
    if let Some(channel) = CHANNELS.remove(channel_id) {
        channel.close();
    }
}

pub fn get(id: u64) -> FfiResult<Arc<Channel>> {
    CHANNELS
        .get(id)
        .ok_or_else(|| FfiError::Usage(format!("channel {id} does not exist")))
}

/// `ssd_channel_wait`; an unknown channel reports `Closed`.
pub fn wait(channel_id: u64, timeout_ms: u32) -> Wait {
    match CHANNELS.get(channel_id) {
        Some(channel) => channel.wait(Duration::from_millis(u64::from(timeout_ms))),
        None => Wait::Closed,
    }
}

/// Refuses to block the JS thread of `channel_id` (see `js_bridge`). An unknown channel is
/// not this thread's.
pub fn ensure_not_js_thread(channel_id: u64, what: &str) -> FfiResult<()> {
    match CHANNELS.get(channel_id) {
        Some(channel) => channel.ensure_not_js_thread(what),
        None => Ok(()),
    }
}

/// `ssd_*_start`: polls `work` once on this thread (inside the runtime's context, so it may
/// use tokio's timers, I/O and `spawn`); when that finishes it, its reply is returned at once.
/// Otherwise the work goes on as a task of the runtime, and its reply is queued on the
/// channel as call `call`. A panic in the task becomes an error reply, as in a synchronous
/// export (one during the first poll is caught by the export).
///
/// The first poll gets the call going before the export returns: a PostgreSQL query is sent,
/// a JS adapter's request is queued, a closed store refuses at once, and a call made before
/// the store's `close()` is not refused by it.
pub fn start(
    channel_id: u64,
    call: u64,
    mut work: Work,
    export: &'static str,
) -> FfiResult<Option<Reply>> {
    let channel = get(channel_id)?;
    {
        let mut state = lock(&channel.state);
        if state.closed {
            return Err(FfiError::Usage(ENDED.into()));
        }
        state.last_seen = Instant::now();
    }
    let runtime = runtime::runtime()?;
    {
        let _context = runtime.enter();
        let waker = futures::task::noop_waker();
        // The task's first poll registers its real waker.
        if let Poll::Ready(reply) = work.as_mut().poll(&mut Context::from_waker(&waker)) {
            return reply.map(Some);
        }
    }
    runtime.spawn(async move {
        let reply = match AssertUnwindSafe(work).catch_unwind().await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(error)) => Err(error.to_js_message()),
            Err(payload) => Err(FfiError::Panic {
                export,
                detail: panic_detail(payload.as_ref()),
            }
            .to_js_message()),
        };
        channel.push(Item::Done { call, reply });
    });
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn taken(channel: &Channel) -> Value {
        serde_json::from_slice(channel.take().unwrap().json_body()).unwrap()
    }

    #[test]
    fn a_wait_returns_when_an_item_arrives_or_on_timeout_or_wake() {
        let id = open();
        let channel = get(id).unwrap();
        let started = Instant::now();
        assert_eq!(channel.wait(Duration::from_millis(30)), Wait::Idle);
        assert!(started.elapsed() >= Duration::from_millis(30));

        let c = channel.clone();
        let waiter = std::thread::spawn(move || c.wait(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        channel.release(4);
        assert_eq!(waiter.join().unwrap(), Wait::Ready);
        assert_eq!(taken(&channel), json!([{"release": 4}]));

        let c = channel.clone();
        let waiter = std::thread::spawn(move || c.wait(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        channel.wake();
        assert_eq!(waiter.join().unwrap(), Wait::Idle);

        let c = channel.clone();
        let waiter = std::thread::spawn(move || c.wait(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        close(id);
        assert_eq!(waiter.join().unwrap(), Wait::Closed);
        assert_eq!(wait(id, 10), Wait::Closed);
        assert!(start(id, 1, Box::pin(async { Ok(Reply::null()) }), "t").is_err());
    }

    #[test]
    fn a_started_call_is_completed_through_the_channel() {
        let id = open();
        let channel = get(id).unwrap();
        // Done on its first poll: the reply comes back at once.
        let done = start(id, 6, Box::pin(async { Reply::json(&1) }), "t").unwrap();
        assert_eq!(done.unwrap().json_body(), b"1");
        let failed = start(
            id,
            6,
            Box::pin(async { Err(FfiError::Usage("x".into())) }),
            "t",
        );
        assert!(failed.is_err());
        // Pending on its first poll: the reply comes through the channel.
        let later = |reply: FfiResult<Reply>| -> Work {
            Box::pin(async move {
                tokio::task::yield_now().await;
                reply
            })
        };
        let started = start(id, 7, later(Reply::json(&json!({"a": 1}))), "t").unwrap();
        assert!(started.is_none());
        let failure = FfiError::Usage("no \"such\" thing".into());
        start(id, 8, later(Err(failure)), "t").unwrap();
        let panics: Work = Box::pin(async {
            tokio::task::yield_now().await;
            panic!("boom")
        });
        start(id, 9, panics, "ssd_test_start").unwrap();
        let mut items = Vec::new();
        while items.len() < 3 {
            assert_eq!(channel.wait(Duration::from_secs(10)), Wait::Ready);
            items.extend(taken(&channel).as_array().unwrap().iter().cloned());
        }
        items.sort_by_key(|item| item["call"].as_u64());
        assert_eq!(
            items,
            vec![
                json!({"call": 7, "ok": {"a": 1}}),
                json!({"call": 8, "err": "SessionError: no \"such\" thing"}),
                json!({"call": 9, "err": "AdapterError: internal error: panic in ssd_test_start: boom"}),
            ]
        );
        close(id);
    }

    #[test]
    fn requests_of_an_unresponsive_channel_fail_instead_of_waiting_forever() {
        let id = open_with(Duration::from_millis(300));
        let channel = get(id).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        // JS polls, takes and answers: fine.
        let c = channel.clone();
        let answered = rt.block_on(async move {
            let call = c.request(1, "get", json!(["a"]));
            tokio::pin!(call);
            assert!(futures::poll!(&mut call).is_pending());
            let request = &taken(&c)[0];
            c.reply(request["id"].as_u64().unwrap(), br#"{"ok":5}"#);
            call.await
        });
        assert_eq!(answered, Ok(json!(5)));
        // Nobody polls any more (a terminated Worker): the request fails after a while.
        let started = Instant::now();
        let failed = rt.block_on(channel.request(1, "get", json!(["b"])));
        let message = failed.unwrap_err();
        assert!(message.contains("stopped answering"), "{message}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // A further request fails at once.
        let message = rt
            .block_on(channel.request(1, "get", json!(["c"])))
            .unwrap_err();
        assert!(message.contains("stopped answering"), "{message}");
        close(id);
    }
}

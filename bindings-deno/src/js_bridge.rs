//! JavaScript code called from Rust futures: custom adapters (SPEC §5), custom OAuth storages
//! and `withOAuthSession`'s event callback (SPEC §6). Each such JS object is a [`Bridge`].
//!
//! Deno gives native code one way to reach JS: `Deno.UnsafeCallback.threadSafe`. Calling it
//! from another thread blocks that thread until the JS thread has run the callback, and a
//! callback cannot hand a Promise back. So:
//!
//! - a call to a JS function becomes a request (id, bridge, method, JSON arguments) queued on
//!   the channel of the JS module instance that made the object, plus a oneshot the future
//!   awaits;
//! - a dedicated notifier thread per channel calls the JS callback (no arguments) whenever the
//!   queue became non-empty. Only that thread ever blocks on JS, never a runtime worker, and
//!   it holds no lock while it does;
//! - the callback drains the queue with the synchronous `ssd_js_take`, starts each function
//!   in queue order, and reports each outcome with the synchronous `ssd_js_complete`, which
//!   only sends on the oneshot.
//!
//! A handle whose futures may call JS is always called through a `nonblocking` symbol: its
//! future then blocks one of Deno's blocking threads, and the JS thread stays free to run the
//! callback. Called synchronously, the JS thread would wait for itself;
//! `ensure_not_js_thread` turns that deadlock into an error.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, PoisonError};
use std::thread::ThreadId;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use slices_session_core::adapter::SessionAdapter;
use slices_session_core::error::{Result, SessionError};
use slices_session_core::session::{Millis, SessionData, SessionPatch};
use tokio::sync::oneshot;

use crate::error::{FfiError, FfiResult};
use crate::registry::Registry;
use crate::wire::{JsAdapterSpec, JsInt, WirePatch, WireSession};

/// The JS callback: `Deno.UnsafeCallback.threadSafe({ parameters: [], result: "void" }, ...)`.
pub type Notify = extern "C" fn();

/// A request to JS, or the notice that a JS object is gone (JS then drops its functions).
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Message {
    Call {
        id: u64,
        bridge: u64,
        method: &'static str,
        args: Value,
    },
    Release {
        release: u64,
    },
}

/// What JS reports for a request: `{ "ok": value }` or `{ "err": "message" }`.
#[derive(Debug, Deserialize)]
struct Completion {
    #[serde(default)]
    ok: Value,
    #[serde(default)]
    err: Option<String>,
}

type Outcome = std::result::Result<Value, String>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Our critical sections cannot panic half-way through an update; recover the data.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One per JS module instance that loaded the library (two copies of the package in one
/// process share the library and its statics, but not their tables of JS objects).
pub struct Channel {
    /// The thread that opened the channel: the JS thread of that instance.
    js_thread: ThreadId,
    queue: Mutex<Vec<Message>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
    signal: Mutex<Signal>,
    wake: Condvar,
}

static CHANNELS: LazyLock<Registry<Channel>> = LazyLock::new(Registry::default);
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// What the notifier waits for.
#[derive(Default)]
struct Signal {
    /// The queue holds calls JS has not been told about.
    dirty: bool,
    /// The JS context is going away: never call into it again.
    closed: bool,
}

impl Channel {
    /// Queues a call and wakes the notifier.
    fn push_call(&self, message: Message) -> Result<(), String> {
        let mut signal = lock(&self.signal);
        if signal.closed {
            return Err("the JS context of this object has ended".into());
        }
        lock(&self.queue).push(message);
        signal.dirty = true;
        self.wake.notify_one();
        Ok(())
    }

    /// Queues a release without waking anyone: it rides along with the next drain. (A release
    /// happens when a store is closed or collected, often just before its JS context ends;
    /// calling into a context that is being torn down would crash the process.)
    fn push_release(&self, message: Message) {
        if !lock(&self.signal).closed {
            lock(&self.queue).push(message);
        }
    }

    /// The notifier: calls JS once per batch of new calls, until the channel is closed.
    fn notify_loop(&self, notify: Notify) {
        loop {
            {
                let mut signal = lock(&self.signal);
                while !signal.dirty && !signal.closed {
                    signal = self
                        .wake
                        .wait(signal)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if signal.closed {
                    return;
                }
                signal.dirty = false;
            }
            // Blocks until the JS thread has run the callback, which drains the queue.
            notify();
        }
    }

    /// Stops the notifier and fails the calls still waiting for JS.
    fn close(&self) {
        lock(&self.signal).closed = true;
        self.wake.notify_one();
        lock(&self.queue).clear();
        for (_, tx) in lock(&self.pending).drain() {
            let _ = tx.send(Err("the JS context of this object has ended".into()));
        }
    }
}

/// `ssd_js_channel_close`: JS calls it when its context unloads.
pub fn close_channel(channel_id: u64) {
    if let Some(channel) = CHANNELS.remove(channel_id) {
        channel.close();
    }
}

/// `ssd_js_channel_open`: a channel whose notifier calls `notify`.
pub fn open_channel(notify: Notify) -> FfiResult<u64> {
    let channel = Channel {
        js_thread: std::thread::current().id(),
        queue: Mutex::new(Vec::new()),
        pending: Mutex::new(HashMap::new()),
        signal: Mutex::new(Signal::default()),
        wake: Condvar::new(),
    };
    let id = CHANNELS.insert(channel);
    let Some(channel) = CHANNELS.get(id) else {
        return Err(FfiError::Usage(
            "the JS channel vanished while opening".into(),
        ));
    };
    std::thread::Builder::new()
        .name("slices-session-js-notify".into())
        .spawn(move || channel.notify_loop(notify))
        .map_err(|e| {
            CHANNELS.remove(id);
            FfiError::Runtime(format!("cannot start the JS notifier thread: {e}"))
        })?;
    Ok(id)
}

fn channel(id: u64) -> FfiResult<Arc<Channel>> {
    CHANNELS
        .get(id)
        .ok_or_else(|| FfiError::Usage(format!("JS channel {id} does not exist")))
}

/// `ssd_js_take`: every queued message, as a JSON array.
pub fn take(channel_id: u64) -> FfiResult<Vec<u8>> {
    let channel = channel(channel_id)?;
    let messages = std::mem::take(&mut *lock(&channel.queue));
    serde_json::to_vec(&messages).map_err(FfiError::Encode)
}

/// `ssd_js_complete`: settles request `id` with JS's outcome. An unknown id (the caller's
/// future was dropped) is ignored.
pub fn complete(channel_id: u64, id: u64, outcome: &[u8]) -> FfiResult<()> {
    let channel = channel(channel_id)?;
    let outcome = match serde_json::from_slice::<Completion>(outcome) {
        Ok(Completion {
            err: Some(message), ..
        }) => Err(message),
        Ok(Completion { ok, err: None }) => Ok(ok),
        Err(e) => Err(format!("the JS binding sent an unreadable result: {e}")),
    };
    if let Some(tx) = lock(&channel.pending).remove(&id) {
        // The receiver may be gone (the call was abandoned): nothing to do then.
        let _ = tx.send(outcome);
    }
    Ok(())
}

/// Refuses to block the JS thread of `channel_id` (see the module docs). `what` names the
/// caller in the error ("a store over a JS adapter").
pub fn ensure_not_js_thread(channel_id: u64, what: &str) -> FfiResult<()> {
    match CHANNELS.get(channel_id) {
        Some(c) if c.js_thread == std::thread::current().id() => Err(FfiError::Usage(format!(
            "{what} was called through a synchronous FFI symbol; it must use the nonblocking \
             one (the JS thread would wait for itself)"
        ))),
        _ => Ok(()),
    }
}

/// One JS object's functions (a custom adapter, an OAuth storage, `withOAuthSession`'s event
/// callback), kept by the JS side under a bridge number and reached through a channel. A call
/// becomes a request and awaits JS's outcome; dropping the bridge lets JS forget the functions
/// (and so the user's object).
pub struct Bridge {
    channel: Arc<Channel>,
    channel_id: u64,
    bridge: u64,
}

impl Bridge {
    pub fn new(channel_id: u64, bridge: u64) -> FfiResult<Bridge> {
        Ok(Bridge {
            channel: channel(channel_id)?,
            channel_id,
            bridge,
        })
    }

    pub fn channel_id(&self) -> u64 {
        self.channel_id
    }

    /// Calls `method` with `args` (a JSON array) and reads its result as `T`. Requests of one
    /// channel reach JS in the order they were made; a JS failure is an `AdapterError` naming
    /// the method.
    pub async fn call<T: DeserializeOwned>(&self, method: &'static str, args: Value) -> Result<T> {
        let id = NEXT_REQUEST.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let failed = |message: String| SessionError::Adapter { method, message };
        lock(&self.channel.pending).insert(id, tx);
        let queued = self.channel.push_call(Message::Call {
            id,
            bridge: self.bridge,
            method,
            args,
        });
        if let Err(message) = queued {
            lock(&self.channel.pending).remove(&id);
            return Err(failed(message));
        }
        let value = rx
            .await
            .map_err(|_| failed("the JS side dropped the call".into()))?
            .map_err(failed)?;
        serde_json::from_value(value)
            .map_err(|e| failed(format!("returned a value of the wrong shape: {e}")))
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // Lets the JS side forget the functions (and so the user's object).
        self.channel.push_release(Message::Release {
            release: self.bridge,
        });
    }
}

/// A `SessionAdapter` whose methods are the JS adapter's, reached through a channel.
pub struct JsAdapter {
    bridge: Bridge,
    list_by_user: bool,
    delete_by_user: bool,
}

impl JsAdapter {
    pub fn new(spec: &JsAdapterSpec) -> FfiResult<JsAdapter> {
        Ok(JsAdapter {
            bridge: Bridge::new(spec.channel, spec.bridge)?,
            list_by_user: spec.list_by_user,
            delete_by_user: spec.delete_by_user,
        })
    }

    pub fn channel_id(&self) -> u64 {
        self.bridge.channel_id()
    }

    async fn call<T: DeserializeOwned>(&self, method: &'static str, args: Value) -> Result<T> {
        self.bridge.call(method, args).await
    }
}

pub(crate) fn to_value<T: Serialize>(method: &'static str, value: T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| SessionError::Adapter {
        method,
        message: format!("cannot encode the arguments: {e}"),
    })
}

#[async_trait]
impl SessionAdapter for JsAdapter {
    async fn get(&self, id: &str) -> Result<Option<SessionData>> {
        let row: Option<WireSession> = self.call("get", json!([id])).await?;
        Ok(row.map(SessionData::from))
    }

    async fn set(&self, id: &str, data: &SessionData) -> Result<()> {
        let args = json!([id, to_value("set", data)?]);
        self.call::<Value>("set", args).await.map(|_| ())
    }

    async fn update(&self, id: &str, patch: &SessionPatch) -> Result<bool> {
        let args = json!([id, to_value("update", WirePatch::from(patch))?]);
        self.call("update", args).await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        self.call::<Value>("delete", json!([id])).await.map(|_| ())
    }

    async fn cleanup(&self, expires_before: Millis) -> Result<u64> {
        let JsInt(n) = self.call("cleanup", json!([expires_before])).await?;
        Ok(n.max(0) as u64)
    }

    async fn exists(&self, id: &str) -> Result<bool> {
        self.call("exists", json!([id])).await
    }

    async fn list_by_user(&self, user_id: &str) -> Result<Vec<SessionData>> {
        if !self.list_by_user {
            return Err(SessionError::Unsupported {
                operation: "listUserSessions",
                method: "listByUser",
            });
        }
        let rows: Vec<WireSession> = self.call("listByUser", json!([user_id])).await?;
        Ok(rows.into_iter().map(SessionData::from).collect())
    }

    async fn delete_by_user(&self, user_id: &str, except: Option<&str>) -> Result<u64> {
        if !self.delete_by_user {
            return Err(SessionError::Unsupported {
                operation: "deleteUserSessions",
                method: "deleteByUser",
            });
        }
        let JsInt(n) = self.call("deleteByUser", json!([user_id, except])).await?;
        Ok(n.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" fn ignore() {}

    #[test]
    fn a_call_is_queued_and_settled_by_complete() {
        let channel_id = open_channel(ignore).unwrap();
        let adapter = JsAdapter::new(&JsAdapterSpec {
            channel: channel_id,
            bridge: 7,
            list_by_user: false,
            delete_by_user: false,
        })
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let call = adapter.exists("abc");
            tokio::pin!(call);
            // First poll queues the request.
            assert!(futures::poll!(&mut call).is_pending());
            let queued: Value = serde_json::from_slice(&take(channel_id).unwrap()).unwrap();
            assert_eq!(queued[0]["bridge"], 7);
            assert_eq!(queued[0]["method"], "exists");
            assert_eq!(queued[0]["args"], json!(["abc"]));
            let id = queued[0]["id"].as_u64().unwrap();
            complete(channel_id, id, br#"{"ok":true}"#).unwrap();
            assert!(call.await.unwrap());
        });
        assert!(matches!(
            rt.block_on(adapter.list_by_user("u")),
            Err(SessionError::Unsupported { .. })
        ));
        drop(adapter);
        let released: Value = serde_json::from_slice(&take(channel_id).unwrap()).unwrap();
        assert_eq!(released, json!([{"release": 7}]));
        // This thread opened the channel: it counts as the JS thread.
        assert!(ensure_not_js_thread(channel_id, "a test").is_err());
    }

    #[test]
    fn a_js_error_becomes_an_adapter_error_naming_the_method() {
        let channel_id = open_channel(ignore).unwrap();
        let adapter = JsAdapter::new(&JsAdapterSpec {
            channel: channel_id,
            bridge: 1,
            list_by_user: true,
            delete_by_user: true,
        })
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = rt.block_on(async {
            let call = adapter.get("x");
            tokio::pin!(call);
            assert!(futures::poll!(&mut call).is_pending());
            let queued: Value = serde_json::from_slice(&take(channel_id).unwrap()).unwrap();
            let id = queued[0]["id"].as_u64().unwrap();
            complete(channel_id, id, br#"{"err":"boom"}"#).unwrap();
            call.await.unwrap_err()
        });
        assert_eq!(err.to_string(), "adapter `get` failed: boom");
    }
}

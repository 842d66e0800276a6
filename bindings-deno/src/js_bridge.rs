//! JavaScript code called from Rust futures: custom adapters (SPEC §5), custom OAuth storages
//! and `withOAuthSession`'s event callback (SPEC §6). Each such JS object is a [`Bridge`].
//!
//! No thread calls into JS. A call to a JS function becomes a *request* (id, bridge, method,
//! JSON arguments) queued on the channel (`channel.rs`) of the JS module instance that made the
//! object, and the future awaits JS's answer. JS learns about it through its long poll, drains
//! the queue, starts each function in queue order, and answers each with the synchronous
//! `ssd_channel_reply`.
//!
//! A handle whose futures may call JS is always *started* (`ssd_*_start`): its future runs on
//! the library's runtime, and the JS thread stays free to run the functions. Called through a
//! synchronous symbol, the JS thread would wait for itself; `ensure_not_js_thread` turns that
//! deadlock into an error.

use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use slices_session_core::adapter::SessionAdapter;
use slices_session_core::error::{Result, SessionError};
use slices_session_core::session::{Millis, SessionData, SessionPatch};

use crate::channel::{self, Channel};
use crate::error::FfiResult;
use crate::wire::{JsAdapterSpec, JsInt, WirePatch, WireSession};

pub use crate::channel::ensure_not_js_thread;

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
            channel: channel::get(channel_id)?,
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
        let failed = |message: String| SessionError::Adapter { method, message };
        let value = self
            .channel
            .request(self.bridge, method, args)
            .await
            .map_err(failed)?;
        serde_json::from_value(value)
            .map_err(|e| failed(format!("returned a value of the wrong shape: {e}")))
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // Lets the JS side forget the functions (and so the user's object).
        self.channel.release(self.bridge);
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

    fn take(channel_id: u64) -> Value {
        let reply = channel::get(channel_id).unwrap().take().unwrap();
        serde_json::from_slice(reply.json_body()).unwrap()
    }

    fn answer(channel_id: u64, id: u64, outcome: &[u8]) {
        channel::get(channel_id).unwrap().reply(id, outcome);
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn a_call_is_queued_and_settled_by_the_reply() {
        let channel_id = channel::open();
        let adapter = JsAdapter::new(&JsAdapterSpec {
            channel: channel_id,
            bridge: 7,
            list_by_user: false,
            delete_by_user: false,
        })
        .unwrap();
        let rt = runtime();
        rt.block_on(async {
            let call = adapter.exists("abc");
            tokio::pin!(call);
            // First poll queues the request.
            assert!(futures::poll!(&mut call).is_pending());
            let queued = take(channel_id);
            assert_eq!(queued[0]["bridge"], 7);
            assert_eq!(queued[0]["method"], "exists");
            assert_eq!(queued[0]["args"], json!(["abc"]));
            let id = queued[0]["id"].as_u64().unwrap();
            answer(channel_id, id, br#"{"ok":true}"#);
            assert!(call.await.unwrap());
        });
        assert!(matches!(
            rt.block_on(adapter.list_by_user("u")),
            Err(SessionError::Unsupported { .. })
        ));
        drop(adapter);
        assert_eq!(take(channel_id), json!([{"release": 7}]));
        // This thread opened the channel: it counts as the JS thread.
        assert!(ensure_not_js_thread(channel_id, "a test").is_err());
        channel::close(channel_id);
    }

    #[test]
    fn a_js_error_becomes_an_adapter_error_naming_the_method() {
        let channel_id = channel::open();
        let adapter = JsAdapter::new(&JsAdapterSpec {
            channel: channel_id,
            bridge: 1,
            list_by_user: true,
            delete_by_user: true,
        })
        .unwrap();
        let err = runtime().block_on(async {
            let call = adapter.get("x");
            tokio::pin!(call);
            assert!(futures::poll!(&mut call).is_pending());
            let id = take(channel_id)[0]["id"].as_u64().unwrap();
            answer(channel_id, id, br#"{"err":"boom"}"#);
            call.await.unwrap_err()
        });
        assert_eq!(err.to_string(), "adapter `get` failed: boom");
    }

    #[test]
    fn a_closed_channel_fails_waiting_and_new_calls() {
        let channel_id = channel::open();
        let adapter = JsAdapter::new(&JsAdapterSpec {
            channel: channel_id,
            bridge: 2,
            list_by_user: true,
            delete_by_user: true,
        })
        .unwrap();
        let rt = runtime();
        let err = rt.block_on(async {
            let call = adapter.get("x");
            tokio::pin!(call);
            assert!(futures::poll!(&mut call).is_pending());
            channel::close(channel_id);
            call.await.unwrap_err()
        });
        assert_eq!(
            err.to_string(),
            "adapter `get` failed: the JS context of this object has ended"
        );
        let err = rt.block_on(adapter.exists("x")).unwrap_err();
        assert!(err.to_string().contains("has ended"), "{err}");
    }
}

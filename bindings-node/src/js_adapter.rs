//! A `SessionAdapter` backed by a JS object (SPEC §5 custom adapters). Calls go through weak
//! threadsafe functions (a live store must not keep Node running) and are awaited on the
//! runtime. The JS layer binds the user's methods (so `this` works) and normalises results.

use async_trait::async_trait;
use napi::bindgen_prelude::{FnArgs, FromNapiValue, JsValuesTupleIntoVec, Promise};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Status;
use napi_derive::napi;
use slices_session_core::adapter::SessionAdapter;
use slices_session_core::error::{Result, SessionError};
use slices_session_core::session::{Millis, SessionData, SessionPatch};

use crate::wire::{WirePatch, WireSession};

/// A JS function returning a Promise, callable from any thread; `this`-less, weak, and a JS
/// throw comes back as an error (never a fatal exception).
type JsFn<Args, Ret> = ThreadsafeFunction<Args, Promise<Ret>, Args, Status, false, true>;

type DeleteByUserFn = JsFn<FnArgs<(String, Option<String>)>, i64>;

#[napi(object, object_to_js = false)]
pub struct JsAdapterFns {
    pub get: JsFn<String, Option<WireSession>>,
    pub set: JsFn<FnArgs<(String, WireSession)>, ()>,
    pub update: JsFn<FnArgs<(String, WirePatch)>, bool>,
    pub delete: JsFn<String, ()>,
    pub cleanup: JsFn<i64, i64>,
    pub exists: JsFn<String, bool>,
    pub list_by_user: Option<JsFn<String, Vec<WireSession>>>,
    pub delete_by_user: Option<DeleteByUserFn>,
}

pub struct JsAdapter {
    fns: JsAdapterFns,
}

impl JsAdapter {
    pub fn new(fns: JsAdapterFns) -> Self {
        JsAdapter { fns }
    }
}

async fn call<Args, Ret>(method: &'static str, f: &JsFn<Args, Ret>, args: Args) -> Result<Ret>
where
    Args: 'static + JsValuesTupleIntoVec,
    Ret: 'static + Send + FromNapiValue,
{
    let failed = |e: napi::Error| SessionError::Adapter {
        method,
        message: e.reason.clone(),
    };
    let promise = f.call_async_catch(args).await.map_err(failed)?;
    promise.await.map_err(failed)
}

#[async_trait]
impl SessionAdapter for JsAdapter {
    async fn get(&self, id: &str) -> Result<Option<SessionData>> {
        Ok(call("get", &self.fns.get, id.to_owned())
            .await?
            .map(SessionData::from))
    }

    async fn set(&self, id: &str, data: &SessionData) -> Result<()> {
        let args = (id.to_owned(), WireSession::from(data.clone())).into();
        call("set", &self.fns.set, args).await
    }

    async fn update(&self, id: &str, patch: &SessionPatch) -> Result<bool> {
        let args = (id.to_owned(), WirePatch::from(patch)).into();
        call("update", &self.fns.update, args).await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        call("delete", &self.fns.delete, id.to_owned()).await
    }

    async fn cleanup(&self, expires_before: Millis) -> Result<u64> {
        let removed = call("cleanup", &self.fns.cleanup, expires_before).await?;
        Ok(removed.max(0) as u64)
    }

    async fn exists(&self, id: &str) -> Result<bool> {
        call("exists", &self.fns.exists, id.to_owned()).await
    }

    async fn list_by_user(&self, user_id: &str) -> Result<Vec<SessionData>> {
        let Some(f) = &self.fns.list_by_user else {
            return Err(SessionError::Unsupported {
                operation: "listUserSessions",
                method: "listByUser",
            });
        };
        let rows = call("listByUser", f, user_id.to_owned()).await?;
        Ok(rows.into_iter().map(SessionData::from).collect())
    }

    async fn delete_by_user(&self, user_id: &str, except: Option<&str>) -> Result<u64> {
        let Some(f) = &self.fns.delete_by_user else {
            return Err(SessionError::Unsupported {
                operation: "deleteUserSessions",
                method: "deleteByUser",
            });
        };
        let args = (user_id.to_owned(), except.map(str::to_owned)).into();
        let removed = call("deleteByUser", f, args).await?;
        Ok(removed.max(0) as u64)
    }
}

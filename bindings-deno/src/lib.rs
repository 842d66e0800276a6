//! Deno FFI binding of `slices-session-core` (issue 3; design in docs/deno-ffi.md).
//!
//! A small hand-written C ABI, loaded with `Deno.dlopen` by the JSR package (jsr/native.ts),
//! which implements the same "native" interface as the N-API addon (npm/native.d.ts), so that
//! the shared JS layer (npm/session.js) runs unchanged on top of either.
//!
//! Rules every export follows:
//! - arguments are JSON in a caller-owned buffer (pointer, length), only borrowed during the
//!   call; results are replies (see `buffer.rs`) that JS frees with `ssd_buffer_free`;
//! - adapters and stores are numbered handles (`registry.rs`), never pointers;
//! - no panic crosses the boundary: every export runs inside `catch_unwind` (a panic in an
//!   `extern "C"` function would abort Deno);
//! - `ssd_adapter_call` / `ssd_store_call` / `ssd_oauth_storage_call` are declared twice by JS:
//!   synchronous for memory and SQLite handles (their futures finish on the first poll),
//!   `nonblocking` for PostgreSQL and JS objects (Deno then runs them on a blocking thread,
//!   where we wait on the runtime); `ssd_oauth_manager_call` / `ssd_oauth_client_call` may do
//!   HTTP and call JS, and are only declared `nonblocking`.
//!
//! The exports, by group: ABI and buffers; adapters; stores; cookies; the JS channel (custom
//! adapters, OAuth storages and events call JS through it, `js_bridge.rs`); OAuth storages,
//! managers and clients (`oauth/`).

mod buffer;
mod error;
mod handles;
mod js_bridge;
mod oauth;
mod registry;
mod runtime;
mod wire;

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use slices_session_core::cookie::{self, CookieOptions, CookieOptionsPatch};
use slices_session_core::error::SessionError;

use buffer::Reply;
use error::{FfiError, FfiResult};
use handles::{
    adapter_call, store_call, AdapterHandle, AdapterOp, StoreHandle, StoreOp, ADAPTERS, STORES,
};
use wire::{AdapterSpec, StoreSpec, WireCookieOptions};

/// Bumped whenever an export, an operation number or a JSON shape changes; jsr/native.ts
/// refuses a library with another number (a stale `SLICES_SESSION_LIB` would otherwise fail in
/// confusing ways).
pub const ABI_VERSION: u32 = 2;

fn panic_detail(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// Runs an export's body: its result, its error, or a caught panic, as a reply for JS.
fn guarded(export: &'static str, body: impl FnOnce() -> FfiResult<Reply>) -> *mut u8 {
    let reply = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(reply)) => reply,
        Ok(Err(error)) => Reply::error(&error),
        Err(payload) => Reply::error(&FfiError::Panic {
            export,
            detail: panic_detail(payload.as_ref()),
        }),
    };
    reply.into_raw()
}

/// For exports without a reply: a panic is swallowed (and was printed by the panic hook).
fn guarded_void(body: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(body));
}

fn parse<T: serde::de::DeserializeOwned>(op: &'static str, json: &[u8]) -> FfiResult<T> {
    serde_json::from_slice(json).map_err(|source| FfiError::Arguments { op, source })
}

/// The ABI version of this library (see [`ABI_VERSION`]).
#[no_mangle]
pub extern "C" fn ssd_abi_version() -> u32 {
    ABI_VERSION
}

/// Frees a reply returned by any other export.
///
/// # Safety
/// `reply` must be a pointer returned by this library and not freed yet (or null).
#[no_mangle]
pub unsafe extern "C" fn ssd_buffer_free(reply: *mut u8) {
    // SAFETY: forwarded caller contract.
    guarded_void(|| unsafe { buffer::free(reply) });
}

/// Opens a native adapter. Argument: `{"kind":"memory"}`, `{"kind":"sqlite","path",
/// "busyTimeoutMs"?}` or `{"kind":"postgres","url","maxConnections"?}`. Reply: `{"id","isSync"}`.
///
/// # Safety
/// `args` must point to `len` readable bytes for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn ssd_adapter_open(args: *const u8, len: usize) -> *mut u8 {
    // SAFETY: forwarded caller contract.
    let json = unsafe { buffer::input(args, len) };
    guarded("ssd_adapter_open", || {
        let handle = AdapterHandle::open(parse::<AdapterSpec>("adapterOpen", json)?)?;
        let sync = handle.shared().is_sync();
        let id = ADAPTERS.insert(handle);
        Reply::json(&wire::Opened { id, is_sync: sync })
    })
}

/// Calls operation `op` (see `AdapterOp`) of adapter `id` with a JSON array of arguments.
/// `close` also releases the handle; a later call finds it closed (`AdapterError`), a later
/// `close` does nothing.
///
/// # Safety
/// `args` must point to `len` readable bytes that stay untouched until the call returns (for
/// a `nonblocking` call: until its Promise settles).
#[no_mangle]
pub unsafe extern "C" fn ssd_adapter_call(
    id: u64,
    op: u32,
    args: *const u8,
    len: usize,
) -> *mut u8 {
    // SAFETY: forwarded caller contract.
    let json = unsafe { buffer::input(args, len) };
    guarded("ssd_adapter_call", || {
        let op = AdapterOp::from_code(op)?;
        let Some(handle) = ADAPTERS.get(id) else {
            return match op {
                AdapterOp::Close => Ok(Reply::null()),
                _ => Err(SessionError::AdapterClosed.into()),
            };
        };
        let sync = handle.shared().is_sync();
        let work = adapter_call(&handle, op, json)?;
        drop(handle);
        let reply = runtime::complete(sync, work)?;
        if op == AdapterOp::Close {
            ADAPTERS.remove(id);
        }
        reply
    })
}

/// Releases adapter `id` without closing it explicitly (the JS finalizer; stores using the
/// adapter keep it alive). Unknown ids are ignored.
#[no_mangle]
pub extern "C" fn ssd_adapter_free(id: u64) {
    guarded_void(|| {
        ADAPTERS.remove(id);
    });
}

/// Makes a `SessionStore`. Argument: `{"adapter": id}` or `{"js": {"channel","bridge",
/// "listByUser","deleteByUser"}}`, plus `"config"` (`WireStoreConfig`). Reply: `{"id","isSync"}`.
///
/// # Safety
/// `args` must point to `len` readable bytes for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn ssd_store_open(args: *const u8, len: usize) -> *mut u8 {
    // SAFETY: forwarded caller contract.
    let json = unsafe { buffer::input(args, len) };
    guarded("ssd_store_open", || {
        let handle = StoreHandle::open(parse::<StoreSpec>("storeOpen", json)?)?;
        let sync = handle.is_sync();
        let id = STORES.insert(handle);
        Reply::json(&wire::Opened { id, is_sync: sync })
    })
}

/// Calls operation `op` (see `StoreOp`) of store `id` with a JSON array of arguments. `close`
/// marks the store closed and lets its adapter go, keeping what the cookie methods need.
///
/// # Safety
/// As for [`ssd_adapter_call`].
#[no_mangle]
pub unsafe extern "C" fn ssd_store_call(id: u64, op: u32, args: *const u8, len: usize) -> *mut u8 {
    // SAFETY: forwarded caller contract.
    let json = unsafe { buffer::input(args, len) };
    guarded("ssd_store_call", || {
        let op = StoreOp::from_code(op)?;
        let handle = STORES
            .get(id)
            .ok_or(FfiError::Session(SessionError::StoreClosed))?;
        handle.check_thread(op)?;
        let sync = handle.is_sync() || op.is_immediate();
        let work = store_call(&handle, op, json)?;
        if op == StoreOp::Close {
            if let Some(released) = handle.released() {
                STORES.replace(id, released);
            }
        }
        drop(handle);
        runtime::complete(sync, work)?
    })
}

/// Releases store `id` (the JS finalizer, or after `close()` once JS drops the object).
#[no_mangle]
pub extern "C" fn ssd_store_free(id: u64) {
    guarded_void(|| {
        STORES.remove(id);
    });
}

/// SPEC §4 `parseCookie`. Argument: the header as raw UTF-8 (not JSON). Reply: `[[key,
/// value], ...]` as the core returns them (first-seen key order, later duplicates winning);
/// JS assigns them in that order, as the N-API binding sets them.
///
/// # Safety
/// `header` must point to `len` readable bytes for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn ssd_parse_cookie(header: *const u8, len: usize) -> *mut u8 {
    // SAFETY: forwarded caller contract.
    let bytes = unsafe { buffer::input(header, len) };
    guarded("ssd_parse_cookie", || {
        // JS strings always encode to valid UTF-8 here (TextEncoder replaces lone surrogates).
        let header = String::from_utf8_lossy(bytes);
        Reply::json(&cookie::parse_cookie(&header))
    })
}

/// SPEC §4 `serializeCookie`. Argument: `[name, value, WireCookieOptions | null]`.
///
/// # Safety
/// `args` must point to `len` readable bytes for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn ssd_serialize_cookie(args: *const u8, len: usize) -> *mut u8 {
    // SAFETY: forwarded caller contract.
    let json = unsafe { buffer::input(args, len) };
    guarded("ssd_serialize_cookie", || {
        let (name, value, options): (String, String, Option<WireCookieOptions>) =
            parse("serializeCookie", json)?;
        let patch: CookieOptionsPatch = options.unwrap_or_default().into();
        let options = CookieOptions::default().overlay(&patch);
        Reply::json(&cookie::serialize_cookie(&name, &value, &options))
    })
}

/// Opens the channel through which stores over JS adapters call JS (see `js_bridge.rs`).
/// `notify` is a `Deno.UnsafeCallback.threadSafe` taking and returning nothing; call this on
/// the JS thread. Reply: the channel id.
#[no_mangle]
pub extern "C" fn ssd_js_channel_open(notify: Option<js_bridge::Notify>) -> *mut u8 {
    guarded("ssd_js_channel_open", || {
        let notify =
            notify.ok_or_else(|| FfiError::Usage("ssd_js_channel_open needs a callback".into()))?;
        Reply::json(&js_bridge::open_channel(notify)?)
    })
}

/// Closes a channel: its notifier stops and calls still waiting for JS fail. JS calls this when
/// its context unloads (a Deno worker, or a `deno test` module, ends while the process goes on).
#[no_mangle]
pub extern "C" fn ssd_js_channel_close(channel: u64) {
    guarded_void(|| js_bridge::close_channel(channel));
}

/// The queued requests of a channel: `[{"id","bridge","method","args"} | {"release"}, ...]`.
#[no_mangle]
pub extern "C" fn ssd_js_take(channel: u64) -> *mut u8 {
    guarded("ssd_js_take", || {
        let json = js_bridge::take(channel)?;
        // Already JSON: framed as is.
        Ok(Reply::raw_json(&json))
    })
}

/// Settles request `request` of `channel` with `{"ok": value}` or `{"err": "message"}`.
///
/// # Safety
/// `outcome` must point to `len` readable bytes for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn ssd_js_complete(
    channel: u64,
    request: u64,
    outcome: *const u8,
    len: usize,
) {
    // SAFETY: forwarded caller contract.
    let json = unsafe { buffer::input(outcome, len) };
    guarded_void(|| {
        // An unknown channel is a shim bug; there is no one to report it to but stderr.
        if let Err(e) = js_bridge::complete(channel, request, json) {
            eprintln!("@slices-rs/session: {}", e.to_js_message());
        }
    });
}

// ---- OAuth (SPEC §6; oauth/) ------------------------------------------------------------------

/// Opens an OAuth token storage (`NativeOAuthStorage`'s factories). Argument:
/// `{"kind":"memory"}`, `{"kind":"sqlite","path"}`, `{"kind":"postgres","url",
/// "maxConnections"?}` or `{"kind":"js","channel","bridge"}` (a JS object with `getTokens`,
/// `setTokens`, `clearTokens`, kept by JS under that bridge). Reply: `{"id","isSync"}`.
///
/// # Safety
/// `args` must point to `len` readable bytes for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn ssd_oauth_storage_open(args: *const u8, len: usize) -> *mut u8 {
    // SAFETY: forwarded caller contract.
    let json = unsafe { buffer::input(args, len) };
    guarded("ssd_oauth_storage_open", || {
        oauth::storage_open(parse("oauthStorageOpen", json)?)
    })
}

/// Calls operation `op` (see `oauth::StorageOp`) of storage `id` with a JSON array of arguments.
///
/// # Safety
/// As for [`ssd_adapter_call`].
#[no_mangle]
pub unsafe extern "C" fn ssd_oauth_storage_call(
    id: u64,
    op: u32,
    args: *const u8,
    len: usize,
) -> *mut u8 {
    // SAFETY: forwarded caller contract.
    let json = unsafe { buffer::input(args, len) };
    guarded("ssd_oauth_storage_call", || {
        oauth::storage_call(id, op, json)
    })
}

/// Releases storage `id` (the JS finalizer; managers and clients over it keep it alive).
#[no_mangle]
pub extern "C" fn ssd_oauth_storage_free(id: u64) {
    guarded_void(|| {
        oauth::STORAGES.remove(id);
    });
}

/// `withOAuthSession`: `NativeOAuthManager.create`. Argument: `{"store": id, "storage": id,
/// "config", "options", "events": {"channel","bridge"}}`, the events being the JS object whose
/// `onEvent(event)` receives every callback, in order. Reply: `{"id","isSync":false}`.
///
/// # Safety
/// `args` must point to `len` readable bytes for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn ssd_oauth_manager_open(args: *const u8, len: usize) -> *mut u8 {
    // SAFETY: forwarded caller contract.
    let json = unsafe { buffer::input(args, len) };
    guarded("ssd_oauth_manager_open", || {
        oauth::manager_open(parse("oauthManagerOpen", json)?)
    })
}

/// Calls operation `op` (see `oauth::ManagerOp`) of manager `id`. Declared `nonblocking` only.
///
/// # Safety
/// As for [`ssd_adapter_call`].
#[no_mangle]
pub unsafe extern "C" fn ssd_oauth_manager_call(
    id: u64,
    op: u32,
    args: *const u8,
    len: usize,
) -> *mut u8 {
    // SAFETY: forwarded caller contract.
    let json = unsafe { buffer::input(args, len) };
    guarded("ssd_oauth_manager_call", || {
        oauth::manager_call(id, op, json)
    })
}

/// Releases manager `id` (the JS finalizer). Its event bridge is released once its calls in
/// flight are done.
#[no_mangle]
pub extern "C" fn ssd_oauth_manager_free(id: u64) {
    guarded_void(|| {
        oauth::MANAGERS.remove(id);
    });
}

/// `new OAuthClient(config, storage, sessionId)`. Argument: `{"config", "storage": id,
/// "sessionId"}`. Reply: `{"id","isSync":false}`.
///
/// # Safety
/// `args` must point to `len` readable bytes for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn ssd_oauth_client_open(args: *const u8, len: usize) -> *mut u8 {
    // SAFETY: forwarded caller contract.
    let json = unsafe { buffer::input(args, len) };
    guarded("ssd_oauth_client_open", || {
        oauth::client_open(parse("oauthClientOpen", json)?)
    })
}

/// Calls operation `op` (see `oauth::ClientOp`) of client `id`. Declared `nonblocking` only.
///
/// # Safety
/// As for [`ssd_adapter_call`].
#[no_mangle]
pub unsafe extern "C" fn ssd_oauth_client_call(
    id: u64,
    op: u32,
    args: *const u8,
    len: usize,
) -> *mut u8 {
    // SAFETY: forwarded caller contract.
    let json = unsafe { buffer::input(args, len) };
    guarded("ssd_oauth_client_call", || oauth::client_call(id, op, json))
}

/// Releases client `id` (the JS finalizer).
#[no_mangle]
pub extern "C" fn ssd_oauth_client_free(id: u64) {
    guarded_void(|| {
        oauth::CLIENTS.remove(id);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads and frees a reply: `Ok(json)` or `Err(message)`.
    fn take_reply(ptr: *mut u8) -> Result<serde_json::Value, String> {
        assert!(!ptr.is_null());
        let body = unsafe {
            let mut header = [0u8; 8];
            std::ptr::copy_nonoverlapping(ptr, header.as_mut_ptr(), 8);
            let len = u64::from_le_bytes(header) as usize;
            std::slice::from_raw_parts(ptr.add(8), len).to_vec()
        };
        unsafe { ssd_buffer_free(ptr) };
        assert_eq!(body.last(), Some(&0), "a reply ends with a NUL");
        let text = String::from_utf8(body[..body.len() - 1].to_vec()).unwrap();
        match text.strip_prefix('!') {
            Some(error) => Err(error.to_owned()),
            None => Ok(serde_json::from_str(&text).unwrap()),
        }
    }

    fn call(
        f: unsafe extern "C" fn(*const u8, usize) -> *mut u8,
        json: &str,
    ) -> Result<serde_json::Value, String> {
        take_reply(unsafe { f(json.as_ptr(), json.len()) })
    }

    fn store(id: u64, op: StoreOp, json: &str) -> Result<serde_json::Value, String> {
        take_reply(unsafe { ssd_store_call(id, op as u32, json.as_ptr(), json.len()) })
    }

    fn adapter(id: u64, op: AdapterOp, json: &str) -> Result<serde_json::Value, String> {
        take_reply(unsafe { ssd_adapter_call(id, op as u32, json.as_ptr(), json.len()) })
    }

    #[test]
    fn a_memory_store_round_trip() {
        let opened = call(ssd_adapter_open, r#"{"kind":"memory"}"#).unwrap();
        assert_eq!(opened["isSync"], true);
        let adapter_id = opened["id"].as_u64().unwrap();
        let store_json = format!(r#"{{"adapter":{adapter_id},"config":{{}}}}"#);
        let opened = call(ssd_store_open, &store_json).unwrap();
        let store_id = opened["id"].as_u64().unwrap();

        let id = store(
            store_id,
            StoreOp::CreateSession,
            r#"[null,"u1","h1","{\"a\":1}"]"#,
        )
        .unwrap();
        let id = id.as_str().unwrap().to_owned();
        let header = serde_json::to_string(&[format!("slice-session={id}")]).unwrap();
        let session = store(store_id, StoreOp::GetSessionFromCookieHeader, &header).unwrap();
        assert_eq!(session["userId"], "u1");
        assert_eq!(session["data"], r#"{"a":1}"#);
        assert_eq!(adapter(adapter_id, AdapterOp::Size, "[]").unwrap(), 1);

        assert_eq!(store(store_id, StoreOp::Close, "[]").unwrap(), true);
        let closed = store(store_id, StoreOp::GetSession, &format!(r#"["{id}"]"#)).unwrap_err();
        assert!(closed.starts_with("SessionStoreClosedError: "), "{closed}");
        // The cookie methods keep working after close.
        assert_eq!(
            store(store_id, StoreOp::LogoutCookie, "[]").unwrap(),
            "slice-session=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=lax"
        );
        assert_eq!(store(store_id, StoreOp::Close, "[]").unwrap(), false);
        ssd_store_free(store_id);
        assert!(store(store_id, StoreOp::LogoutCookie, "[]").is_err());

        assert_eq!(
            adapter(adapter_id, AdapterOp::Close, "[]").unwrap(),
            serde_json::Value::Null
        );
        let gone = adapter(adapter_id, AdapterOp::Get, r#"["x"]"#).unwrap_err();
        assert_eq!(gone, "AdapterError: the adapter is closed");
        assert_eq!(
            adapter(adapter_id, AdapterOp::Close, "[]").unwrap(),
            serde_json::Value::Null
        );
    }

    #[test]
    fn bad_input_is_an_error_reply_never_a_crash() {
        let e = call(ssd_adapter_open, "{not json").unwrap_err();
        assert!(e.starts_with("TypeError: invalid arguments"), "{e}");
        let e =
            take_reply(unsafe { ssd_store_call(u64::MAX, 0, std::ptr::null(), 0) }).unwrap_err();
        assert!(e.starts_with("SessionStoreClosedError"), "{e}");
        let e =
            take_reply(unsafe { ssd_adapter_call(u64::MAX, 99, b"[]".as_ptr(), 2) }).unwrap_err();
        assert!(e.contains("operation code 99"), "{e}");
        let opened = call(ssd_adapter_open, r#"{"kind":"sqlite","path":":memory:"}"#).unwrap();
        let id = opened["id"].as_u64().unwrap();
        let e = adapter(id, AdapterOp::Clear, "[]").unwrap_err();
        assert_eq!(e, "SessionError: clear() exists only on MemoryAdapter");
        let e = adapter(id, AdapterOp::Get, "[42]").unwrap_err();
        assert!(e.starts_with("TypeError: "), "{e}");
        ssd_adapter_free(id);
    }

    #[test]
    fn a_panic_is_caught() {
        let ptr = guarded("test", || panic!("boom"));
        let e = take_reply(ptr).unwrap_err();
        assert_eq!(e, "AdapterError: internal error: panic in test: boom");
    }

    #[test]
    fn cookies() {
        let header = "a=1; b=%zz; a=2";
        let pairs = take_reply(unsafe { ssd_parse_cookie(header.as_ptr(), header.len()) }).unwrap();
        assert_eq!(pairs, serde_json::json!([["a", "2"], ["b", "%zz"]]));
        let out = call(ssd_serialize_cookie, r#"["n","v",{"maxAge":0,"unset":[]}]"#).unwrap();
        assert_eq!(out, "n=v; Max-Age=0");
    }

    // ---- OAuth ----------------------------------------------------------------------------

    use oauth::{ClientOp, ManagerOp, StorageOp};

    fn oauth_storage(id: u64, op: StorageOp, json: &str) -> Result<serde_json::Value, String> {
        take_reply(unsafe { ssd_oauth_storage_call(id, op as u32, json.as_ptr(), json.len()) })
    }

    fn oauth_manager(id: u64, op: ManagerOp, json: &str) -> Result<serde_json::Value, String> {
        take_reply(unsafe { ssd_oauth_manager_call(id, op as u32, json.as_ptr(), json.len()) })
    }

    fn oauth_client(id: u64, op: ClientOp, json: &str) -> Result<serde_json::Value, String> {
        take_reply(unsafe { ssd_oauth_client_call(id, op as u32, json.as_ptr(), json.len()) })
    }

    extern "C" fn no_notify() {}

    /// Waits (bounded) for the channel's next requests, as JS's drain would take them.
    fn next_requests(channel: u64) -> Vec<serde_json::Value> {
        for _ in 0..500 {
            let taken = take_reply(ssd_js_take(channel)).unwrap();
            let taken = taken.as_array().unwrap().clone();
            if !taken.is_empty() {
                return taken;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("no request arrived on channel {channel}");
    }

    fn settle(channel: u64, request: &serde_json::Value, outcome: &str) {
        let id = request["id"].as_u64().unwrap();
        unsafe { ssd_js_complete(channel, id, outcome.as_ptr(), outcome.len()) };
    }

    const CONFIG: &str = r#"{"clientId":"c","clientSecret":"s","authBaseUrl":"http://127.0.0.1:9","redirectUri":"http://localhost/cb","scopes":["atproto"]}"#;

    #[test]
    fn a_memory_oauth_storage_round_trip() {
        let opened = call(ssd_oauth_storage_open, r#"{"kind":"memory"}"#).unwrap();
        assert_eq!(opened["isSync"], true);
        let id = opened["id"].as_u64().unwrap();
        let tokens = r#"{"accessToken":"a","tokenType":"Bearer","expiresAt":12.7}"#;
        let set = format!(r#"[{tokens},"s1"]"#);
        assert_eq!(
            oauth_storage(id, StorageOp::SetTokens, &set).unwrap(),
            serde_json::Value::Null
        );
        assert_eq!(
            oauth_storage(id, StorageOp::GetTokens, r#"["s1"]"#).unwrap(),
            serde_json::json!({"accessToken":"a","tokenType":"Bearer","expiresAt":12})
        );
        assert_eq!(oauth_storage(id, StorageOp::Size, "[]").unwrap(), 1);
        oauth_storage(id, StorageOp::ClearTokens, r#"["s1"]"#).unwrap();
        assert_eq!(
            oauth_storage(id, StorageOp::GetTokens, r#"["s1"]"#).unwrap(),
            serde_json::Value::Null
        );
        let e = oauth_storage(id, StorageOp::GetTokens, "[1]").unwrap_err();
        assert!(
            e.starts_with("TypeError: invalid arguments for getTokens"),
            "{e}"
        );
        oauth_storage(id, StorageOp::Close, "[]").unwrap();
        ssd_oauth_storage_free(id);
        let e = oauth_storage(id, StorageOp::Size, "[]").unwrap_err();
        assert!(
            e.starts_with("SessionError: no OAuth storage has the handle"),
            "{e}"
        );

        let opened = call(
            ssd_oauth_storage_open,
            r#"{"kind":"sqlite","path":":memory:"}"#,
        )
        .unwrap();
        let id = opened["id"].as_u64().unwrap();
        let e = oauth_storage(id, StorageOp::Size, "[]").unwrap_err();
        assert_eq!(e, "SessionError: size() exists only on MemoryOAuthStorage");
        let e =
            take_reply(unsafe { ssd_oauth_storage_call(id, 42, b"[]".as_ptr(), 2) }).unwrap_err();
        assert!(e.contains("OAuth storage operation code 42"), "{e}");
        ssd_oauth_storage_free(id);
    }

    /// Events reach JS one at a time, each only after the previous one was settled: a logout
    /// whose callback throws is followed (not preceded) by the error event reporting it.
    #[test]
    fn manager_events_are_delivered_in_order_through_the_channel() {
        let channel = js_bridge::open_channel(no_notify).unwrap();
        let adapter = call(ssd_adapter_open, r#"{"kind":"memory"}"#).unwrap()["id"]
            .as_u64()
            .unwrap();
        let store = call(
            ssd_store_open,
            &format!(r#"{{"adapter":{adapter},"config":{{}}}}"#),
        )
        .unwrap()["id"]
            .as_u64()
            .unwrap();
        let storage = call(ssd_oauth_storage_open, r#"{"kind":"memory"}"#).unwrap()["id"]
            .as_u64()
            .unwrap();
        oauth_storage(
            storage,
            StorageOp::SetTokens,
            r#"[{"accessToken":"a","tokenType":"Bearer"},"s1"]"#,
        )
        .unwrap();
        let spec = format!(
            r#"{{"store":{store},"storage":{storage},"config":{CONFIG},"options":{{}},"events":{{"channel":{channel},"bridge":9}}}}"#
        );
        let manager = call(ssd_oauth_manager_open, &spec).unwrap()["id"]
            .as_u64()
            .unwrap();

        // This thread opened the channel: it is "the JS thread", which must never wait on it.
        let e = oauth_manager(manager, ManagerOp::Logout, r#"["s1"]"#).unwrap_err();
        assert!(e.contains("synchronous FFI symbol"), "{e}");

        let pending =
            std::thread::spawn(move || oauth_manager(manager, ManagerOp::Logout, r#"["s1"]"#));
        let first = next_requests(channel);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0]["bridge"], 9);
        assert_eq!(first[0]["method"], "onEvent");
        assert_eq!(
            first[0]["args"],
            serde_json::json!([{"kind":"logout","sessionId":"s1"}])
        );
        settle(channel, &first[0], r#"{"err":"boom"}"#);
        let second = next_requests(channel);
        assert_eq!(
            second[0]["args"],
            serde_json::json!([{"kind":"error","error":"AdapterError: adapter `onEvent` failed: boom"}])
        );
        settle(channel, &second[0], "{}");
        assert_eq!(pending.join().unwrap().unwrap(), serde_json::Value::Null);
        assert_eq!(
            oauth_storage(storage, StorageOp::GetTokens, r#"["s1"]"#).unwrap(),
            serde_json::Value::Null
        );

        // Freeing the manager releases the event bridge, without waking JS.
        ssd_oauth_manager_free(manager);
        let released = take_reply(ssd_js_take(channel)).unwrap();
        assert_eq!(released, serde_json::json!([{"release": 9}]));
        let e = oauth_manager(manager, ManagerOp::Logout, r#"["s1"]"#).unwrap_err();
        assert!(
            e.starts_with("SessionError: no OAuth manager has the handle"),
            "{e}"
        );

        // A bad configuration is refused when the manager is made, as with N-API.
        let spec = spec.replace("http://127.0.0.1:9", "ftp://x");
        let e = call(ssd_oauth_manager_open, &spec).unwrap_err();
        assert!(!e.starts_with("AdapterError"), "{e}");
        ssd_oauth_storage_free(storage);
        ssd_store_free(store);
        ssd_adapter_free(adapter);
        js_bridge::close_channel(channel);
    }

    #[test]
    fn a_client_over_a_js_storage_calls_it_through_the_channel() {
        let channel = js_bridge::open_channel(no_notify).unwrap();
        let storage = call(
            ssd_oauth_storage_open,
            &format!(r#"{{"kind":"js","channel":{channel},"bridge":5}}"#),
        )
        .unwrap();
        assert_eq!(storage["isSync"], false);
        let storage = storage["id"].as_u64().unwrap();
        let spec = format!(r#"{{"config":{CONFIG},"storage":{storage},"sessionId":"s2"}}"#);
        let client = call(ssd_oauth_client_open, &spec).unwrap()["id"]
            .as_u64()
            .unwrap();

        let pending =
            std::thread::spawn(move || oauth_client(client, ClientOp::EnsureValidToken, "[]"));
        let request = next_requests(channel);
        assert_eq!(request[0]["method"], "getTokens");
        assert_eq!(request[0]["args"], serde_json::json!(["s2"]));
        settle(channel, &request[0], r#"{"ok":null}"#);
        let e = pending.join().unwrap().unwrap_err();
        assert!(e.starts_with("OAuthError(no_tokens): "), "{e}");

        let pending = std::thread::spawn(move || oauth_client(client, ClientOp::Logout, "[]"));
        let request = next_requests(channel);
        assert_eq!(request[0]["method"], "clearTokens");
        settle(channel, &request[0], r#"{"err":"storage down"}"#);
        let e = pending.join().unwrap().unwrap_err();
        assert_eq!(
            e,
            "AdapterError: adapter `clearTokens` failed: storage down"
        );

        ssd_oauth_client_free(client);
        ssd_oauth_storage_free(storage);
        let released = take_reply(ssd_js_take(channel)).unwrap();
        assert_eq!(released, serde_json::json!([{"release": 5}]));
        js_bridge::close_channel(channel);
    }
}

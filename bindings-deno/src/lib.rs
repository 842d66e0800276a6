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
//! - `ssd_adapter_call` / `ssd_store_call` are declared twice by JS: synchronous for memory and
//!   SQLite handles (their futures finish on the first poll), `nonblocking` for PostgreSQL and
//!   JS adapters (Deno then runs them on a blocking thread, where we wait on the runtime).

mod buffer;
mod error;
mod handles;
mod js_bridge;
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
pub const ABI_VERSION: u32 = 1;

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
}

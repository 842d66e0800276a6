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
//! - memory and SQLite handles are called synchronously (`ssd_adapter_call`, `ssd_store_call`,
//!   `ssd_oauth_storage_call`: their futures finish on the first poll, on the JS thread);
//!   PostgreSQL and JS-backed handles, OAuth managers and clients are *started*
//!   (`ssd_*_start`): the future runs on the library's runtime and its reply comes back
//!   through the caller's channel (`channel.rs`), which JS long-polls with the one
//!   `nonblocking` export, `ssd_channel_wait`.
//!
//! The exports, by group: ABI and buffers; adapters; stores; cookies; the channel (completions
//! of started calls, and requests to JS from custom adapters, OAuth storages and events,
//! `js_bridge.rs`); OAuth storages, managers and clients (`oauth/`).

mod buffer;
mod channel;
mod error;
mod handles;
mod js_bridge;
mod oauth;
mod ops;
mod registry;
mod runtime;
mod wire;

use std::panic::{catch_unwind, AssertUnwindSafe};

use slices_session_core::cookie::{self, CookieOptions, CookieOptionsPatch};
use slices_session_core::error::SessionError;

use buffer::Reply;
use error::{panic_detail, FfiError, FfiResult};
use handles::{
    adapter_call, store_call, AdapterHandle, AdapterOp, StoreHandle, StoreOp, Work, ADAPTERS,
    STORES,
};
use wire::{AdapterSpec, StoreSpec, WireCookieOptions};

/// Bumped whenever an export, an operation number or a JSON shape changes; jsr/native.ts
/// refuses a library with another number (a stale `SLICES_SESSION_LIB` would otherwise fail in
/// confusing ways).
pub const ABI_VERSION: u32 = 4;

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

/// For the `ssd_*_start` exports: a null pointer when the call goes on (its reply will come
/// through the channel), else its reply: the result of a call done on its first poll, or an
/// error (bad arguments, a stale handle, a failure on the first poll, a caught panic).
fn guarded_start(export: &'static str, body: impl FnOnce() -> FfiResult<Option<Reply>>) -> *mut u8 {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(None)) => std::ptr::null_mut(),
        Ok(Ok(Some(reply))) => reply.into_raw(),
        Ok(Err(error)) => Reply::error(&error).into_raw(),
        Err(payload) => Reply::error(&FfiError::Panic {
            export,
            detail: panic_detail(payload.as_ref()),
        })
        .into_raw(),
    }
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
/// "busyTimeoutMs"?}`, `{"kind":"postgres","url","maxConnections"?,"queryTimeoutMs"?}` or
/// `{"kind":"redis","url","prefix"?,"maxConnections"?,"queryTimeoutMs"?}`. Reply: `{"id","isSync"}`.
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

/// The work of operation `op` of adapter `id`, and whether it completes on its first poll.
/// `close` also releases the handle once done.
fn adapter_work(id: u64, op: u32, json: &[u8]) -> FfiResult<(Work, bool)> {
    let op = AdapterOp::from_code(op)?;
    let Some(handle) = ADAPTERS.get(id) else {
        return match op {
            AdapterOp::Close => Ok((handles::ready(Ok(Reply::null())), true)),
            _ => Err(SessionError::AdapterClosed.into()),
        };
    };
    let sync = handle.shared().is_sync();
    let work = adapter_call(&handle, op, json)?;
    if op != AdapterOp::Close {
        return Ok((work, sync));
    }
    let close: Work = Box::pin(async move {
        let reply = work.await;
        ADAPTERS.remove(id);
        reply
    });
    Ok((close, sync))
}

/// Calls operation `op` (see `AdapterOp`) of adapter `id` with a JSON array of arguments, on
/// this thread (memory and SQLite). `close` also releases the handle; a later call finds it
/// closed (`AdapterError`), a later `close` does nothing.
///
/// # Safety
/// `args` must point to `len` readable bytes for the duration of the call.
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
        let (work, sync) = adapter_work(id, op, json)?;
        runtime::complete(sync, work)?
    })
}

/// Starts operation `op` of adapter `id` (PostgreSQL): polls it once here, and if that does not
/// finish it, runs it on the library's runtime; its reply is then queued on `channel` as call
/// `call` (a number JS chose). Returns null when the call goes on, else its reply (a result,
/// or an error: bad arguments, a stale handle, a failure found on the first poll).
///
/// # Safety
/// `args` must point to `len` readable bytes for the duration of the call (they are parsed
/// before it returns).
#[no_mangle]
pub unsafe extern "C" fn ssd_adapter_start(
    channel: u64,
    call: u64,
    id: u64,
    op: u32,
    args: *const u8,
    len: usize,
) -> *mut u8 {
    // SAFETY: forwarded caller contract.
    let json = unsafe { buffer::input(args, len) };
    guarded_start("ssd_adapter_start", || {
        let (work, _) = adapter_work(id, op, json)?;
        channel::start(channel, call, work, "ssd_adapter_start")
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

/// The work of operation `op` of store `id`, and whether it completes on its first poll.
/// `close` marks the store closed and lets its adapter go, keeping what the cookie methods
/// need. `blocking`: the caller waits for the work on this thread (see `js_bridge`).
fn store_work(id: u64, op: u32, json: &[u8], blocking: bool) -> FfiResult<(Work, bool)> {
    let op = StoreOp::from_code(op)?;
    let handle = STORES
        .get(id)
        .ok_or(FfiError::Session(SessionError::StoreClosed))?;
    if blocking {
        handle.check_thread(op)?;
    }
    let sync = handle.is_sync() || op.is_immediate();
    let work = store_call(&handle, op, json)?;
    if op == StoreOp::Close {
        if let Some(released) = handle.released() {
            STORES.replace(id, released);
        }
    }
    Ok((work, sync))
}

/// Calls operation `op` (see `StoreOp`) of store `id` with a JSON array of arguments, on this
/// thread (memory and SQLite stores, and the operations every store does without its adapter:
/// the cookies and `close`).
///
/// # Safety
/// `args` must point to `len` readable bytes for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn ssd_store_call(id: u64, op: u32, args: *const u8, len: usize) -> *mut u8 {
    // SAFETY: forwarded caller contract.
    let json = unsafe { buffer::input(args, len) };
    guarded("ssd_store_call", || {
        let (work, sync) = store_work(id, op, json, true)?;
        runtime::complete(sync, work)?
    })
}

/// Starts operation `op` of store `id` (PostgreSQL and JS adapters); see
/// [`ssd_adapter_start`].
///
/// # Safety
/// As for [`ssd_adapter_start`].
#[no_mangle]
pub unsafe extern "C" fn ssd_store_start(
    channel: u64,
    call: u64,
    id: u64,
    op: u32,
    args: *const u8,
    len: usize,
) -> *mut u8 {
    // SAFETY: forwarded caller contract.
    let json = unsafe { buffer::input(args, len) };
    guarded_start("ssd_store_start", || {
        let (work, _) = store_work(id, op, json, false)?;
        channel::start(channel, call, work, "ssd_store_start")
    })
}

/// What `ssd_store_reply` found, in word [`REPLY_STATUS`] of the caller's reply words.
const REPLY_NONE: u32 = 0;
const REPLY_SAME: u32 = 1;
const REPLY_FULL: u32 = 2;
const REPLY_ERROR: u32 = 3;
/// A word of core's reply buffer that core leaves unused.
const REPLY_STATUS: usize = 13;

/// The request-path read of synchronous store `id` as a reply of core/src/reply.rs:
/// `kind` 0 reads the session named by the cookie header `text`, 1 the session whose id is
/// `text`, 2 the request without a cookie header. `words` (core's `BUFFER_WORDS` u32) carries
/// the hint in and the timestamps or fingerprint out; its word 13 says what was found: 0 none,
/// 1 the hinted record (timestamps in `words`), 2 the record (the returned buffer holds its
/// JSON), 3 an error (the returned buffer holds it). The returned pointer is null for 0 and 1.
///
/// # Safety
/// `text`/`len` as for [`ssd_adapter_call`]; `words` points to `words_len` u32 that only this
/// call touches while it runs.
#[no_mangle]
pub unsafe extern "C" fn ssd_store_reply(
    id: u64,
    kind: u32,
    text: *const u8,
    len: usize,
    words: *mut u32,
    words_len: usize,
) -> *mut u8 {
    // SAFETY: forwarded caller contract.
    let text = unsafe { buffer::input(text, len) };
    let words: &mut [u32] =
        if words.is_null() || words_len < slices_session_core::reply::BUFFER_WORDS {
            &mut []
        } else {
            // SAFETY: caller's contract.
            unsafe { std::slice::from_raw_parts_mut(words, words_len) }
        };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        store_reply(id, kind, text, &mut *words)
    }));
    let (status, reply) = match outcome {
        Ok(Ok((status, reply))) => (status, reply),
        Ok(Err(error)) => (REPLY_ERROR, Some(Reply::error(&error))),
        Err(payload) => (
            REPLY_ERROR,
            Some(Reply::error(&FfiError::Panic {
                export: "ssd_store_reply",
                detail: panic_detail(payload.as_ref()),
            })),
        ),
    };
    match words.get_mut(REPLY_STATUS) {
        Some(word) => *word = status,
        // No room for the status: JS checked the length, so this is a usage error.
        None => {
            return Reply::error(&FfiError::Usage("the reply words are too short".into()))
                .into_raw()
        }
    }
    reply.map_or(std::ptr::null_mut(), Reply::into_raw)
}

fn store_reply(
    id: u64,
    kind: u32,
    text: &[u8],
    words: &mut [u32],
) -> FfiResult<(u32, Option<Reply>)> {
    use futures::FutureExt;
    use slices_session_core::reply::ReplyBuffer;

    if words.len() < slices_session_core::reply::BUFFER_WORDS {
        return Err(FfiError::Usage("the reply words are too short".into()));
    }
    let handle = STORES
        .get(id)
        .ok_or(FfiError::Session(SessionError::StoreClosed))?;
    if !handle.is_sync() {
        return Err(FfiError::Usage(
            "ssd_store_reply is for synchronous stores".into(),
        ));
    }
    let text =
        std::str::from_utf8(text).map_err(|_| FfiError::Usage("the text is not UTF-8".into()))?;
    let store = handle.shared();
    let buffer = ReplyBuffer::new(words);
    let hint = buffer.hint();
    let answer = match kind {
        0 => store
            .session_reply_from_cookie_header(Some(text), hint)
            .now_or_never(),
        1 => store.session_reply(text, hint).now_or_never(),
        2 => store
            .session_reply_from_cookie_header(None, hint)
            .now_or_never(),
        _ => return Err(FfiError::Usage(format!("unknown reply kind {kind}"))),
    }
    .ok_or_else(|| FfiError::Usage("a synchronous store did not complete at once".into()))??;
    Ok(match buffer.write(answer) {
        None => (REPLY_NONE, None),
        Some(None) => (REPLY_SAME, None),
        Some(Some(json)) => (REPLY_FULL, Some(Reply::json_text(&json))),
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

/// Opens the channel of the calling JS thread (see `channel.rs`): started calls complete
/// through it, and JS objects are called through it. Reply: the channel id.
#[no_mangle]
pub extern "C" fn ssd_channel_open() -> *mut u8 {
    guarded("ssd_channel_open", || Reply::json(&channel::open()))
}

/// The long poll, declared `nonblocking` by JS (one per channel at a time): waits until the
/// channel has items (1), `timeout_ms` passed or `ssd_channel_wake` was called (0), or the
/// channel is closed or unknown (2).
#[no_mangle]
pub extern "C" fn ssd_channel_wait(channel: u64, timeout_ms: u32) -> u32 {
    catch_unwind(|| channel::wait(channel, timeout_ms) as u32)
        .unwrap_or(channel::Wait::Closed as u32)
}

/// Ends the channel's current wait at once (JS has nothing outstanding any more, and a pending
/// wait would keep its event loop alive until the timeout).
#[no_mangle]
pub extern "C" fn ssd_channel_wake(channel: u64) {
    guarded_void(|| {
        if let Ok(channel) = channel::get(channel) {
            channel.wake();
        }
    });
}

/// Everything queued on a channel, in order: `[{"call","ok"} | {"call","err"} |
/// {"id","bridge","method","args"} | {"release"}, ...]`.
#[no_mangle]
pub extern "C" fn ssd_channel_take(channel: u64) -> *mut u8 {
    guarded("ssd_channel_take", || channel::get(channel)?.take())
}

/// Answers request `request` of `channel` with `{"ok": value}` or `{"err": "message"}`.
///
/// # Safety
/// `outcome` must point to `len` readable bytes for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn ssd_channel_reply(
    channel: u64,
    request: u64,
    outcome: *const u8,
    len: usize,
) {
    // SAFETY: forwarded caller contract.
    let json = unsafe { buffer::input(outcome, len) };
    guarded_void(|| match channel::get(channel) {
        Ok(channel) => channel.reply(request, json),
        // An unknown channel is a shim bug; there is no one to report it to but stderr.
        Err(e) => eprintln!("@slices-rs/session: {}", e.to_js_message()),
    });
}

/// Closes a channel: its wait returns, calls still waiting for JS fail, and completions are
/// dropped. JS calls this when its context unloads (a Deno worker, or a `deno test` module,
/// ends while the process goes on).
#[no_mangle]
pub extern "C" fn ssd_channel_close(channel: u64) {
    guarded_void(|| channel::close(channel));
}

// ---- OAuth (SPEC §6; oauth/) ------------------------------------------------------------------

/// Opens an OAuth token storage (`NativeOAuthStorage`'s factories). Argument:
/// `{"kind":"memory"}`, `{"kind":"sqlite","path"}`, `{"kind":"postgres","url",
/// "maxConnections"?, "queryTimeoutMs"?}`, `{"kind":"redis","url","prefix"?,"maxConnections"?,
/// "queryTimeoutMs"?}` or `{"kind":"js","channel","bridge"}` (a JS object with `getTokens`,
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

/// Calls operation `op` (see `oauth::StorageOp`) of storage `id` with a JSON array of
/// arguments, on this thread (memory and SQLite storages).
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

/// Starts operation `op` of storage `id` (PostgreSQL and JS storages); see
/// [`ssd_adapter_start`].
///
/// # Safety
/// As for [`ssd_adapter_start`].
#[no_mangle]
pub unsafe extern "C" fn ssd_oauth_storage_start(
    channel: u64,
    call: u64,
    id: u64,
    op: u32,
    args: *const u8,
    len: usize,
) -> *mut u8 {
    // SAFETY: forwarded caller contract.
    let json = unsafe { buffer::input(args, len) };
    guarded_start("ssd_oauth_storage_start", || {
        let (work, _) = oauth::storage_work(id, op, json, false)?;
        channel::start(channel, call, work, "ssd_oauth_storage_start")
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

/// Starts operation `op` (see `oauth::ManagerOp`) of manager `id`; see [`ssd_adapter_start`].
/// Manager calls may do HTTP and call JS: they are always started.
///
/// # Safety
/// As for [`ssd_adapter_start`].
#[no_mangle]
pub unsafe extern "C" fn ssd_oauth_manager_start(
    channel: u64,
    call: u64,
    id: u64,
    op: u32,
    args: *const u8,
    len: usize,
) -> *mut u8 {
    // SAFETY: forwarded caller contract.
    let json = unsafe { buffer::input(args, len) };
    guarded_start("ssd_oauth_manager_start", || {
        let work = oauth::manager_work(id, op, json)?;
        channel::start(channel, call, work, "ssd_oauth_manager_start")
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

/// Starts operation `op` (see `oauth::ClientOp`) of client `id`; see [`ssd_adapter_start`].
/// Client calls may do HTTP and call a JS storage: they are always started.
///
/// # Safety
/// As for [`ssd_adapter_start`].
#[no_mangle]
pub unsafe extern "C" fn ssd_oauth_client_start(
    channel: u64,
    call: u64,
    id: u64,
    op: u32,
    args: *const u8,
    len: usize,
) -> *mut u8 {
    // SAFETY: forwarded caller contract.
    let json = unsafe { buffer::input(args, len) };
    guarded_start("ssd_oauth_client_start", || {
        let work = oauth::client_work(id, op, json)?;
        channel::start(channel, call, work, "ssd_oauth_client_start")
    })
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
        // The record in the shape users see: `data` is the stored JSON, not a string of it.
        assert_eq!(session["data"], serde_json::json!({"a": 1}));
        assert_eq!(session["handle"], "h1");
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

    type Start = unsafe extern "C" fn(u64, u64, u64, u32, *const u8, usize) -> *mut u8;

    /// Starts a call: `Ok(None)` when it goes on, else its result (done on the first poll).
    fn start(
        f: Start,
        channel: u64,
        call: u64,
        id: u64,
        op: u32,
        json: &str,
    ) -> Result<Option<serde_json::Value>, String> {
        let ptr = unsafe { f(channel, call, id, op, json.as_ptr(), json.len()) };
        if ptr.is_null() {
            Ok(None)
        } else {
            take_reply(ptr).map(Some)
        }
    }

    /// Waits (bounded) for the channel's next items, as JS's long poll and drain take them.
    fn next_items(channel: u64) -> Vec<serde_json::Value> {
        for _ in 0..50 {
            match ssd_channel_wait(channel, 200) {
                1 => {
                    let taken = take_reply(ssd_channel_take(channel)).unwrap();
                    return taken.as_array().unwrap().clone();
                }
                0 => {}
                other => panic!("channel {channel}: wait reported {other}"),
            }
        }
        panic!("nothing arrived on channel {channel}");
    }

    fn settle(channel: u64, request: &serde_json::Value, outcome: &str) {
        let id = request["id"].as_u64().unwrap();
        unsafe { ssd_channel_reply(channel, id, outcome.as_ptr(), outcome.len()) };
    }

    fn channel_open() -> u64 {
        take_reply(ssd_channel_open()).unwrap().as_u64().unwrap()
    }

    #[test]
    fn started_store_calls_complete_through_the_channel() {
        let channel = channel_open();
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
        // A memory store's calls are done on their first poll: the reply comes back at once.
        let create = StoreOp::CreateSession as u32;
        let args = r#"["s1","u1",null,null]"#;
        let created = start(ssd_store_start, channel, 1, store, create, args).unwrap();
        assert_eq!(created, Some(serde_json::json!("s1")));
        let e = start(ssd_store_start, channel, 2, store, create, args).unwrap_err();
        assert!(e.starts_with("SessionError: session id"), "{e}");
        // Bad arguments, an unknown operation, a stale handle or channel: no start at all.
        let get = StoreOp::GetSession as u32;
        let e = start(ssd_store_start, channel, 3, store, get, "[42]").unwrap_err();
        assert!(
            e.starts_with("TypeError: invalid arguments for getSession"),
            "{e}"
        );
        let e = start(ssd_store_start, channel, 3, store, 99, "[]").unwrap_err();
        assert!(e.contains("operation code 99"), "{e}");
        let e = start(ssd_store_start, channel, 3, u64::MAX, get, r#"["x"]"#).unwrap_err();
        assert!(e.starts_with("SessionStoreClosedError"), "{e}");
        let e = start(ssd_store_start, u64::MAX, 3, store, get, r#"["x"]"#).unwrap_err();
        assert!(e.contains("channel"), "{e}");
        // An adapter closed through a started call is released once the call is done.
        let close = AdapterOp::Close as u32;
        let closed = start(ssd_adapter_start, channel, 4, adapter, close, "[]").unwrap();
        assert_eq!(closed, Some(serde_json::Value::Null));
        let gone = self::adapter(adapter, AdapterOp::Get, r#"["x"]"#).unwrap_err();
        assert_eq!(gone, "AdapterError: the adapter is closed");
        // Nothing outstanding: a wait times out, or returns at once when woken.
        assert_eq!(ssd_channel_wait(channel, 10), 0);
        ssd_channel_wake(channel);
        let woken = std::time::Instant::now();
        assert_eq!(ssd_channel_wait(channel, 10_000), 0);
        assert!(woken.elapsed() < std::time::Duration::from_secs(5));
        ssd_store_free(store);
        ssd_channel_close(channel);
        assert_eq!(ssd_channel_wait(channel, 10_000), 2);
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
    /// whose callback throws is followed (not preceded) by the error event reporting it, and
    /// the call completes only after both.
    #[test]
    fn manager_events_are_delivered_in_order_through_the_channel() {
        let channel = channel_open();
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

        let logout = ManagerOp::Logout as u32;
        // Pending on its first event: the reply will come through the channel.
        let started = start(
            ssd_oauth_manager_start,
            channel,
            1,
            manager,
            logout,
            r#"["s1"]"#,
        );
        assert_eq!(started, Ok(None));
        let first = next_items(channel);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0]["bridge"], 9);
        assert_eq!(first[0]["method"], "onEvent");
        assert_eq!(
            first[0]["args"],
            serde_json::json!([{"kind":"logout","sessionId":"s1"}])
        );
        settle(channel, &first[0], r#"{"err":"boom"}"#);
        let second = next_items(channel);
        assert_eq!(
            second[0]["args"],
            serde_json::json!([{"kind":"error","error":"AdapterError: adapter `onEvent` failed: boom"}])
        );
        settle(channel, &second[0], "{}");
        assert_eq!(
            next_items(channel),
            vec![serde_json::json!({"call": 1, "ok": null})]
        );
        assert_eq!(
            oauth_storage(storage, StorageOp::GetTokens, r#"["s1"]"#).unwrap(),
            serde_json::Value::Null
        );

        // Freeing the manager releases the event bridge.
        ssd_oauth_manager_free(manager);
        assert_eq!(next_items(channel), vec![serde_json::json!({"release": 9})]);
        let e = start(
            ssd_oauth_manager_start,
            channel,
            2,
            manager,
            logout,
            r#"["s1"]"#,
        )
        .unwrap_err();
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
        ssd_channel_close(channel);
    }

    #[test]
    fn a_client_over_a_js_storage_calls_it_through_the_channel() {
        let channel = channel_open();
        let storage = call(
            ssd_oauth_storage_open,
            &format!(r#"{{"kind":"js","channel":{channel},"bridge":5}}"#),
        )
        .unwrap();
        assert_eq!(storage["isSync"], false);
        let storage = storage["id"].as_u64().unwrap();
        // Called synchronously on the JS thread (this one opened the channel), the storage
        // would wait for the JS thread: refused.
        let e = oauth_storage(storage, StorageOp::GetTokens, r#"["s2"]"#).unwrap_err();
        assert!(e.contains("synchronous FFI symbol"), "{e}");
        let spec = format!(r#"{{"config":{CONFIG},"storage":{storage},"sessionId":"s2"}}"#);
        let client = call(ssd_oauth_client_open, &spec).unwrap()["id"]
            .as_u64()
            .unwrap();

        let ensure = ClientOp::EnsureValidToken as u32;
        start(ssd_oauth_client_start, channel, 1, client, ensure, "[]").unwrap();
        let request = next_items(channel);
        assert_eq!(request[0]["method"], "getTokens");
        assert_eq!(request[0]["args"], serde_json::json!(["s2"]));
        settle(channel, &request[0], r#"{"ok":null}"#);
        let done = next_items(channel);
        assert_eq!(done[0]["call"], 1);
        let e = done[0]["err"].as_str().unwrap();
        assert!(e.starts_with("OAuthError(no_tokens): "), "{e}");

        let logout = ClientOp::Logout as u32;
        start(ssd_oauth_client_start, channel, 2, client, logout, "[]").unwrap();
        let request = next_items(channel);
        assert_eq!(request[0]["method"], "clearTokens");
        settle(channel, &request[0], r#"{"err":"storage down"}"#);
        assert_eq!(
            next_items(channel),
            vec![
                serde_json::json!({"call": 2, "err": "AdapterError: adapter `clearTokens` failed: storage down"})
            ]
        );

        // A started storage call goes through the channel too.
        let get = StorageOp::GetTokens as u32;
        start(
            ssd_oauth_storage_start,
            channel,
            3,
            storage,
            get,
            r#"["s3"]"#,
        )
        .unwrap();
        let request = next_items(channel);
        assert_eq!(request[0]["method"], "getTokens");
        settle(
            channel,
            &request[0],
            r#"{"ok":{"accessToken":"t","tokenType":"Bearer"}}"#,
        );
        assert_eq!(
            next_items(channel),
            vec![serde_json::json!({"call": 3, "ok": {"accessToken":"t","tokenType":"Bearer"}})]
        );

        ssd_oauth_client_free(client);
        ssd_oauth_storage_free(storage);
        assert_eq!(next_items(channel), vec![serde_json::json!({"release": 5})]);
        ssd_channel_close(channel);
    }
}

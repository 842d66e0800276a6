//! The request-path reads of synchronous stores (memory, SQLite) as plain N-API callbacks.
//!
//! A method of a `#[napi]` class pays napi-rs's bookkeeping on every call (unwrapping `this`
//! with a type-tag check, a borrow scope, argument conversion): about 450 ns here for an empty
//! getter, more than the whole in-memory lookup. These two functions take what they need as
//! plain N-API values instead: a reader (an N-API external made by [`open_reply_reader`]) and
//! the cookie header or the session id. They answer with the reply of core/src/reply.rs.
//!
//! Only npm/session.js calls them, with a reader it keeps private, next to the `Uint32Array`
//! the reader writes into (which keeps that array alive as long as the reader is used).

use std::borrow::Cow;
use std::ffi::{c_char, c_void};
use std::mem::MaybeUninit;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::Arc;

use futures::FutureExt;
use napi::bindgen_prelude::{Object, Uint32Array};
use napi::{sys, Env, Status};
use napi_derive::napi;
use slices_session_core::error::SessionError;
use slices_session_core::reply::{ReplyBuffer, BUFFER_WORDS};
use slices_session_core::store::SessionStore;

use crate::{js_error, NativeStore};

/// Marks a live reader, so that an external from somewhere else is refused, not used.
const READER_TAG: u64 = 0x736c_6963_6573_7264; // "slicesrd"

struct Reader {
    tag: u64,
    store: Arc<SessionStore>,
    words: *mut u32,
}

unsafe extern "C" fn finalize_reader(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    if !data.is_null() {
        // SAFETY: `data` is the Box made in open_reply_reader, finalized once by N-API.
        drop(unsafe { Box::from_raw(data.cast::<Reader>()) });
    }
}

/// A reader of `store` (a synchronous one) writing into `words` (core's BUFFER_WORDS u32 words
/// of their own), as an N-API external.
#[napi(ts_return_type = "object")]
pub fn open_reply_reader(
    env: Env,
    store: &NativeStore,
    words: Uint32Array,
) -> napi::Result<sys::napi_value> {
    if !store.is_sync() {
        return Err(napi::Error::new(
            Status::GenericFailure,
            "SessionError: reply readers exist only for synchronous stores",
        ));
    }
    if words.len() < BUFFER_WORDS {
        return Err(napi::Error::new(
            Status::InvalidArg,
            format!("the reply words need {BUFFER_WORDS} elements"),
        ));
    }
    let reader = Box::new(Reader {
        tag: READER_TAG,
        store: store.shared(),
        words: words.as_ptr().cast_mut(),
    });
    let data = Box::into_raw(reader).cast::<c_void>();
    let mut value = ptr::null_mut();
    // SAFETY: plain N-API call on the JS thread; on failure the Box is taken back.
    let status = unsafe {
        sys::napi_create_external(
            env.raw(),
            data,
            Some(finalize_reader),
            ptr::null_mut(),
            &mut value,
        )
    };
    if status != sys::Status::napi_ok {
        // SAFETY: N-API did not take `data`.
        drop(unsafe { Box::from_raw(data.cast::<Reader>()) });
        return Err(napi::Error::new(
            Status::GenericFailure,
            "AdapterError: could not create the reply reader",
        ));
    }
    Ok(value)
}

/// `{ fromHeader(reader, header), byId(reader, id) }`, each returning null, 1 or JSON text.
#[napi(
    ts_return_type = "{ fromHeader(reader: object, header?: string | null): null | number | string; byId(reader: object, id: string): null | number | string }"
)]
pub fn reply_functions<'env>(env: &'env Env) -> napi::Result<Object<'env>> {
    let mut out = Object::new(env)?;
    for (name, cb) in [
        (
            "fromHeader",
            from_header
                as unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value,
        ),
        ("byId", by_id),
    ] {
        let mut f = ptr::null_mut();
        // SAFETY: plain N-API call on the JS thread.
        let status = unsafe {
            sys::napi_create_function(
                env.raw(),
                name.as_ptr().cast::<c_char>(),
                name.len() as isize,
                Some(cb),
                ptr::null_mut(),
                &mut f,
            )
        };
        if status != sys::Status::napi_ok {
            return Err(napi::Error::new(
                Status::GenericFailure,
                "AdapterError: could not create the reply functions",
            ));
        }
        // SAFETY: `f` is a live function value of this env.
        out.set(name, unsafe {
            napi::bindgen_prelude::Unknown::from_raw_unchecked(env.raw(), f)
        })?;
    }
    Ok(out)
}

enum Key {
    Header,
    Id,
}

unsafe extern "C" fn from_header(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    unsafe { entry(env, info, Key::Header) }
}

unsafe extern "C" fn by_id(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    unsafe { entry(env, info, Key::Id) }
}

/// Runs one call; an error (or a panic) becomes a thrown Error "Class: message", which
/// session.js maps to its error classes. Never unwinds into N-API.
unsafe fn entry(env: sys::napi_env, info: sys::napi_callback_info, key: Key) -> sys::napi_value {
    let outcome = catch_unwind(AssertUnwindSafe(|| unsafe { call(env, info, key) }));
    let message = match outcome {
        Ok(Ok(value)) => return value,
        Ok(Err(message)) => message,
        Err(_) => "AdapterError: internal error (a panic in the native reader)".to_owned(),
    };
    let mut text = message.into_bytes();
    text.retain(|&b| b != 0);
    text.push(0);
    // SAFETY: `text` is NUL-terminated and outlives the call.
    unsafe { sys::napi_throw_error(env, ptr::null(), text.as_ptr().cast::<c_char>()) };
    ptr::null_mut()
}

fn status_error(what: &str) -> String {
    format!("TypeError: {what}")
}

/// Room for most cookie headers and every session id without a heap allocation.
const STACK_TEXT: usize = 2048;

/// A JS string argument as Rust text, in `stack` when it fits; None for undefined or null when
/// `optional`.
unsafe fn string_arg<'a>(
    env: sys::napi_env,
    value: sys::napi_value,
    optional: bool,
    name: &str,
    stack: &'a mut [MaybeUninit<u8>; STACK_TEXT],
) -> Result<Option<Cow<'a, str>>, String> {
    let unreadable = || status_error(&format!("{name} could not be read"));
    let mut kind = 0;
    // SAFETY: N-API calls on the JS thread with this call's values; buffers are as long as
    // the sizes given.
    unsafe {
        if sys::napi_typeof(env, value, &mut kind) != sys::Status::napi_ok {
            return Err(unreadable());
        }
        if optional && (kind == sys::ValueType::napi_undefined || kind == sys::ValueType::napi_null)
        {
            return Ok(None);
        }
        if kind != sys::ValueType::napi_string {
            return Err(status_error(&format!("{name} must be a string")));
        }
        let mut written = 0usize;
        if sys::napi_get_value_string_utf8(
            env,
            value,
            stack.as_mut_ptr().cast::<c_char>(),
            STACK_TEXT,
            &mut written,
        ) != sys::Status::napi_ok
        {
            return Err(unreadable());
        }
        // N-API cuts a string that does not fit before the last whole character that does, so
        // it may leave up to 3 bytes unused besides the NUL: only a write that ends further
        // from the end than that is surely the whole string.
        if written + 4 < STACK_TEXT {
            // N-API writes UTF-8 (lone surrogates as U+FFFD), so this does not fail.
            // SAFETY: N-API initialized the first `written` bytes.
            let text = std::slice::from_raw_parts(stack.as_ptr().cast::<u8>(), written);
            return std::str::from_utf8(text)
                .map(|s| Some(Cow::Borrowed(s)))
                .map_err(|_| unreadable());
        }
        let mut len = 0usize;
        if sys::napi_get_value_string_utf8(env, value, ptr::null_mut(), 0, &mut len)
            != sys::Status::napi_ok
        {
            return Err(unreadable());
        }
        let mut bytes = vec![0u8; len + 1];
        if sys::napi_get_value_string_utf8(
            env,
            value,
            bytes.as_mut_ptr().cast::<c_char>(),
            bytes.len(),
            &mut written,
        ) != sys::Status::napi_ok
        {
            return Err(unreadable());
        }
        bytes.truncate(written);
        String::from_utf8(bytes)
            .map(|s| Some(Cow::Owned(s)))
            .map_err(|_| unreadable())
    }
}

unsafe fn call(
    env: sys::napi_env,
    info: sys::napi_callback_info,
    key: Key,
) -> Result<sys::napi_value, String> {
    let mut argc = 2usize;
    let mut argv = [ptr::null_mut(); 2];
    let mut data = ptr::null_mut();
    // SAFETY: N-API calls on the JS thread; `argv` holds `argc` slots (missing ones read as
    // undefined).
    unsafe {
        if sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
        ) != sys::Status::napi_ok
        {
            return Err(status_error("bad arguments"));
        }
        let mut kind = 0;
        if sys::napi_typeof(env, argv[0], &mut kind) != sys::Status::napi_ok
            || kind != sys::ValueType::napi_external
            || sys::napi_get_value_external(env, argv[0], &mut data) != sys::Status::napi_ok
            || data.is_null()
        {
            return Err(status_error("the first argument must be a reply reader"));
        }
    }
    // SAFETY: externals reach here only from session.js, which passes its own readers; the tag
    // refuses any other external whose data happens to be readable.
    let reader = unsafe { &*data.cast::<Reader>() };
    if reader.tag != READER_TAG {
        return Err(status_error("the first argument must be a reply reader"));
    }
    let mut stack = [MaybeUninit::<u8>::uninit(); STACK_TEXT];
    // SAFETY: the words are the reader's Uint32Array (BUFFER_WORDS long, checked at open),
    // kept alive by session.js; only this thread touches them, and only during this call.
    let words = unsafe { std::slice::from_raw_parts_mut(reader.words, BUFFER_WORDS) };
    let buffer = ReplyBuffer::new(words);
    let hint = buffer.hint();
    let out = match key {
        Key::Header => {
            let header = unsafe { string_arg(env, argv[1], true, "header", &mut stack) }?;
            run_now(
                reader
                    .store
                    .session_reply_from_cookie_header(header.as_deref(), hint),
            )
        }
        Key::Id => {
            let id = unsafe { string_arg(env, argv[1], false, "sessionId", &mut stack) }?;
            run_now(
                reader
                    .store
                    .session_reply(id.as_deref().unwrap_or_default(), hint),
            )
        }
    }
    .map_err(|e| js_error(e).reason)?;
    let mut value = ptr::null_mut();
    // SAFETY: N-API calls on the JS thread.
    let status = unsafe {
        match buffer.write(out) {
            None => sys::napi_get_null(env, &mut value),
            Some(None) => sys::napi_create_uint32(env, 1, &mut value),
            // JSON text is mostly ASCII, which V8 copies as Latin-1 without decoding UTF-8.
            Some(Some(json)) if json.is_ascii() => sys::napi_create_string_latin1(
                env,
                json.as_ptr().cast::<c_char>(),
                json.len() as isize,
                &mut value,
            ),
            Some(Some(json)) => sys::napi_create_string_utf8(
                env,
                json.as_ptr().cast::<c_char>(),
                json.len() as isize,
                &mut value,
            ),
        }
    };
    if status != sys::Status::napi_ok {
        return Err("AdapterError: could not hand the session to JavaScript".to_owned());
    }
    Ok(value)
}

/// A synchronous store's future, completed now.
fn run_now<T>(
    fut: impl std::future::Future<Output = slices_session_core::error::Result<T>>,
) -> slices_session_core::error::Result<T> {
    fut.now_or_never().unwrap_or_else(|| {
        Err(SessionError::Internal(
            "a synchronous store did not complete at once".into(),
        ))
    })
}

//! The buffers that cross the boundary.
//!
//! Input: JS passes a `Uint8Array` as (pointer, length); we only borrow it for the duration of
//! the call (every argument is parsed into owned values before any future runs).
//!
//! Output: one heap allocation per reply, owned by JS until it calls `ssd_buffer_free`:
//!
//! ```text
//! [ body length: u64 little-endian ][ body ][ 0 ]
//! ```
//!
//! The body is UTF-8 text: the JSON result, or `!` followed by the error text
//! `"<Class>: <message>"` (no JSON value starts with `!`). The trailing NUL lets JS read the
//! body with one `Deno.UnsafePointerView.getCString(pointer, 8)` (the fastest way to a string;
//! JSON output never contains a raw NUL, and one in an error message is replaced). The length
//! lives in the buffer so that the free function needs only the pointer.

use serde::Serialize;
use slices_session_core::session::{sessions_to_js_json, SessionData};

use crate::error::{FfiError, FfiResult};

/// First byte of an error body.
pub const ERROR_MARK: u8 = b'!';
const HEADER: usize = 8;

/// A framed reply, ready to hand to JS.
#[derive(Debug)]
pub struct Reply(Vec<u8>);

impl Reply {
    fn start(capacity: usize) -> Vec<u8> {
        let mut buf = Vec::with_capacity(HEADER + capacity + 1);
        buf.extend_from_slice(&[0; HEADER]);
        buf
    }

    fn finish(mut buf: Vec<u8>) -> Reply {
        buf.push(0);
        let body = (buf.len() - HEADER) as u64;
        buf[..HEADER].copy_from_slice(&body.to_le_bytes());
        Reply(buf)
    }

    /// `value` as JSON, written straight into the reply (no intermediate string).
    pub fn json<T: Serialize + ?Sized>(value: &T) -> FfiResult<Reply> {
        let mut buf = Self::start(256);
        serde_json::to_writer(&mut buf, value).map_err(FfiError::Encode)?;
        Ok(Self::finish(buf))
    }

    /// A session as users see it (`SessionData::to_js_json`), or `null`: JS then parses the
    /// record once, `data` included, into its final shape.
    pub fn session(session: Option<SessionData>) -> FfiResult<Reply> {
        match session {
            Some(s) => Ok(Self::json_text(&s.to_js_json()?)),
            None => Ok(Self::null()),
        }
    }

    /// Sessions as one JSON array of [`Reply::session`] records.
    pub fn sessions(sessions: &[SessionData]) -> FfiResult<Reply> {
        Ok(Self::json_text(&sessions_to_js_json(sessions)?))
    }

    /// A body that already is JSON text.
    pub(crate) fn json_text(json: &str) -> Reply {
        let mut buf = Self::start(json.len());
        buf.extend_from_slice(json.as_bytes());
        Self::finish(buf)
    }

    /// The JSON `null`.
    pub fn null() -> Reply {
        let mut buf = Self::start(4);
        buf.extend_from_slice(b"null");
        Self::finish(buf)
    }

    /// A body written by `write` (which must write JSON).
    pub fn write(write: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>) -> FfiResult<Reply> {
        let mut buf = Self::start(256);
        write(&mut buf).map_err(FfiError::Encode)?;
        Ok(Self::finish(buf))
    }

    pub fn error(error: &FfiError) -> Reply {
        // A NUL would cut the text short on the JS side.
        let text = error.to_js_message().replace('\0', "\u{FFFD}");
        let mut buf = Self::start(1 + text.len());
        buf.push(ERROR_MARK);
        buf.extend_from_slice(text.as_bytes());
        Self::finish(buf)
    }

    /// Leaks the reply to JS; `free` takes it back.
    pub fn into_raw(self) -> *mut u8 {
        Box::into_raw(self.0.into_boxed_slice()).cast::<u8>()
    }

    /// The body without the trailing NUL (for a reply that is not an error: its JSON).
    pub fn json_body(&self) -> &[u8] {
        &self.0[HEADER..self.0.len() - 1]
    }
}

/// Frees a reply made by [`Reply::into_raw`]. A null pointer is ignored.
///
/// # Safety
/// `ptr` must come from `Reply::into_raw` and not have been freed already.
pub unsafe fn free(ptr: *mut u8) {
    if ptr.is_null() {
        return;
    }
    let mut header = [0u8; HEADER];
    // SAFETY: a reply starts with HEADER readable bytes (caller's contract).
    unsafe { std::ptr::copy_nonoverlapping(ptr, header.as_mut_ptr(), HEADER) };
    let total = HEADER + u64::from_le_bytes(header) as usize;
    // SAFETY: the allocation was a boxed slice of exactly `total` bytes (see `finish`).
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, total)) });
}

/// Borrows a JS buffer. Deno passes a null pointer for an empty `Uint8Array`.
///
/// # Safety
/// `ptr` must point to `len` readable bytes that stay untouched during the call.
pub unsafe fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: caller's contract.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_length_prefixed_and_nul_terminated() {
        let reply = Reply::json(&serde_json::json!({"a": "\u{0}"})).unwrap();
        let bytes = reply.0.clone();
        let body = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(body, bytes.len() - 8);
        assert_eq!(reply.json_body(), br#"{"a":"\u0000"}"#);
        assert_eq!(bytes.last(), Some(&0));
        let raw = reply.into_raw();
        unsafe { free(raw) };
        unsafe { free(std::ptr::null_mut()) };
    }

    #[test]
    fn an_error_reply_is_marked_and_has_no_inner_nul() {
        let reply = Reply::error(&FfiError::Usage("x\0y".into()));
        assert_eq!(reply.json_body(), "!SessionError: x\u{FFFD}y".as_bytes());
    }

    #[test]
    fn an_empty_input_may_be_null() {
        assert!(unsafe { input(std::ptr::null(), 0) }.is_empty());
    }
}

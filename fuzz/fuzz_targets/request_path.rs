//! The request path (`SessionStore::get_session_from_cookie_header`) on a MemoryAdapter.
#![no_main]

use libfuzzer_sys::fuzz_target;

// Each target uses half of the shared bodies.
#[allow(dead_code)]
#[path = "../common.rs"]
mod common;

fuzz_target!(|data: &[u8]| common::request_path(data));

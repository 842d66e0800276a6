//! `parseCookie` (SPEC §4) on arbitrary bytes, decoded lossily as a server would.
#![no_main]

use libfuzzer_sys::fuzz_target;

// Each target uses half of the shared bodies.
#[allow(dead_code)]
#[path = "../common.rs"]
mod common;

fuzz_target!(|data: &[u8]| common::cookie_parse(data));

//! The bodies of the fuzz targets, shared by the libFuzzer binaries (fuzz_targets/*.rs) and
//! by the regular test that replays the committed corpus (core/tests/fuzz_corpus.rs), so that
//! `cargo test` runs every corpus file through exactly what the fuzzer runs.
//!
//! Each body panics (a fuzzer "crash") when an invariant breaks: a panic, a failed request
//! path, or a result that disagrees with the reference lookup.

use std::sync::Arc;

use futures::FutureExt;
use slices_session_core::cookie::{
    cookie_value, decode_uri_component, encode_uri_component, js_trim, parse_cookie,
    serialize_cookie, CookieOptions,
};
use slices_session_core::memory::MemoryAdapter;
use slices_session_core::session::SessionData;
use slices_session_core::store::{SessionStore, StoreConfig};

/// `parseCookie` on any bytes (decoded lossily, as a server hands over a non-UTF-8 header).
pub fn cookie_parse(data: &[u8]) {
    let header = String::from_utf8_lossy(data);
    let parsed = parse_cookie(&header);
    for (i, (key, value)) in parsed.iter().enumerate() {
        assert!(!key.is_empty(), "an empty key was returned");
        assert_eq!(js_trim(key), key, "a key was not trimmed");
        assert!(!key.contains(';'), "a key contains ';'");
        assert!(
            parsed[..i].iter().all(|(k, _)| k != key),
            "key {key:?} returned twice"
        );
        // The request path's lookup agrees with the full parse.
        assert_eq!(cookie_value(&header, key).as_deref(), Some(value.as_str()));
    }
    // What we write, we read back: the first pair, serialized as a browser sends it back
    // (name=value only: parsed as a Cookie header, attributes would be cookies too) and parsed.
    if let Some((key, value)) = parsed.first() {
        let written = serialize_cookie(key, value, &CookieOptions::default());
        let reread = parse_cookie(&written);
        assert_eq!(
            reread.first(),
            Some(&(encode_uri_component(key), value.clone())),
            "serialize then parse of {key:?}={value:?} gave {reread:?}"
        );
    }
    for piece in header.split(';') {
        if let Some(decoded) = decode_uri_component(piece) {
            assert!(decoded.len() <= piece.len(), "decoding grew the text");
        }
    }
}

/// Sessions stored before each request: `(id, user)`. Ids that need encoding in a cookie,
/// and one that looks padded (cookie values are trimmed, so it only matches encoded).
const LIVE: [(&str, &str); 3] = [
    ("0b7e0a5c-3c4f-4d43-9d2f-5a3e0c9a1b2c", "alice"),
    ("é; =%\"x", "bob"),
    ("  padded  ", "carol"),
];
const EXPIRED: &str = "00000000-0000-4000-8000-000000000000";
/// Cookie names: the default, a `__Host-` name, and one that is encoded in the header.
const NAMES: [&str; 3] = ["slice-session", "__Host-sid", "my session"];

fn ready<F: std::future::Future>(f: F) -> F::Output {
    match f.now_or_never() {
        Some(out) => out,
        None => panic!("a MemoryAdapter future was not ready on its first poll"),
    }
}

fn store(name: &str) -> SessionStore {
    let adapter = Arc::new(MemoryAdapter::new());
    let config = StoreConfig {
        cookie_name: name.to_owned(),
        ..StoreConfig::default()
    };
    let store = match SessionStore::new(adapter, config) {
        Ok(store) => store,
        Err(e) => panic!("store configuration rejected: {e}"),
    };
    for (id, user) in LIVE {
        let created = ready(store.create_session(Some(id.to_owned()), user.to_owned(), None, None));
        assert_eq!(created.ok().as_deref(), Some(id));
    }
    let expired = SessionData {
        session_id: EXPIRED.to_owned(),
        user_id: "mallory".to_owned(),
        handle: None,
        is_authenticated: true,
        data: None,
        created_at: 0,
        expires_at: 1,
        last_accessed_at: 0,
    };
    assert!(ready(store.adapter().set(EXPIRED, &expired)).is_ok());
    store
}

/// The request path on any header bytes, for three cookie names: never an error, and a
/// session exactly when the header's cookie (as `parseCookie` reads it) names a live one.
pub fn request_path(data: &[u8]) {
    let header = String::from_utf8_lossy(data);
    for name in NAMES {
        let store = store(name);
        let wanted = cookie_value(&header, &encode_uri_component(name));
        let expected_user = LIVE
            .iter()
            .find(|(id, _)| wanted.as_deref() == Some(*id))
            .map(|(_, user)| *user);

        let got = match ready(store.get_session_from_cookie_header(Some(&header))) {
            Ok(got) => got,
            Err(e) => panic!("the request path failed on {header:?}: {e}"),
        };
        assert_eq!(
            got.as_ref()
                .map(|s| (s.session_id.as_str(), s.user_id.as_str())),
            expected_user.and_then(|user| wanted.as_deref().map(|id| (id, user))),
            "cookie {name:?} in header {header:?}"
        );

        let user = match ready(store.current_user(Some(&header))) {
            Ok(user) => user,
            Err(e) => panic!("getCurrentUser failed on {header:?}: {e}"),
        };
        assert_eq!(user.is_authenticated, expected_user.is_some());
        assert_eq!(user.sub.as_deref(), expected_user);

        // The header the store itself writes for the same value finds the same session.
        if let Some(id) = wanted.as_deref() {
            let cookie = store.session_cookie(id);
            let pair = cookie.split("; ").next().unwrap_or_default();
            let again = ready(store.get_session_from_cookie_header(Some(pair)));
            assert_eq!(
                again.ok().flatten().map(|s| s.user_id),
                expected_user.map(str::to_owned),
                "the store's own cookie for {id:?}"
            );
        }
        // No header at all.
        assert!(matches!(
            ready(store.get_session_from_cookie_header(None)),
            Ok(None)
        ));
    }
}

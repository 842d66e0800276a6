//! Property tests of the cookie parser and the request path (issue 6) that core/tests/cookie.rs
//! does not already have: arbitrary BYTES (decoded lossily, as a server hands over a header
//! that is not UTF-8) through every parsing function, and the store's request path
//! (`SessionStore::get_session_from_cookie_header`) on hostile headers and on every id.

use std::sync::Arc;

use futures::FutureExt;
use proptest::prelude::*;
use slices_session_core::cookie::{cookie_value, decode_uri_component, js_trim, parse_cookie};
use slices_session_core::memory::MemoryAdapter;
use slices_session_core::store::{SessionStore, StoreConfig};

/// Memory-adapter futures complete on their first poll.
fn ready<F: std::future::Future>(f: F) -> F::Output {
    f.now_or_never()
        .expect("a MemoryAdapter future was not ready on its first poll")
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Raw header bytes: anything, or mostly cookie syntax with stray high bytes.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        prop::collection::vec(
            prop::sample::select(
                b"ab=; %\t\"\x00\x7f\xc3\xa9\xe2\x82\xff\xfeAF09slice-session".to_vec()
            ),
            0..120
        ),
    ]
}

fn store_with(adapter: Arc<MemoryAdapter>, cookie_name: &str) -> SessionStore {
    let config = StoreConfig {
        cookie_name: cookie_name.to_owned(),
        ..StoreConfig::default()
    };
    SessionStore::new(adapter, config).expect("a valid store configuration")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Lossily decoded bytes: parse never panics, keys are trimmed, non-empty and unique,
    /// and `cookie_value` (the request path's lookup) agrees with `parse_cookie` for every key.
    #[test]
    fn parse_never_panics_on_lossy_bytes(bytes in header_bytes()) {
        let header = lossy(&bytes);
        let parsed = parse_cookie(&header);
        for (i, (key, value)) in parsed.iter().enumerate() {
            prop_assert!(!key.is_empty());
            prop_assert_eq!(js_trim(key), key.as_str());
            prop_assert!(parsed[..i].iter().all(|(k, _)| k != key));
            let found = cookie_value(&header, key);
            prop_assert_eq!(found.as_deref(), Some(value.as_str()));
        }
        for piece in header.split(';') {
            let _ = decode_uri_component(piece);
        }
    }

    /// The request path never fails on any header, and finds nothing in an empty store.
    #[test]
    fn request_path_never_fails_on_lossy_bytes(bytes in header_bytes()) {
        let store = store_with(Arc::new(MemoryAdapter::new()), "slice-session");
        let header = lossy(&bytes);
        prop_assert_eq!(ready(store.get_session_from_cookie_header(Some(&header))).ok(), Some(None));
        let user = ready(store.current_user(Some(&header))).ok();
        prop_assert_eq!(user.map(|u| u.is_authenticated), Some(false));
    }

    /// Any session id (any Unicode) and any valid cookie name: the store's own cookie, sent
    /// back as a browser would (the part before the first "; "), finds exactly that session,
    /// also with junk cookies around it.
    #[test]
    fn every_id_round_trips_through_the_cookie(
        id in any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
        other in any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
        name in "[A-Za-z0-9_.!~*'()-]{1,16}|[a-z]{1,4}[ é;=%]{1,3}[a-z]{0,4}",
        junk in prop::collection::vec("[a-z]{1,6}=[^;]{0,10}", 0..4),
    ) {
        prop_assume!(id != other);
        let adapter = Arc::new(MemoryAdapter::new());
        let store = store_with(adapter, &name);
        prop_assert_eq!(ready(store.create_session(Some(id.clone()), "u".into(), None, None)).ok(), Some(id.clone()));
        prop_assert_eq!(ready(store.create_session(Some(other.clone()), "v".into(), None, None)).ok(), Some(other.clone()));
        let cookie = store.session_cookie(&id);
        let pair = cookie.split("; ").next().unwrap_or_default().to_owned();
        // Junk cookies before and after; none of them is named like the session cookie.
        let key = pair.split('=').next().unwrap_or_default();
        let junk: Vec<String> = junk.into_iter().filter(|j| j.split('=').next() != Some(key)).collect();
        let header = [junk.clone(), vec![pair], junk].concat().join("; ");
        let found = ready(store.get_session_from_cookie_header(Some(&header)));
        prop_assert_eq!(found.ok().flatten().map(|s| (s.session_id, s.user_id)), Some((id, "u".to_owned())));
    }

    /// A value that is not exactly a stored id (a prefix, a suffix, an extension, a case
    /// change) finds nothing, even when the store holds the real id.
    #[test]
    fn near_misses_of_a_valid_id_find_nothing(cut in 1usize..36, extra in "[0-9a-zA-Z-]{1,4}") {
        let adapter = Arc::new(MemoryAdapter::new());
        let store = store_with(adapter, "slice-session");
        let id = ready(store.create_session(None, "u".into(), None, None)).expect("create");
        prop_assert_eq!(id.len(), 36);
        let mut candidates = vec![
            id[..cut].to_owned(),
            id[cut..].to_owned(),
            format!("{id}{extra}"),
            format!("{extra}{id}"),
            id.to_uppercase(),
        ];
        candidates.retain(|c| *c != id);
        for candidate in candidates {
            let header = format!("slice-session={candidate}");
            prop_assert_eq!(ready(store.get_session_from_cookie_header(Some(&header))).ok(), Some(None), "{}", candidate);
        }
        let header = format!("slice-session={id}");
        prop_assert_eq!(ready(store.get_session_from_cookie_header(Some(&header))).ok().flatten().map(|s| s.session_id), Some(id));
    }
}

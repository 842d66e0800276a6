//! SPEC §4: cookie serialization, parsing and validation.

use proptest::prelude::*;
use slices_session_core::cookie::{
    cookie_value, decode_uri_component, encode_uri_component, js_trim, parse_cookie,
    serialize_cookie, validate_cookie_options, CookieOptions, CookieOptionsPatch,
};
use slices_session_core::error::SessionError;

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn with_max_age(max_age: f64) -> CookieOptions {
    CookieOptions {
        max_age: Some(max_age),
        ..CookieOptions::default()
    }
}

fn validation_message(name: &str, options: &CookieOptions) -> String {
    match validate_cookie_options(name, options) {
        Err(SessionError::InvalidCookieOptions(msg)) => msg,
        other => panic!("expected InvalidCookieOptions for {name:?} {options:?}, got {other:?}"),
    }
}

// ---------------------------------------------------------------- serializeCookie

#[test]
fn default_session_cookie_is_byte_exact() {
    let options = CookieOptions {
        max_age: Some(2_592_000.0),
        ..CookieOptions::session_defaults()
    };
    let id = "0b7e0a5c-3c4f-4d43-9d2f-5a3e0c9a1b2c";
    assert_eq!(
        serialize_cookie("slice-session", id, &options),
        format!("slice-session={id}; Max-Age=2592000; Path=/; HttpOnly; Secure; SameSite=lax")
    );
}

#[test]
fn logout_cookie_has_empty_value_and_max_age_zero() {
    let options = CookieOptions {
        max_age: Some(0.0),
        ..CookieOptions::session_defaults()
    };
    assert_eq!(
        serialize_cookie("slice-session", "", &options),
        "slice-session=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=lax"
    );
}

#[test]
fn session_defaults_are_the_originals() {
    assert_eq!(
        CookieOptions::session_defaults(),
        CookieOptions {
            http_only: Some(true),
            secure: Some(true),
            same_site: Some("lax".into()),
            domain: None,
            path: Some("/".into()),
            max_age: None,
        }
    );
}

#[test]
fn every_attribute_in_the_fixed_order() {
    let options = CookieOptions {
        http_only: Some(true),
        secure: Some(true),
        same_site: Some("strict".into()),
        domain: Some("example.com".into()),
        path: Some("/app".into()),
        max_age: Some(60.0),
    };
    assert_eq!(
        serialize_cookie("n", "v", &options),
        "n=v; Max-Age=60; Domain=example.com; Path=/app; HttpOnly; Secure; SameSite=strict"
    );
}

#[test]
fn each_attribute_alone() {
    let base = CookieOptions::default();
    assert_eq!(serialize_cookie("n", "v", &base), "n=v");
    assert_eq!(
        serialize_cookie("n", "v", &with_max_age(5.0)),
        "n=v; Max-Age=5"
    );
    let domain = CookieOptions {
        domain: Some("a.test".into()),
        ..base.clone()
    };
    assert_eq!(serialize_cookie("n", "v", &domain), "n=v; Domain=a.test");
    let path = CookieOptions {
        path: Some("/p".into()),
        ..base.clone()
    };
    assert_eq!(serialize_cookie("n", "v", &path), "n=v; Path=/p");
    let http_only = CookieOptions {
        http_only: Some(true),
        ..base.clone()
    };
    assert_eq!(serialize_cookie("n", "v", &http_only), "n=v; HttpOnly");
    let secure = CookieOptions {
        secure: Some(true),
        ..base.clone()
    };
    assert_eq!(serialize_cookie("n", "v", &secure), "n=v; Secure");
    let same_site = CookieOptions {
        same_site: Some("none".into()),
        ..base
    };
    assert_eq!(serialize_cookie("n", "v", &same_site), "n=v; SameSite=none");
}

#[test]
fn false_flags_are_not_written() {
    let options = CookieOptions {
        http_only: Some(false),
        secure: Some(false),
        ..CookieOptions::default()
    };
    assert_eq!(serialize_cookie("n", "v", &options), "n=v");
}

#[test]
fn max_age_is_printed_as_javascript_prints_numbers() {
    let cases: &[(f64, &str)] = &[
        (0.0, "0"),
        (-0.0, "0"),
        (-1.0, "-1"),
        (1.5, "1.5"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (0.1 + 0.2, "0.30000000000000004"),
        (2_592_000.0, "2592000"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "Infinity"),
        (f64::NEG_INFINITY, "-Infinity"),
    ];
    for &(n, printed) in cases {
        assert_eq!(
            serialize_cookie("n", "v", &with_max_age(n)),
            format!("n=v; Max-Age={printed}"),
            "maxAge {n:?}"
        );
    }
}

#[test]
fn empty_domain_and_path_are_skipped() {
    let options = CookieOptions {
        domain: Some(String::new()),
        path: Some(String::new()),
        same_site: Some(String::new()),
        ..CookieOptions::default()
    };
    assert_eq!(serialize_cookie("n", "v", &options), "n=v");
}

#[test]
fn same_site_is_printed_as_given() {
    for given in ["Strict", "LAX", "None", "lax", "whatever"] {
        let options = CookieOptions {
            same_site: Some(given.into()),
            ..CookieOptions::default()
        };
        assert_eq!(
            serialize_cookie("n", "v", &options),
            format!("n=v; SameSite={given}")
        );
    }
}

#[test]
fn name_and_value_are_uri_component_encoded() {
    let none = CookieOptions::default();
    assert_eq!(
        serialize_cookie("my session", "a b;c=d", &none),
        "my%20session=a%20b%3Bc%3Dd"
    );
    assert_eq!(serialize_cookie("é", "é", &none), "%C3%A9=%C3%A9");
    assert_eq!(serialize_cookie("n", "😀", &none), "n=%F0%9F%98%80");
    assert_eq!(serialize_cookie("n", "\"q\"", &none), "n=%22q%22");
    assert_eq!(serialize_cookie("n", "", &none), "n=");
}

#[test]
fn encode_uri_component_matches_javascript() {
    assert_eq!(
        encode_uri_component("AZaz09-_.!~*'()"),
        "AZaz09-_.!~*'()",
        "unreserved characters pass through"
    );
    assert_eq!(
        encode_uri_component(" ;,/?:@&=+$#%\"<>[]{}|\\^`"),
        "%20%3B%2C%2F%3F%3A%40%26%3D%2B%24%23%25%22%3C%3E%5B%5D%7B%7D%7C%5C%5E%60"
    );
    assert_eq!(encode_uri_component("é"), "%C3%A9");
    assert_eq!(encode_uri_component("€"), "%E2%82%AC");
    assert_eq!(encode_uri_component("😀"), "%F0%9F%98%80");
    assert_eq!(encode_uri_component("\0\n\u{7f}"), "%00%0A%7F");
    assert_eq!(encode_uri_component(""), "");
}

// ---------------------------------------------------------------- decodeURIComponent

#[test]
fn decode_uri_component_valid_escapes() {
    let ok = |s: &str| decode_uri_component(s).map(|c| c.into_owned());
    assert_eq!(ok("plain"), Some("plain".into()));
    assert_eq!(ok(""), Some(String::new()));
    assert_eq!(ok("%41"), Some("A".into()));
    assert_eq!(ok("%3B%2C%2F%3F%23%26%3D%2B%24"), Some(";,/?#&=+$".into()));
    assert_eq!(ok("%C3%A9"), Some("é".into()));
    assert_eq!(ok("%e2%82%ac"), Some("€".into()), "lower-case hex");
    assert_eq!(ok("%F0%9F%98%80"), Some("😀".into()));
    assert_eq!(ok("a+b"), Some("a+b".into()), "'+' is not a space");
    assert_eq!(ok("é%20x"), Some("é x".into()), "raw non-ASCII kept");
    assert_eq!(ok("%EF%BB%BF"), Some("\u{FEFF}".into()));
    assert_eq!(ok("%2541"), Some("%41".into()), "decoded once only");
}

#[test]
fn decode_uri_component_rejects_what_javascript_rejects() {
    for bad in [
        "%",
        "%2",
        "a%",
        "%zz",
        "%g0",
        "%0g",
        "100%",
        "%E0%A4%A",
        "%C3",
        "%C3é",
        "%C3%41",
        "%80",
        "%C0%80",
        "%ED%A0%80",
        "%F4%90%80%80",
        "%FF",
        "ok%20then%",
    ] {
        assert_eq!(decode_uri_component(bad), None, "{bad:?}");
    }
}

// ---------------------------------------------------------------- trim

#[test]
fn js_trim_uses_the_javascript_whitespace_set() {
    let js_ws = [
        '\u{0009}', '\u{000A}', '\u{000B}', '\u{000C}', '\u{000D}', '\u{0020}', '\u{00A0}',
        '\u{1680}', '\u{2000}', '\u{2005}', '\u{200A}', '\u{2028}', '\u{2029}', '\u{202F}',
        '\u{205F}', '\u{3000}', '\u{FEFF}',
    ];
    for c in js_ws {
        assert_eq!(
            js_trim(&format!("{c}x{c}")),
            "x",
            "U+{:04X} is trimmed",
            c as u32
        );
    }
    for c in ['\u{0085}', '\u{180E}', '\u{200B}', '\u{0000}', '\u{001F}'] {
        let s = format!("{c}x{c}");
        assert_eq!(js_trim(&s), s, "U+{:04X} is kept", c as u32);
    }
    assert_eq!(js_trim(" a b "), "a b");
    assert_eq!(js_trim("   "), "");
    assert_eq!(js_trim(""), "");
}

// ---------------------------------------------------------------- parseCookie

#[test]
fn parse_empty_header_gives_nothing() {
    assert!(parse_cookie("").is_empty());
    assert!(parse_cookie(";;;").is_empty());
    assert!(parse_cookie("  ;  ").is_empty());
}

#[test]
fn parse_basic_pairs_in_order() {
    assert_eq!(
        parse_cookie("a=1; b=2;c=3"),
        pairs(&[("a", "1"), ("b", "2"), ("c", "3")])
    );
}

#[test]
fn parse_splits_on_first_equals_only() {
    assert_eq!(
        parse_cookie("a=b=c; d==e"),
        pairs(&[("a", "b=c"), ("d", "=e")])
    );
}

#[test]
fn parse_keeps_surrounding_quotes() {
    assert_eq!(
        parse_cookie("a=\"quoted\"; b=\" x \""),
        pairs(&[("a", "\"quoted\""), ("b", "\" x \"")])
    );
}

#[test]
fn parse_later_duplicate_wins_at_first_position() {
    assert_eq!(
        parse_cookie("a=1; b=2; a=3; c=4; a=5"),
        pairs(&[("a", "5"), ("b", "2"), ("c", "4")])
    );
    assert_eq!(owned_cookie_value("a=1; b=2; a=3", "a"), Some("3".into()));
}

#[test]
fn parse_piece_without_equals_gives_empty_value() {
    assert_eq!(
        parse_cookie("flag; a=1;  other  "),
        pairs(&[("flag", ""), ("a", "1"), ("other", "")])
    );
    assert_eq!(owned_cookie_value("flag", "flag"), Some(String::new()));
}

#[test]
fn parse_skips_empty_keys() {
    assert_eq!(
        parse_cookie("=v; a=1;  =x; \u{00A0}=y"),
        pairs(&[("a", "1")])
    );
    assert_eq!(owned_cookie_value("=v", ""), None);
}

#[test]
fn parse_trims_javascript_whitespace_only() {
    assert_eq!(
        parse_cookie("\t a \u{00A0}=\u{FEFF} 1 \u{3000}; \u{0085}b\u{0085}=\u{0085}2\u{0085}"),
        pairs(&[("a", "1"), ("\u{0085}b\u{0085}", "\u{0085}2\u{0085}")])
    );
}

#[test]
fn parse_decodes_values_but_not_keys() {
    assert_eq!(
        parse_cookie("my%20key=my%20value; e=%C3%A9; s=%3B%3D"),
        pairs(&[("my%20key", "my value"), ("e", "é"), ("s", ";=")])
    );
}

#[test]
fn parse_trims_before_decoding() {
    // Escaped whitespace survives: only the raw value is trimmed.
    assert_eq!(parse_cookie("a=%20x%20"), pairs(&[("a", " x ")]));
}

#[test]
fn parse_returns_malformed_escapes_raw() {
    assert_eq!(
        parse_cookie("a=%; b= %zz ; c=%E0%A4%A; d=ok%20; e=%C0%80"),
        pairs(&[
            ("a", "%"),
            ("b", "%zz"),
            ("c", "%E0%A4%A"),
            ("d", "ok "),
            ("e", "%C0%80")
        ])
    );
    assert_eq!(
        owned_cookie_value("a=%E0%A4%A", "a"),
        Some("%E0%A4%A".into())
    );
}

#[test]
fn parse_handles_binary_junk() {
    let junk = "\u{0}\u{1}=\u{7f}; \u{FFFD}\u{10FFFF}=%; ==; ;=;\r\n=\r\n; k\0=\0v";
    let parsed = parse_cookie(junk);
    assert_eq!(
        parsed,
        pairs(&[
            ("\u{0}\u{1}", "\u{7f}"),
            ("\u{FFFD}\u{10FFFF}", "%"),
            ("k\0", "\0v"),
        ])
    );
}

#[test]
fn parse_a_one_megabyte_header() {
    // Many small pieces, with heavy duplication.
    let mut header = String::new();
    let mut i = 0usize;
    while header.len() < 1 << 20 {
        header.push_str(&format!("k{}=v{}; ", i % 1000, i));
        i += 1;
    }
    let parsed = parse_cookie(&header);
    assert_eq!(parsed.len(), 1000);
    assert_eq!(parsed[0].0, "k0");
    let last_k0 = (i - 1) / 1000 * 1000;
    assert_eq!(parsed[0].1, format!("v{last_k0}"));
    assert_eq!(
        owned_cookie_value(&header, "k0"),
        Some(format!("v{last_k0}"))
    );

    // One huge value full of escapes, and one huge piece without '='.
    let big_value = "%41".repeat((1 << 20) / 3);
    let header = format!("big={big_value}; {}", "x".repeat(1 << 20));
    let parsed = parse_cookie(&header);
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed[0].1.len(), (1 << 20) / 3);
    assert!(parsed[0].1.bytes().all(|b| b == b'A'));
    assert_eq!(parsed[1].1, "");

    // A megabyte of separators and whitespace.
    assert!(parse_cookie(&" ;=".repeat(350_000)).is_empty());
}

#[test]
fn cookie_value_finds_the_session_cookie() {
    let header = "theme=dark; slice-session=abc-123; other=x";
    assert_eq!(
        owned_cookie_value(header, "slice-session"),
        Some("abc-123".into())
    );
    assert_eq!(owned_cookie_value(header, "missing"), None);
    assert_eq!(owned_cookie_value("", "slice-session"), None);
    assert_eq!(
        owned_cookie_value(header, " theme"),
        None,
        "keys are trimmed"
    );
}

// ---------------------------------------------------------------- overlay

#[test]
fn overlay_replaces_given_keys_and_keeps_the_rest() {
    let patch = CookieOptionsPatch {
        same_site: Some(Some("strict".into())),
        max_age: Some(Some(10.0)),
        domain: Some(Some("example.com".into())),
        ..CookieOptionsPatch::default()
    };
    assert_eq!(
        CookieOptions::session_defaults().overlay(&patch),
        CookieOptions {
            http_only: Some(true),
            secure: Some(true),
            same_site: Some("strict".into()),
            domain: Some("example.com".into()),
            path: Some("/".into()),
            max_age: Some(10.0),
        }
    );
}

#[test]
fn overlay_with_explicit_undefined_removes_a_default() {
    let patch = CookieOptionsPatch {
        secure: Some(None),
        path: Some(None),
        ..CookieOptionsPatch::default()
    };
    let merged = CookieOptions::session_defaults().overlay(&patch);
    assert_eq!(merged.secure, None);
    assert_eq!(merged.path, None);
    assert_eq!(merged.http_only, Some(true));
    assert_eq!(
        serialize_cookie("n", "v", &merged),
        "n=v; HttpOnly; SameSite=lax"
    );
}

#[test]
fn overlay_with_false_and_empty_patch() {
    let defaults = CookieOptions::session_defaults();
    assert_eq!(defaults.overlay(&CookieOptionsPatch::default()), defaults);
    let patch = CookieOptionsPatch {
        http_only: Some(Some(false)),
        ..CookieOptionsPatch::default()
    };
    assert_eq!(defaults.overlay(&patch).http_only, Some(false));
}

// ---------------------------------------------------------------- validation

#[test]
fn validation_accepts_sound_options() {
    let defaults = CookieOptions::session_defaults();
    validate_cookie_options("slice-session", &defaults).unwrap();
    validate_cookie_options("any name é", &defaults).unwrap();
    validate_cookie_options("__Host-session", &defaults).unwrap();
    validate_cookie_options("__Secure-session", &defaults).unwrap();
    validate_cookie_options("n", &CookieOptions::default()).unwrap();
    for same_site in ["strict", "Lax", "NONE", ""] {
        let options = CookieOptions {
            same_site: Some(same_site.into()),
            ..defaults.clone()
        };
        validate_cookie_options("n", &options).unwrap();
    }
    for max_age in [0.0, -1.0, 1.5, 1e21, -0.0] {
        validate_cookie_options(
            "n",
            &CookieOptions {
                max_age: Some(max_age),
                ..defaults.clone()
            },
        )
        .unwrap();
    }
    let domain = CookieOptions {
        domain: Some("example.com".into()),
        path: Some("/app/x".into()),
        ..defaults.clone()
    };
    validate_cookie_options("__Secure-x", &domain).unwrap();
    let host_empty_domain = CookieOptions {
        domain: Some(String::new()),
        ..defaults
    };
    validate_cookie_options("__Host-x", &host_empty_domain).unwrap();
}

#[test]
fn validation_rejects_unknown_same_site() {
    let options = CookieOptions {
        same_site: Some("relaxed".into()),
        ..CookieOptions::session_defaults()
    };
    let msg = validation_message("n", &options);
    assert!(msg.contains("sameSite"), "{msg}");
    assert!(msg.contains("relaxed"), "{msg}");
}

#[test]
fn validation_rejects_same_site_none_without_secure() {
    for secure in [None, Some(false)] {
        for none in ["none", "None"] {
            let options = CookieOptions {
                same_site: Some(none.into()),
                secure,
                ..CookieOptions::session_defaults()
            };
            let msg = validation_message("n", &options);
            assert!(msg.contains("sameSite") && msg.contains("secure"), "{msg}");
        }
    }
}

#[test]
fn validation_rejects_bad_host_prefix_cookies() {
    let defaults = CookieOptions::session_defaults();
    let with_domain = CookieOptions {
        domain: Some("example.com".into()),
        ..defaults.clone()
    };
    assert!(validation_message("__Host-s", &with_domain).contains("domain"));
    let insecure = CookieOptions {
        secure: None,
        ..defaults.clone()
    };
    assert!(validation_message("__Host-s", &insecure).contains("secure"));
    let insecure_false = CookieOptions {
        secure: Some(false),
        ..defaults.clone()
    };
    assert!(validation_message("__host-s", &insecure_false).contains("secure"));
    for path in [None, Some(""), Some("/app")] {
        let options = CookieOptions {
            path: path.map(str::to_owned),
            ..defaults.clone()
        };
        assert!(validation_message("__Host-s", &options).contains("path"));
    }
}

#[test]
fn validation_rejects_insecure_secure_prefix_cookies() {
    for secure in [None, Some(false)] {
        let options = CookieOptions {
            secure,
            ..CookieOptions::session_defaults()
        };
        for name in ["__Secure-s", "__SECURE-s"] {
            assert!(validation_message(name, &options).contains("secure"));
        }
    }
    // Not a prefix: no requirement.
    let options = CookieOptions {
        secure: None,
        ..CookieOptions::session_defaults()
    };
    validate_cookie_options("__Secure", &options).unwrap();
    validate_cookie_options("x__Secure-s", &options).unwrap();
}

#[test]
fn validation_rejects_non_finite_max_age() {
    for max_age in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let options = with_max_age(max_age);
        assert!(validation_message("n", &options).contains("maxAge"));
    }
}

#[test]
fn validation_rejects_header_injection_in_domain_and_path() {
    for bad in [
        "a;b",
        "a\rb",
        "a\nb",
        "a\0b",
        "a\tb",
        "a\u{7f}b",
        "x; Secure",
    ] {
        let domain = CookieOptions {
            domain: Some(bad.into()),
            ..CookieOptions::default()
        };
        assert!(
            validation_message("n", &domain).contains("domain"),
            "{bad:?}"
        );
        let path = CookieOptions {
            path: Some(bad.into()),
            ..CookieOptions::default()
        };
        assert!(validation_message("n", &path).contains("path"), "{bad:?}");
    }
}

#[test]
fn validation_rejects_an_empty_name() {
    assert!(validation_message("", &CookieOptions::session_defaults()).contains("cookieName"));
}

// ---------------------------------------------------------------- properties

/// Strings heavy in the characters the parser cares about, plus arbitrary Unicode.
fn cookieish() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ab=; %\"\t\u{a0}\u{feff}\u{85}0-9A-Fa-fzé😀]{0,40}",
        proptest::collection::vec(
            prop_oneof![
                Just("%".to_owned()),
                Just("%E0".to_owned()),
                Just("%A4".to_owned()),
                Just("%C3%A9".to_owned()),
                Just(";".to_owned()),
                Just("=".to_owned()),
                Just(" ".to_owned()),
                Just("a".to_owned()),
                Just("b".to_owned()),
            ],
            0..30
        )
        .prop_map(|parts| parts.concat()),
    ]
}

const ATTRIBUTE_KEYS: [&str; 5] = ["Max-Age", "Path", "HttpOnly", "Secure", "SameSite"];

proptest! {
    #[test]
    fn parse_never_panics(header in cookieish()) {
        let parsed = parse_cookie(&header);
        for (i, (key, _)) in parsed.iter().enumerate() {
            prop_assert!(!key.is_empty());
            prop_assert_eq!(js_trim(key), key.as_str());
            prop_assert!(!key.contains(';'));
            prop_assert!(parsed[..i].iter().all(|(k, _)| k != key), "keys are unique");
        }
    }

    #[test]
    fn cookie_value_agrees_with_parse_cookie(header in cookieish(), name in cookieish()) {
        let expected = parse_cookie(&header).into_iter().find(|(k, _)| *k == name).map(|(_, v)| v);
        prop_assert_eq!(owned_cookie_value(&header, &name), expected);
    }

    #[test]
    fn cookie_value_agrees_for_every_parsed_key(header in cookieish()) {
        for (key, value) in parse_cookie(&header) {
            prop_assert_eq!(owned_cookie_value(&header, &key), Some(value));
        }
    }

    #[test]
    fn round_trip_unreserved_names(
        name in "[A-Za-z0-9_.!~*'()-]{1,20}",
        value in any::<String>(),
    ) {
        prop_assume!(!ATTRIBUTE_KEYS.contains(&name.as_str()));
        let header = serialize_cookie(&name, &value, &CookieOptions::session_defaults());
        prop_assert_eq!(owned_cookie_value(&header, &name), Some(value.clone()));
        prop_assert_eq!(parse_cookie(&header).first().cloned(), Some((name, value)));
    }

    #[test]
    fn round_trip_any_name_under_its_encoded_key(
        name in any::<String>().prop_filter("non-empty", |n| !n.is_empty()),
        value in any::<String>(),
    ) {
        let key = encode_uri_component(&name);
        prop_assume!(!ATTRIBUTE_KEYS.contains(&key.as_str()));
        let options = CookieOptions { max_age: Some(3600.0), ..CookieOptions::session_defaults() };
        let header = serialize_cookie(&name, &value, &options);
        prop_assert_eq!(parse_cookie(&header).first().cloned(), Some((key, value)));
    }

    #[test]
    fn encode_then_decode_is_identity(s in any::<String>()) {
        let encoded = encode_uri_component(&s);
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()%".contains(&b)));
        let decoded = decode_uri_component(&encoded).map(|c| c.into_owned());
        prop_assert_eq!(decoded, Some(s));
    }

    #[test]
    fn decode_never_panics(s in cookieish()) {
        let _ = decode_uri_component(&s);
    }

    #[test]
    fn validation_never_panics(
        name in cookieish(),
        same_site in proptest::option::of(cookieish()),
        domain in proptest::option::of(cookieish()),
        path in proptest::option::of(cookieish()),
        secure in proptest::option::of(any::<bool>()),
        max_age in proptest::option::of(any::<f64>()),
    ) {
        let options = CookieOptions { http_only: None, secure, same_site, domain, path, max_age };
        let _ = validate_cookie_options(&name, &options);
        let _ = serialize_cookie(&name, &name, &options);
    }
}

/// `cookie_value` as an owned value, for comparisons.
fn owned_cookie_value(header: &str, name: &str) -> Option<String> {
    cookie_value(header, name).map(std::borrow::Cow::into_owned)
}

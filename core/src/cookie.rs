//! Cookie parsing and serialization (SPEC §4), byte-compatible with the original's
//! JavaScript (`encodeURIComponent`, `decodeURIComponent`, `String.prototype.trim`,
//! `String(number)`), plus the [beyond] validation of a store's cookie options.

use std::borrow::Cow;
use std::collections::HashMap;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::error::{Result, SessionError};

/// Everything `encodeURIComponent` escapes: all bytes except ASCII alphanumerics and
/// `- _ . ! ~ * ' ( )`.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// ECMAScript WhiteSpace + LineTerminator (the set `trim()` removes). Spelled out rather
/// than `char::is_whitespace`, which differs: it excludes U+FEFF and includes U+0085.
fn is_js_whitespace(c: char) -> bool {
    matches!(
        c,
        '\u{0009}'
            | '\u{000A}'
            | '\u{000B}'
            | '\u{000C}'
            | '\u{000D}'
            | '\u{0020}'
            | '\u{00A0}'
            | '\u{1680}'
            | '\u{2000}'
            ..='\u{200A}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202F}'
                | '\u{205F}'
                | '\u{3000}'
                | '\u{FEFF}'
    )
}

/// JavaScript's String.prototype.trim() whitespace set (NOT char::is_whitespace: JS includes
/// U+FEFF and excludes U+0085).
pub fn js_trim(s: &str) -> &str {
    s.trim_matches(is_js_whitespace)
}

/// encodeURIComponent: keep A-Z a-z 0-9 - _ . ! ~ * ' ( ); percent-encode every other UTF-8
/// byte as %XX upper-case hex.
pub fn encode_uri_component(s: &str) -> String {
    utf8_percent_encode(s, URI_COMPONENT).to_string()
}

/// decodeURIComponent: None where JS would throw URIError (a '%' not followed by two hex
/// digits, or decoded bytes that are not valid UTF-8). Decodes ALL escapes (also reserved
/// chars like %3B).
pub fn decode_uri_component(s: &str) -> Option<Cow<'_, str>> {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut any_escape = false;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // percent_decode passes a bad escape through verbatim; JS throws, so check first.
            let well_formed = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !well_formed {
                return None;
            }
            any_escape = true;
            i += 3;
        } else {
            i += 1;
        }
    }
    if !any_escape {
        return Some(Cow::Borrowed(s));
    }
    // Unescaped characters of a &str are whole UTF-8 sequences (never a stray continuation
    // byte), so "the decoded bytes are valid UTF-8" is exactly JS's rule that escaped octets
    // form complete, non-overlong, non-surrogate code points.
    percent_decode_str(s).decode_utf8().ok()
}

/// Splits one `;`-separated piece into its trimmed key and trimmed (still encoded) value.
fn split_piece(piece: &str) -> (&str, &str) {
    match piece.find('=') {
        Some(i) => (js_trim(&piece[..i]), js_trim(&piece[i + 1..])),
        None => (js_trim(piece), ""),
    }
}

/// SPEC §4 [decided]: a malformed escape yields the raw (trimmed) value instead of throwing.
fn decode_value(raw: &str) -> String {
    match decode_uri_component(raw) {
        Some(decoded) => decoded.into_owned(),
        None => raw.to_owned(),
    }
}

/// parseCookie of SPEC §4: ordered pairs as a JS object would hold them: a key keeps the
/// position of its FIRST occurrence and the value of its LAST ("later duplicate wins").
/// Never fails on any string.
pub fn parse_cookie(header: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    // Index by key so a header with many pieces stays linear.
    let mut index: HashMap<&str, usize> = HashMap::new();
    if header.is_empty() {
        return pairs;
    }
    for piece in header.split(';') {
        let (key, raw) = split_piece(piece);
        if key.is_empty() {
            continue;
        }
        let value = decode_value(raw);
        match index.get(key) {
            Some(&at) => {
                if let Some(slot) = pairs.get_mut(at) {
                    slot.1 = value;
                }
            }
            None => {
                index.insert(key, pairs.len());
                pairs.push((key.to_owned(), value));
            }
        }
    }
    pairs
}

/// The value parseCookie(header)[name] would give, without building the whole list (request
/// hot path). Agrees with parse_cookie exactly.
pub fn cookie_value<'h>(header: &'h str, name: &str) -> Option<Cow<'h, str>> {
    if name.is_empty() {
        // parse_cookie never yields an empty key.
        return None;
    }
    // The last match wins, so search from the end; only the matching piece's value is trimmed
    // and decoded (borrowed from the header unless it has escapes).
    header.rsplit(';').find_map(|piece| {
        let (key, raw) = match piece.find('=') {
            Some(i) => (&piece[..i], &piece[i + 1..]),
            None => (piece, ""),
        };
        (js_trim(key) == name).then(|| {
            let raw = js_trim(raw);
            decode_uri_component(raw).unwrap_or(Cow::Borrowed(raw))
        })
    })
}

/// Options as the store holds them after overlaying defaults (None = attribute not written).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CookieOptions {
    pub http_only: Option<bool>,
    pub secure: Option<bool>,
    pub same_site: Option<String>,
    pub domain: Option<String>,
    pub path: Option<String>,
    pub max_age: Option<f64>,
}

/// What the caller passed: outer None = key absent; Some(None) = key present with value
/// undefined.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CookieOptionsPatch {
    pub http_only: Option<Option<bool>>,
    pub secure: Option<Option<bool>>,
    pub same_site: Option<Option<String>>,
    pub domain: Option<Option<String>>,
    pub path: Option<Option<String>>,
    pub max_age: Option<Option<f64>>,
}

impl CookieOptions {
    /// { httpOnly: true, secure: true, sameSite: "lax", path: "/" }
    pub fn session_defaults() -> Self {
        CookieOptions {
            http_only: Some(true),
            secure: Some(true),
            same_site: Some("lax".to_owned()),
            domain: None,
            path: Some("/".to_owned()),
            max_age: None,
        }
    }

    /// JS `{ ...self, ...patch }`: a key given in the patch replaces the default, and a key
    /// given as `undefined` (Some(None)) removes it.
    pub fn overlay(&self, patch: &CookieOptionsPatch) -> Self {
        fn pick<T: Clone>(base: &Option<T>, patch: &Option<Option<T>>) -> Option<T> {
            match patch {
                Some(given) => given.clone(),
                None => base.clone(),
            }
        }
        CookieOptions {
            http_only: pick(&self.http_only, &patch.http_only),
            secure: pick(&self.secure, &patch.secure),
            same_site: pick(&self.same_site, &patch.same_site),
            domain: pick(&self.domain, &patch.domain),
            path: pick(&self.path, &patch.path),
            max_age: pick(&self.max_age, &patch.max_age),
        }
    }
}

/// `String(number)`: ryu_js follows Number::toString; -0 must print "0" as in JS.
fn js_number_string(n: f64) -> String {
    if n == 0.0 {
        return "0".to_owned();
    }
    ryu_js::Buffer::new().format(n).to_owned()
}

/// JS truthiness of an optional string attribute: unset and "" are both skipped.
fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|v| !v.is_empty())
}

/// SPEC §4 serializeCookie, byte-exact.
pub fn serialize_cookie(name: &str, value: &str, options: &CookieOptions) -> String {
    let mut out = String::with_capacity(name.len() + value.len() + 80);
    out.push_str(&encode_uri_component(name));
    out.push('=');
    out.push_str(&encode_uri_component(value));
    if let Some(max_age) = options.max_age {
        out.push_str("; Max-Age=");
        out.push_str(&js_number_string(max_age));
    }
    if let Some(domain) = non_empty(&options.domain) {
        out.push_str("; Domain=");
        out.push_str(domain);
    }
    if let Some(path) = non_empty(&options.path) {
        out.push_str("; Path=");
        out.push_str(path);
    }
    if options.http_only == Some(true) {
        out.push_str("; HttpOnly");
    }
    if options.secure == Some(true) {
        out.push_str("; Secure");
    }
    if let Some(same_site) = non_empty(&options.same_site) {
        out.push_str("; SameSite=");
        out.push_str(same_site);
    }
    out
}

/// Cookie-name prefixes are matched case-insensitively (RFC 6265bis; current browsers).
fn has_prefix_ci(name: &str, prefix: &str) -> bool {
    name.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

fn invalid(msg: impl Into<String>) -> SessionError {
    SessionError::InvalidCookieOptions(msg.into())
}

/// Domain and Path are written unencoded, so these characters would end the attribute early
/// or split the header (header injection).
fn check_attribute_text(option: &str, value: &Option<String>) -> Result<()> {
    if let Some(text) = value {
        if let Some(bad) = text.chars().find(|&c| c == ';' || c.is_control()) {
            return Err(invalid(format!(
                "cookieOptions.{option} contains {bad:?}; it is written unencoded into the \
                 Set-Cookie header, where ';' or a control character would end the attribute \
                 or split the header, so browsers would drop or misread the cookie"
            )));
        }
    }
    Ok(())
}

/// SPEC §4 [beyond] validation for a store's cookie: rejects combinations browsers silently
/// drop or misread.
pub fn validate_cookie_options(cookie_name: &str, options: &CookieOptions) -> Result<()> {
    if cookie_name.is_empty() {
        return Err(invalid(
            "cookieName must not be empty: a cookie without a name is skipped when the Cookie \
             header is parsed, so the session could never be read back",
        ));
    }
    let secure = options.secure == Some(true);

    // "" is not written (JS truthiness), so it is as good as unset.
    if let Some(same_site) = non_empty(&options.same_site) {
        let known = ["strict", "lax", "none"]
            .iter()
            .any(|k| same_site.eq_ignore_ascii_case(k));
        if !known {
            return Err(invalid(format!(
                "cookieOptions.sameSite must be \"strict\", \"lax\" or \"none\", got \
                 {same_site:?}; browsers ignore an unknown SameSite value"
            )));
        }
        if same_site.eq_ignore_ascii_case("none") && !secure {
            return Err(invalid(
                "cookieOptions.sameSite \"none\" requires secure: true; browsers reject \
                 SameSite=None cookies that are not Secure",
            ));
        }
    }

    if let Some(max_age) = options.max_age {
        if !max_age.is_finite() {
            return Err(invalid(format!(
                "cookieOptions.maxAge must be a finite number of seconds, got {}; browsers \
                 ignore a Max-Age that is not an integer",
                js_number_string(max_age)
            )));
        }
    }

    check_attribute_text("domain", &options.domain)?;
    check_attribute_text("path", &options.path)?;

    if has_prefix_ci(cookie_name, "__Host-") {
        if non_empty(&options.domain).is_some() {
            return Err(invalid(format!(
                "cookie {cookie_name:?} has the __Host- prefix, so cookieOptions.domain must \
                 not be set; browsers drop __Host- cookies that carry a Domain attribute"
            )));
        }
        if !secure {
            return Err(invalid(format!(
                "cookie {cookie_name:?} has the __Host- prefix, so cookieOptions.secure must \
                 be true; browsers drop __Host- cookies that are not Secure"
            )));
        }
        if options.path.as_deref() != Some("/") {
            return Err(invalid(format!(
                "cookie {cookie_name:?} has the __Host- prefix, so cookieOptions.path must be \
                 \"/\"; browsers drop __Host- cookies without Path=/"
            )));
        }
    } else if has_prefix_ci(cookie_name, "__Secure-") && !secure {
        return Err(invalid(format!(
            "cookie {cookie_name:?} has the __Secure- prefix, so cookieOptions.secure must be \
             true; browsers drop __Secure- cookies that are not Secure"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_number_formatting() {
        assert_eq!(js_number_string(2_592_000.0), "2592000");
        assert_eq!(js_number_string(-0.0), "0");
        assert_eq!(js_number_string(1e21), "1e+21");
        assert_eq!(js_number_string(f64::NAN), "NaN");
        assert_eq!(js_number_string(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn prefix_match_is_case_insensitive_and_boundary_safe() {
        assert!(has_prefix_ci("__host-x", "__Host-"));
        assert!(!has_prefix_ci("__Hos", "__Host-"));
        // A multi-byte char straddling the prefix length must not panic.
        assert!(!has_prefix_ci("__Hosté", "__Host-"));
    }
}

//! Request-path replies that leave out what the JavaScript side already decoded.
//!
//! Handing a session to JavaScript as JSON text costs more than finding it: serializing the
//! record here, creating the JS string, then `JSON.parse` building every string and number of
//! it again (callgrind, memory request path on Node 24: about 3 000 + 800 + 11 000 of 25 000
//! instructions). Most requests read a session whose stable fields (everything but
//! `expiresAt` and `lastAccessedAt`) are those of the previous request with the same cookie.
//! So the bindings' JS layer keeps the stable fields it decoded last time together with their
//! [`Fingerprint`], passes that fingerprint as a hint, and gets back only the two timestamps
//! when the record's fingerprint is still the same ([`Reply::Same`]); otherwise the whole
//! record and its new fingerprint ([`Reply::Full`]).
//!
//! The fingerprint is a keyed 128-bit SipHash (key drawn from the OS once per process) over
//! every stable field, each length-prefixed, so a reply is `Same` only when the stable fields
//! are byte for byte those the hint was made from, barring a 2^-128 accident that nobody can
//! steer without the key. The JS layer only caches strings; the rules stay here.

use std::hash::Hasher;
use std::sync::OnceLock;

use siphasher::sip128::{Hasher128, SipHasher13};

use crate::session::{Millis, SessionData};

/// 128 bits as four `u32`, the unit the JS layer reads them in (a `Uint32Array`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint(pub [u32; 4]);

#[derive(Debug, PartialEq)]
pub enum Reply {
    /// No session.
    None,
    /// The stable fields are those the hint was made from; only the timestamps are new.
    Same {
        expires_at: Millis,
        last_accessed_at: Millis,
    },
    /// The record as [`SessionData::to_js_json`] text, and the fingerprint to keep with it.
    Full {
        json: String,
        fingerprint: Fingerprint,
    },
}

fn key() -> (u64, u64) {
    static KEY: OnceLock<(u64, u64)> = OnceLock::new();
    *KEY.get_or_init(|| {
        let mut bytes = [0u8; 16];
        // Without OS randomness the key is fixed; fingerprints then still tell records apart,
        // they are only no longer secret (nothing outside this process ever sees them).
        let _ = getrandom::fill(&mut bytes);
        let (a, b) = bytes.split_at(8);
        let word = |s: &[u8]| s.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
        (word(a), word(b))
    })
}

/// The fingerprint of `session`'s stable fields (all but `expires_at` and `last_accessed_at`).
pub fn fingerprint(session: &SessionData) -> Fingerprint {
    let (k0, k1) = key();
    let mut h = SipHasher13::new_with_keys(k0, k1);
    let mut field = |bytes: &[u8]| {
        h.write_u64(bytes.len() as u64);
        h.write(bytes);
    };
    field(session.session_id.as_bytes());
    field(session.user_id.as_bytes());
    match &session.handle {
        Some(handle) => field(handle.as_bytes()),
        None => field(b"\xff"),
    }
    match &session.data {
        Some(data) => field(data.as_bytes()),
        None => field(b"\xff"),
    }
    h.write_u8(u8::from(session.is_authenticated));
    h.write_i64(session.created_at);
    let bits = h.finish128().as_u128();
    Fingerprint([
        bits as u32,
        (bits >> 32) as u32,
        (bits >> 64) as u32,
        (bits >> 96) as u32,
    ])
}

/// Words (`u32`) in the buffer a binding and its JS layer exchange hints and timestamps
/// through, so that a `Same` reply needs no JS value built for it. Layout, in native byte order
/// (the JS side reads it through a `Uint32Array` and a `Float64Array` on one `ArrayBuffer`):
/// words 0-1 `expiresAt` and 2-3 `lastAccessedAt` (f64, out, `Same`); 4-7 the hint (in); 8 is 1
/// when a hint is given (in); 9-12 the record's fingerprint (out, `Full`).
pub const BUFFER_WORDS: usize = 16;
const HINT: usize = 4;
const HINT_GIVEN: usize = 8;
const FINGERPRINT: usize = 9;

pub struct ReplyBuffer<'a> {
    words: &'a mut [u32],
}

impl<'a> ReplyBuffer<'a> {
    /// `words` must hold [`BUFFER_WORDS`]; a shorter buffer reads as "no hint" and gets nothing
    /// written.
    pub fn new(words: &'a mut [u32]) -> Self {
        ReplyBuffer { words }
    }

    fn ok(&self) -> bool {
        self.words.len() >= BUFFER_WORDS
    }

    pub fn hint(&self) -> Option<Fingerprint> {
        if !self.ok() || self.words[HINT_GIVEN] != 1 {
            return None;
        }
        let w = &self.words[HINT..HINT + 4];
        Some(Fingerprint([w[0], w[1], w[2], w[3]]))
    }

    fn put_f64(&mut self, at: usize, value: f64) {
        let bytes = value.to_ne_bytes();
        let (lo, hi) = bytes.split_at(4);
        let word = |b: &[u8]| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        self.words[at] = word(lo);
        self.words[at + 1] = word(hi);
    }

    /// Writes `reply`'s numbers into the buffer. Returns `None` for no session, `Some(None)`
    /// for `Same`, `Some(Some(json))` for `Full`.
    pub fn write(mut self, reply: Reply) -> Option<Option<String>> {
        match reply {
            Reply::None => None,
            Reply::Same {
                expires_at,
                last_accessed_at,
            } => {
                if self.ok() {
                    // Epoch milliseconds are exact in an f64 (below 2^53).
                    self.put_f64(0, expires_at as f64);
                    self.put_f64(2, last_accessed_at as f64);
                }
                Some(None)
            }
            Reply::Full { json, fingerprint } => {
                if self.ok() {
                    self.words[FINGERPRINT..FINGERPRINT + 4].copy_from_slice(&fingerprint.0);
                }
                Some(Some(json))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> SessionData {
        SessionData {
            session_id: "s1".into(),
            user_id: "did:plc:a".into(),
            handle: Some("a.test".into()),
            is_authenticated: true,
            data: Some(r#"{"n":1}"#.into()),
            created_at: 10,
            expires_at: 100,
            last_accessed_at: 20,
        }
    }

    #[test]
    fn timestamps_do_not_change_the_fingerprint_and_every_stable_field_does() {
        let base = session();
        let fp = fingerprint(&base);
        let mut touched = base.clone();
        touched.expires_at = 999;
        touched.last_accessed_at = 500;
        assert_eq!(fingerprint(&touched), fp);

        type Change = Box<dyn Fn(&mut SessionData)>;
        let changes: Vec<Change> = vec![
            Box::new(|s| s.session_id = "s2".into()),
            Box::new(|s| s.user_id = "did:plc:b".into()),
            Box::new(|s| s.handle = None),
            Box::new(|s| s.handle = Some("b.test".into())),
            Box::new(|s| s.is_authenticated = false),
            Box::new(|s| s.data = None),
            Box::new(|s| s.data = Some(r#"{"n":2}"#.into())),
            Box::new(|s| s.created_at = 11),
            // Length prefixes: moving bytes between fields is a change.
            Box::new(|s| {
                s.session_id = "s1d".into();
                s.user_id = "id:plc:a".into();
            }),
        ];
        for change in changes {
            let mut other = base.clone();
            change(&mut other);
            assert_ne!(fingerprint(&other), fp, "{other:?}");
        }
    }

    #[test]
    fn the_buffer_carries_hint_fingerprint_and_timestamps() {
        let s = session();
        let mut words = [0u32; BUFFER_WORDS];
        let buffer = ReplyBuffer::new(&mut words);
        assert_eq!(buffer.hint(), None);
        let full = |s: &SessionData| Reply::Full {
            json: s.to_js_json().unwrap(),
            fingerprint: fingerprint(s),
        };
        let out = buffer.write(full(&s));
        assert_eq!(out, Some(Some(s.to_js_json().unwrap())));
        let fp = Fingerprint([words[9], words[10], words[11], words[12]]);
        assert_eq!(fp, fingerprint(&s));

        words[HINT..HINT + 4].copy_from_slice(&fp.0);
        words[HINT_GIVEN] = 1;
        let buffer = ReplyBuffer::new(&mut words);
        assert_eq!(buffer.hint(), Some(fp));
        let same = Reply::Same {
            expires_at: s.expires_at,
            last_accessed_at: s.last_accessed_at,
        };
        assert_eq!(buffer.write(same), Some(None));
        let f64_at = |i: usize| {
            let mut b = [0u8; 8];
            b[..4].copy_from_slice(&words[i].to_ne_bytes());
            b[4..].copy_from_slice(&words[i + 1].to_ne_bytes());
            f64::from_ne_bytes(b)
        };
        assert_eq!((f64_at(0), f64_at(2)), (100.0, 20.0));

        assert_eq!(ReplyBuffer::new(&mut words).write(Reply::None), None);

        let mut short = [1u32; 4];
        let buffer = ReplyBuffer::new(&mut short);
        assert_eq!(buffer.hint(), None);
        assert_eq!(buffer.write(full(&s)).map(|j| j.is_some()), Some(true));
    }
}

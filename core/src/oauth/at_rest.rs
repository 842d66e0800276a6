//! Secrets at rest for OAuth storages (docs/security.md): a wrapper around any
//! [`OAuthStorage`] that seals the tokens it stores and, optionally, stores every
//! session-keyed record under a hash of the session id instead of the id.
//!
//! **Sealing** (`encryption_key`): `access_token` and `refresh_token` are each encrypted with
//! AES-256-GCM (RustCrypto `aes-gcm`), a fresh 96-bit nonce from the OS for every value, and
//! associated data naming the field and the session id, so a value copied to another session,
//! or from the access column to the refresh column, does not open. The stored text is
//! `enc:v1:<kid>:<base64url(nonce || ciphertext || tag)>`, where `kid` is the first 8 hex
//! digits of SHA-256(key): it picks the key to open with, which is what makes rotation work
//! (the first key seals, every key opens). `token_type`, `scope` and `expires_at` are not
//! secrets and stay clear. A value without the prefix is a row written before sealing was
//! turned on: it is read as it is and sealed on its next write.
//!
//! **Hashed ids** (`hash_ids`): tokens, refresh leases and refresh attempts are stored under
//! `sha256:<hex of SHA-256(session id)>`; PKCE states are keyed by `state` and stay as they
//! are. The associated data still names the real session id.
//!
//! Failures never hand out garbage: a sealed value that does not open (wrong key, tampered,
//! copied, no key configured) is an [`SessionError::OAuth`] with code
//! `token_decrypt_failed`, whose message names neither the token nor the key.

use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::error::{Result, SessionError};
use crate::oauth::config::{OAuthTokens, PkceState};
use crate::oauth::oauth_error;
use crate::oauth::refresh::RefreshAttempt;
use crate::oauth::storage::OAuthStorage;
use crate::session::Millis;

const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 12;
/// The `OAuthError` code of a value that does not open.
pub const DECRYPT_FAILED: &str = "token_decrypt_failed";

/// What to protect. `keys`: the first seals, all open; empty = no sealing.
#[derive(Clone, Default)]
pub struct AtRestOptions {
    pub keys: Vec<[u8; 32]>,
    pub hash_ids: bool,
}

impl std::fmt::Debug for AtRestOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtRestOptions")
            .field("keys", &format_args!("<{} redacted>", self.keys.len()))
            .field("hash_ids", &self.hash_ids)
            .finish()
    }
}

impl AtRestOptions {
    /// True when the options change nothing (the storage is then used as it is).
    pub fn is_plain(&self) -> bool {
        self.keys.is_empty() && !self.hash_ids
    }
}

/// Parses a key given as 64 hex digits (the bindings normalise every accepted form to hex).
pub fn parse_hex_key(hex: &str, name: &str) -> Result<[u8; 32]> {
    let invalid = || SessionError::InvalidArgument {
        name: name.to_owned(),
        reason: "an encryption key must be 32 bytes (64 hex digits)".into(),
    };
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return Err(invalid());
    }
    let mut key = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let digit = |b: u8| (b as char).to_digit(16).ok_or_else(invalid);
        key[i] = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).map_err(|_| invalid())?;
    }
    Ok(key)
}

/// One key: its cipher and its id.
struct SealKey {
    kid: String,
    cipher: Aes256Gcm,
}

/// The sealing half: keys parsed once, at construction.
struct Sealer {
    keys: Vec<SealKey>,
}

fn key_id(key: &[u8; 32]) -> String {
    let digest = Sha256::digest(key);
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

fn associated_data(field: &str, session_id: &str) -> Vec<u8> {
    let mut ad = Vec::with_capacity(16 + field.len() + 1 + session_id.len());
    ad.extend_from_slice(b"slices-oauth/v1\0");
    ad.extend_from_slice(field.as_bytes());
    ad.push(0);
    ad.extend_from_slice(session_id.as_bytes());
    ad
}

fn decrypt_failed(session_id: &str, why: &str) -> SessionError {
    oauth_error(
        DECRYPT_FAILED,
        format!("the stored OAuth tokens of session `{session_id}` could not be decrypted: {why}"),
    )
}

impl Sealer {
    fn new(keys: &[[u8; 32]]) -> Sealer {
        Sealer {
            keys: keys
                .iter()
                .map(|k| SealKey {
                    kid: key_id(k),
                    cipher: Aes256Gcm::new(k.into()),
                })
                .collect(),
        }
    }

    fn seal(&self, field: &str, session_id: &str, plain: &str) -> Result<String> {
        // `keys` is never empty when a Sealer exists (AtRest::new).
        let Some(key) = self.keys.first() else {
            return Err(SessionError::Internal("no key to seal with".into()));
        };
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| {
            SessionError::Internal(format!("the operating system's random source failed: {e}"))
        })?;
        let aad = associated_data(field, session_id);
        let sealed = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SessionError::Internal("AES-GCM refused to encrypt".into()))?;
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(format!(
            "{PREFIX}{}:{}",
            key.kid,
            URL_SAFE_NO_PAD.encode(blob)
        ))
    }
}

/// Opens a stored value: plaintext (no prefix) as it is, a sealed one with the key its id
/// names. `sealer` is `None` when no key is configured.
fn open(sealer: Option<&Sealer>, field: &str, session_id: &str, stored: String) -> Result<String> {
    let Some(rest) = stored.strip_prefix(PREFIX) else {
        return Ok(stored);
    };
    let Some(sealer) = sealer else {
        return Err(decrypt_failed(
            session_id,
            "they are encrypted and no encryptionKey is configured",
        ));
    };
    let Some((kid, encoded)) = rest.split_once(':') else {
        return Err(decrypt_failed(session_id, "the stored value is malformed"));
    };
    let Some(key) = sealer.keys.iter().find(|k| k.kid == kid) else {
        return Err(decrypt_failed(
            session_id,
            &format!("they were encrypted with a key that is not configured (key id {kid})"),
        ));
    };
    let blob = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| decrypt_failed(session_id, "the stored value is malformed"))?;
    if blob.len() < NONCE_LEN {
        return Err(decrypt_failed(session_id, "the stored value is malformed"));
    }
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    let aad = associated_data(field, session_id);
    let plain = key
        .cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: &aad,
            },
        )
        .map_err(|_| {
            decrypt_failed(
                session_id,
                "authentication failed (the value was changed, or copied from another session or field)",
            )
        })?;
    String::from_utf8(plain).map_err(|_| decrypt_failed(session_id, "the plaintext is not UTF-8"))
}

/// The storage key of a session id under `hash_ids` (the same form the session store uses).
pub use crate::session::hashed_session_id as hashed_id;

/// An [`OAuthStorage`] that seals tokens and/or hashes session ids before `inner` sees them.
pub struct AtRest {
    inner: Arc<dyn OAuthStorage>,
    sealer: Option<Sealer>,
    hash_ids: bool,
}

impl AtRest {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn OAuthStorage>, options: &AtRestOptions) -> AtRest {
        AtRest {
            inner,
            sealer: (!options.keys.is_empty()).then(|| Sealer::new(&options.keys)),
            hash_ids: options.hash_ids,
        }
    }

    /// `inner` wrapped. Native storages are wrapped even with plain options: a sealed value
    /// read without a key is then a clear error instead of ciphertext handed out as a token.
    pub fn wrap(inner: Arc<dyn OAuthStorage>, options: &AtRestOptions) -> Arc<dyn OAuthStorage> {
        Arc::new(AtRest::new(inner, options))
    }

    fn key<'a>(&self, session_id: &'a str) -> std::borrow::Cow<'a, str> {
        if self.hash_ids {
            std::borrow::Cow::Owned(hashed_id(session_id))
        } else {
            std::borrow::Cow::Borrowed(session_id)
        }
    }

    fn seal_tokens(&self, tokens: &OAuthTokens, session_id: &str) -> Result<OAuthTokens> {
        let Some(sealer) = &self.sealer else {
            return Ok(tokens.clone());
        };
        Ok(OAuthTokens {
            access_token: sealer.seal("access_token", session_id, &tokens.access_token)?,
            refresh_token: tokens
                .refresh_token
                .as_deref()
                .map(|t| sealer.seal("refresh_token", session_id, t))
                .transpose()?,
            ..tokens.clone()
        })
    }

    fn open_tokens(&self, stored: OAuthTokens, session_id: &str) -> Result<OAuthTokens> {
        let sealer = self.sealer.as_ref();
        Ok(OAuthTokens {
            access_token: open(sealer, "access_token", session_id, stored.access_token)?,
            refresh_token: stored
                .refresh_token
                .map(|t| open(sealer, "refresh_token", session_id, t))
                .transpose()?,
            ..stored
        })
    }
}

#[async_trait]
impl OAuthStorage for AtRest {
    async fn get_tokens(&self, session_id: &str) -> Result<Option<OAuthTokens>> {
        match self.inner.get_tokens(&self.key(session_id)).await? {
            Some(stored) => self.open_tokens(stored, session_id).map(Some),
            None => Ok(None),
        }
    }

    async fn set_tokens(&self, tokens: &OAuthTokens, session_id: &str) -> Result<()> {
        let sealed = self.seal_tokens(tokens, session_id)?;
        self.inner.set_tokens(&sealed, &self.key(session_id)).await
    }

    async fn clear_tokens(&self, session_id: &str) -> Result<()> {
        self.inner.clear_tokens(&self.key(session_id)).await
    }

    fn is_sync(&self) -> bool {
        self.inner.is_sync()
    }

    async fn put_state(&self, state: &str, pkce: &PkceState, expires_at: Millis) -> Result<()> {
        self.inner.put_state(state, pkce, expires_at).await
    }

    async fn take_state(&self, state: &str) -> Result<Option<PkceState>> {
        self.inner.take_state(state).await
    }

    async fn try_lock_refresh(
        &self,
        session_id: &str,
        owner: &str,
        lease_ms: Millis,
    ) -> Result<bool> {
        self.inner
            .try_lock_refresh(&self.key(session_id), owner, lease_ms)
            .await
    }

    async fn unlock_refresh(&self, session_id: &str, owner: &str) -> Result<()> {
        self.inner
            .unlock_refresh(&self.key(session_id), owner)
            .await
    }

    fn persists_refresh_attempts(&self) -> bool {
        self.inner.persists_refresh_attempts()
    }

    async fn get_refresh_attempt(&self, session_id: &str) -> Result<Option<RefreshAttempt>> {
        self.inner.get_refresh_attempt(&self.key(session_id)).await
    }

    async fn set_refresh_attempt(
        &self,
        session_id: &str,
        attempt: Option<&RefreshAttempt>,
    ) -> Result<()> {
        self.inner
            .set_refresh_attempt(&self.key(session_id), attempt)
            .await
    }

    async fn close(&self) -> Result<()> {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::MemoryOAuthStorage;

    fn tokens() -> OAuthTokens {
        OAuthTokens {
            access_token: "at-secret".into(),
            token_type: "Bearer".into(),
            refresh_token: Some("rt-secret".into()),
            expires_at: Some(5),
            scope: Some("atproto".into()),
        }
    }

    fn wrapped(inner: &Arc<MemoryOAuthStorage>, keys: Vec<[u8; 32]>, hash_ids: bool) -> AtRest {
        AtRest::new(inner.clone(), &AtRestOptions { keys, hash_ids })
    }

    #[tokio::test]
    async fn seals_opens_rotates_and_refuses() {
        let inner = Arc::new(MemoryOAuthStorage::new());
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        let s1 = wrapped(&inner, vec![k1], false);
        s1.set_tokens(&tokens(), "s").await.unwrap();
        let raw = inner.get_tokens("s").await.unwrap().unwrap();
        assert!(raw.access_token.starts_with("enc:v1:"));
        assert!(!raw.access_token.contains("at-secret"));
        assert_eq!(raw.expires_at, Some(5));
        assert_eq!(s1.get_tokens("s").await.unwrap().unwrap(), tokens());
        // Rotation: [k2, k1] opens k1's value and seals with k2.
        let s21 = wrapped(&inner, vec![k2, k1], false);
        assert_eq!(s21.get_tokens("s").await.unwrap().unwrap(), tokens());
        s21.set_tokens(&tokens(), "s").await.unwrap();
        let s2 = wrapped(&inner, vec![k2], false);
        assert_eq!(s2.get_tokens("s").await.unwrap().unwrap(), tokens());
        let err = s1.get_tokens("s").await.unwrap_err();
        assert!(matches!(&err, SessionError::OAuth { code, .. } if code == DECRYPT_FAILED));
        assert!(!err.to_string().contains("secret"));
        // Copied to another session: does not open.
        inner.set_tokens(&raw, "other").await.unwrap();
        assert!(s1.get_tokens("other").await.is_err());
        // Access value moved into the refresh field: does not open.
        let mut swapped = raw.clone();
        swapped.refresh_token = Some(raw.access_token.clone());
        inner.set_tokens(&swapped, "s").await.unwrap();
        assert!(s1.get_tokens("s").await.is_err());
        // No key configured: a clear error, not the ciphertext.
        inner.set_tokens(&raw, "s").await.unwrap();
        let no_key = AtRest::new(
            inner.clone(),
            &AtRestOptions {
                keys: vec![],
                hash_ids: false,
            },
        );
        assert!(no_key.get_tokens("s").await.is_err());
    }

    #[tokio::test]
    async fn legacy_plaintext_is_read_then_sealed_on_write() {
        let inner = Arc::new(MemoryOAuthStorage::new());
        inner.set_tokens(&tokens(), "s").await.unwrap();
        let sealed = wrapped(&inner, vec![[7u8; 32]], false);
        assert_eq!(sealed.get_tokens("s").await.unwrap().unwrap(), tokens());
        sealed.set_tokens(&tokens(), "s").await.unwrap();
        assert!(inner
            .get_tokens("s")
            .await
            .unwrap()
            .unwrap()
            .access_token
            .starts_with("enc:v1:"));
    }

    #[tokio::test]
    async fn tampering_is_refused() {
        let inner = Arc::new(MemoryOAuthStorage::new());
        let s = wrapped(&inner, vec![[3u8; 32]], false);
        s.set_tokens(&tokens(), "s").await.unwrap();
        let mut raw = inner.get_tokens("s").await.unwrap().unwrap();
        let mut bytes = raw.access_token.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        raw.access_token = String::from_utf8(bytes).unwrap();
        inner.set_tokens(&raw, "s").await.unwrap();
        assert!(s.get_tokens("s").await.is_err());
    }

    #[tokio::test]
    async fn hashed_ids_key_everything_by_the_hash() {
        let inner = Arc::new(MemoryOAuthStorage::new());
        let s = wrapped(&inner, vec![], true);
        s.set_tokens(&tokens(), "session-1").await.unwrap();
        assert!(inner.get_tokens("session-1").await.unwrap().is_none());
        let key = hashed_id("session-1");
        assert_eq!(key.len(), 7 + 64);
        assert_eq!(inner.get_tokens(&key).await.unwrap().unwrap(), tokens());
        assert_eq!(s.get_tokens("session-1").await.unwrap().unwrap(), tokens());
        s.clear_tokens("session-1").await.unwrap();
        assert!(inner.get_tokens(&key).await.unwrap().is_none());
    }

    #[test]
    fn hex_keys() {
        let hex = "00".repeat(31) + "ff";
        assert_eq!(parse_hex_key(&hex, "k").unwrap()[31], 255);
        assert!(parse_hex_key("zz", "k").is_err());
        assert!(parse_hex_key(&"g".repeat(64), "k").is_err());
    }
}

//! The OAuth storage interface (SPEC §6 `OAuthStorage`).
//!
//! The three required methods are the original interface, in its argument order
//! (`set_tokens(tokens, session_id)`): the bindings implement them over any JS object with
//! `getTokens`/`setTokens`/`clearTokens`. Everything else is provided with a default, so such
//! an object works as it is; the native storages override the defaults to keep PKCE state,
//! to coordinate refreshes across processes and to remember refresh attempts durably.

use async_trait::async_trait;

use crate::error::{Result, SessionError};
use crate::oauth::config::{OAuthTokens, PkceState};
use crate::oauth::refresh::RefreshAttempt;
use crate::session::Millis;

#[async_trait]
pub trait OAuthStorage: Send + Sync {
    /// The session's tokens, or `None`.
    async fn get_tokens(&self, session_id: &str) -> Result<Option<OAuthTokens>>;

    /// Stores (replaces) the session's tokens. Native storages also forget the session's
    /// recorded refresh attempt: new tokens make it moot.
    async fn set_tokens(&self, tokens: &OAuthTokens, session_id: &str) -> Result<()>;

    /// Removes the session's tokens (and whatever else the storage keeps for the session).
    /// No-op when there are none.
    async fn clear_tokens(&self, session_id: &str) -> Result<()>;

    /// True when every future this storage returns completes on its first poll (memory,
    /// SQLite), so a binding may run calls that need no HTTP on the caller's thread.
    fn is_sync(&self) -> bool {
        false
    }

    /// Remembers a PKCE state under `state` until `expires_at` (epoch ms).
    async fn put_state(&self, _state: &str, _pkce: &PkceState, _expires_at: Millis) -> Result<()> {
        Err(SessionError::Unsupported {
            operation: "storing OAuth state (authorize)",
            method: "putState",
        })
    }

    /// Removes and returns the PKCE state stored under `state`: one use only. An expired
    /// state is removed too and gives `None`.
    async fn take_state(&self, _state: &str) -> Result<Option<PkceState>> {
        Err(SessionError::Unsupported {
            operation: "reading OAuth state (handleCallback)",
            method: "takeState",
        })
    }

    /// Takes the cross-process refresh lease of `session_id` for `owner` for `lease_ms`;
    /// `false` while another owner holds an unexpired lease. A storage shared by several
    /// processes must implement it; the default (always acquired) leaves coordination to
    /// the process-local single flight, which is exact for a storage only one process uses.
    async fn try_lock_refresh(
        &self,
        _session_id: &str,
        _owner: &str,
        _lease_ms: Millis,
    ) -> Result<bool> {
        Ok(true)
    }

    /// Releases the lease if `owner` still holds it.
    async fn unlock_refresh(&self, _session_id: &str, _owner: &str) -> Result<()> {
        Ok(())
    }

    /// Whether [`get_refresh_attempt`](Self::get_refresh_attempt) and
    /// [`set_refresh_attempt`](Self::set_refresh_attempt) are implemented. When false, the
    /// coordinator keeps attempts in process memory (they then do not survive a restart and
    /// are not seen by other processes).
    fn persists_refresh_attempts(&self) -> bool {
        false
    }

    /// The refresh attempt recorded for the session (see docs/oauth.md, "lost responses").
    async fn get_refresh_attempt(&self, _session_id: &str) -> Result<Option<RefreshAttempt>> {
        Ok(None)
    }

    /// Records (`Some`) or forgets (`None`) the session's refresh attempt. Does nothing when
    /// the session has no tokens.
    async fn set_refresh_attempt(
        &self,
        _session_id: &str,
        _attempt: Option<&RefreshAttempt>,
    ) -> Result<()> {
        Ok(())
    }

    /// Releases connections and files. Later calls fail with `AdapterClosed`.
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

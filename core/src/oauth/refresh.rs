//! The refresh coordinator: however many callers, threads and processes want a session's
//! token refreshed at once, one refresh request reaches the server (docs/oauth.md).
//!
//! - In a process: one flight per (storage instance, session id), a `Shared` future in a
//!   process-global registry. Every manager and `OAuthClient` over the same storage `Arc`
//!   joins it, and every caller gets its outcome (success or failure alike, so a failing
//!   server sees one request per burst, not one per caller). A burst is every caller that
//!   began reading the tokens before the flight ended: such a caller gets the ended flight's
//!   result too, not a flight of its own (see [`LastFlight`]). A caller that began after
//!   it is the "next call" of SPEC §6, which tries again.
//! - Across processes: the storage's lease (`try_lock_refresh`), polled with a small backoff
//!   for a bounded time. While waiting, the tokens are re-read: once the holder stores new
//!   ones they are used, without a request of our own. After taking the lease the tokens are
//!   read once more, because the holder may have finished just before.
//! - Lost responses: before the request leaves, the attempt is recorded in the storage
//!   ([`RefreshAttempt`]). A definitive answer clears it; a timeout, a broken connection or a
//!   5xx leaves it. A later `invalid_grant` for the same refresh token then means the server
//!   did rotate it and the answer was lost: `refresh_response_lost`, not a silent logout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::error::{Result, SessionError};
use crate::oauth::config::{OAuthConfig, OAuthEndpoints, OAuthTokens};
use crate::oauth::http::{self, FailureKind};
use crate::oauth::oauth_error;
use crate::oauth::pkce::fingerprint;
use crate::oauth::storage::OAuthStorage;
use crate::session::{now_millis, Millis};

/// A refresh whose outcome is not known yet (or turned out lost), recorded before the
/// request leaves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshAttempt {
    /// `pkce::fingerprint` of the refresh token that was presented.
    pub token_fingerprint: String,
    /// When the request was sent (epoch ms).
    pub started_at: Millis,
    /// The server later answered `invalid_grant` for this token: the attempt did rotate it,
    /// and its answer never arrived. No further request is sent with this token.
    pub lost: bool,
}

/// Timing of one refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefreshSettings {
    /// Limit for the whole token request.
    pub request_timeout_ms: u64,
    /// Limit for waiting on another process's refresh of the same session.
    pub lock_wait_ms: u64,
}

impl RefreshSettings {
    /// The lease outlives the holder's request (plus storage writes), so a live holder never
    /// loses it mid-refresh; a dead holder's lease frees itself this long after it was taken.
    pub fn lease_ms(&self) -> Millis {
        Millis::try_from(self.request_timeout_ms)
            .unwrap_or(Millis::MAX / 2)
            .saturating_add(10_000)
    }
}

/// What one flight ended with. Every caller of the flight gets a clone.
#[derive(Clone, Debug)]
pub enum RefreshOutcome {
    /// This flight refreshed; the new tokens are stored.
    Refreshed(OAuthTokens),
    /// Someone else (another process, or a refresh that finished just before) stored newer
    /// tokens; `None` when the tokens are gone (logged out elsewhere).
    Adopted(Option<OAuthTokens>),
    /// `invalid_grant`, confirmed by a re-read of the storage: the session is dead.
    Dead(Arc<SessionError>),
    /// The refresh token was spent by an attempt whose response was lost. `tokens` are the
    /// current (old) ones; their access token works until it expires.
    Lost {
        tokens: OAuthTokens,
        error: Arc<SessionError>,
        /// True for the flight that found out (it reports), false for later ones.
        newly_detected: bool,
    },
    /// Nothing changed: a transient failure, a configuration error, a refused request, a
    /// storage error, or a lease wait that ran out. `tokens` are the ones to keep using
    /// (the current ones; or the new ones when only storing them failed).
    Failed {
        tokens: OAuthTokens,
        error: Arc<SessionError>,
    },
}

/// One flight's result, shared by its callers. `handled` lets exactly one of them act on it
/// (events, logout) while the others wait for that and read its result (true: logged out).
#[derive(Clone, Debug)]
pub struct FlightResult {
    pub outcome: RefreshOutcome,
    pub handled: Arc<OnceCell<bool>>,
}

type SharedFlight = Shared<BoxFuture<'static, FlightResult>>;

#[derive(Default)]
struct SessionSlot {
    flight: Option<(u64, SharedFlight)>,
    /// The attempt record for storages that do not persist them.
    attempt: Option<RefreshAttempt>,
    /// The flight that ended last, for the stragglers of its burst.
    last: Option<LastFlight>,
}

/// An ended flight, kept for callers that read the same tokens before it ended (they belong
/// to its burst: they share its result and its one-time handling, instead of sending the
/// same refresh token again or reporting the same logout twice).
struct LastFlight {
    /// The tokens the flight was started for.
    seen: OAuthTokens,
    ended: Instant,
    result: FlightResult,
}

/// How long an ended flight is kept at most. Its stragglers arrive within microseconds to
/// milliseconds. A flight that proved the session dead is also joined by later callers while
/// its logout is not done yet (at most [`UNHANDLED_JOIN`]: an `OAuthClient` leaves it to a
/// manager), so that the logout and its events happen once.
const LAST_FLIGHT_KEEP: Duration = Duration::from_secs(30);
const UNHANDLED_JOIN: Duration = Duration::from_secs(5);

impl LastFlight {
    /// Whether a caller that started reading `seen` at `read_at` belongs to this flight.
    fn joinable(&self, seen: &OAuthTokens, read_at: Instant) -> bool {
        let logs_out = matches!(
            self.result.outcome,
            RefreshOutcome::Dead(_) | RefreshOutcome::Lost { .. }
        );
        self.seen.same_grant(seen)
            && (read_at <= self.ended
                || (logs_out
                    && !self.result.handled.initialized()
                    && self.ended.elapsed() < UNHANDLED_JOIN))
    }
}

struct StorageSlot {
    /// Keeps the key unambiguous: while this `Weak` lives, the allocation (and so the
    /// address used as key) cannot be reused by another storage.
    storage: Weak<dyn OAuthStorage>,
    sessions: HashMap<String, SessionSlot>,
}

/// Keyed by the storage's address: two managers or clients share flights exactly when they
/// share the storage instance.
static REGISTRY: LazyLock<Mutex<HashMap<usize, StorageSlot>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
static NEXT_FLIGHT: AtomicU64 = AtomicU64::new(1);
static SWEEP: AtomicU64 = AtomicU64::new(1);

fn registry() -> MutexGuard<'static, HashMap<usize, StorageSlot>> {
    // No code panics while holding it, and every state it can hold is consistent, so a
    // poisoned lock is safe to keep using.
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn key_of(storage: &Arc<dyn OAuthStorage>) -> usize {
    Arc::as_ptr(storage) as *const () as usize
}

/// Runs `f` on the session's slot, creating it, and drops slots left empty (and storages
/// that are gone) afterwards.
fn with_slot<T>(
    storage: &Arc<dyn OAuthStorage>,
    session_id: &str,
    f: impl FnOnce(&mut SessionSlot) -> T,
) -> T {
    let key = key_of(storage);
    let mut map = registry();
    map.retain(|_, slot| slot.storage.strong_count() > 0);
    // Sessions nobody asks about again would keep their last flight: sweep now and then.
    if SWEEP.fetch_add(1, Ordering::Relaxed).is_multiple_of(1024) {
        for slot in map.values_mut() {
            slot.sessions.retain(|_, s| {
                if s.last
                    .as_ref()
                    .is_some_and(|l| l.ended.elapsed() > LAST_FLIGHT_KEEP)
                {
                    s.last = None;
                }
                s.flight.is_some() || s.attempt.is_some() || s.last.is_some()
            });
        }
        map.retain(|_, slot| !slot.sessions.is_empty());
    }
    let slot = map.entry(key).or_insert_with(|| StorageSlot {
        storage: Arc::downgrade(storage),
        sessions: HashMap::new(),
    });
    let session = slot.sessions.entry(session_id.to_owned()).or_default();
    let result = f(session);
    if session
        .last
        .as_ref()
        .is_some_and(|last| last.ended.elapsed() > LAST_FLIGHT_KEEP)
    {
        session.last = None;
    }
    if session.flight.is_none() && session.attempt.is_none() && session.last.is_none() {
        slot.sessions.remove(session_id);
    }
    if slot.sessions.is_empty() {
        map.remove(&key);
    }
    result
}

/// Refreshes the session's tokens, joining the flight in progress if there is one, or the
/// one that ended after the caller began reading. `seen` are the tokens the caller found
/// (the ones it considers stale); `read_at` is when it began reading them.
pub async fn refresh(
    storage: &Arc<dyn OAuthStorage>,
    config: &Arc<OAuthConfig>,
    endpoints: &Arc<OAuthEndpoints>,
    session_id: &str,
    seen: &OAuthTokens,
    read_at: Instant,
    settings: RefreshSettings,
) -> FlightResult {
    // The lease wait and the HTTP request need Tokio's timers and I/O; without a runtime
    // they would panic. Say so instead (a binding polls these futures inside its runtime).
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return FlightResult {
            outcome: failed(
                seen,
                SessionError::Internal(
                    "an OAuth token refresh was started outside a Tokio runtime".into(),
                ),
            ),
            handled: Arc::new(OnceCell::new()),
        };
    };
    let joined = with_slot(storage, session_id, |slot| {
        // A finished flight still in the map (its removal is the last thing it does, so
        // this is a narrow window) must not hand its old result to a new caller.
        if let Some((_, flight)) = &slot.flight {
            if flight.peek().is_none() {
                return Joined::Running(flight.clone(), false);
            }
        }
        if let Some(last) = slot.last.as_ref().filter(|l| l.joinable(seen, read_at)) {
            return Joined::Ended(last.result.clone());
        }
        let id = NEXT_FLIGHT.fetch_add(1, Ordering::Relaxed);
        let flight = run_flight(
            id,
            storage.clone(),
            config.clone(),
            endpoints.clone(),
            session_id.to_owned(),
            seen.clone(),
            settings,
        )
        .boxed()
        .shared();
        slot.flight = Some((id, flight.clone()));
        Joined::Running(flight, true)
    });
    let (flight, started) = match joined {
        Joined::Running(flight, started) => (flight, started),
        Joined::Ended(result) => return result,
    };
    if started {
        // Driven to completion by its own task too: if every caller gives up (a dropped
        // future), the refresh still finishes, stores its tokens and releases the lease,
        // instead of sitting half-done in the registry.
        runtime.spawn(flight.clone());
    }
    flight.await
}

/// What a caller of [`refresh`] found: a flight to await (and whether it started it), or the
/// result of an ended flight of its burst.
enum Joined {
    Running(SharedFlight, bool),
    Ended(FlightResult),
}

/// Forgets the process-local state of a session (after logout).
pub fn forget(storage: &Arc<dyn OAuthStorage>, session_id: &str) {
    with_slot(storage, session_id, |slot| {
        slot.attempt = None;
        slot.last = None;
    });
}

async fn run_flight(
    id: u64,
    storage: Arc<dyn OAuthStorage>,
    config: Arc<OAuthConfig>,
    endpoints: Arc<OAuthEndpoints>,
    session_id: String,
    seen: OAuthTokens,
    settings: RefreshSettings,
) -> FlightResult {
    let flight = Flight {
        storage: &storage,
        config: &config,
        endpoints: &endpoints,
        session_id: &session_id,
        seen: &seen,
        settings,
    };
    let outcome = flight.with_lease().await;
    let result = FlightResult {
        outcome,
        handled: Arc::new(OnceCell::new()),
    };
    // Leave the registry before the result is handed out: a caller that begins reading
    // later sees newer tokens, or starts a fresh flight (a transient failure is retried by
    // the next burst). The stragglers of this burst join `last`.
    with_slot(&storage, &session_id, |slot| {
        if slot
            .flight
            .as_ref()
            .is_some_and(|(flight_id, _)| *flight_id == id)
        {
            slot.flight = None;
            slot.last = Some(LastFlight {
                seen: seen.clone(),
                ended: Instant::now(),
                result: result.clone(),
            });
        }
    });
    result
}

/// The borrowed context of one flight.
struct Flight<'a> {
    storage: &'a Arc<dyn OAuthStorage>,
    config: &'a OAuthConfig,
    endpoints: &'a OAuthEndpoints,
    session_id: &'a str,
    seen: &'a OAuthTokens,
    settings: RefreshSettings,
}

/// Whether the stored tokens are no longer the ones the caller saw.
fn changed(current: &Option<OAuthTokens>, seen: &OAuthTokens) -> bool {
    !current.as_ref().is_some_and(|c| c.same_grant(seen))
}

fn failed(tokens: &OAuthTokens, error: SessionError) -> RefreshOutcome {
    RefreshOutcome::Failed {
        tokens: tokens.clone(),
        error: Arc::new(error),
    }
}

impl Flight<'_> {
    /// Takes the cross-process lease (bounded wait), refreshes, releases.
    async fn with_lease(&self) -> RefreshOutcome {
        let owner = uuid::Uuid::new_v4().to_string();
        let deadline = Instant::now() + Duration::from_millis(self.settings.lock_wait_ms);
        let mut delay = Duration::from_millis(5);
        loop {
            match self
                .storage
                .try_lock_refresh(self.session_id, &owner, self.settings.lease_ms())
                .await
            {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => return failed(self.seen, e),
            }
            // Another process holds the lease: once it stores new tokens, use them.
            match self.storage.get_tokens(self.session_id).await {
                Ok(current) if changed(&current, self.seen) => {
                    return RefreshOutcome::Adopted(current)
                }
                Ok(_) => {}
                Err(e) => return failed(self.seen, e),
            }
            let now = Instant::now();
            if now >= deadline {
                return failed(
                    self.seen,
                    oauth_error(
                        "refresh_lock_timeout",
                        format!(
                            "another process has been refreshing this session's tokens for \
                             more than {} ms; the current tokens are kept",
                            self.settings.lock_wait_ms
                        ),
                    ),
                );
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = (delay * 2).min(Duration::from_millis(100));
        }
        let outcome = self.locked().await;
        // A failure to release is not reported: the lease then expires by itself
        // (`lease_ms`), which only delays the next refresh of this session.
        let _ = self.storage.unlock_refresh(self.session_id, &owner).await;
        outcome
    }

    /// The refresh itself, under the lease.
    async fn locked(&self) -> RefreshOutcome {
        let current = match self.storage.get_tokens(self.session_id).await {
            Ok(current) => current,
            Err(e) => return failed(self.seen, e),
        };
        // The holder before us may have finished just before we took the lease.
        if changed(&current, self.seen) {
            return RefreshOutcome::Adopted(current);
        }
        let tokens = current.unwrap_or_else(|| self.seen.clone());
        let Some(refresh_token) = tokens.refresh_token.clone() else {
            return failed(
                &tokens,
                oauth_error(
                    "no_refresh_token",
                    "the session's tokens have no refresh token",
                ),
            );
        };
        let token_fingerprint = fingerprint(&refresh_token);
        let prior = match self.read_attempt().await {
            Ok(attempt) => attempt.filter(|a| a.token_fingerprint == token_fingerprint),
            Err(e) => return failed(&tokens, e),
        };
        if let Some(prior) = prior.as_ref().filter(|a| a.lost) {
            // Known dead: sending it again would only earn another invalid_grant.
            return RefreshOutcome::Lost {
                tokens,
                error: Arc::new(lost_error(prior.started_at)),
                newly_detected: false,
            };
        }
        let sent_at = now_millis();
        let attempt = RefreshAttempt {
            token_fingerprint: token_fingerprint.clone(),
            started_at: sent_at,
            lost: false,
        };
        // Without this record a lost answer could not be recognised later: do not send.
        if let Err(e) = self.write_attempt(Some(&attempt)).await {
            return failed(&tokens, e);
        }
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.as_str()),
        ];
        let timeout = Duration::from_millis(self.settings.request_timeout_ms);
        match http::token_request(&self.endpoints.token, &form, timeout).await {
            Ok(response) => {
                let new = response.into_tokens(sent_at, Some(&tokens));
                match self.storage.set_tokens(&new, self.session_id).await {
                    Ok(()) => {
                        if !self.storage.persists_refresh_attempts() {
                            with_slot(self.storage, self.session_id, |slot| slot.attempt = None);
                        }
                        RefreshOutcome::Refreshed(new)
                    }
                    // The server rotated, but the new tokens could not be stored: callers
                    // get them for now; the recorded attempt makes the next refresh's
                    // invalid_grant a reported `refresh_response_lost`.
                    Err(e) => failed(&new, e),
                }
            }
            Err(failure) => match failure.kind {
                FailureKind::InvalidGrant => {
                    // Another process may have refreshed with this token: use its result.
                    match self.storage.get_tokens(self.session_id).await {
                        Ok(current) if changed(&current, self.seen) => {
                            return RefreshOutcome::Adopted(current)
                        }
                        Ok(_) => {}
                        // Cannot confirm the death: keep the session this time.
                        Err(e) => return failed(&tokens, e),
                    }
                    if let Some(prior) = prior {
                        let lost = RefreshAttempt {
                            lost: true,
                            ..prior.clone()
                        };
                        // If this record fails, the next call asks again and lands here.
                        let _ = self.write_attempt(Some(&lost)).await;
                        return RefreshOutcome::Lost {
                            tokens,
                            error: Arc::new(lost_error(prior.started_at)),
                            newly_detected: true,
                        };
                    }
                    let _ = self.write_attempt(None).await;
                    RefreshOutcome::Dead(Arc::new(failure.error))
                }
                // The refresh token may have been rotated: keep the record.
                FailureKind::OutcomeUnknown => failed(&tokens, failure.error),
                // Definitive: the token was not used.
                FailureKind::InvalidClient | FailureKind::Rejected | FailureKind::NotSent => {
                    let _ = self.write_attempt(None).await;
                    failed(&tokens, failure.error)
                }
            },
        }
    }

    async fn read_attempt(&self) -> Result<Option<RefreshAttempt>> {
        if self.storage.persists_refresh_attempts() {
            self.storage.get_refresh_attempt(self.session_id).await
        } else {
            Ok(with_slot(self.storage, self.session_id, |slot| {
                slot.attempt.clone()
            }))
        }
    }

    async fn write_attempt(&self, attempt: Option<&RefreshAttempt>) -> Result<()> {
        if self.storage.persists_refresh_attempts() {
            self.storage
                .set_refresh_attempt(self.session_id, attempt)
                .await
        } else {
            with_slot(self.storage, self.session_id, |slot| {
                slot.attempt = attempt.cloned()
            });
            Ok(())
        }
    }
}

fn lost_error(started_at: Millis) -> SessionError {
    oauth_error(
        "refresh_response_lost",
        format!(
            "the refresh started at {started_at} (epoch ms) rotated this session's refresh token, \
             but its response never arrived; the session keeps its current access token until \
             it expires and is then logged out, so the user must sign in again"
        ),
    )
}

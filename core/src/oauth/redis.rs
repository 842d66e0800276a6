//! `RedisOAuthStorage`: OAuth state in Redis (or Valkey), shared by any number of processes.
//!
//! Keys, under the prefix `P` (default `slices:oauth:`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P t:<sessionId>` | hash | `access_token`, `token_type`, `refresh_token`, `expires_at`, `scope`, `updated_at`, and the refresh attempt (`attempt_token`, `attempt_at`, `attempt_lost`) |
//! | `P st:<state>` | hash | a PKCE state: `code_verifier`, `created_at`, `expires_at`; key TTL = `expires_at` |
//! | `P lock:<sessionId>` | string | the refresh lease: its owner's token; key TTL = the lease |
//!
//! The refresh lease is the usual Redis lock: taken with `SET NX PX` (or re-taken by its own
//! owner, a retry after a lost connection), released by a script that deletes it only when
//! it still holds the caller's token, and freed by its TTL when its holder dies. Lease times
//! are the server's clock, so processes with skewed clocks agree on expiry.

use async_trait::async_trait;
use redis::{Script, Value};

use crate::error::{Result, SessionError};
use crate::oauth::config::{OAuthTokens, PkceState};
use crate::oauth::refresh::RefreshAttempt;
use crate::oauth::storage::OAuthStorage;
use crate::redis_conn::{reply_text, RedisConn, RedisOptions, Retry};
use crate::session::{now_millis, Millis};

const DEFAULT_PREFIX: &str = "slices:oauth:";

/// ARGV: prefix, session id, then (field, value) pairs. Replaces the tokens and forgets the
/// refresh attempt (new tokens make it moot).
const SET_TOKENS: &str = r#"
local k = ARGV[1] .. 't:' .. ARGV[2]
redis.call('DEL', k)
redis.call('HSET', k, unpack(ARGV, 3, #ARGV))
return 1
"#;

/// ARGV: prefix, state, code_verifier, created_at, expires_at.
const PUT_STATE: &str = r#"
local k = ARGV[1] .. 'st:' .. ARGV[2]
redis.call('DEL', k)
redis.call('HSET', k, 'code_verifier', ARGV[3], 'created_at', ARGV[4], 'expires_at', ARGV[5])
redis.call('PEXPIREAT', k, ARGV[5])
return 1
"#;

/// ARGV: prefix, state. Removes the state and returns {code_verifier, created_at, expires_at}.
const TAKE_STATE: &str = r#"
local k = ARGV[1] .. 'st:' .. ARGV[2]
local r = redis.call('HMGET', k, 'code_verifier', 'created_at', 'expires_at')
redis.call('DEL', k)
return r
"#;

/// ARGV: prefix, session id, owner, lease ms. 1 when the caller holds the lease.
const TRY_LOCK: &str = r#"
local k = ARGV[1] .. 'lock:' .. ARGV[2]
if redis.call('SET', k, ARGV[3], 'NX', 'PX', ARGV[4]) then return 1 end
if redis.call('GET', k) == ARGV[3] then
  redis.call('PEXPIRE', k, ARGV[4])
  return 1
end
return 0
"#;

/// ARGV: prefix, session id, owner. Deletes the lease only when the caller still holds it.
const UNLOCK: &str = r#"
local k = ARGV[1] .. 'lock:' .. ARGV[2]
if redis.call('GET', k) == ARGV[3] then redis.call('DEL', k) end
return 1
"#;

/// ARGV: prefix, session id, has_attempt, token, started_at, lost. Nothing without tokens.
const SET_ATTEMPT: &str = r#"
local k = ARGV[1] .. 't:' .. ARGV[2]
if redis.call('EXISTS', k) == 0 then return 0 end
if ARGV[3] == '1' then
  redis.call('HSET', k, 'attempt_token', ARGV[4], 'attempt_at', ARGV[5], 'attempt_lost', ARGV[6])
else
  redis.call('HDEL', k, 'attempt_token', 'attempt_at', 'attempt_lost')
end
return 1
"#;

struct Scripts {
    set_tokens: Script,
    put_state: Script,
    take_state: Script,
    try_lock: Script,
    unlock: Script,
    set_attempt: Script,
}

/// OAuth tokens, PKCE states and refresh leases in Redis.
pub struct RedisOAuthStorage {
    conn: RedisConn,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisOAuthStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.conn.fmt(f)
    }
}

fn bad_reply(action: &str, reason: impl std::fmt::Display) -> SessionError {
    SessionError::Internal(format!("unexpected reply from Redis to {action}: {reason}"))
}

/// The text fields of an `HMGET` reply.
fn texts(action: &str, values: &[Value]) -> Result<Vec<Option<String>>> {
    values
        .iter()
        .map(|v| reply_text(v).map_err(|e| bad_reply(action, e)))
        .collect()
}

fn parse_millis(action: &str, field: &str, text: &str) -> Result<Millis> {
    text.parse()
        .map_err(|_| bad_reply(action, format!("`{field}` is not an integer: {text:?}")))
}

impl RedisOAuthStorage {
    /// Prepares the connections for `url`. Does not connect: the first call does.
    pub fn new(url: &str, options: RedisOptions) -> Result<RedisOAuthStorage> {
        let conn = RedisConn::new(url, &options, DEFAULT_PREFIX, "RedisOAuthStorage")?;
        Ok(RedisOAuthStorage {
            conn,
            scripts: Scripts {
                set_tokens: Script::new(SET_TOKENS),
                put_state: Script::new(PUT_STATE),
                take_state: Script::new(TAKE_STATE),
                try_lock: Script::new(TRY_LOCK),
                unlock: Script::new(UNLOCK),
                set_attempt: Script::new(SET_ATTEMPT),
            },
        })
    }

    /// Checks that the server answers (a `PING`). Optional.
    pub async fn initialize(&self) -> Result<()> {
        self.conn
            .call("reach the server", Retry::Safe, |mut c, _| async move {
                redis::cmd("PING").query_async::<String>(&mut c).await
            })
            .await
            .map(|_| ())
    }

    fn tokens_key(&self, session_id: &str) -> String {
        format!("{}t:{session_id}", self.conn.prefix)
    }

    async fn hmget(
        &self,
        action: &'static str,
        key: String,
        fields: &[&str],
    ) -> Result<Vec<Option<String>>> {
        let values: Vec<Value> = self
            .conn
            .call(action, Retry::Safe, |mut c, _| {
                let key = key.as_str();
                async move {
                    redis::cmd("HMGET")
                        .arg(key)
                        .arg(fields)
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        texts(action, &values)
    }
}

#[async_trait]
impl OAuthStorage for RedisOAuthStorage {
    async fn get_tokens(&self, session_id: &str) -> Result<Option<OAuthTokens>> {
        const ACTION: &str = "read the OAuth tokens";
        let f = self
            .hmget(
                ACTION,
                self.tokens_key(session_id),
                &[
                    "access_token",
                    "token_type",
                    "refresh_token",
                    "expires_at",
                    "scope",
                ],
            )
            .await?;
        let [access, token_type, refresh, expires_at, scope] =
            <[Option<String>; 5]>::try_from(f)
                .map_err(|_| bad_reply(ACTION, "wrong number of fields"))?;
        let (Some(access_token), Some(token_type)) = (access, token_type) else {
            return Ok(None);
        };
        let expires_at = match expires_at {
            Some(t) => Some(parse_millis(ACTION, "expires_at", &t)?),
            None => None,
        };
        Ok(Some(OAuthTokens {
            access_token,
            token_type,
            refresh_token: refresh,
            expires_at,
            scope,
        }))
    }

    async fn set_tokens(&self, tokens: &OAuthTokens, session_id: &str) -> Result<()> {
        let updated_at = now_millis().to_string();
        let expires_at = tokens.expires_at.map(|t| t.to_string());
        let mut args: Vec<&str> = vec![
            session_id,
            "access_token",
            &tokens.access_token,
            "token_type",
            &tokens.token_type,
            "updated_at",
            &updated_at,
        ];
        if let Some(r) = &tokens.refresh_token {
            args.extend(["refresh_token", r.as_str()]);
        }
        if let Some(e) = &expires_at {
            args.extend(["expires_at", e.as_str()]);
        }
        if let Some(s) = &tokens.scope {
            args.extend(["scope", s.as_str()]);
        }
        let args: Vec<&dyn crate::redis_conn::ArgLike> = args
            .iter()
            .map(|a| a as &dyn crate::redis_conn::ArgLike)
            .collect();
        self.conn
            .script::<i64>(
                "store the OAuth tokens",
                Retry::Safe,
                &self.scripts.set_tokens,
                &args,
            )
            .await
            .map(|_| ())
    }

    async fn clear_tokens(&self, session_id: &str) -> Result<()> {
        let key = self.tokens_key(session_id);
        self.conn
            .call("clear the OAuth tokens", Retry::Safe, |mut c, _| {
                let key = key.as_str();
                async move { redis::cmd("DEL").arg(key).query_async::<i64>(&mut c).await }
            })
            .await
            .map(|_| ())
    }

    async fn put_state(&self, state: &str, pkce: &PkceState, expires_at: Millis) -> Result<()> {
        self.conn
            .script::<i64>(
                "store the OAuth state",
                Retry::Safe,
                &self.scripts.put_state,
                &[&state, &pkce.code_verifier, &pkce.created_at, &expires_at],
            )
            .await
            .map(|_| ())
    }

    async fn take_state(&self, state: &str) -> Result<Option<PkceState>> {
        const ACTION: &str = "take the OAuth state";
        let now = now_millis();
        // Never sent twice: the first attempt may have removed the state already.
        let values: Vec<Value> = self
            .conn
            .script(ACTION, Retry::Never, &self.scripts.take_state, &[&state])
            .await?;
        let f = texts(ACTION, &values)?;
        let [verifier, created_at, expires_at] = <[Option<String>; 3]>::try_from(f)
            .map_err(|_| bad_reply(ACTION, "wrong number of fields"))?;
        let (Some(code_verifier), Some(created_at), Some(expires_at)) =
            (verifier, created_at, expires_at)
        else {
            return Ok(None);
        };
        if parse_millis(ACTION, "expires_at", &expires_at)? <= now {
            return Ok(None);
        }
        Ok(Some(PkceState {
            code_verifier,
            created_at: parse_millis(ACTION, "created_at", &created_at)?,
        }))
    }

    async fn try_lock_refresh(
        &self,
        session_id: &str,
        owner: &str,
        lease_ms: Millis,
    ) -> Result<bool> {
        // PX needs a positive lease.
        let lease = lease_ms.max(1);
        let held: i64 = self
            .conn
            .script(
                "take the refresh lease",
                Retry::Safe,
                &self.scripts.try_lock,
                &[&session_id, &owner, &lease],
            )
            .await?;
        Ok(held == 1)
    }

    async fn unlock_refresh(&self, session_id: &str, owner: &str) -> Result<()> {
        self.conn
            .script::<i64>(
                "release the refresh lease",
                Retry::Safe,
                &self.scripts.unlock,
                &[&session_id, &owner],
            )
            .await
            .map(|_| ())
    }

    fn persists_refresh_attempts(&self) -> bool {
        true
    }

    async fn get_refresh_attempt(&self, session_id: &str) -> Result<Option<RefreshAttempt>> {
        const ACTION: &str = "read the refresh attempt";
        let f = self
            .hmget(
                ACTION,
                self.tokens_key(session_id),
                &["attempt_token", "attempt_at", "attempt_lost"],
            )
            .await?;
        let [token, at, lost] = <[Option<String>; 3]>::try_from(f)
            .map_err(|_| bad_reply(ACTION, "wrong number of fields"))?;
        let Some(token_fingerprint) = token else {
            return Ok(None);
        };
        Ok(Some(RefreshAttempt {
            token_fingerprint,
            started_at: match at {
                Some(t) => parse_millis(ACTION, "attempt_at", &t)?,
                None => 0,
            },
            lost: lost.as_deref() == Some("1"),
        }))
    }

    async fn set_refresh_attempt(
        &self,
        session_id: &str,
        attempt: Option<&RefreshAttempt>,
    ) -> Result<()> {
        let has = if attempt.is_some() { "1" } else { "0" };
        let token = attempt.map_or("", |a| a.token_fingerprint.as_str());
        let started_at = attempt.map_or(0, |a| a.started_at);
        let lost = if attempt.is_some_and(|a| a.lost) {
            "1"
        } else {
            "0"
        };
        self.conn
            .script::<i64>(
                "record the refresh attempt",
                Retry::Safe,
                &self.scripts.set_attempt,
                &[&session_id, &has, &token, &started_at, &lost],
            )
            .await
            .map(|_| ())
    }

    async fn close(&self) -> Result<()> {
        self.conn.close();
        Ok(())
    }
}

//! `PostgresOAuthStorage`: OAuth state in PostgreSQL, shared by any number of processes.
//!
//! On the session adapter's pool (`crate::pg_pool`): connects lazily, creates the schema on
//! first use, limits each call (10 s by default), and retries a statement once on a fresh
//! connection when the connection proves dead (every statement here is safe to run twice).
//!
//! The refresh lock is a lease row, not an advisory lock. `pg_try_advisory_lock` is tied to
//! a connection: the connection would have to stay checked out (and alive) for the whole
//! HTTP refresh, so a slow authorization server would pin pool connections, and a pooled
//! connection returned with the lock still held would hand it to unrelated work. A lease row
//! is taken and released with one short statement each, holds no connection in between,
//! and expires on its own when its holder dies. Lease times come from the database's clock
//! (`clock_timestamp()`), so processes on machines with skewed clocks agree on expiry.

use async_trait::async_trait;
use tokio_postgres::Row;

use crate::error::{Result, SessionError};
use crate::oauth::config::{OAuthTokens, PkceState};
use crate::oauth::refresh::RefreshAttempt;
use crate::oauth::storage::OAuthStorage;
use crate::pg_pool::{Param, PgPool, Schema};
use crate::postgres::PostgresOptions;
use crate::session::{now_millis, Millis};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS slices_oauth_tokens (
  session_id TEXT PRIMARY KEY, access_token TEXT NOT NULL, token_type TEXT NOT NULL,
  refresh_token TEXT, expires_at BIGINT, scope TEXT, updated_at BIGINT NOT NULL,
  refresh_attempt_token TEXT, refresh_attempt_at BIGINT,
  refresh_attempt_lost BOOLEAN NOT NULL DEFAULT false);
CREATE TABLE IF NOT EXISTS slices_oauth_states (
  state TEXT PRIMARY KEY, code_verifier TEXT NOT NULL,
  created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS idx_slices_oauth_states_expires_at ON slices_oauth_states(expires_at);
CREATE TABLE IF NOT EXISTS slices_oauth_refresh_locks (
  session_id TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at BIGINT NOT NULL);";

/// Serialises schema creation across processes (concurrent `CREATE TABLE IF NOT EXISTS`
/// can fail in the catalog). "slices" in ASCII, then 2 (the sessions table uses 1).
const SCHEMA_LOCK_KEY: i64 = 0x736c_6963_6573_0002;

const GET_TOKENS: &str = "SELECT access_token, token_type, refresh_token, expires_at, scope \
     FROM slices_oauth_tokens WHERE session_id = $1";
/// Replacing the tokens also forgets the refresh attempt (new tokens make it moot).
const SET_TOKENS: &str = "INSERT INTO slices_oauth_tokens (session_id, access_token, token_type, \
     refresh_token, expires_at, scope, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (session_id) DO UPDATE SET access_token = EXCLUDED.access_token, \
     token_type = EXCLUDED.token_type, refresh_token = EXCLUDED.refresh_token, \
     expires_at = EXCLUDED.expires_at, scope = EXCLUDED.scope, updated_at = EXCLUDED.updated_at, \
     refresh_attempt_token = NULL, refresh_attempt_at = NULL, refresh_attempt_lost = false";
const CLEAR_TOKENS: &str = "DELETE FROM slices_oauth_tokens WHERE session_id = $1";
const PURGE_STATES: &str = "DELETE FROM slices_oauth_states WHERE expires_at <= $1";
const PUT_STATE: &str =
    "INSERT INTO slices_oauth_states (state, code_verifier, created_at, expires_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (state) DO UPDATE SET \
     code_verifier = EXCLUDED.code_verifier, created_at = EXCLUDED.created_at, \
     expires_at = EXCLUDED.expires_at";
const TAKE_STATE: &str = "DELETE FROM slices_oauth_states WHERE state = $1 \
     RETURNING code_verifier, created_at, expires_at";
/// The database's clock in epoch ms.
macro_rules! db_now {
    () => {
        "(extract(epoch from clock_timestamp()) * 1000)::bigint"
    };
}
/// The lease in one statement: a new row, or a takeover of an expired lease (or our own:
/// a retry after a lost connection). One affected row exactly when the caller holds it.
const TRY_LOCK: &str = concat!(
    "INSERT INTO slices_oauth_refresh_locks (session_id, owner, expires_at) VALUES ($1, $2, ",
    db_now!(),
    " + $3::bigint) ON CONFLICT (session_id) DO UPDATE SET owner = EXCLUDED.owner, ",
    "expires_at = EXCLUDED.expires_at WHERE slices_oauth_refresh_locks.expires_at < ",
    db_now!(),
    " OR slices_oauth_refresh_locks.owner = EXCLUDED.owner"
);
const UNLOCK: &str = "DELETE FROM slices_oauth_refresh_locks WHERE session_id = $1 AND owner = $2";
const GET_ATTEMPT: &str = "SELECT refresh_attempt_token, refresh_attempt_at, refresh_attempt_lost \
     FROM slices_oauth_tokens WHERE session_id = $1";
const SET_ATTEMPT: &str = "UPDATE slices_oauth_tokens SET refresh_attempt_token = $2, \
     refresh_attempt_at = $3, refresh_attempt_lost = $4 WHERE session_id = $1";

/// OAuth state in PostgreSQL tables (in the connection's `search_path`).
pub struct PostgresOAuthStorage {
    pool: PgPool,
}

impl std::fmt::Debug for PostgresOAuthStorage {
    // The pool's Debug leaves out the configuration, which holds the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.pool.fmt(f)
    }
}

impl PostgresOAuthStorage {
    /// Prepares a pool for `connection_string`. Does not connect: the first call does.
    pub fn new(connection_string: &str, options: PostgresOptions) -> Result<PostgresOAuthStorage> {
        let schema = Schema {
            sql: SCHEMA,
            advisory_lock_key: SCHEMA_LOCK_KEY,
            action: "create the OAuth tables",
        };
        let pool = PgPool::new(
            connection_string,
            &options,
            "slices-session-oauth",
            "PostgresOAuthStorage",
            schema,
        )?;
        Ok(PostgresOAuthStorage { pool })
    }

    /// Creates the tables if missing. Optional: the first call of any method does it.
    pub async fn initialize(&self) -> Result<()> {
        self.pool.ensure_schema().await
    }

    async fn query(
        &self,
        action: &'static str,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>> {
        self.pool.query(action, sql, params).await
    }

    async fn execute(&self, action: &'static str, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        self.pool.execute(action, sql, params).await
    }
}

fn row_err(action: &'static str) -> impl Fn(tokio_postgres::Error) -> SessionError {
    move |source| SessionError::Postgres { action, source }
}

#[async_trait]
impl OAuthStorage for PostgresOAuthStorage {
    async fn get_tokens(&self, session_id: &str) -> Result<Option<OAuthTokens>> {
        const ACTION: &str = "read the OAuth tokens";
        let rows = self.query(ACTION, GET_TOKENS, &[&session_id]).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let err = row_err(ACTION);
        Ok(Some(OAuthTokens {
            access_token: row.try_get(0).map_err(&err)?,
            token_type: row.try_get(1).map_err(&err)?,
            refresh_token: row.try_get(2).map_err(&err)?,
            expires_at: row.try_get(3).map_err(&err)?,
            scope: row.try_get(4).map_err(&err)?,
        }))
    }

    async fn set_tokens(&self, tokens: &OAuthTokens, session_id: &str) -> Result<()> {
        self.execute(
            "store the OAuth tokens",
            SET_TOKENS,
            &[
                &session_id,
                &tokens.access_token,
                &tokens.token_type,
                &tokens.refresh_token,
                &tokens.expires_at,
                &tokens.scope,
                &now_millis(),
            ],
        )
        .await
        .map(|_| ())
    }

    async fn clear_tokens(&self, session_id: &str) -> Result<()> {
        self.execute("clear the OAuth tokens", CLEAR_TOKENS, &[&session_id])
            .await
            .map(|_| ())
    }

    async fn put_state(&self, state: &str, pkce: &PkceState, expires_at: Millis) -> Result<()> {
        // Abandoned logins would otherwise accumulate; the index makes this cheap.
        self.execute("purge expired OAuth states", PURGE_STATES, &[&now_millis()])
            .await?;
        self.execute(
            "store the OAuth state",
            PUT_STATE,
            &[&state, &pkce.code_verifier, &pkce.created_at, &expires_at],
        )
        .await
        .map(|_| ())
    }

    async fn take_state(&self, state: &str) -> Result<Option<PkceState>> {
        const ACTION: &str = "take the OAuth state";
        let now = now_millis();
        let rows = self.query(ACTION, TAKE_STATE, &[&state]).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let err = row_err(ACTION);
        let expires_at: Millis = row.try_get(2).map_err(&err)?;
        if expires_at <= now {
            return Ok(None);
        }
        Ok(Some(PkceState {
            code_verifier: row.try_get(0).map_err(&err)?,
            created_at: row.try_get(1).map_err(&err)?,
        }))
    }

    async fn try_lock_refresh(
        &self,
        session_id: &str,
        owner: &str,
        lease_ms: Millis,
    ) -> Result<bool> {
        let changed = self
            .execute(
                "take the refresh lease",
                TRY_LOCK,
                &[&session_id, &owner, &lease_ms],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn unlock_refresh(&self, session_id: &str, owner: &str) -> Result<()> {
        self.execute("release the refresh lease", UNLOCK, &[&session_id, &owner])
            .await
            .map(|_| ())
    }

    fn persists_refresh_attempts(&self) -> bool {
        true
    }

    async fn get_refresh_attempt(&self, session_id: &str) -> Result<Option<RefreshAttempt>> {
        const ACTION: &str = "read the refresh attempt";
        let rows = self.query(ACTION, GET_ATTEMPT, &[&session_id]).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let err = row_err(ACTION);
        let token: Option<String> = row.try_get(0).map_err(&err)?;
        let started_at: Option<Millis> = row.try_get(1).map_err(&err)?;
        let lost: bool = row.try_get(2).map_err(&err)?;
        Ok(token.map(|token_fingerprint| RefreshAttempt {
            token_fingerprint,
            started_at: started_at.unwrap_or(0),
            lost,
        }))
    }

    async fn set_refresh_attempt(
        &self,
        session_id: &str,
        attempt: Option<&RefreshAttempt>,
    ) -> Result<()> {
        let token = attempt.map(|a| a.token_fingerprint.as_str());
        let started_at = attempt.map(|a| a.started_at);
        let lost = attempt.is_some_and(|a| a.lost);
        self.execute(
            "record the refresh attempt",
            SET_ATTEMPT,
            &[&session_id, &token, &started_at, &lost],
        )
        .await
        .map(|_| ())
    }

    async fn close(&self) -> Result<()> {
        self.pool.close();
        Ok(())
    }
}

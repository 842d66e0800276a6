//! Redis (or Valkey) adapter: sessions as hashes that Redis expires itself.
//!
//! Keys, under the prefix `P` (default `slices:session:`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P s:<id>` | hash | the record: `user_id`, `handle`, `is_authenticated` (`1`/`0`), `data` (JSON text), `created_at`, `expires_at`, `last_accessed_at` (decimal ms); key TTL = `expires_at` |
//! | `P u:<userId>` | sorted set | the user's session ids, scored by `created_at`; TTL = its longest session's |
//! | `P expiry` | sorted set | every session id, scored by `expires_at` (what `cleanup(t)` reads) |
//!
//! Every operation is one command or one Lua script, so each is one round trip and atomic
//! (the indexes never disagree with the records a call wrote). A session whose key Redis
//! expired leaves its id in the two sorted sets until `listByUser`, `deleteByUser` or
//! `cleanup` passes it: they check each id against its record. The scripts name keys built
//! from `ARGV`, which a single server allows and Redis Cluster does not (docs/redis.md).
//!
//! Differences from the SQL adapters, because Redis expires keys itself: an expired record
//! is gone at once, so `get` never returns one and `cleanup(t)` only finds records that
//! expire before `t` and have not expired yet (docs/redis.md).

use async_trait::async_trait;
use redis::{Script, Value};

use crate::adapter::{SessionAdapter, Touch};
use crate::error::{Result, SessionError};
use crate::redis_conn::{reply_text, ArgLike, RedisConn, Retry};
use crate::session::{Millis, SessionData, SessionPatch};

pub use crate::redis_conn::RedisOptions;

const DEFAULT_PREFIX: &str = "slices:session:";

/// The functions every script starts with. `ARGV[1]` is always the prefix.
macro_rules! lua_prelude {
    () => {
        r#"
local P = ARGV[1]
local EXP = P .. 'expiry'
local FIELDS = {'user_id', 'handle', 'is_authenticated', 'data', 'created_at', 'expires_at', 'last_accessed_at'}
local function skey(id) return P .. 's:' .. id end
local function ukey(user) return P .. 'u:' .. user end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function read(k) return redis.call('HMGET', k, unpack(FIELDS)) end
-- The user index lives as long as the user's longest session.
local function index_user(id, user, created, expires)
  local uk = ukey(user)
  local fresh = redis.call('EXISTS', uk) == 0
  redis.call('ZADD', uk, created, id)
  local ttl = redis.call('PTTL', uk)
  if fresh or (ttl >= 0 and now_ms() + ttl < tonumber(expires)) then
    redis.call('PEXPIREAT', uk, expires)
  end
end
-- After a write of record k: its TTL, and the indexes (or none, when it is already expired).
local function settle(k, id, user, created, expires)
  redis.call('PEXPIREAT', k, expires)
  if redis.call('EXISTS', k) == 1 then
    redis.call('ZADD', EXP, expires, id)
    index_user(id, user, created, expires)
  else
    redis.call('ZREM', EXP, id)
    redis.call('ZREM', ukey(user), id)
  end
end
local function unindex(id, user)
  redis.call('ZREM', EXP, id)
  if user then redis.call('ZREM', ukey(user), id) end
end
-- ARGV[i..]: user, has_handle, handle, is_authenticated, has_data, data, created, expires, last
local function write(k, i)
  local f = {'user_id', ARGV[i], 'is_authenticated', ARGV[i + 3],
    'created_at', ARGV[i + 6], 'expires_at', ARGV[i + 7], 'last_accessed_at', ARGV[i + 8]}
  if ARGV[i + 1] == '1' then f[#f + 1] = 'handle'; f[#f + 1] = ARGV[i + 2] end
  if ARGV[i + 4] == '1' then f[#f + 1] = 'data'; f[#f + 1] = ARGV[i + 5] end
  redis.call('HSET', k, unpack(f))
end
"#
    };
}

/// `set`: ARGV id, then the record (see `write`). Replaces the record; moves the id between
/// user indexes when the user changed.
const SET: &str = concat!(
    lua_prelude!(),
    r#"
local id = ARGV[2]
local k = skey(id)
local old = redis.call('HGET', k, 'user_id')
redis.call('DEL', k)
write(k, 3)
if old and old ~= ARGV[3] then redis.call('ZREM', ukey(old), id) end
settle(k, id, ARGV[3], ARGV[9], ARGV[10])
return 1
"#
);

/// `insert`: as `set`, but 0 when the id is taken. ARGV[12] = '1' on a retry after a lost
/// connection: then a record with our user, creation and expiry times is our first attempt's
/// (ids are random), and 2 says so.
const INSERT: &str = concat!(
    lua_prelude!(),
    r#"
local id = ARGV[2]
local k = skey(id)
if redis.call('EXISTS', k) == 1 then
  if ARGV[12] == '1' then
    local r = redis.call('HMGET', k, 'user_id', 'created_at', 'expires_at')
    if r[1] == ARGV[3] and r[2] == ARGV[9] and r[3] == ARGV[10] then return 2 end
  end
  return 0
end
write(k, 3)
settle(k, id, ARGV[3], ARGV[9], ARGV[10])
return 1
"#
);

/// `load` (the request path): ARGV id, now, due_before, new expires_at ('' keeps it). The
/// live record with the access written when due; nil when missing; an expired record is
/// deleted. Its fields are returned as stored after the write.
const LOAD: &str = concat!(
    lua_prelude!(),
    r#"
local id = ARGV[2]
local k = skey(id)
local r = read(k)
local e, l = tonumber(r[6]), tonumber(r[7])
-- Missing, or fields the writes below would fail on: returned as read (the caller reports
-- a corrupt record), since a script that fails half-way keeps its first writes.
if not e or not l or not r[1] or not tonumber(r[5]) then return r end
local now = ARGV[3]
if e <= tonumber(now) then
  redis.call('DEL', k)
  unindex(id, r[1])
  return false
end
if l <= tonumber(ARGV[4]) then
  r[7] = now
  if ARGV[5] ~= '' then
    r[6] = ARGV[5]
    redis.call('HSET', k, 'last_accessed_at', now, 'expires_at', ARGV[5])
    if r[1] then settle(k, id, r[1], r[5] or 0, ARGV[5]) end
  else
    redis.call('HSET', k, 'last_accessed_at', now)
  end
end
return r
"#
);

/// The request path's touch when it does not move `expires_at` (not `rolling`): ARGV id, now,
/// due_before. Writes `last_accessed_at` when the record exists and its stored access is due;
/// 1 when it wrote. Sent in one pipeline after a plain `HMGET` of the record: Redis runs a
/// short script like this one in about a third of the time of `load` (measured with
/// `INFO commandstats`: 2.2 us against 5.9 us per call, the HMGET 0.7 us), because `load`
/// defines the prelude's functions and builds its reply table on every call.
const TOUCH: &str = r#"
local k = ARGV[1] .. 's:' .. ARGV[2]
local l = tonumber(redis.call('HGET', k, 'last_accessed_at'))
if l and l <= tonumber(ARGV[4]) then
  redis.call('HSET', k, 'last_accessed_at', ARGV[3])
  return 1
end
return 0
"#;

/// `update`: ARGV id, n, then n (field, value) pairs to set, then fields to delete. 0 when
/// missing; keeps the TTL and indexes in step with the record.
const UPDATE: &str = concat!(
    lua_prelude!(),
    r#"
local id = ARGV[2]
local k = skey(id)
if redis.call('EXISTS', k) == 0 then return 0 end
local old = redis.call('HGET', k, 'user_id')
local n = tonumber(ARGV[3])
if n > 0 then redis.call('HSET', k, unpack(ARGV, 4, 3 + 2 * n)) end
if #ARGV > 3 + 2 * n then redis.call('HDEL', k, unpack(ARGV, 4 + 2 * n, #ARGV)) end
local r = redis.call('HMGET', k, 'user_id', 'created_at', 'expires_at')
if not r[1] or not tonumber(r[2]) or not tonumber(r[3]) then
  return redis.error_reply('CORRUPT the stored record lacks user_id, created_at or expires_at')
end
if old and old ~= r[1] then redis.call('ZREM', ukey(old), id) end
settle(k, id, r[1], r[2], r[3])
return 1
"#
);

/// `delete`: ARGV id.
const DELETE: &str = concat!(
    lua_prelude!(),
    r#"
local id = ARGV[2]
local k = skey(id)
local user = redis.call('HGET', k, 'user_id')
redis.call('DEL', k)
unindex(id, user)
return 1
"#
);

/// `rename`: ARGV old, new, now. The record (moved, TTL kept); nil when missing or expired;
/// 0 when `new` is taken.
const RENAME: &str = concat!(
    lua_prelude!(),
    r#"
local old, new = ARGV[2], ARGV[3]
local ko, kn = skey(old), skey(new)
local r = read(ko)
local e = tonumber(r[6])
-- As in `load`: nothing is moved when the indexing after the move would fail.
if not e or not r[1] or not tonumber(r[5]) then return r end
if e <= tonumber(ARGV[4]) then return false end
if old == new then return r end
if redis.call('EXISTS', kn) == 1 then return 0 end
redis.call('RENAME', ko, kn)
unindex(old, r[1])
if r[1] then settle(kn, new, r[1], r[5] or 0, r[6]) end
return r
"#
);

/// `cleanup`: ARGV before (exclusive), batch size. Deletes up to a batch of records that
/// expire before `before`; drops index entries of records Redis already expired. Returns
/// {deleted, ids looked at}.
const CLEANUP: &str = concat!(
    lua_prelude!(),
    r#"
local before = tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', EXP, '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local n = 0
for _, id in ipairs(ids) do
  local k = skey(id)
  local r = redis.call('HMGET', k, 'user_id', 'expires_at')
  local e = tonumber(r[2])
  if e and e >= before then
    redis.call('ZADD', EXP, r[2], id)
  else
    if e then
      redis.call('DEL', k)
      n = n + 1
    end
    unindex(id, r[1])
  end
end
return {n, #ids}
"#
);

/// `listByUser`: ARGV user. Flat: id, then the 7 fields, per live record; drops ids whose
/// record is gone.
const LIST_BY_USER: &str = concat!(
    lua_prelude!(),
    r#"
local uk = ukey(ARGV[2])
local out = {}
for _, id in ipairs(redis.call('ZRANGE', uk, 0, -1)) do
  local r = read(skey(id))
  if r[1] == ARGV[2] then
    out[#out + 1] = id
    for i = 1, 7 do out[#out + 1] = r[i] end
  else
    redis.call('ZREM', uk, id)
  end
end
return out
"#
);

/// `deleteByUser`: ARGV user, has_except, except. The number of records deleted.
const DELETE_BY_USER: &str = concat!(
    lua_prelude!(),
    r#"
local uk = ukey(ARGV[2])
local n = 0
for _, id in ipairs(redis.call('ZRANGE', uk, 0, -1)) do
  if not (ARGV[3] == '1' and id == ARGV[4]) then
    local k = skey(id)
    if redis.call('HGET', k, 'user_id') == ARGV[2] then
      redis.call('DEL', k)
      n = n + 1
    end
    unindex(id, ARGV[2])
  end
end
return n
"#
);

const FIELDS: [&str; 7] = [
    "user_id",
    "handle",
    "is_authenticated",
    "data",
    "created_at",
    "expires_at",
    "last_accessed_at",
];

/// Redis keeps times as 64-bit integers but the scripts compare them as Lua numbers
/// (doubles), and `PEXPIREAT` refuses far-future times; JavaScript's safe integers are exact
/// in both, so an `expires_at` outside them is refused before anything is written (a script
/// that fails half-way does not undo its first writes).
const MAX_EXACT_MILLIS: Millis = 9_007_199_254_740_991;

fn check_expires_at(expires_at: Millis) -> Result<()> {
    if (-MAX_EXACT_MILLIS..=MAX_EXACT_MILLIS).contains(&expires_at) {
        Ok(())
    } else {
        Err(SessionError::invalid_argument(
            "expiresAt",
            format!("{expires_at} is outside what RedisAdapter stores exactly (±2^53-1 ms)"),
        ))
    }
}

/// How many records one `cleanup` script looks at (bounds how long it blocks the server).
const CLEANUP_BATCH: usize = 500;

struct Scripts {
    set: Script,
    insert: Script,
    load: Script,
    touch: Script,
    update: Script,
    delete: Script,
    rename: Script,
    cleanup: Script,
    list_by_user: Script,
    delete_by_user: Script,
}

/// Sessions in Redis (or Valkey), under a key prefix.
pub struct RedisAdapter {
    conn: RedisConn,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.conn.fmt(f)
    }
}

impl RedisAdapter {
    /// Prepares the connections for `url` (`redis://[user:password@]host[:port][/db]`,
    /// `rediss://` for TLS, `redis+unix:///path`). Does not connect: the first call does.
    pub fn new(url: &str, options: RedisOptions) -> Result<RedisAdapter> {
        let conn = RedisConn::new(url, &options, DEFAULT_PREFIX, "RedisAdapter")?;
        Ok(RedisAdapter {
            conn,
            scripts: Scripts {
                set: Script::new(SET),
                insert: Script::new(INSERT),
                load: Script::new(LOAD),
                touch: Script::new(TOUCH),
                update: Script::new(UPDATE),
                delete: Script::new(DELETE),
                rename: Script::new(RENAME),
                cleanup: Script::new(CLEANUP),
                list_by_user: Script::new(LIST_BY_USER),
                delete_by_user: Script::new(DELETE_BY_USER),
            },
        })
    }

    /// The key prefix in use.
    pub fn prefix(&self) -> &str {
        &self.conn.prefix
    }

    /// Checks that the server answers (a `PING`). Optional: there is no schema to create.
    pub async fn initialize(&self) -> Result<()> {
        self.conn
            .call("reach the server", Retry::Safe, |mut c, _| async move {
                redis::cmd("PING").query_async::<String>(&mut c).await
            })
            .await
            .map(|_| ())
    }

    fn key(&self, id: &str) -> String {
        let mut k = String::with_capacity(self.conn.prefix.len() + 2 + id.len());
        k.push_str(&self.conn.prefix);
        k.push_str("s:");
        k.push_str(id);
        k
    }

    async fn write(
        &self,
        action: &'static str,
        script: &Script,
        id: &str,
        s: &SessionData,
    ) -> Result<i64> {
        check_expires_at(s.expires_at)?;
        let flag = |b: bool| if b { "1" } else { "0" };
        self.conn
            // Safe to send twice: `insert` recognises its own first attempt (`retried`).
            .call(action, Retry::Safe, |mut conn, retried| async move {
                let mut inv = script.prepare_invoke();
                inv.arg(self.conn.prefix.as_str())
                    .arg(id)
                    .arg(s.user_id.as_str())
                    .arg(flag(s.handle.is_some()))
                    .arg(s.handle.as_deref().unwrap_or(""))
                    .arg(flag(s.is_authenticated))
                    .arg(flag(s.data.is_some()))
                    .arg(s.data.as_deref().unwrap_or(""))
                    .arg(s.created_at)
                    .arg(s.expires_at)
                    .arg(s.last_accessed_at)
                    .arg(flag(retried));
                inv.invoke_async(&mut conn).await
            })
            .await
    }
}

/// A record from the 7 fields of `FIELDS`, `None` when all are nil (no such key).
fn read_session(id: &str, fields: &[Value]) -> Result<Option<SessionData>> {
    let corrupt = |reason: String| SessionError::Corrupt {
        session_id: id.to_owned(),
        reason,
    };
    if fields.len() != FIELDS.len() {
        return Err(corrupt(format!(
            "expected {} fields from Redis, got {}",
            FIELDS.len(),
            fields.len()
        )));
    }
    let mut text = Vec::with_capacity(FIELDS.len());
    for value in fields {
        text.push(reply_text(value).map_err(&corrupt)?);
    }
    if text.iter().all(Option::is_none) {
        return Ok(None);
    }
    let required = |i: usize| {
        text[i]
            .clone()
            .ok_or_else(|| corrupt(format!("the hash has no `{}` field", FIELDS[i])))
    };
    let millis = |i: usize| -> Result<Millis> {
        let t = required(i)?;
        t.parse::<Millis>()
            .map_err(|_| corrupt(format!("`{}` is not an integer: {t:?}", FIELDS[i])))
    };
    let is_authenticated = match required(2)?.as_str() {
        "1" => true,
        "0" => false,
        other => {
            return Err(corrupt(format!(
                "`is_authenticated` is neither 1 nor 0: {other:?}"
            )))
        }
    };
    Ok(Some(SessionData {
        session_id: id.to_owned(),
        user_id: required(0)?,
        handle: text[1].clone(),
        is_authenticated,
        data: text[3].clone(),
        created_at: millis(4)?,
        expires_at: millis(5)?,
        last_accessed_at: millis(6)?,
    }))
}

/// A script's reply of one record: nil, or the 7 fields.
fn session_reply(id: &str, reply: Value) -> Result<Option<SessionData>> {
    match reply {
        Value::Nil => Ok(None),
        Value::Array(fields) => read_session(id, &fields),
        other => Err(SessionError::Corrupt {
            session_id: id.to_owned(),
            reason: format!("unexpected reply from Redis: {other:?}"),
        }),
    }
}

impl RedisAdapter {
    /// `load` without `rolling`: the record's `HMGET` and the `TOUCH` script in one pipeline
    /// (one round trip). Not atomic together, and it need not be: the read is the answer, and
    /// the touch writes only `last_accessed_at` of a record that still exists when it runs.
    /// A record that has expired by our clock but not yet by Redis's is deleted here, as the
    /// other adapters do.
    async fn load_and_touch(&self, id: &str, touch: &Touch) -> Result<Option<SessionData>> {
        let key = self.key(id);
        let due_before = touch.now.saturating_sub(touch.touch_after);
        let (fields, touched): (Vec<Value>, i64) = self
            .conn
            .call("load the session", Retry::Safe, |mut c, _| {
                let key = key.as_str();
                async move {
                    let mut invocation = self.scripts.touch.prepare_invoke();
                    invocation
                        .arg(self.conn.prefix.as_str())
                        .arg(id)
                        .arg(touch.now)
                        .arg(due_before);
                    let mut pipe = redis::pipe();
                    pipe.cmd("HMGET")
                        .arg(key)
                        .arg(&FIELDS[..])
                        .invoke_script(&invocation);
                    match pipe.query_async(&mut c).await {
                        // A pipeline does not load scripts itself: after a server restart (or
                        // SCRIPT FLUSH) load it, then send the pipeline again.
                        Err(e)
                            if e.kind()
                                == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                        {
                            invocation.load_async(&mut c).await?;
                            pipe.query_async(&mut c).await
                        }
                        other => other,
                    }
                }
            })
            .await?;
        let Some(mut session) = read_session(id, &fields)? else {
            return Ok(None);
        };
        if session.is_expired(touch.now) {
            self.delete(id).await?;
            return Ok(None);
        }
        if touched == 1 {
            session.last_accessed_at = touch.now;
        }
        Ok(Some(session))
    }
}

#[async_trait]
impl SessionAdapter for RedisAdapter {
    async fn get(&self, id: &str) -> Result<Option<SessionData>> {
        let key = self.key(id);
        let fields: Vec<Value> = self
            .conn
            .call("read the session", Retry::Safe, |mut c, _| {
                let key = key.as_str();
                async move {
                    redis::cmd("HMGET")
                        .arg(key)
                        .arg(&FIELDS[..])
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        read_session(id, &fields)
    }

    async fn set(&self, id: &str, data: &SessionData) -> Result<()> {
        self.write("store the session", &self.scripts.set, id, data)
            .await
            .map(|_| ())
    }

    async fn insert(&self, id: &str, data: &SessionData) -> Result<()> {
        match self
            .write("store the new session", &self.scripts.insert, id, data)
            .await?
        {
            0 => Err(SessionError::IdInUse(id.to_owned())),
            _ => Ok(()),
        }
    }

    async fn update(&self, id: &str, patch: &SessionPatch) -> Result<bool> {
        if let Some(e) = patch.expires_at {
            check_expires_at(e)?;
        }
        let mut set: Vec<(&str, String)> = Vec::new();
        let mut del: Vec<&str> = Vec::new();
        if let Some(v) = &patch.user_id {
            set.push(("user_id", v.clone()));
        }
        match &patch.handle {
            Some(Some(v)) => set.push(("handle", v.clone())),
            Some(None) => del.push("handle"),
            None => {}
        }
        if let Some(v) = patch.is_authenticated {
            set.push(("is_authenticated", if v { "1" } else { "0" }.to_owned()));
        }
        match &patch.data {
            Some(Some(v)) => set.push(("data", v.clone())),
            Some(None) => del.push("data"),
            None => {}
        }
        for (name, value) in [
            ("created_at", patch.created_at),
            ("expires_at", patch.expires_at),
            ("last_accessed_at", patch.last_accessed_at),
        ] {
            if let Some(v) = value {
                set.push((name, v.to_string()));
            }
        }
        let mut args: Vec<&dyn ArgLike> = Vec::with_capacity(2 + 2 * set.len() + del.len());
        let count = set.len();
        args.push(&id);
        args.push(&count);
        for (name, value) in &set {
            args.push(name);
            args.push(value);
        }
        for name in &del {
            args.push(name);
        }
        let changed: i64 = self
            .conn
            .script(
                "update the session",
                Retry::Safe,
                &self.scripts.update,
                &args,
            )
            .await?;
        Ok(changed == 1)
    }

    async fn delete(&self, id: &str) -> Result<()> {
        self.conn
            .script::<i64>(
                "delete the session",
                Retry::Safe,
                &self.scripts.delete,
                &[&id],
            )
            .await
            .map(|_| ())
    }

    async fn cleanup(&self, expires_before: Millis) -> Result<u64> {
        let mut total: u64 = 0;
        loop {
            let (deleted, seen): (u64, usize) = self
                .conn
                .script(
                    "delete expired sessions",
                    Retry::Safe,
                    &self.scripts.cleanup,
                    &[&expires_before, &CLEANUP_BATCH],
                )
                .await?;
            total += deleted;
            if seen < CLEANUP_BATCH {
                return Ok(total);
            }
        }
    }

    async fn exists(&self, id: &str) -> Result<bool> {
        let key = self.key(id);
        self.conn
            .call(
                "check whether the session exists",
                Retry::Safe,
                |mut c, _| {
                    let key = key.as_str();
                    async move {
                        redis::cmd("EXISTS")
                            .arg(key)
                            .query_async::<bool>(&mut c)
                            .await
                    }
                },
            )
            .await
    }

    async fn list_by_user(&self, user_id: &str) -> Result<Vec<SessionData>> {
        let flat: Vec<Value> = self
            .conn
            .script(
                "list the user's sessions",
                Retry::Safe,
                &self.scripts.list_by_user,
                &[&user_id],
            )
            .await?;
        let mut sessions = Vec::with_capacity(flat.len() / 8);
        for chunk in flat.chunks(8) {
            let id = match chunk.first().map(reply_text) {
                Some(Ok(Some(id))) => id,
                _ => {
                    return Err(SessionError::Internal(
                        "unexpected reply from Redis listing a user's sessions".into(),
                    ))
                }
            };
            if let Some(s) = read_session(&id, &chunk[1..])? {
                sessions.push(s);
            }
        }
        Ok(sessions)
    }

    async fn delete_by_user(&self, user_id: &str, except: Option<&str>) -> Result<u64> {
        let has_except = if except.is_some() { "1" } else { "0" };
        let keep = except.unwrap_or("");
        self.conn
            .script(
                "delete the user's sessions",
                Retry::Safe,
                &self.scripts.delete_by_user,
                &[&user_id, &has_except, &keep],
            )
            .await
    }

    async fn load(&self, id: &str, touch: &Touch) -> Result<Option<SessionData>> {
        if touch.rolling_ttl.is_none() {
            return self.load_and_touch(id, touch).await;
        }
        let new_expires_at = match touch.rolling_ttl {
            Some(ttl) => {
                let e = touch.now.saturating_add(ttl);
                check_expires_at(e)?;
                e.to_string()
            }
            None => String::new(),
        };
        let due_before = touch.now.saturating_sub(touch.touch_after);
        let reply: Value = self
            .conn
            .script(
                "load the session",
                Retry::Safe,
                &self.scripts.load,
                &[&id, &touch.now, &due_before, &new_expires_at],
            )
            .await?;
        session_reply(id, reply)
    }

    async fn rename(&self, old_id: &str, new_id: &str, now: Millis) -> Result<Option<SessionData>> {
        // Never sent twice: a retry after a rename that happened would find the old id gone.
        let reply: Value = self
            .conn
            .script(
                "rename the session",
                Retry::Never,
                &self.scripts.rename,
                &[&old_id, &new_id, &now],
            )
            .await?;
        match reply {
            Value::Int(0) => Err(SessionError::IdInUse(new_id.to_owned())),
            other => Ok(session_reply(old_id, other)?.map(|mut s| {
                s.session_id = new_id.to_owned();
                s
            })),
        }
    }

    async fn close(&self) -> Result<()> {
        self.conn.close();
        Ok(())
    }
}

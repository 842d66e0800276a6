// Contenders: the Node session stores people use today, through their public Store API
// (express-session's Store: get(sid, cb), set(sid, sess, cb), touch(sid, sess, cb)):
// - memory: memorystore;
// - SQLite: better-sqlite3-session-store over better-sqlite3@12, set up as its README shows
//   (default pragmas);
// - PostgreSQL: connect-pg-simple over a `pg` Pool of 10 connections;
// - Redis: connect-redis over the `redis` client (one connection, which pipelines concurrent
//   commands), as its README sets it up; a key prefix of its own per run.
// Their request path is what express-session does for a request that carries a session
// cookie: read the cookie, store.get(sid), then store.touch(sid, sess) (rolling expiry); the
// cookie is parsed with the same code as the plain-JS contenders (no signature check).
// update is store.set(sid, sess), as express-session saves a modified session.

import { TTL, benchRequire, cookieHeaderOf, dataFor, parseCookie, seedPostgresExpired, seedSqliteExpired, sleep } from "./common.mjs";
import { COOKIE_NAME } from "../lib/workload.mjs";

const promisify = (store, method) => (...args) =>
  new Promise((resolve, reject) => store[method](...args, (err, value) => (err ? reject(err) : resolve(value))));

/** The session object express-session would hand to a store. */
function sessionObject(i, now = Date.now(), maxAge = TTL) {
  return {
    cookie: { originalMaxAge: maxAge, maxAge, expires: new Date(now + maxAge).toISOString(), secure: true, httpOnly: true, path: "/", sameSite: "lax" },
    userId: `did:plc:user${i}`,
    handle: `user${i}.bsky.social`,
    isAuthenticated: true,
    data: dataFor(i),
    createdAt: now,
  };
}

export async function open(cfg) {
  const session = benchRequire("express-session");
  let store;
  let name;
  let db;
  let pool;
  let redis;
  if (cfg.backend === "memory") {
    const MemoryStore = benchRequire("memorystore")(session);
    store = new MemoryStore({}); // no checkPeriod: no prune timer
    name = "memorystore";
  } else if (cfg.backend === "sqlite") {
    const Database = benchRequire("better-sqlite3");
    const SqliteStore = benchRequire("better-sqlite3-session-store")(session);
    db = new Database(cfg.sqlitePath);
    store = new SqliteStore({ client: db, expired: { clear: true, intervalMs: 900000 } });
    name = "better-sqlite3-session-store";
  } else if (cfg.backend === "postgres") {
    const pg = benchRequire("pg");
    const PgStore = benchRequire("connect-pg-simple")(session);
    pool = new pg.Pool({ connectionString: cfg.pgUrl, max: 10 });
    store = new PgStore({ pool, createTableIfMissing: true, pruneSessionInterval: false });
    name = "connect-pg-simple";
  } else if (cfg.backend === "redis") {
    const { createClient } = benchRequire("redis");
    const { RedisStore } = benchRequire("connect-redis");
    redis = createClient({ url: cfg.redisUrl });
    redis.on("error", () => {}); // reported by the failing call instead
    await redis.connect();
    store = new RedisStore({ client: redis, prefix: cfg.redisPrefix });
    name = "connect-redis";
  } else throw new Error(`unknown backend ${cfg.backend}`);

  const get = promisify(store, "get");
  const set = promisify(store, "set");
  const touch = promisify(store, "touch");

  return {
    name,
    async create(i) {
      const sid = crypto.randomUUID();
      await set(sid, sessionObject(i));
      return sid;
    },
    async request(req) {
      const sid = parseCookie(cookieHeaderOf(req))[COOKIE_NAME];
      if (!sid) return null;
      const sess = await get(sid);
      if (!sess) return null;
      // express-session's rolling touch: a new expiry, then store.touch.
      const now = Date.now();
      sess.cookie.expires = new Date(now + sess.cookie.originalMaxAge).toISOString();
      sess.cookie.maxAge = sess.cookie.originalMaxAge;
      await touch(sid, sess);
      return sess;
    },
    update: (sid, i) => set(sid, sessionObject(i)),
    async seedExpired(n) {
      if (cfg.backend === "memory") {
        for (let k = 0; k < n; k++) await set(`expired-${k}`, sessionObject(k, Date.now(), 1));
        await sleep(20); // their 1 ms TTL passes
      } else if (cfg.backend === "sqlite") {
        seedSqliteExpired(cfg.seedNode, cfg.sqlitePath, "bss", n);
      } else if (cfg.backend === "redis") {
        // Redis expires keys itself (connect-redis has no prune): no cleanup phase on Redis.
        throw new Error("no cleanup phase on Redis");
      } else {
        await seedPostgresExpired(cfg.pgUrl, "cpgs", n);
      }
    },
    async cleanup() {
      if (cfg.backend === "memory") store.prune();
      else if (cfg.backend === "sqlite") store.clearExpiredSessions();
      else await new Promise((resolve, reject) => store.pruneSessions((err) => (err ? reject(err) : resolve())));
      return undefined; // none of them reports how many rows went
    },
    async close() {
      if (cfg.backend === "postgres") await store.close();
      if (redis) await redis.close();
      db?.close();
    },
  };
}

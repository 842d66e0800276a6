// Contender: this package (@slices-rs/session) through its public API. `cfg.module` is the
// specifier to import: npm/index.js (N-API, in Node or Deno) or jsr/mod.ts (Deno FFI).

import { TTL, dataFor, seedPostgresExpired, seedSqliteExpired } from "./common.mjs";

export async function open(cfg) {
  const pkg = await import(cfg.module);
  let adapter;
  if (cfg.backend === "memory") adapter = new pkg.MemoryAdapter();
  else if (cfg.backend === "sqlite") adapter = new pkg.SQLiteAdapter(cfg.sqlitePath);
  else if (cfg.backend === "postgres") {
    adapter = new pkg.PostgresAdapter(cfg.pgUrl);
    await adapter.initialize();
  } else if (cfg.backend === "redis") {
    // A key prefix of its own per run (bench/run.mjs deletes its keys afterwards); the default
    // maxConnections (2 multiplexed connections) and queryTimeout.
    adapter = new pkg.RedisAdapter(cfg.redisUrl, { prefix: cfg.redisPrefix });
    await adapter.initialize();
  } else throw new Error(`unknown backend ${cfg.backend}`);
  const store = new pkg.SessionStore({ adapter, cleanupInterval: 0 });

  return {
    create: (i) => store.createSession(`did:plc:user${i}`, `user${i}.bsky.social`, dataFor(i)),
    request: (req) => store.getSessionFromRequest(req),
    update: (id, i) => store.updateSession(id, { data: dataFor(i) }),
    async seedExpired(n) {
      if (cfg.backend === "memory") {
        for (let k = 0; k < n; k++) {
          const id = `expired-${k}`;
          await adapter.set(id, {
            sessionId: id,
            userId: `did:plc:old${k}`,
            isAuthenticated: true,
            createdAt: 1000,
            expiresAt: 2000,
            lastAccessedAt: 1000,
          });
        }
      } else if (cfg.backend === "sqlite") {
        seedSqliteExpired(cfg.seedNode, cfg.sqlitePath, "slices", n);
      } else if (cfg.backend === "redis") {
        // Redis expires keys itself: bench/run.mjs runs no cleanup phase on it.
        throw new Error("no cleanup phase on Redis");
      } else {
        await seedPostgresExpired(cfg.pgUrl, "slices", n);
      }
    },
    cleanup: () => store.cleanup(),
    async close() {
      await store.close();
      await adapter.close?.();
    },
    ttl: TTL,
  };
}

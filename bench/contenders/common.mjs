// Helpers shared by the JS contenders: the original's cookie parsing, reading the Cookie
// header of a request object, and seeding expired rows (not timed) for the cleanup phase.

import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

/** `require` resolving from bench/ (bench/node_modules), in Node and in Deno. */
export const benchRequire = createRequire(new URL("../package.json", import.meta.url));

/** The original's parseCookie: split on ";", first "=", trim, URI-decode the value. */
export function parseCookie(header) {
  const cookies = {};
  if (!header) return cookies;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    const key = (eq === -1 ? part : part.slice(0, eq)).trim();
    if (!key) continue;
    const value = eq === -1 ? "" : part.slice(eq + 1).trim();
    cookies[key] = decodeURIComponent(value);
  }
  return cookies;
}

/** The Cookie header of a Fetch Request (headers.get) or a Node IncomingMessage (headers.cookie). */
export function cookieHeaderOf(request) {
  const headers = request.headers;
  if (typeof headers.get === "function") return headers.get("cookie");
  return headers.cookie;
}

const SEED_SCRIPT = fileURLToPath(new URL("../lib/seed-sqlite.mjs", import.meta.url));

/**
 * Puts `n` expired rows into an SQLite file from ANOTHER process (node:sqlite on Node 24):
 * two SQLite libraries must not open one file in one process (POSIX locks are per process).
 * `schema` is "slices" (the original's sessions table) or "bss" (better-sqlite3-session-store).
 */
export function seedSqliteExpired(seedNode, file, schema, n) {
  const res = spawnSync(seedNode, [SEED_SCRIPT, file, schema, String(n)], { encoding: "utf8", timeout: 300_000 });
  if (res.error) throw new Error(`seeding failed to start: ${res.error.message}`);
  if (res.status !== 0) throw new Error(`seeding failed: ${res.stderr}`);
}

/** Puts `n` expired rows into PostgreSQL with one statement, on a connection of its own. */
export async function seedPostgresExpired(url, schema, n) {
  const pg = benchRequire("pg");
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    if (schema === "slices") {
      await client.query(
        `INSERT INTO sessions (session_id, user_id, handle, is_authenticated, data, created_at, expires_at, last_accessed_at)
         SELECT 'expired-' || g, 'did:plc:old' || g, NULL, true, NULL, 1000, 2000, 1000 FROM generate_series(1, $1::bigint) g`,
        [n],
      );
    } else if (schema === "cpgs") {
      await client.query(
        `INSERT INTO "session" (sid, sess, expire)
         SELECT 'expired-' || g, '{"cookie":{}}'::json, to_timestamp(1000) FROM generate_series(1, $1::bigint) g`,
        [n],
      );
    } else {
      throw new Error(`unknown schema ${schema}`);
    }
  } finally {
    await client.end();
  }
}

/** The `data` every contender stores for user i (the floor writes the same JSON text). */
export function dataFor(i) {
  return { role: "member", theme: "dark", n: i };
}

export const TTL = 30 * 24 * 60 * 60 * 1000;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

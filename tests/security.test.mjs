// Security checks (issue 6, SPEC §3, §4, §7): session ids, custom id generators, cookie option
// validation, SQL injection through every argument of every method, and session isolation
// (a cookie never yields another session). Runs under Node and Deno (node:* modules only).
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { pkg, pgUrl, psql, rawSqlite, tmpDir, removeTmpDirs, UUID_V4_RE, runtime } from "./target.mjs";

const { SessionStore, MemoryAdapter, SQLiteAdapter, PostgresAdapter } = pkg;

after(() => removeTmpDirs());

// ------------------------------------------------------------------------------------------
// Session ids
// ------------------------------------------------------------------------------------------

/**
 * Chi-square bounds at a tail probability of 1e-6 on each side (computed once with the
 * regularised incomplete gamma function): a healthy generator fails one of the 31 position
 * tests with a probability of about 6e-5 per run.
 */
const CHI2_BOUNDS = { 15: [1.216, 56.49], 3: [0.000242, 30.66] };

function chiSquare(counts, expected) {
  return counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
}

describe("session ids", () => {
  const N = 10000;
  let ids;
  before(async () => {
    const store = new SessionStore({ adapter: new MemoryAdapter(), cleanupInterval: 0 });
    ids = [];
    for (let i = 0; i < N; i += 1) ids.push(await store.createSession(`user-${i}`));
    await store.close();
  });

  test("10 000 default ids: all distinct, lower-case hyphenated v4 UUIDs", () => {
    assert.equal(ids.length, N);
    assert.equal(new Set(ids).size, N);
    for (const id of ids) assert.match(id, UUID_V4_RE);
  });

  // A SANITY CHECK, not a proof: no statistical test can show that ids come from a CSPRNG (the
  // core uses the OS generator through the `uuid` crate, 122 random bits). It catches broken
  // generators: a counter, a timestamp, Math.random-like low-entropy or biased output, a fixed
  // digit, or a too-regular cycle.
  test("sanity check: every random hex digit is uniformly distributed (chi-square per position)", () => {
    const hex = ids.map((id) => id.replaceAll("-", ""));
    const report = [];
    for (let pos = 0; pos < 32; pos += 1) {
      if (pos === 12) {
        assert.ok(hex.every((h) => h[12] === "4"), "version nibble");
        continue;
      }
      if (pos === 16) {
        // The variant nibble: 10xx, so 8, 9, a, b with two random bits.
        const counts = ["8", "9", "a", "b"].map((d) => hex.filter((h) => h[16] === d).length);
        assert.equal(counts.reduce((a, b) => a + b), N);
        const chi = chiSquare(counts, N / 4);
        assert.ok(chi > CHI2_BOUNDS[3][0] && chi < CHI2_BOUNDS[3][1], `variant nibble: chi-square ${chi}`);
        continue;
      }
      const counts = new Array(16).fill(0);
      for (const h of hex) counts[parseInt(h[pos], 16)] += 1;
      const chi = chiSquare(counts, N / 16);
      report.push(chi);
      assert.ok(chi > CHI2_BOUNDS[15][0] && chi < CHI2_BOUNDS[15][1], `position ${pos}: chi-square ${chi.toFixed(2)} (counts ${counts})`);
    }
    assert.equal(report.length, 30);
  });

  test("sanity check: the 122 random bits are balanced overall and between consecutive ids", () => {
    let ones = 0;
    let sameAsPrevious = 0;
    let previous;
    for (const id of ids) {
      const hex = id.replaceAll("-", "");
      // Random bits: all nibbles but the version (12) and the top two bits of the variant (16).
      const bits = [...hex]
        .map((c, i) => {
          const n = parseInt(c, 16);
          if (i === 12) return "";
          if (i === 16) return (n & 3).toString(2).padStart(2, "0");
          return n.toString(2).padStart(4, "0");
        })
        .join("");
      assert.equal(bits.length, 122);
      for (let i = 0; i < 122; i += 1) {
        if (bits[i] === "1") ones += 1;
        if (previous !== undefined && bits[i] === previous[i]) sameAsPrevious += 1;
      }
      previous = bits;
    }
    const total = 122 * N;
    const sd = Math.sqrt(total * 0.25);
    // Within 6 standard deviations (about 3 300 bits of 1.22 million).
    assert.ok(Math.abs(ones - total / 2) < 6 * sd, `${ones} ones of ${total} bits`);
    const pairs = 122 * (N - 1);
    assert.ok(Math.abs(sameAsPrevious - pairs / 2) < 6 * Math.sqrt(pairs * 0.25), `${sameAsPrevious} equal bits of ${pairs}`);
  });

  test("regenerateSession also uses the default generator (a new v4 id)", async () => {
    const store = new SessionStore({ adapter: new MemoryAdapter(), cleanupInterval: 0 });
    const id = await store.createSession("u");
    const next = await store.regenerateSession(id);
    assert.match(next, UUID_V4_RE);
    assert.notEqual(next, id);
    await store.close();
  });
});

describe("a custom generateId", () => {
  test("is honoured by createSession and regenerateSession, once per call, and the cookie carries its id", async () => {
    const adapter = new MemoryAdapter();
    const calls = [];
    const store = new SessionStore({
      adapter,
      cleanupInterval: 0,
      generateId: () => {
        const id = `sid_${calls.length}_${"z".repeat(calls.length)}`;
        calls.push(id);
        return id;
      },
    });
    assert.equal(await store.createSession("a"), "sid_0_");
    assert.equal(await store.createSession("b"), "sid_1_z");
    assert.deepEqual(calls, ["sid_0_", "sid_1_z"]);
    assert.equal(await store.regenerateSession("sid_1_z"), "sid_2_zz");
    assert.deepEqual(calls, ["sid_0_", "sid_1_z", "sid_2_zz"]);
    assert.deepEqual(adapter.keys().sort(), ["sid_0_", "sid_2_zz"]);
    assert.equal((await store.getSession("sid_2_zz")).userId, "b");
    assert.equal(store.createSessionCookie("sid_2_zz").split("; ")[0], "slice-session=sid_2_zz");
    await store.close();
  });

  test("a generateId returning a non-string or an empty string is rejected with a TypeError; nothing is stored", async () => {
    for (const bad of [42, "", null, undefined, { toString: () => "x" }]) {
      const adapter = new MemoryAdapter();
      const store = new SessionStore({ adapter, cleanupInterval: 0, generateId: () => bad });
      await assert.rejects(store.createSession("u"), (e) => e instanceof TypeError && /generateId/.test(e.message), String(bad));
      assert.equal(adapter.size(), 0);
      await store.close();
    }
  });

  test("ids with header-breaking characters are percent-encoded in the cookie (no header injection)", async () => {
    const ids = ["x\r\nSet-Cookie: admin=1", "a; Domain=evil.example", "\u0000\u007f", "é ü"];
    const store = new SessionStore({ adapter: new MemoryAdapter(), cleanupInterval: 0, generateId: () => ids.shift() });
    const expected = [
      "slice-session=x%0D%0ASet-Cookie%3A%20admin%3D1",
      "slice-session=a%3B%20Domain%3Devil.example",
      "slice-session=%00%7F",
      "slice-session=%C3%A9%20%C3%BC",
    ];
    for (const pair of expected) {
      const id = await store.createSession("u");
      const cookie = store.createSessionCookie(id);
      assert.equal(cookie, `${pair}; Max-Age=2592000; Path=/; HttpOnly; Secure; SameSite=lax`);
      assert.equal((await store.getSessionFromRequest({ headers: { cookie: pair } })).sessionId, id);
    }
    await store.close();
  });
});

// ------------------------------------------------------------------------------------------
// Cookie option validation (cases not in cookies.test.mjs)
// ------------------------------------------------------------------------------------------

describe("cookie option validation (more cases)", () => {
  const adapter = new MemoryAdapter();
  const stores = [];
  const make = (opts) => {
    const s = new SessionStore({ adapter, cleanupInterval: 0, ...opts });
    stores.push(s);
    return s;
  };
  after(async () => {
    for (const s of stores) await s.close();
  });
  const rejects = (opts, ...patterns) =>
    assert.throws(
      () => make(opts),
      (e) => e instanceof Error && patterns.every((p) => p.test(e.message)),
      JSON.stringify(opts),
    );

  test("cookie prefixes are matched case-insensitively, as browsers do", () => {
    rejects({ cookieName: "__host-sid", cookieOptions: { domain: "example.com" } }, /__Host-/, /domain/i);
    rejects({ cookieName: "__HOST-sid", cookieOptions: { secure: false } }, /__Host-/, /secure/i);
    rejects({ cookieName: "__secure-sid", cookieOptions: { secure: false } }, /__Secure-/, /secure/i);
    rejects({ cookieName: "__SeCuRe-sid", cookieOptions: { secure: undefined } }, /__Secure-/, /secure/i);
  });

  test("an explicit undefined that removes a required default is rejected", () => {
    rejects({ cookieName: "__Host-sid", cookieOptions: { path: undefined } }, /__Host-/, /path/i);
    rejects({ cookieName: "__Host-sid", cookieOptions: { secure: undefined } }, /__Host-/, /secure/i);
    rejects({ cookieOptions: { sameSite: "none", secure: undefined } }, /sameSite/, /secure/i);
  });

  test("sameSite: none in any case requires secure; unknown values are rejected", () => {
    rejects({ cookieOptions: { sameSite: "None", secure: false } }, /sameSite/, /secure/i);
    rejects({ cookieOptions: { sameSite: "NONE", secure: false } }, /sameSite/, /secure/i);
    for (const bad of ["invalid", "lax ", "laxx", "no"]) rejects({ cookieOptions: { sameSite: bad } }, /sameSite/);
    assert.equal(make({ cookieOptions: { sameSite: "Strict" } }).createSessionCookie("x"), "slice-session=x; Max-Age=2592000; Path=/; HttpOnly; Secure; SameSite=Strict");
  });

  test("domain and path with ';' or control characters are rejected (Set-Cookie header injection)", () => {
    rejects({ cookieOptions: { domain: "example.com; Secure" } }, /domain/);
    rejects({ cookieOptions: { domain: "example.com\r\nSet-Cookie: admin=1" } }, /domain/);
    rejects({ cookieOptions: { path: "/a;HttpOnly" } }, /path/);
    rejects({ cookieOptions: { path: "/\n" } }, /path/);
    rejects({ cookieOptions: { path: "/\u0000" } }, /path/);
  });

  test("maxAge must be finite; an empty cookieName is rejected", () => {
    rejects({ cookieOptions: { maxAge: NaN } }, /maxAge/);
    rejects({ cookieOptions: { maxAge: Infinity } }, /maxAge/);
    rejects({ cookieOptions: { maxAge: -Infinity } }, /maxAge/);
    assert.throws(() => make({ cookieName: "" }), (e) => e instanceof Error && /cookieName/.test(e.message));
  });

  test("valid edge cases are accepted", () => {
    assert.equal(make({ cookieName: "__Host-sid", cookieOptions: { path: "/" } }).createSessionCookie("x"), "__Host-sid=x; Max-Age=2592000; Path=/; HttpOnly; Secure; SameSite=lax");
    assert.equal(make({ cookieOptions: { sameSite: undefined, secure: false } }).createSessionCookie("x"), "slice-session=x; Max-Age=2592000; Path=/; HttpOnly");
    assert.equal(make({ cookieOptions: { maxAge: 0 } }).createLogoutCookie(), "slice-session=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=lax");
  });
});

// ------------------------------------------------------------------------------------------
// SQL injection through every argument of every method (SQLite and PostgreSQL)
// ------------------------------------------------------------------------------------------

const INJECTIONS = [
  "'; DROP TABLE sessions; --",
  "' OR '1'='1",
  "' OR 1=1 --",
  '" OR ""="',
  "'); DELETE FROM sessions; --",
  "x'; UPDATE sessions SET user_id = 'pwned'; --",
  "' UNION SELECT session_id, user_id, handle, is_authenticated, data, created_at, expires_at, last_accessed_at FROM sessions --",
  "%",
  "_",
  "%' --",
  "*",
  "$1",
  "?1",
  "?",
  ":id",
  "@id",
  "$$; DROP TABLE sessions; $$",
  "\\'; DROP TABLE sessions; --",
  "/* */ DROP TABLE sessions",
  "1; SELECT pg_sleep(5)",
  "'||(SELECT count(*) FROM sessions)||'",
  "x'::jsonb",
  "'; ATTACH DATABASE 'pwn.db' AS pwn; --",
  "\u02bc; DROP TABLE sessions; --",
  "\uff07 OR \uff071\uff07=\uff071",
  "'\"`\\;--#",
];

const FIXED = { createdAt: 1700000000000, expiresAt: 4102444800000, lastAccessedAt: 1700000000000 };

/** Runs the injection strings through every method; `raw` reads the table independently. */
async function injectionSuite(adapter, raw) {
  const sentinels = [];
  for (let i = 0; i < 5; i += 1) {
    const id = `sentinel-${i}`;
    const rec = { sessionId: id, userId: "sentinel-user", handle: "sentinel", isAuthenticated: true, data: { i }, ...FIXED };
    await adapter.set(id, rec);
    sentinels.push(rec);
  }
  const queue = [];
  const store = new SessionStore({ adapter, cleanupInterval: 0, generateId: () => queue.shift() });
  const made = [];

  // 1. Writes: every string in every argument that reaches storage.
  for (const [i, s] of INJECTIONS.entries()) {
    const a = { id: `${s}#a${i}`, user: `${s}|u${i}` };
    const rec = { sessionId: a.id, userId: a.user, handle: s, isAuthenticated: true, data: { [s]: s, v: s }, ...FIXED };
    assert.equal(await adapter.set(a.id, rec), undefined);
    queue.push(`${s}#s${i}`);
    const sid = await store.createSession(`${s}|su${i}`, s, { [s]: s });
    assert.equal(sid, `${s}#s${i}`);
    made.push({ s, i, a, rec, sid, suser: `${s}|su${i}` });
  }
  const rows = raw.rows();
  assert.equal(rows.length, sentinels.length + 2 * INJECTIONS.length, "rows after the writes");
  // Stored byte for byte (what a second client sees).
  const byId = new Map(rows.map((r) => [r[0], r]));
  for (const m of made) {
    assert.deepEqual(byId.get(m.a.id), [m.a.id, m.a.user, m.s]);
    assert.deepEqual(byId.get(m.sid), [m.sid, m.suser, m.s]);
  }

  // 2. Reads and updates, with the strings as ids, user ids, handles, data, excepts and cookies.
  for (const m of made) {
    const { s, a, rec, sid, suser } = m;
    assert.deepEqual(await adapter.get(a.id), rec);
    assert.equal(await adapter.get(s), null);
    assert.equal(await adapter.exists(a.id), true);
    assert.equal(await adapter.exists(s), false);
    assert.equal(await adapter.update(a.id, { userId: a.user, handle: `${s}!`, data: { w: s } }), true);
    assert.deepEqual(await adapter.get(a.id), { ...rec, handle: `${s}!`, data: { w: s } });
    assert.equal(await adapter.update(s, { handle: s, userId: s }), false);
    assert.deepEqual((await adapter.listByUser(a.user)).map((r) => r.sessionId), [a.id]);
    assert.deepEqual(await adapter.listByUser(s), []);
    assert.equal(await adapter.deleteByUser(a.user, a.id), 0);
    assert.equal(await adapter.deleteByUser(s), 0);
    assert.equal(await adapter.deleteByUser(s, s), 0);
    assert.equal(await adapter.delete(s), undefined);
    await assert.rejects(adapter.cleanup(s), TypeError);

    const got = await store.getSession(sid);
    assert.deepEqual([got.sessionId, got.userId, got.handle, got.data], [sid, suser, s, { [s]: s }]);
    assert.equal(await store.getSession(s), null);
    assert.equal(await store.updateSession(sid, { userId: suser, handle: s, data: { x: s } }), true);
    assert.equal(await store.updateSession(s, { handle: s }), false);
    const cookie = store.createSessionCookie(sid).split("; ")[0];
    assert.equal((await store.getSessionFromRequest({ headers: { cookie } })).sessionId, sid);
    assert.equal(await store.getSessionFromRequest({ headers: { cookie: `slice-session=${s}` } }), null);
    assert.equal(await store.getSessionFromRequest({ headers: { cookie: s } }), null);
    assert.deepEqual(await store.getCurrentUser({ headers: { cookie } }), { sessionId: sid, sub: suser, handle: s, isAuthenticated: true });
    assert.deepEqual((await store.listUserSessions(suser)).map((r) => r.sessionId), [sid]);
    assert.deepEqual(await store.listUserSessions(s), []);
    queue.push(`${s}#r${m.i}`);
    assert.equal(await store.regenerateSession(sid), `${s}#r${m.i}`);
    assert.equal(await store.getSession(sid), null);
    m.sid = `${s}#r${m.i}`;
    assert.deepEqual((await store.getSession(m.sid)).data, { x: s });
    queue.push(`${s}#x${m.i}`);
    assert.equal(await store.regenerateSession(s), null);
    queue.length = 0;
    assert.equal(await store.deleteUserSessions(s), 0);
    assert.equal(await store.deleteUserSessions(suser, { except: m.sid }), 0);
  }
  assert.equal(raw.rows().length, sentinels.length + 2 * INJECTIONS.length, "rows after reads and updates");

  // 3. Deletes, each removing exactly its own row.
  for (const m of made) {
    assert.equal(await adapter.deleteByUser(m.a.user, m.s), 1);
    assert.equal(await store.deleteUserSessions(m.suser, { except: m.s }), 1);
    assert.equal(await store.deleteSession(m.sid), undefined);
  }
  assert.equal(await store.cleanup(), 0);
  const left = raw.rows();
  assert.deepEqual(left.map((r) => r[0]).sort(), sentinels.map((r) => r.sessionId));
  for (const rec of sentinels) assert.deepEqual(await adapter.get(rec.sessionId), rec);
  await store.close();
}

describe("SQL injection strings in every argument", () => {
  test(`SQLiteAdapter (file): the table survives, strings round-trip, no other row is touched (${INJECTIONS.length} strings)`, async () => {
    const file = join(tmpDir(), "injection.db");
    const adapter = new SQLiteAdapter(file);
    try {
      await injectionSuite(adapter, {
        rows: () => rawSqlite.query(file, "SELECT session_id, user_id, handle FROM sessions").map((r) => [r.session_id, r.user_id, r.handle]),
      });
      assert.deepEqual(
        rawSqlite.query(file, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").map((r) => r.name),
        ["sessions"],
      );
    } finally {
      await adapter.close();
    }
  });

  test(`PostgresAdapter (own schema): the table survives, strings round-trip, no other row is touched (${INJECTIONS.length} strings)`, async () => {
    const schema = `sec_${runtime}_${process.pid}_${Date.now()}`;
    const base = pgUrl();
    psql(`CREATE SCHEMA ${schema}`);
    const url = base.includes("://")
      ? `${base}${base.includes("?") ? "&" : "?"}options=${encodeURIComponent(`-c search_path=${schema}`)}`
      : `${base} options='-c search_path=${schema}'`;
    const adapter = new PostgresAdapter(url);
    try {
      await injectionSuite(adapter, {
        rows: () => JSON.parse(psql(`SELECT coalesce(json_agg(json_build_array(session_id, user_id, handle)), '[]') FROM ${schema}.sessions`)),
      });
      assert.equal(psql(`SELECT string_agg(table_name, ',') FROM information_schema.tables WHERE table_schema = '${schema}'`), "sessions");
    } finally {
      await adapter.close();
      psql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    }
  });
});

// ------------------------------------------------------------------------------------------
// Session isolation
// ------------------------------------------------------------------------------------------

/** Values close to a real id that must never find a session. */
function nearMisses(id) {
  const flip = (c) => (c === "a" ? "b" : c === "0" ? "1" : "0");
  return [
    id.slice(0, -1),
    id.slice(1),
    `${id}0`,
    `0${id}`,
    id.toUpperCase(),
    id.replaceAll("-", ""),
    id.slice(0, -1) + flip(id.at(-1)),
    flip(id[0]) + id.slice(1),
    id.slice(0, 18) + flip(id[18]) + id.slice(19),
  ].filter((v) => v !== id);
}

async function isolationSuite(adapter, { concurrency }) {
  const store = new SessionStore({ adapter, cleanupInterval: 0 });
  const N = 1000;
  const sessions = [];
  for (let start = 0; start < N; start += concurrency) {
    const batch = Array.from({ length: Math.min(concurrency, N - start) }, (_, k) => start + k);
    const ids = await Promise.all(batch.map((i) => store.createSession(`iso-user-${i}-${runtime}-${process.pid}`, `h${i}`, { i })));
    batch.forEach((i, k) => sessions.push({ i, id: ids[k] }));
  }
  let lookups = 0;
  for (let start = 0; start < N; start += concurrency) {
    await Promise.all(
      sessions.slice(start, start + concurrency).map(async ({ i, id }) => {
        const cookie = store.createSessionCookie(id).split("; ")[0];
        const own = await store.getSessionFromRequest(new Request("http://localhost/", { headers: { cookie } }));
        assert.deepEqual([own.sessionId, own.userId, own.handle, own.data], [id, `iso-user-${i}-${runtime}-${process.pid}`, `h${i}`, { i }]);
        lookups += 1;
        for (const miss of nearMisses(id)) {
          assert.equal(await store.getSessionFromRequest({ headers: { cookie: `slice-session=${miss}` } }), null, `${miss} (near ${id})`);
          lookups += 1;
        }
      }),
    );
  }
  // Nothing was deleted or changed hands on the way.
  for (const { i, id } of sessions) assert.equal((await adapter.get(id)).userId, `iso-user-${i}-${runtime}-${process.pid}`);
  for (const { id } of sessions) await adapter.delete(id);
  await store.close();
  return lookups;
}

describe("a cookie never yields another session", () => {
  test("MemoryAdapter: 1 000 sessions, each cookie reads its own; 9 near misses of each read nothing", async () => {
    assert.equal(await isolationSuite(new MemoryAdapter(), { concurrency: 1 }), 10000);
  });

  test("SQLiteAdapter: the same on a file", async () => {
    const adapter = new SQLiteAdapter(join(tmpDir(), "isolation.db"));
    try {
      assert.equal(await isolationSuite(adapter, { concurrency: 1 }), 10000);
    } finally {
      await adapter.close();
    }
  });

  test("PostgresAdapter: the same, 50 requests at a time", async () => {
    const adapter = new PostgresAdapter(pgUrl());
    try {
      assert.equal(await isolationSuite(adapter, { concurrency: 50 }), 10000);
    } finally {
      await adapter.close();
    }
  });
});

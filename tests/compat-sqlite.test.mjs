// SPEC §5 data compatibility, SQLite: a file written by the original package (its schema and row
// shape, produced here by plain SQL) is read as is, and what the package writes is what the
// original would have written. The plain SQL goes through an SQLite implementation independent
// of the package, in another process: see `rawSqlite` in target.mjs for how it is chosen and why
// it never runs in this process.
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { pkg, tmpDir, removeTmpDirs, rawSqlite, sqlLit, isAdapterError } from "./target.mjs";
import { NASTY_STRINGS } from "./adapter-suite.mjs";

const { SQLiteAdapter, SessionStore } = pkg;

// The original's schema, verbatim from SPEC §5.
const ORIGINAL_SCHEMA = `
CREATE TABLE IF NOT EXISTS sessions (
  session_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, handle TEXT,
  is_authenticated INTEGER NOT NULL DEFAULT 1, data TEXT,
  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, last_accessed_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS idx_sessions_expires_at ON sessions(expires_at);
CREATE INDEX IF NOT EXISTS idx_sessions_user_id ON sessions(user_id);
`;

const FUTURE = 4102444800000; // 2100-01-01

const insert = (r) =>
  `INSERT INTO sessions (session_id, user_id, handle, is_authenticated, data, created_at, expires_at, last_accessed_at) VALUES (` +
  [sqlLit(r.id), sqlLit(r.user), sqlLit(r.handle), r.auth, sqlLit(r.data), r.created, r.expires, r.accessed].join(", ") +
  `);`;

after(() => removeTmpDirs());

describe(`SQLite compatibility with the original (plain SQL via an independent SQLite)`, () => {
  const adapters = [];
  const stores = [];
  const open = (file) => {
    const a = new SQLiteAdapter(file);
    adapters.push(a);
    return a;
  };
  after(async () => {
    for (const s of stores) await s.close();
    for (const a of adapters) await a.close();
  });

  test("the independent SQLite implementation is available", () => {
    // throws, with what was tried, when none is
    assert.match(rawSqlite.name, /sqlite/i);
  });

  test("a file in the original schema, written by plain SQL, is read as is", async () => {
    const file = join(tmpDir(), "original.db");
    rawSqlite.exec(
      file,
      ORIGINAL_SCHEMA +
        insert({ id: "s1", user: "did:plc:alice", handle: "alice.test", auth: 1, data: '{"theme":"dark","n":[1,2.5,null,true],"s":"é😀"}', created: 1700000000000, expires: FUTURE, accessed: 1700000001000 }) +
        insert({ id: "s2", user: "did:plc:bob", handle: null, auth: 0, data: null, created: 1700000000001, expires: FUTURE, accessed: 1700000000001 }) +
        insert({ id: "s3", user: "did:plc:alice", handle: "alice.test", auth: 1, data: "{}", created: 1700000000002, expires: FUTURE, accessed: 1700000000002 }),
    );
    const a = open(file);
    assert.deepStrictEqual(await a.get("s1"), {
      sessionId: "s1",
      userId: "did:plc:alice",
      handle: "alice.test",
      isAuthenticated: true,
      data: { theme: "dark", n: [1, 2.5, null, true], s: "é😀" },
      createdAt: 1700000000000,
      expiresAt: FUTURE,
      lastAccessedAt: 1700000001000,
    });
    const s2 = await a.get("s2");
    assert.deepStrictEqual(s2, {
      sessionId: "s2",
      userId: "did:plc:bob",
      isAuthenticated: false,
      createdAt: 1700000000001,
      expiresAt: FUTURE,
      lastAccessedAt: 1700000000001,
    });
    assert.equal("handle" in s2, false);
    assert.equal("data" in s2, false);
    assert.deepStrictEqual((await a.get("s3")).data, {});

    // the store works on it: getSession touches last_accessed_at in the file
    const store = new SessionStore({ adapter: a, cleanupInterval: 0 });
    stores.push(store);
    const before = Date.now();
    const s = await store.getSession("s1");
    const after_ = Date.now();
    assert.equal(s.userId, "did:plc:alice");
    const [row] = rawSqlite.query(file, "SELECT last_accessed_at AS t, typeof(last_accessed_at) AS ty FROM sessions WHERE session_id = 's1'");
    assert.equal(row.ty, "integer");
    assert.ok(row.t >= before && row.t <= after_, `last_accessed_at ${row.t} in [${before}, ${after_}]`);
    assert.deepStrictEqual((await store.listUserSessions("did:plc:alice")).map((x) => x.sessionId), ["s1", "s3"]);
  });

  test("rows written by the package have the original's column types and encodings", async () => {
    const file = join(tmpDir(), "written.db");
    const a = open(file);
    const store = new SessionStore({ adapter: a, generateId: (() => { let n = 0; return () => `w${++n}`; })(), cleanupInterval: 0 });
    stores.push(store);
    const data = { theme: "dark", list: [1, "two", null, false], nested: { "é": "😀" } };
    await store.createSession("did:plc:carol", "carol.test", data);
    await store.createSession("did:plc:dave");
    const rows = rawSqlite.query(
      file,
      `SELECT session_id, user_id, handle, typeof(handle) AS th, is_authenticated, typeof(is_authenticated) AS ta,
              data, typeof(data) AS td, created_at, typeof(created_at) AS tc, expires_at, typeof(expires_at) AS te,
              last_accessed_at, typeof(last_accessed_at) AS tl
       FROM sessions ORDER BY session_id`,
    );
    assert.equal(rows.length, 2);
    const [w1, w2] = rows;
    assert.equal(w1.session_id, "w1");
    assert.equal(w1.user_id, "did:plc:carol");
    assert.equal(w1.handle, "carol.test");
    assert.equal(w1.th, "text");
    assert.equal(w1.is_authenticated, 1);
    assert.equal(w1.ta, "integer");
    assert.equal(w1.td, "text");
    assert.deepStrictEqual(JSON.parse(w1.data), data);
    for (const t of [w1.tc, w1.te, w1.tl]) assert.equal(t, "integer");
    assert.equal(w1.expires_at - w1.created_at, 2592000000);
    assert.equal(w1.last_accessed_at, w1.created_at);
    assert.equal(w2.session_id, "w2");
    assert.equal(w2.handle, null);
    assert.equal(w2.th, "null");
    assert.equal(w2.data, null);
    assert.equal(w2.td, "null");
    // isAuthenticated false is stored as 0
    await store.updateSession("w2", { isAuthenticated: false });
    const [r] = rawSqlite.query(file, "SELECT is_authenticated AS v, typeof(is_authenticated) AS t FROM sessions WHERE session_id = 'w2'");
    assert.deepStrictEqual(r, { v: 0, t: "integer" });
  });

  test("the schema the package creates is the original's (columns and the two indexes)", async () => {
    const file = join(tmpDir(), "schema.db");
    const a = open(file);
    await a.get("anything");
    const cols = rawSqlite.query(file, "SELECT name, type, \"notnull\" AS nn, dflt_value AS dflt, pk FROM pragma_table_info('sessions') ORDER BY cid");
    assert.deepStrictEqual(cols, [
      { name: "session_id", type: "TEXT", nn: 0, dflt: null, pk: 1 },
      { name: "user_id", type: "TEXT", nn: 1, dflt: null, pk: 0 },
      { name: "handle", type: "TEXT", nn: 0, dflt: null, pk: 0 },
      { name: "is_authenticated", type: "INTEGER", nn: 1, dflt: "1", pk: 0 },
      { name: "data", type: "TEXT", nn: 0, dflt: null, pk: 0 },
      { name: "created_at", type: "INTEGER", nn: 1, dflt: null, pk: 0 },
      { name: "expires_at", type: "INTEGER", nn: 1, dflt: null, pk: 0 },
      { name: "last_accessed_at", type: "INTEGER", nn: 1, dflt: null, pk: 0 },
    ]);
    const indexes = rawSqlite.query(file, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'sessions' AND name LIKE 'idx_sessions_%'").map((r) => r.name);
    assert.ok(indexes.includes("idx_sessions_expires_at"), `indexes: ${indexes}`);
    assert.ok(indexes.includes("idx_sessions_user_id"), `indexes: ${indexes}`);
    const idxCols = (name) => rawSqlite.query(file, `SELECT name FROM pragma_index_info('${name}')`).map((r) => r.name);
    assert.deepStrictEqual(idxCols("idx_sessions_expires_at"), ["expires_at"]);
    assert.deepStrictEqual(idxCols("idx_sessions_user_id"), ["user_id"]);
  });

  test("the file is in WAL mode", async () => {
    const file = join(tmpDir(), "wal.db");
    const a = open(file);
    await a.set("x", { sessionId: "x", userId: "u", isAuthenticated: true, createdAt: 1, expiresAt: FUTURE, lastAccessedAt: 1 });
    const [row] = rawSqlite.query(file, "PRAGMA journal_mode");
    assert.equal(Object.values(row)[0], "wal");
  });

  test("Unicode and injection strings written by the package are stored byte-exact", async () => {
    const file = join(tmpDir(), "unicode.db");
    const a = open(file);
    const queue = [];
    const store = new SessionStore({ adapter: a, generateId: () => queue.shift(), cleanupInterval: 0 });
    stores.push(store);
    for (const [i, str] of NASTY_STRINGS.entries()) {
      queue.push(`${str}#${i}`);
      await store.createSession(`${str}|u`, `${str}|h`, { [str]: str });
    }
    const rows = rawSqlite.query(file, "SELECT session_id, user_id, handle, hex(session_id) AS hx, data FROM sessions");
    assert.equal(rows.length, NASTY_STRINGS.length);
    const hex = (s) => Array.from(new TextEncoder().encode(s), (b) => b.toString(16).padStart(2, "0").toUpperCase()).join("");
    for (const [i, str] of NASTY_STRINGS.entries()) {
      const row = rows.find((r) => r.session_id === `${str}#${i}`);
      assert.ok(row, `row for ${JSON.stringify(str)}`);
      assert.equal(row.hx, hex(`${str}#${i}`));
      assert.equal(row.user_id, `${str}|u`);
      assert.equal(row.handle, `${str}|h`);
      assert.deepStrictEqual(JSON.parse(row.data), { [str]: str });
    }
    const [t] = rawSqlite.query(file, "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'sessions'");
    assert.equal(t.n, 1);
  });

  test("Unicode rows written by plain SQL are read exactly", async () => {
    const file = join(tmpDir(), "unicode-in.db");
    let sql = ORIGINAL_SCHEMA;
    for (const [i, str] of NASTY_STRINGS.entries()) {
      sql += insert({ id: `${str}#${i}`, user: `${str}|u`, handle: `${str}|h`, auth: 1, data: JSON.stringify({ [str]: str }), created: 1, expires: FUTURE, accessed: 1 });
    }
    rawSqlite.exec(file, sql);
    const a = open(file);
    for (const [i, str] of NASTY_STRINGS.entries()) {
      const got = await a.get(`${str}#${i}`);
      assert.ok(got, `row for ${JSON.stringify(str)}`);
      assert.equal(got.userId, `${str}|u`);
      assert.equal(got.handle, `${str}|h`);
      assert.deepStrictEqual(got.data, { [str]: str });
    }
  });

  test("a row whose data is not JSON is reported as AdapterError, not a crash", async () => {
    const file = join(tmpDir(), "corrupt.db");
    rawSqlite.exec(file, ORIGINAL_SCHEMA + insert({ id: "bad", user: "u", handle: null, auth: 1, data: "{not json", created: 1, expires: FUTURE, accessed: 1 }));
    const a = open(file);
    await assert.rejects(() => a.get("bad"), isAdapterError);
    const store = new SessionStore({ adapter: a, cleanupInterval: 0 });
    stores.push(store);
    await assert.rejects(() => store.getSession("bad"), (e) => isAdapterError(e) && e.message.includes("bad"));
    // other rows still work
    const id = await store.createSession("fine");
    assert.equal((await store.getSession(id)).userId, "fine");
  });

  test("a row written by another process while the adapter is open is seen", async () => {
    const file = join(tmpDir(), "live.db");
    const a = open(file);
    await a.get("warm-up"); // creates the schema, file now in WAL mode
    rawSqlite.exec(file, insert({ id: "ext", user: "external", handle: "h", auth: 1, data: '{"from":"outside"}', created: 5, expires: FUTURE, accessed: 6 }));
    assert.deepStrictEqual(await a.get("ext"), {
      sessionId: "ext",
      userId: "external",
      handle: "h",
      isAuthenticated: true,
      data: { from: "outside" },
      createdAt: 5,
      expiresAt: FUTURE,
      lastAccessedAt: 6,
    });
  });
});

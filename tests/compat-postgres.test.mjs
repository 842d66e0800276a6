// SPEC §5 data compatibility, PostgreSQL: the schema the package creates is the original's, rows
// in the original's shape written by plain SQL (the `psql` CLI) are read as is, and what the
// package writes reads back through psql as the original would have stored it.
// Needs SLICES_TEST_PG_URL (fails without it). The table is shared: unique ids everywhere, and
// no cleanup() with a current time here (adapter-suite's cleanup tests count rows).
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { pkg, pgUrl, psql, sqlLit, uniq } from "./target.mjs";
import { NASTY_STRINGS } from "./adapter-suite.mjs";

const { PostgresAdapter, SessionStore } = pkg;
const FUTURE = 4102444800000;

const hex = (s) => Array.from(new TextEncoder().encode(s), (b) => b.toString(16).padStart(2, "0")).join("");

const insert = (r) =>
  `INSERT INTO sessions (session_id, user_id, handle, is_authenticated, data, created_at, expires_at, last_accessed_at) VALUES (` +
  [sqlLit(r.id), sqlLit(r.user), sqlLit(r.handle), r.auth, r.data === null ? "NULL" : `${sqlLit(r.data)}::jsonb`, r.created, r.expires, r.accessed].join(", ") +
  `)`;

describe("PostgreSQL compatibility with the original (plain SQL via psql)", () => {
  let adapter;
  let store;
  before(async () => {
    adapter = new PostgresAdapter(pgUrl());
    await adapter.initialize();
    store = new SessionStore({ adapter, cleanupInterval: 0 });
  });
  after(async () => {
    if (store) await store.close();
    if (adapter) await adapter.close();
  });

  test("the schema is the original's: columns, types, defaults, primary key, indexes", () => {
    const cols = psql(
      `SELECT column_name, data_type, is_nullable, coalesce(column_default, '') FROM information_schema.columns
       WHERE table_schema = current_schema() AND table_name = 'sessions' ORDER BY ordinal_position`,
    )
      .split("\n")
      .map((l) => l.split("\t"));
    assert.deepStrictEqual(cols, [
      ["session_id", "text", "NO", ""],
      ["user_id", "text", "NO", ""],
      ["handle", "text", "YES", ""],
      ["is_authenticated", "boolean", "NO", "true"],
      ["data", "jsonb", "YES", ""],
      ["created_at", "bigint", "NO", ""],
      ["expires_at", "bigint", "NO", ""],
      ["last_accessed_at", "bigint", "NO", ""],
    ]);
    const pk = psql(
      `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
       WHERE i.indrelid = 'sessions'::regclass AND i.indisprimary`,
    );
    assert.equal(pk, "session_id");
    const idx = psql(
      `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'sessions' ORDER BY indexname`,
    )
      .split("\n")
      .map((l) => l.split("\t"));
    const byName = Object.fromEntries(idx);
    assert.ok(byName.idx_sessions_expires_at, `indexes: ${Object.keys(byName)}`);
    assert.ok(byName.idx_sessions_user_id, `indexes: ${Object.keys(byName)}`);
    assert.match(byName.idx_sessions_expires_at, /\(expires_at\)$/);
    assert.match(byName.idx_sessions_user_id, /\(user_id\)$/);
  });

  test("rows in the original's shape, written by psql, are read as is", async () => {
    const id1 = uniq("orig");
    const id2 = uniq("orig");
    psql(
      insert({ id: id1, user: "did:plc:alice", handle: "alice.test", auth: "true", data: '{"theme":"dark","n":[1,2.5,null,true],"s":"é😀"}', created: 1700000000000, expires: FUTURE, accessed: 1700000001000 }) +
        "; " +
        insert({ id: id2, user: "did:plc:bob", handle: null, auth: "false", data: null, created: 1700000000001, expires: FUTURE, accessed: 1700000000001 }),
    );
    const got1 = await adapter.get(id1);
    assert.deepStrictEqual(got1, {
      sessionId: id1,
      userId: "did:plc:alice",
      handle: "alice.test",
      isAuthenticated: true,
      data: { theme: "dark", n: [1, 2.5, null, true], s: "é😀" },
      createdAt: 1700000000000,
      expiresAt: FUTURE,
      lastAccessedAt: 1700000001000,
    });
    for (const k of ["createdAt", "expiresAt", "lastAccessedAt"]) assert.equal(typeof got1[k], "number");
    const got2 = await adapter.get(id2);
    assert.deepStrictEqual(got2, {
      sessionId: id2,
      userId: "did:plc:bob",
      isAuthenticated: false,
      createdAt: 1700000000001,
      expiresAt: FUTURE,
      lastAccessedAt: 1700000000001,
    });
    assert.equal("handle" in got2, false);
    assert.equal("data" in got2, false);

    // the store touches last_accessed_at in the row
    const before_ = Date.now();
    assert.equal((await store.getSession(id1)).userId, "did:plc:alice");
    const after_ = Date.now();
    const t = Number(psql(`SELECT last_accessed_at FROM sessions WHERE session_id = ${sqlLit(id1)}`));
    assert.ok(t >= before_ && t <= after_, `last_accessed_at ${t} in [${before_}, ${after_}]`);
    psql(`DELETE FROM sessions WHERE session_id IN (${sqlLit(id1)}, ${sqlLit(id2)})`);
  });

  test("rows written by the package read back through psql as the original stores them", async () => {
    const user = uniq("pkg-writer");
    const data = { theme: "dark", list: [1, "two", null, false], nested: { "é": "😀" }, f: 0.5 };
    const id1 = await store.createSession(user, "carol.test", data);
    const id2 = await store.createSession(user);
    const row1 = psql(
      `SELECT user_id, handle, is_authenticated, data = ${sqlLit(JSON.stringify(data))}::jsonb, jsonb_typeof(data),
              expires_at - created_at, last_accessed_at = created_at
       FROM sessions WHERE session_id = ${sqlLit(id1)}`,
    ).split("\t");
    assert.deepStrictEqual(row1, [user, "carol.test", "t", "t", "object", "2592000000", "t"]);
    const row2 = psql(`SELECT handle IS NULL, data IS NULL, is_authenticated FROM sessions WHERE session_id = ${sqlLit(id2)}`).split("\t");
    assert.deepStrictEqual(row2, ["t", "t", "t"]);
    await store.updateSession(id2, { isAuthenticated: false, data: { x: 1 } });
    const row3 = psql(`SELECT is_authenticated, data::text FROM sessions WHERE session_id = ${sqlLit(id2)}`).split("\t");
    assert.deepStrictEqual(row3, ["f", '{"x": 1}']);
    await store.deleteUserSessions(user);
    assert.equal(psql(`SELECT count(*) FROM sessions WHERE user_id = ${sqlLit(user)}`), "0");
  });

  test("Unicode and injection strings are stored byte-exact and read back exactly", async () => {
    const suffix = uniq("pgu");
    const queue = [];
    const s = new SessionStore({ adapter, generateId: () => queue.shift(), cleanupInterval: 0 });
    try {
      for (const [i, str] of NASTY_STRINGS.entries()) {
        const id = `${str}#${i}#${suffix}`;
        queue.push(id);
        await s.createSession(`${str}|u|${suffix}`, `${str}|h`, { [str]: str });
        const out = psql(
          `SELECT encode(convert_to(user_id, 'UTF8'), 'hex'), encode(convert_to(handle, 'UTF8'), 'hex'),
                  data = ${sqlLit(JSON.stringify({ [str]: str }))}::jsonb
           FROM sessions WHERE session_id = ${sqlLit(id)}`,
        ).split("\t");
        assert.deepStrictEqual(out, [hex(`${str}|u|${suffix}`), hex(`${str}|h`), "t"], `string ${JSON.stringify(str)}`);
      }
      // and written by psql, read by the package
      for (const [i, str] of NASTY_STRINGS.entries()) {
        const id = `${str}#in${i}#${suffix}`;
        psql(insert({ id, user: `${str}|in|${suffix}`, handle: `${str}|h`, auth: "true", data: JSON.stringify({ [str]: str }), created: 1, expires: FUTURE, accessed: 1 }));
        const got = await adapter.get(id);
        assert.ok(got, `row for ${JSON.stringify(str)}`);
        assert.equal(got.sessionId, id);
        assert.equal(got.userId, `${str}|in|${suffix}`);
        assert.equal(got.handle, `${str}|h`);
        assert.deepStrictEqual(got.data, { [str]: str });
      }
      assert.equal(psql("SELECT to_regclass('sessions') IS NOT NULL"), "t");
    } finally {
      await s.close();
      psql(`DELETE FROM sessions WHERE session_id LIKE ${sqlLit(`%#${suffix}`)}`);
    }
  });
});

// SPEC §5: what is specific to one native adapter (MemoryAdapter helpers, SQLite paths).
// PostgreSQL specifics are in postgres-specific.test.mjs.
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { existsSync, statSync } from "node:fs";
import { pkg, tmpDir, removeTmpDirs, isAdapterError as AdapterErrorCheck, runScript, moduleSpecifier } from "./target.mjs";

const { MemoryAdapter, SQLiteAdapter, SessionStore, AdapterError } = pkg;

const rec = (id, over = {}) => {
  const now = Date.now();
  return { sessionId: id, userId: "u", isAuthenticated: true, createdAt: now, expiresAt: now + 60000, lastAccessedAt: now, ...over };
};

after(() => removeTmpDirs());

describe("MemoryAdapter helpers", () => {
  test("size(), keys() and clear() are synchronous", async () => {
    const a = new MemoryAdapter();
    assert.equal(a.size(), 0);
    assert.deepStrictEqual(a.keys(), []);
    await a.set("k1", rec("k1"));
    await a.set("k2", rec("k2"));
    const size = a.size();
    assert.equal(size, 2, "size() must return a number, not a Promise");
    const keys = a.keys();
    assert.ok(Array.isArray(keys), "keys() must return an array, not a Promise");
    assert.deepStrictEqual([...keys].sort(), ["k1", "k2"]);
    const cleared = a.clear();
    assert.equal(cleared instanceof Promise, false, "clear() must be synchronous");
    assert.equal(a.size(), 0);
    assert.deepStrictEqual(a.keys(), []);
    assert.equal(await a.get("k1"), null);
  });

  test("size() counts expired rows too (get/exists do not check expiry)", async () => {
    const a = new MemoryAdapter();
    await a.set("e", rec("e", { expiresAt: Date.now() - 10 }));
    assert.equal(a.size(), 1);
    assert.equal(await a.exists("e"), true);
    assert.equal(await a.cleanup(Date.now()), 1);
    assert.equal(a.size(), 0);
  });

  test("two MemoryAdapters are independent", async () => {
    const a = new MemoryAdapter();
    const b = new MemoryAdapter();
    await a.set("x", rec("x"));
    assert.equal(await b.exists("x"), false);
    assert.equal(b.size(), 0);
  });

  test("a store over a MemoryAdapter is visible through keys()", async () => {
    const a = new MemoryAdapter();
    const store = new SessionStore({ adapter: a, cleanupInterval: 0 });
    try {
      const id = await store.createSession("u");
      assert.deepStrictEqual(a.keys(), [id]);
      await store.deleteSession(id);
      assert.equal(a.size(), 0);
    } finally {
      await store.close();
    }
  });
});

describe("SQLiteAdapter paths", () => {
  test("a plain path creates the file", async () => {
    const file = join(tmpDir(), "plain.db");
    const a = new SQLiteAdapter(file);
    try {
      await a.set("p", rec("p"));
      assert.equal(existsSync(file), true);
      assert.equal((await a.get("p")).sessionId, "p");
    } finally {
      await a.close();
    }
  });

  test('a "sqlite://" prefix is stripped', async () => {
    const dir = tmpDir();
    const file = join(dir, "prefixed.db");
    const a = new SQLiteAdapter(`sqlite://${file}`);
    try {
      await a.set("p", rec("p"));
      assert.equal(existsSync(file), true, `expected the database at ${file}`);
      assert.equal(existsSync(join(dir, "sqlite:")), false);
    } finally {
      await a.close();
    }
    // the same file, opened without the prefix, holds the row
    const b = new SQLiteAdapter(file);
    try {
      assert.equal((await b.get("p")).sessionId, "p");
    } finally {
      await b.close();
    }
  });

  test('"sqlite://./relative.db" (the README form) is relative to the working directory', async () => {
    // chdir is not allowed in the test process, so this runs in a child process started in a temp dir
    const dir = tmpDir();
    const r = await runScript(
      `import * as pkg from ${JSON.stringify(moduleSpecifier)};\n` +
        `const a = new pkg.SQLiteAdapter("sqlite://./relative.db");\n` +
        `const store = new pkg.SessionStore({ adapter: a, cleanupInterval: 0 });\n` +
        `const id = await store.createSession("rel-user");\n` +
        `await store.close(); await a.close();\n` +
        `console.log(id);\n`,
      { cwd: dir },
    );
    assert.equal(r.code, 0, `exit code ${r.code}, stderr: ${r.stderr}`);
    const id = r.stdout.trim();
    assert.equal(existsSync(join(dir, "relative.db")), true, "relative.db must be created in the working directory");
    const b = new SQLiteAdapter(join(dir, "relative.db"));
    try {
      assert.equal((await b.get(id))?.userId, "rel-user");
    } finally {
      await b.close();
    }
  });

  test("the file persists across adapter instances", async () => {
    const file = join(tmpDir(), "persist.db");
    const a = new SQLiteAdapter(file);
    const store = new SessionStore({ adapter: a, cleanupInterval: 0 });
    const id = await store.createSession("persist-user", "h", { k: [1] });
    await store.close();
    await a.close();
    const b = new SQLiteAdapter(file);
    const store2 = new SessionStore({ adapter: b, cleanupInterval: 0 });
    try {
      const s = await store2.getSession(id);
      assert.equal(s.userId, "persist-user");
      assert.equal(s.handle, "h");
      assert.deepStrictEqual(s.data, { k: [1] });
    } finally {
      await store2.close();
      await b.close();
    }
  });

  test('two ":memory:" adapters are separate databases', async () => {
    const a = new SQLiteAdapter(":memory:");
    const b = new SQLiteAdapter(":memory:");
    try {
      await a.set("m", rec("m"));
      assert.equal(await a.exists("m"), true);
      assert.equal(await b.exists("m"), false);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test("two adapters on one file see each other's writes (concurrent stores)", async () => {
    const file = join(tmpDir(), "shared.db");
    const a = new SQLiteAdapter(file);
    const b = new SQLiteAdapter(file);
    const sa = new SessionStore({ adapter: a, cleanupInterval: 0 });
    const sb = new SessionStore({ adapter: b, cleanupInterval: 0 });
    try {
      const [idsA, idsB] = await Promise.all([
        Promise.all(Array.from({ length: 50 }, (_, i) => sa.createSession(`a${i}`))),
        Promise.all(Array.from({ length: 50 }, (_, i) => sb.createSession(`b${i}`))),
      ]);
      for (const [i, id] of idsA.entries()) assert.equal((await sb.getSession(id))?.userId, `a${i}`);
      for (const [i, id] of idsB.entries()) assert.equal((await sa.getSession(id))?.userId, `b${i}`);
    } finally {
      await sa.close();
      await sb.close();
      await a.close();
      await b.close();
    }
  });

  test("an unopenable path rejects with AdapterError (or throws it at construction)", async () => {
    const bad = join(tmpDir(), "no", "such", "dir", "x.db");
    let adapter;
    try {
      adapter = new SQLiteAdapter(bad);
    } catch (e) {
      AdapterErrorCheck(e);
      return;
    }
    try {
      await assert.rejects(() => adapter.get("x"), AdapterErrorCheck);
    } finally {
      try {
        await adapter.close();
      } catch {
        // closing a never-opened adapter may report the same failure
      }
    }
  });

  test("close() is idempotent and later calls reject with AdapterError", async () => {
    const a = new SQLiteAdapter(":memory:");
    await a.set("c", rec("c"));
    await a.close();
    await a.close();
    await assert.rejects(() => a.get("c"), (e) => e instanceof AdapterError);
  });

  // SQLite checkpoints its write-ahead log only after a statement ran to its end; the request
  // path's write returns the row, and once stopped after that row the log grew by a page per
  // request, without bound, for as long as the process ran. Checkpoints now run on a background
  // thread from 1 000 frames and inline past 4 000 (core/src/sqlite_checkpoint.rs).
  test("the -wal file stays bounded when every write is a request-path touch", async () => {
    const file = join(tmpDir(), "wal.db");
    const adapter = new SQLiteAdapter(file);
    const store = new pkg.SessionStore({ adapter, cleanupInterval: 0 });
    const ids = [];
    for (let i = 0; i < 20; i++) ids.push(await store.createSession(`did:plc:u${i}`));
    for (let i = 0; i < 12000; i++) {
      const session = await store.getSessionFromRequest({ headers: { cookie: `slice-session=${ids[i % 20]}` } });
      assert.equal(session?.sessionId, ids[i % 20]);
    }
    // Pages of 4 KiB (+ a 24-byte frame header each): the 4 000-frame cap and one commit.
    const wal = statSync(`${file}-wal`).size;
    assert.ok(wal <= 4100 * (4096 + 24), `after 12000 requests the WAL holds ${wal} bytes`);
    await store.close();
    await adapter.close();
  });
});

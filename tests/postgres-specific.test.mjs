// SPEC §5 PostgresAdapter specifics: lazy connection, initialize(), pool, unreachable server.
// Needs SLICES_TEST_PG_URL for the tests that talk to a server (they fail without it).
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { pkg, pgUrl, uniq, isAdapterError } from "./target.mjs";

const { PostgresAdapter, SessionStore, AdapterError } = pkg;

const rec = (id, over = {}) => {
  const now = Date.now();
  return { sessionId: id, userId: "u", isAuthenticated: true, createdAt: now, expiresAt: now + 60000, lastAccessedAt: now, ...over };
};

const UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none";

describe("PostgresAdapter without a server", () => {
  const adapters = [];
  after(async () => {
    for (const a of adapters) {
      try {
        await a.close();
      } catch {
        // an adapter that never connected may report that on close; not what is tested here
      }
    }
  });

  test("the constructor does not connect", () => {
    const a = new PostgresAdapter(UNREACHABLE);
    adapters.push(a);
    assert.ok(a instanceof PostgresAdapter);
  });

  test("an unreachable server rejects with AdapterError within 15 s", async () => {
    const a = new PostgresAdapter(UNREACHABLE);
    adapters.push(a);
    for (const call of [() => a.get("x"), () => a.set("x", rec("x")), () => a.initialize(), () => a.cleanup(Date.now())]) {
      const started = Date.now();
      let timer;
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("no answer within 15 s")), 15000);
      });
      try {
        await assert.rejects(Promise.race([call(), timeout]), (e) => {
          isAdapterError(e);
          assert.ok(e.message.length > 0);
          return true;
        });
      } finally {
        clearTimeout(timer);
      }
      assert.ok(Date.now() - started < 15000);
    }
  });

  test("a store over an unreachable server rejects with AdapterError and keeps the process alive", async () => {
    const a = new PostgresAdapter(UNREACHABLE);
    adapters.push(a);
    const store = new SessionStore({ adapter: a, cleanupInterval: 0 });
    try {
      await assert.rejects(() => store.createSession("u"), isAdapterError);
      await assert.rejects(() => store.getSession("x"), isAdapterError);
      assert.deepStrictEqual(await store.getCurrentUser({ headers: {} }), { isAuthenticated: false });
    } finally {
      await store.close();
    }
  });

  test("an invalid connection string is reported as an error, not a crash", async () => {
    let a;
    try {
      a = new PostgresAdapter("this is not a connection string ::: ?");
    } catch (e) {
      assert.ok(e instanceof Error, "a thrown value must be an Error");
      return;
    }
    adapters.push(a);
    await assert.rejects(() => a.get("x"), (e) => e instanceof Error);
  });
});

// A server that accepts connections and never answers: what a hung PostgreSQL looks like.
async function silentServer() {
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `postgresql://nobody@127.0.0.1:${server.address().port}/none`,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe("PostgresAdapter and PostgresOAuthStorage: queryTimeout", () => {
  test("a call to a server that never answers rejects with AdapterError after queryTimeout, not the 10 s default", async () => {
    const silent = await silentServer();
    const adapter = new PostgresAdapter(silent.url, { queryTimeout: 300 });
    const storage = new pkg.PostgresOAuthStorage(silent.url, { queryTimeout: 300 });
    try {
      for (const call of [() => adapter.get("x"), () => storage.getTokens("x")]) {
        const started = Date.now();
        await assert.rejects(call, (e) => e instanceof AdapterError && /300 ms/.test(e.message));
        const took = Date.now() - started;
        assert.ok(took >= 250 && took < 5000, `rejected after ${took} ms`);
      }
    } finally {
      await adapter.close();
      await storage.close();
      await silent.close();
    }
  });

  test("queryTimeout must be a non-negative number of ms (0: no limit)", () => {
    for (const bad of [-1, "300", Number.NaN, 1.5e10]) {
      assert.throws(() => new PostgresAdapter(UNREACHABLE, { queryTimeout: bad }), (e) => e instanceof TypeError && /queryTimeout/.test(e.message));
      assert.throws(() => new pkg.PostgresOAuthStorage(UNREACHABLE, { queryTimeout: bad }), (e) => e instanceof TypeError && /queryTimeout/.test(e.message));
    }
    const unlimited = new PostgresAdapter(UNREACHABLE, { queryTimeout: 0 });
    assert.ok(unlimited instanceof PostgresAdapter);
  });
});

describe("PostgresAdapter with a server", () => {
  const adapters = [];
  const mk = (...args) => {
    const a = new PostgresAdapter(...args);
    adapters.push(a);
    return a;
  };
  after(async () => {
    for (const a of adapters) await a.close();
  });

  test("methods work before initialize() (schema created on first use)", async () => {
    const a = mk(pgUrl());
    const id = uniq("pre-init");
    assert.equal(await a.get(id), null);
    await a.set(id, rec(id));
    assert.equal(await a.exists(id), true);
    await a.delete(id);
  });

  test("initialize() is idempotent, also concurrently", async () => {
    const a = mk(pgUrl());
    assert.equal(await a.initialize(), undefined);
    assert.equal(await a.initialize(), undefined);
    const b = mk(pgUrl());
    await Promise.all([b.initialize(), b.initialize(), b.initialize()]);
    const id = uniq("init");
    await b.set(id, rec(id));
    assert.equal((await a.get(id)).sessionId, id);
    await a.delete(id);
  });

  test("maxConnections bounds the pool without failing calls", async () => {
    const a = mk(pgUrl(), { maxConnections: 2 });
    const ids = Array.from({ length: 40 }, () => uniq("pool"));
    await Promise.all(ids.map((id) => a.set(id, rec(id, { data: { id } }))));
    const got = await Promise.all(ids.map((id) => a.get(id)));
    got.forEach((g, i) => assert.deepStrictEqual(g.data, { id: ids[i] }));
    await Promise.all(ids.map((id) => a.delete(id)));
  });

  test("two adapters (two pools) share the database", async () => {
    const a = mk(pgUrl());
    const b = mk(pgUrl());
    const sa = new SessionStore({ adapter: a, cleanupInterval: 0 });
    const sb = new SessionStore({ adapter: b, cleanupInterval: 0 });
    try {
      const user = uniq("two-pools");
      const id = await sa.createSession(user, "h", { x: 1 });
      const s = await sb.getSession(id);
      assert.equal(s.userId, user);
      assert.deepStrictEqual(s.data, { x: 1 });
      assert.equal(await sb.updateSession(id, { handle: "h2" }), true);
      assert.equal((await sa.getSession(id)).handle, "h2");
      await sb.deleteSession(id);
      assert.equal(await sa.getSession(id), null);
    } finally {
      await sa.close();
      await sb.close();
    }
  });

  test("close() is idempotent and later calls reject with AdapterError", async () => {
    const a = new PostgresAdapter(pgUrl());
    await a.get(uniq("x"));
    await a.close();
    await a.close();
    await assert.rejects(() => a.get("x"), (e) => e instanceof AdapterError);
  });
});

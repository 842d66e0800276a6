// RedisAdapter: the parameterised adapter suite (with the self-expiring rules of docs/redis.md),
// then what only Redis has: key TTLs, the key layout, prefixes, foreign data, bad URLs and
// servers that are not Redis. Needs SLICES_TEST_REDIS_URL (scripts/with-redis.sh starts a
// throwaway server): without it these tests FAIL, they are never skipped. Every adapter here
// has a prefix of its own, so counts are exact while other files use the same server.
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { pkg, redisUrl, redisCli, uniq, isAdapterError } from "./target.mjs";
import { adapterSuite } from "./adapter-suite.mjs";

const { RedisAdapter, SessionStore } = pkg;

const prefix = () => `${uniq("test")}:`;

adapterSuite(
  "RedisAdapter",
  async () => {
    const adapter = new RedisAdapter(redisUrl(), { prefix: prefix() });
    return { adapter, close: () => adapter.close() };
  },
  { selfExpiring: true },
);

function record(id, overrides = {}) {
  const now = Date.now();
  return { sessionId: id, userId: "u", isAuthenticated: true, createdAt: now, expiresAt: now + 3600000, lastAccessedAt: now, ...overrides };
}

/** A loopback TCP server: `onConnection(socket)` decides what it says. */
async function tcpServer(onConnection) {
  const sockets = new Set();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
    onConnection(socket);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: server.address().port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

describe("RedisAdapter specifics", () => {
  const adapters = [];
  const open = (options = {}) => {
    const a = new RedisAdapter(redisUrl(), { prefix: prefix(), ...options });
    adapters.push(a);
    return a;
  };
  after(async () => {
    for (const a of adapters) await a.close();
  });

  test("a record is a hash with readable fields, and Redis expires it at expiresAt", async () => {
    const p = prefix();
    const adapter = open({ prefix: p });
    const id = uniq("ttl");
    const rec = record(id, { handle: "alice.test", data: { a: [1, "x"] } });
    await adapter.set(id, rec);
    const key = `${p}s:${id}`;
    assert.equal(redisCli("PEXPIRETIME", key), String(rec.expiresAt));
    assert.equal(redisCli("HGET", key, "user_id"), "u");
    assert.equal(redisCli("HGET", key, "handle"), "alice.test");
    assert.equal(redisCli("HGET", key, "is_authenticated"), "1");
    assert.deepEqual(JSON.parse(redisCli("HGET", key, "data")), { a: [1, "x"] });
    assert.equal(redisCli("ZSCORE", `${p}u:u`, id), String(rec.createdAt));
    assert.equal(redisCli("ZSCORE", `${p}expiry`, id), String(rec.expiresAt));
    // The user index lives as long as the user's longest session.
    assert.equal(redisCli("PEXPIRETIME", `${p}u:u`), String(rec.expiresAt));
  });

  test("rolling getSession pushes the key's TTL with expiresAt; without rolling the TTL stays", async () => {
    const p = prefix();
    const adapter = open({ prefix: p });
    const rolling = new SessionStore({ adapter, cleanupInterval: 0, rolling: true, sessionTTL: 7200000 });
    const id = await rolling.createSession("did:plc:roll");
    const key = `${p}s:${id}`;
    const before = Number(redisCli("PEXPIRETIME", key));
    await new Promise((r) => setTimeout(r, 20));
    const got = await rolling.getSession(id);
    assert.ok(got.expiresAt > before, "expiresAt moved forward");
    assert.equal(redisCli("PEXPIRETIME", key), String(got.expiresAt));
    await rolling.close();
    const fixed = new SessionStore({ adapter, cleanupInterval: 0 });
    const id2 = await fixed.createSession("did:plc:fixed");
    const ttl = redisCli("PEXPIRETIME", `${p}s:${id2}`);
    await fixed.getSession(id2);
    assert.equal(redisCli("PEXPIRETIME", `${p}s:${id2}`), ttl);
    await fixed.close();
  });

  test("an updateSession that moves expiresAt moves the TTL; one into the past removes the session", async () => {
    const p = prefix();
    const adapter = open({ prefix: p });
    const store = new SessionStore({ adapter, cleanupInterval: 0 });
    const id = await store.createSession("did:plc:upd");
    const later = Date.now() + 86400000 * 3;
    assert.equal(await store.updateSession(id, { expiresAt: later }), true);
    assert.equal(redisCli("PEXPIRETIME", `${p}s:${id}`), String(later));
    assert.equal(redisCli("ZSCORE", `${p}expiry`, id), String(later));
    assert.equal(await store.updateSession(id, { expiresAt: Date.now() - 1 }), true);
    assert.equal(redisCli("EXISTS", `${p}s:${id}`), "0");
    assert.equal(redisCli("ZSCORE", `${p}expiry`, id), "");
    assert.equal(await store.getSession(id), null);
    await store.close();
  });

  test("regenerateSession moves the key with its TTL and the indexes follow", async () => {
    const p = prefix();
    const adapter = open({ prefix: p });
    const store = new SessionStore({ adapter, cleanupInterval: 0 });
    const id = await store.createSession("did:plc:regen", "r.test");
    const ttl = redisCli("PEXPIRETIME", `${p}s:${id}`);
    const fresh = await store.regenerateSession(id);
    assert.notEqual(fresh, id);
    assert.equal(redisCli("EXISTS", `${p}s:${id}`), "0");
    assert.equal(redisCli("PEXPIRETIME", `${p}s:${fresh}`), ttl);
    assert.equal(redisCli("ZRANGE", `${p}u:did:plc:regen`, "0", "-1"), fresh);
    assert.equal(redisCli("ZSCORE", `${p}expiry`, id), "");
    assert.deepEqual((await store.listUserSessions("did:plc:regen")).map((s) => s.sessionId), [fresh]);
    await store.close();
  });

  test("set with another user moves the id between user indexes", async () => {
    const p = prefix();
    const adapter = open({ prefix: p });
    const id = uniq("move");
    await adapter.set(id, record(id, { userId: "first" }));
    await adapter.set(id, record(id, { userId: "second" }));
    assert.equal(redisCli("ZCARD", `${p}u:first`), "0");
    assert.equal(redisCli("ZRANGE", `${p}u:second`, "0", "-1"), id);
    assert.deepEqual(await adapter.listByUser("first"), []);
    assert.deepEqual((await adapter.listByUser("second")).map((s) => s.sessionId), [id]);
  });

  test("an id whose key Redis expired leaves the indexes on the next listByUser and cleanup", async () => {
    const p = prefix();
    const adapter = open({ prefix: p });
    const id = uniq("gone");
    await adapter.set(id, record(id, { userId: "ghost" }));
    // As if Redis had expired it: the key goes, the index entries stay.
    redisCli("DEL", `${p}s:${id}`);
    assert.deepEqual(await adapter.listByUser("ghost"), []);
    assert.equal(redisCli("ZSCORE", `${p}u:ghost`, id), "");
    assert.equal(await adapter.cleanup(Date.now() + 7200000), 0, "nothing was left to delete");
    assert.equal(redisCli("ZSCORE", `${p}expiry`, id), "");
  });

  test("two prefixes on one server are two separate stores", async () => {
    const a = open();
    const b = open();
    const id = uniq("shared-id");
    await a.set(id, record(id, { userId: "a-user" }));
    assert.equal(await b.get(id), null);
    assert.equal(await b.exists(id), false);
    assert.equal(await b.cleanup(Date.now() + 86400000 * 365), 0);
    assert.equal((await a.get(id)).userId, "a-user");
    await b.delete(id);
    assert.equal(await a.exists(id), true);
  });

  test("the default prefix is slices:session:", async () => {
    const adapter = new RedisAdapter(redisUrl());
    adapters.push(adapter);
    const id = uniq("default-prefix");
    await adapter.set(id, record(id));
    assert.equal(redisCli("EXISTS", `slices:session:s:${id}`), "1");
    await adapter.delete(id);
    assert.equal(redisCli("EXISTS", `slices:session:s:${id}`), "0");
  });

  test("a key holding foreign data gives a clear AdapterError and is left as it was", async () => {
    const p = prefix();
    const adapter = open({ prefix: p });
    const store = new SessionStore({ adapter, cleanupInterval: 0 });
    const id = uniq("foreign");
    redisCli("SET", `${p}s:${id}`, "not a session");
    await assert.rejects(adapter.get(id), (e) => isAdapterError(e) && /WRONGTYPE|wrong kind/i.test(e.message));
    await assert.rejects(store.getSession(id), (e) => isAdapterError(e) && /WRONGTYPE|wrong kind/i.test(e.message));
    await assert.rejects(adapter.set(id, record(id)), isAdapterError);
    await assert.rejects(adapter.update(id, { handle: "x" }), isAdapterError);
    assert.equal(redisCli("GET", `${p}s:${id}`), "not a session");
    // A hash with garbage in it: a Corrupt error naming the field, never made-up values.
    const id2 = uniq("garbage");
    redisCli("HSET", `${p}s:${id2}`, "user_id", "u", "is_authenticated", "1", "created_at", "soon", "expires_at", String(Date.now() + 60000), "last_accessed_at", "1");
    await assert.rejects(adapter.get(id2), (e) => isAdapterError(e) && /created_at/.test(e.message));
    await assert.rejects(store.getSession(id2), (e) => isAdapterError(e) && /created_at/.test(e.message));
    assert.equal(redisCli("HGET", `${p}s:${id2}`, "created_at"), "soon");
    await store.close();
  });

  test("bad URLs and options are TypeErrors naming the argument, without the password", () => {
    const named = (name) => (e) => e instanceof TypeError && e.message.includes(name);
    assert.throws(() => new RedisAdapter(), named("url"));
    assert.throws(() => new RedisAdapter(6379), named("url"));
    assert.throws(() => new RedisAdapter(""), named("url"));
    assert.throws(() => new RedisAdapter("http://127.0.0.1:6379"), named("url"));
    assert.throws(() => new RedisAdapter("postgresql://u:hunter2@127.0.0.1/db"), (e) => named("url")(e) && !e.message.includes("hunter2"));
    assert.throws(() => new RedisAdapter("redis://u:hunter2@[bad"), (e) => named("url")(e) && !e.message.includes("hunter2"));
    assert.throws(() => new RedisAdapter(redisUrl(), { prefix: 5 }), named("options.prefix"));
    assert.throws(() => new RedisAdapter(redisUrl(), { maxConnections: 0 }), named("maxConnections"));
    assert.throws(() => new RedisAdapter(redisUrl(), { queryTimeout: -1 }), named("queryTimeout"));
    assert.throws(() => new RedisAdapter(redisUrl(), "opts"), named("options"));
  });

  test("nothing listening: an AdapterError within the time limit, never a hang; the password is not in it", async () => {
    const server = await tcpServer((s) => s.destroy());
    const port = server.port;
    await server.close(); // the port is now (almost surely) closed
    const adapter = new RedisAdapter(`redis://u:hunter2@127.0.0.1:${port}`, { queryTimeout: 2000 });
    adapters.push(adapter);
    const started = Date.now();
    await assert.rejects(adapter.get("x"), (e) => isAdapterError(e) && !e.message.includes("hunter2"));
    await assert.rejects(adapter.initialize(), isAdapterError);
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
  });

  test("a server that is not Redis (speaks HTTP, or stays silent): a clear AdapterError within the time limit", async () => {
    const http = await tcpServer((s) => s.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"));
    const silent = await tcpServer(() => {});
    try {
      for (const port of [http.port, silent.port]) {
        const adapter = new RedisAdapter(`redis://127.0.0.1:${port}`, { queryTimeout: 500 });
        adapters.push(adapter);
        const started = Date.now();
        await assert.rejects(adapter.get("x"), isAdapterError);
        await assert.rejects(new SessionStore({ adapter, cleanupInterval: 0 }).getSession("x"), isAdapterError);
        assert.ok(Date.now() - started < 4000, `took ${Date.now() - started} ms`);
      }
    } finally {
      await http.close();
      await silent.close();
    }
  });

  test("initialize() checks the server answers; close() refuses later calls", async () => {
    const adapter = new RedisAdapter(redisUrl(), { prefix: prefix() });
    assert.equal(await adapter.initialize(), undefined);
    await adapter.close();
    await assert.rejects(adapter.get("x"), isAdapterError);
  });

  test("500 concurrent request-path reads over 2 connections", async () => {
    const adapter = open({ maxConnections: 2 });
    const store = new SessionStore({ adapter, cleanupInterval: 0 });
    const ids = await Promise.all(Array.from({ length: 50 }, (_, i) => store.createSession(`did:plc:c${i}`)));
    const got = await Promise.all(Array.from({ length: 500 }, (_, i) => store.getSession(ids[i % 50])));
    got.forEach((s, i) => assert.equal(s.userId, `did:plc:c${i % 50}`));
    await store.close();
  });
});

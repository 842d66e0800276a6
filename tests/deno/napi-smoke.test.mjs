// Deno only: the npm package (npm/index.js, the N-API addon) also loads under Deno with
// --allow-ffi. A smoke test of each adapter kind, a custom JS adapter and the error classes;
// the conformance suite proper runs on Deno against the JSR package (FFI).
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { tmpDir, removeTmpDirs, pgUrl } from "../target.mjs";
import { FullMapAdapter } from "../custom-adapters.mjs";

const npm = await import(new URL("../../npm/index.js", import.meta.url).href);

after(() => removeTmpDirs());

async function roundTrip(adapter) {
  const store = new npm.SessionStore({ adapter, cleanupInterval: 0 });
  try {
    const id = await store.createSession("napi-user", "napi.example", { n: 1 });
    const request = new Request("http://localhost/", { headers: { cookie: store.createSessionCookie(id).split(";")[0] } });
    const session = await store.getSessionFromRequest(request);
    assert.equal(session.userId, "napi-user");
    assert.deepStrictEqual(session.data, { n: 1 });
    assert.equal(await store.deleteUserSessions("napi-user"), 1);
  } finally {
    await store.close();
  }
}

describe("npm package under Deno (N-API)", () => {
  test("is the N-API package (no DenoKVAdapter) and runs on Deno", () => {
    assert.equal(typeof Deno, "object");
    assert.equal(npm.DenoKVAdapter, undefined);
    assert.equal(typeof npm.SessionStore, "function");
  });

  test("MemoryAdapter", async () => roundTrip(new npm.MemoryAdapter()));

  test("SQLiteAdapter", async () => {
    const adapter = new npm.SQLiteAdapter(join(tmpDir(), "napi.db"));
    try {
      await roundTrip(adapter);
    } finally {
      await adapter.close();
    }
  });

  test("PostgresAdapter", async () => {
    const adapter = new npm.PostgresAdapter(pgUrl(), { maxConnections: 2 });
    try {
      await roundTrip(adapter);
    } finally {
      await adapter.close();
    }
  });

  test("a custom JS adapter (a class using this)", async () => roundTrip(new FullMapAdapter()));

  test("errors keep their classes", async () => {
    const store = new npm.SessionStore({ adapter: new npm.MemoryAdapter(), cleanupInterval: 0 });
    await store.close();
    await assert.rejects(() => store.getSession("x"), npm.SessionStoreClosedError);
    assert.throws(() => new npm.SessionStore({ adapter: new npm.MemoryAdapter(), cookieOptions: { sameSite: "none", secure: false } }), npm.SessionError);
  });
});

// SPEC §1: exported names and the error class hierarchy.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { pkg } from "./target.mjs";

describe("exports", () => {
  for (const name of [
    "SessionStore",
    "MemoryAdapter",
    "SQLiteAdapter",
    "PostgresAdapter",
    "RedisAdapter",
    "withOAuthSession",
    "OAuthClient",
    "MemoryOAuthStorage",
    "SQLiteOAuthStorage",
    "PostgresOAuthStorage",
    "RedisOAuthStorage",
    "parseCookie",
    "serializeCookie",
    "SessionError",
    "SessionStoreClosedError",
    "AdapterError",
    "OAuthError",
  ]) {
    test(`${name} is exported as a function`, () => {
      assert.equal(typeof pkg[name], "function", `${name} should be a function, got ${typeof pkg[name]}`);
    });
  }

  test("SessionStore, adapters and error classes are constructible classes", () => {
    const adapter = new pkg.MemoryAdapter();
    assert.ok(adapter instanceof pkg.MemoryAdapter);
    const store = new pkg.SessionStore({ adapter, cleanupInterval: 0 });
    assert.ok(store instanceof pkg.SessionStore);
    return store.close();
  });
});

describe("error classes", () => {
  test("SessionError extends Error", () => {
    assert.ok(pkg.SessionError.prototype instanceof Error);
    const e = new pkg.SessionError("boom");
    assert.ok(e instanceof Error);
    assert.ok(e instanceof pkg.SessionError);
    assert.equal(e.message, "boom");
    assert.equal(e.name, "SessionError");
    assert.equal(typeof e.stack, "string");
  });

  for (const name of ["SessionStoreClosedError", "AdapterError", "OAuthError"]) {
    test(`${name} extends SessionError`, () => {
      const Cls = pkg[name];
      assert.ok(Cls.prototype instanceof pkg.SessionError, `${name}.prototype instanceof SessionError`);
      assert.ok(Cls.prototype instanceof Error, `${name}.prototype instanceof Error`);
      const e = new Cls("msg");
      assert.ok(e instanceof Cls);
      assert.ok(e instanceof pkg.SessionError);
      assert.ok(e instanceof Error);
      assert.equal(e.name, name);
      assert.equal(e.message, "msg");
    });
  }

  test("the error classes are distinct", () => {
    const e = new pkg.AdapterError("x");
    assert.equal(e instanceof pkg.SessionStoreClosedError, false);
    assert.equal(e instanceof pkg.OAuthError, false);
    assert.equal(new pkg.SessionError("x") instanceof pkg.AdapterError, false);
  });
});

// SPEC §3 [decided]: the cleanup timer — runs by itself, never overlaps, errors go to onError,
// cleanupInterval 0 disables it, close() stops it, and it never keeps the process alive.
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { pkg, sleep, runScript, moduleSpecifier, removeTmpDirs, tmpDir } from "./target.mjs";
import { MapAdapter } from "./custom-adapters.mjs";
import { join } from "node:path";

const { SessionStore, MemoryAdapter, SQLiteAdapter } = pkg;

after(() => removeTmpDirs());

async function waitFor(cond, ms, label) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await sleep(10);
  }
  assert.fail(`timed out after ${ms} ms waiting for ${label}`);
}

const rec = (id, expiresAt) => ({ sessionId: id, userId: "u", isAuthenticated: true, createdAt: 1, expiresAt, lastAccessedAt: 1 });

describe("cleanup timer", () => {
  test("with cleanupInterval 50, expired rows disappear without calling cleanup()", async () => {
    const adapter = new MemoryAdapter();
    const store = new SessionStore({ adapter, cleanupInterval: 50 });
    try {
      await adapter.set("expired", rec("expired", Date.now() - 1));
      await adapter.set("live", rec("live", Date.now() + 600000));
      await waitFor(async () => !(await adapter.exists("expired")), 3000, "the expired row to be removed");
      assert.equal(await adapter.exists("live"), true);
    } finally {
      await store.close();
    }
  });

  test("the timer also runs on a custom adapter, passing the current time", async () => {
    const adapter = new MapAdapter();
    const store = new SessionStore({ adapter, cleanupInterval: 30 });
    try {
      const before = Date.now();
      await waitFor(() => adapter.calls.some((c) => c[0] === "cleanup"), 3000, "adapter.cleanup to be called");
      const call = adapter.calls.find((c) => c[0] === "cleanup");
      assert.equal(typeof call[1], "number");
      assert.ok(call[1] >= before && call[1] <= Date.now());
    } finally {
      await store.close();
    }
  });

  test("onError receives the errors of a failing cleanup; nothing is thrown", async () => {
    class Failing extends MapAdapter {
      async cleanup() {
        this.calls.push(["cleanup"]);
        throw new Error("cleanup-exploded");
      }
    }
    const errors = [];
    const adapter = new Failing();
    const store = new SessionStore({ adapter, cleanupInterval: 20, onError: (e) => errors.push(e) });
    try {
      await waitFor(() => errors.length >= 2, 3000, "two errors reported to onError");
      for (const e of errors) {
        assert.ok(e instanceof Error, `onError got ${typeof e}`);
        assert.ok(e.message.includes("cleanup-exploded"), `message: ${e.message}`);
      }
      // the store itself still works
      const id = await store.createSession("still-fine");
      assert.equal((await store.getSession(id)).userId, "still-fine");
    } finally {
      await store.close();
    }
  });

  test("a synchronously throwing cleanup is reported too", async () => {
    class Throwing extends MapAdapter {
      cleanup() {
        throw new Error("sync-cleanup-throw");
      }
    }
    const errors = [];
    const store = new SessionStore({ adapter: new Throwing(), cleanupInterval: 20, onError: (e) => errors.push(e) });
    try {
      await waitFor(() => errors.length >= 1, 3000, "an error reported to onError");
      assert.ok(errors[0] instanceof Error);
      assert.ok(errors[0].message.includes("sync-cleanup-throw"));
    } finally {
      await store.close();
    }
  });

  test("runs never overlap", async () => {
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    class Slow extends MapAdapter {
      async cleanup() {
        active++;
        runs++;
        maxActive = Math.max(maxActive, active);
        await sleep(120);
        active--;
        return 0;
      }
    }
    const store = new SessionStore({ adapter: new Slow(), cleanupInterval: 10 });
    try {
      await waitFor(() => runs >= 3, 5000, "three cleanup runs");
      assert.equal(maxActive, 1);
    } finally {
      await store.close();
    }
  });

  test("close() stops the timer", async () => {
    const adapter = new MapAdapter();
    const store = new SessionStore({ adapter, cleanupInterval: 10 });
    await waitFor(() => adapter.calls.some((c) => c[0] === "cleanup"), 3000, "a first cleanup run");
    await store.close();
    await sleep(20); // a run already in flight may still finish
    const count = adapter.calls.filter((c) => c[0] === "cleanup").length;
    await sleep(200);
    assert.equal(adapter.calls.filter((c) => c[0] === "cleanup").length, count);
  });

  test("cleanupInterval 0 never calls adapter.cleanup", async () => {
    const adapter = new MapAdapter();
    const store = new SessionStore({ adapter, cleanupInterval: 0 });
    try {
      await adapter.set("expired", rec("expired", Date.now() - 1));
      await sleep(300);
      assert.equal(adapter.calls.filter((c) => c[0] === "cleanup").length, 0);
      assert.equal(adapter.rows.has("expired"), true);
    } finally {
      await store.close();
    }
  });

  test("the default interval does not run cleanup right away", async () => {
    const adapter = new MapAdapter();
    const store = new SessionStore({ adapter });
    try {
      await sleep(200);
      assert.equal(adapter.calls.filter((c) => c[0] === "cleanup").length, 0);
    } finally {
      await store.close();
    }
  });
});

describe("the timer never keeps the process alive", () => {
  const header = `import * as pkg from ${JSON.stringify(moduleSpecifier)};\n`;

  test("a script that creates a store with the default interval exits on its own", async () => {
    const r = await runScript(
      header +
        `const store = new pkg.SessionStore({ adapter: new pkg.MemoryAdapter() });\n` +
        `console.log("created", typeof store.createSession);\n`,
    );
    assert.equal(r.timedOut, false, `the process did not exit within 10 s (stderr: ${r.stderr})`);
    assert.equal(r.code, 0, `exit code ${r.code}, stderr: ${r.stderr}`);
    assert.equal(r.stdout.trim(), "created function");
  });

  test("...also with a short interval, after using the store, and with a SQLite adapter", async () => {
    const file = join(tmpDir(), "exit.db");
    const r = await runScript(
      header +
        `const store = new pkg.SessionStore({ adapter: new pkg.SQLiteAdapter(${JSON.stringify(file)}), cleanupInterval: 20 });\n` +
        `const id = await store.createSession("u", "h", { a: 1 });\n` +
        `const s = await store.getSession(id);\n` +
        `await new Promise((r) => setTimeout(r, 100));\n` +
        `console.log(s.userId);\n`,
    );
    assert.equal(r.timedOut, false, `the process did not exit within 10 s (stderr: ${r.stderr})`);
    assert.equal(r.code, 0, `exit code ${r.code}, stderr: ${r.stderr}`);
    assert.equal(r.stdout.trim(), "u");
  });

  test("...and with a custom JS adapter", async () => {
    const r = await runScript(
      header +
        `const rows = new Map();\n` +
        `const adapter = { async get(id) { return rows.get(id) ?? null; }, async set(id, d) { rows.set(id, d); },\n` +
        `  async update(id, d) { if (!rows.has(id)) return false; rows.set(id, { ...rows.get(id), ...d }); return true; }, async delete(id) { rows.delete(id); }, async cleanup() { return 0; },\n` +
        `  async exists(id) { return rows.has(id); } };\n` +
        `const store = new pkg.SessionStore({ adapter, cleanupInterval: 20 });\n` +
        `const id = await store.createSession("js");\n` +
        `console.log((await store.getSession(id)).userId);\n`,
    );
    assert.equal(r.timedOut, false, `the process did not exit within 10 s (stderr: ${r.stderr})`);
    assert.equal(r.code, 0, `exit code ${r.code}, stderr: ${r.stderr}`);
    assert.equal(r.stdout.trim(), "js");
  });

  test("a store over an unused SQLite adapter does not keep the process alive either", async () => {
    const r = await runScript(header + `new pkg.SessionStore({ adapter: new pkg.SQLiteAdapter(":memory:") });\nconsole.log("ok");\n`);
    assert.equal(r.timedOut, false, `the process did not exit within 10 s (stderr: ${r.stderr})`);
    assert.equal(r.code, 0, `exit code ${r.code}, stderr: ${r.stderr}`);
  });
});

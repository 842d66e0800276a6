// Faults: the N-API addon in worker threads (bindings-node/src/completion.rs keeps one
// completion queue per JS thread). Workers are terminated while hundreds of their Redis calls
// are in flight; the process must not crash, later workers and the main thread must keep
// working, and an idle queue must not keep a process alive.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { spawnSync } from "node:child_process";
import { PKG } from "./helpers.mjs";

const { RedisAdapter, SessionStore } = await import(PKG);
const url = process.env.SLICES_TEST_REDIS_URL;

const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
(async () => {
  const { RedisAdapter, SessionStore } = await import(workerData.pkg);
  const adapter = new RedisAdapter(workerData.url, { prefix: workerData.prefix });
  const store = new SessionStore({ adapter, cleanupInterval: 0 });
  const id = await store.createSession("worker");
  const first = await store.getSession(id);
  for (let i = 0; i < 500; i++) store.getSession(id).catch(() => {});
  parentPort.postMessage(first.userId);
  for (let i = 0; i < 500; i++) store.getSession(id).catch(() => {});
})();
`;

describe("worker threads", () => {
  test("5 workers terminated with calls in flight: no crash; the main thread's calls keep working", async () => {
    assert.ok(url, "SLICES_TEST_REDIS_URL is set (make test-faults)");
    for (let round = 0; round < 5; round += 1) {
      const worker = new Worker(WORKER, { eval: true, workerData: { pkg: PKG, url, prefix: `workers-${process.pid}-${round}:` } });
      const said = await new Promise((resolve, reject) => {
        worker.once("message", resolve);
        worker.once("error", reject);
      });
      assert.equal(said, "worker");
      await worker.terminate();
    }
    const adapter = new RedisAdapter(url, { prefix: `workers-${process.pid}-main:` });
    const store = new SessionStore({ adapter, cleanupInterval: 0 });
    const id = await store.createSession("main");
    const all = await Promise.all(Array.from({ length: 200 }, () => store.getSession(id)));
    assert.ok(all.every((s) => s.userId === "main"));
    await store.close();
    await adapter.close();
  });

  test("a script whose last call has settled exits on its own (the queue does not hold the loop)", () => {
    const script = `const { RedisAdapter, SessionStore } = await import(${JSON.stringify(PKG)});
const store = new SessionStore({ adapter: new RedisAdapter(${JSON.stringify(url)}, { prefix: "exit-${process.pid}:" }), cleanupInterval: 0 });
const id = await store.createSession("u");
console.log((await store.getSession(id)).userId);`;
    const res = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 20000 });
    assert.equal(res.error, undefined, "it exited within 20 s");
    assert.equal(res.status, 0, res.stderr);
    assert.equal(res.stdout.trim(), "u", "and its top-level await was resolved first");
  });
});

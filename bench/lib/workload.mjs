// The work every JS contender does, in the same order and with the same inputs. Runs unchanged
// in Node and in Deno (performance.now(), no Node-only API).
//
// A contender (bench/contenders/*.mjs) is an object with:
//   create(i) -> Promise<id>          a new session for user i
//   request(req) -> Promise<session|null>   Cookie header -> session, access recorded
//   update(id, i) -> Promise<unknown> replace the session's data
//   seedExpired(n) -> Promise<void>   put n expired rows in the store (not timed)
//   cleanup() -> Promise<number|undefined>  remove expired rows (timed, once)
//   close() -> Promise<void>

import { summarize } from "./stats.mjs";

export const COOKIE_NAME = "slice-session";

/** The request object handed to every JS contender's request path (same type for all). */
export function makeRequestFactory(kind) {
  if (kind === "fetch") {
    return (cookie) => new Request("http://localhost/", { headers: { cookie } });
  }
  // The shape of a Node IncomingMessage (what Express and node:http hand to handlers).
  return (cookie) => ({ headers: { cookie } });
}

/** A Cookie header as browsers send it: our cookie between two unrelated ones. */
export const cookieFor = (id) => `_ga=GA1.2.1234567890.1700000000; ${COOKIE_NAME}=${id}; lang=en-GB`;

function randomId() {
  return crypto.randomUUID();
}

/**
 * `concurrency` callers, each awaiting `fn(i)` in a loop (i from one shared counter), first for
 * `warmupMs` (not recorded), then for `runMs`; each call's latency is recorded.
 */
export async function timedPhase(op, concurrency, warmupMs, runMs, fn) {
  let counter = 0;
  const run = async (untilMs, record) => {
    const callers = [];
    for (let c = 0; c < concurrency; c++) {
      callers.push(
        (async () => {
          for (;;) {
            const t0 = performance.now();
            if (t0 >= untilMs) return;
            await fn(counter++);
            if (record) record.push(performance.now() - t0);
          }
        })(),
      );
    }
    await Promise.all(callers);
  };
  await run(performance.now() + warmupMs, null);
  const latencies = [];
  const start = performance.now();
  await run(start + runMs, latencies);
  const wallMs = performance.now() - start;
  return summarize(op, concurrency, latencies, wallMs);
}

/** Runs the create / hit / miss / update / cleanup phases on one contender. */
export async function runWorkload(contender, cfg, log = () => {}) {
  const results = [];
  const makeRequest = makeRequestFactory(cfg.request);
  const ids = [];
  for (const c of cfg.concurrency) {
    log(`create x${c}`);
    results.push(
      await timedPhase("create", c, cfg.warmupMs, cfg.runMs, async (i) => {
        const id = await contender.create(i);
        if (typeof id !== "string" || id === "") throw new Error(`create returned ${id}`);
        if (ids.length < cfg.sessionsCap) ids.push(id);
      }),
    );
  }
  if (ids.length === 0) throw new Error("no session was created");
  for (const c of cfg.concurrency) {
    log(`hit x${c}`);
    results.push(
      await timedPhase("hit", c, cfg.warmupMs, cfg.runMs, async (i) => {
        const session = await contender.request(makeRequest(cookieFor(ids[i % ids.length])));
        if (!session) throw new Error("hit: no session for an id that was created");
      }),
    );
  }
  const unknown = Array.from({ length: 1000 }, randomId);
  for (const c of cfg.concurrency) {
    log(`miss x${c}`);
    results.push(
      await timedPhase("miss", c, cfg.warmupMs, cfg.runMs, async (i) => {
        const session = await contender.request(makeRequest(cookieFor(unknown[i % unknown.length])));
        if (session) throw new Error("miss: a session for an unknown id");
      }),
    );
  }
  for (const c of cfg.concurrency) {
    log(`update x${c}`);
    results.push(
      await timedPhase("update", c, cfg.warmupMs, cfg.runMs, async (i) => {
        await contender.update(ids[i % ids.length], i);
      }),
    );
  }
  if (cfg.cleanupRows > 0) {
    log(`seed ${cfg.cleanupRows} expired rows`);
    await contender.seedExpired(cfg.cleanupRows);
    log("cleanup");
    const t0 = performance.now();
    const removed = await contender.cleanup();
    const ms = performance.now() - t0;
    if (typeof removed === "number" && removed < cfg.cleanupRows) {
      throw new Error(`cleanup removed ${removed} rows, expected at least ${cfg.cleanupRows}`);
    }
    results.push(summarize("cleanup", 1, [ms], ms, { ops: cfg.cleanupRows, removed }));
  }
  return results;
}

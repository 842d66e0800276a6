// For concurrency.test.mjs: how many calls of one store run at once. A store over a custom JS
// adapter whose `get` takes 200 ms gets N concurrent getSession calls (N = 10, 50, 100, 200);
// prints one JSON line { "<N>": { ms, maxInFlight } }: the wall time of the burst and the most
// adapter calls that were running at the same moment.
//
//   node concurrency-child.mjs
//   SLICES_SESSION_MODULE=jsr/mod.ts deno run -A concurrency-child.mjs
import { pkg } from "../target.mjs";

const DELAY_MS = 200;
let inFlight = 0;
let maxInFlight = 0;
const adapter = {
  get: () => {
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    return new Promise((resolve) =>
      setTimeout(() => {
        inFlight -= 1;
        resolve(null);
      }, DELAY_MS),
    );
  },
  set: async () => {},
  update: async () => true,
  delete: async () => {},
  cleanup: async () => 0,
  exists: async () => false,
};
const store = new pkg.SessionStore({ adapter, cleanupInterval: 0 });
const results = {};
for (const n of [10, 50, 100, 200]) {
  maxInFlight = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: n }, (_, i) => store.getSession(`c${i}`)));
  results[n] = { ms: Math.round(performance.now() - started), maxInFlight };
}
await store.close();
console.log(JSON.stringify(results));

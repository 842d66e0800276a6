// One layer of the SQLite request path, run N times after a warm-up, for callgrind to count
// (bench/callgrind/run.sh). Instruction counts do not depend on what else runs on the machine,
// so they compare layers where wall-clock timings on a shared VM cannot.
//
//   node bench/callgrind/layers.mjs <layer> <n>
//
// Layers: rawRequest (NativeStore.getSessionFromCookieHeader: the core and the N-API crossing,
// the result left as JSON text), rawRequestParse (the same and JSON.parse), apiRequest
// (SessionStore.getSessionFromRequest, the public API), rawGet / apiGet (the read-only
// adapter.get, no write); memoryRequest / originalMemoryRequest: the public request path on
// MemoryAdapter, ours and the original's approach (bench/contenders/original.mjs).
import { rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = new URL("../../npm/", import.meta.url);
const pkg = await import(new URL("index.js", root).href);
const native = createRequire(root)("./native.cjs");
const file = join(tmpdir(), `slices-callgrind-${process.pid}.db`);
const removeFiles = () => ["", "-wal", "-shm"].forEach((s) => rmSync(file + s, { force: true }));
removeFiles();

const nativeAdapter = native.NativeAdapter.sqliteAdapter(file);
const nativeStore = native.NativeStore.withNativeAdapter(nativeAdapter, {});
const ids = [];
for (let i = 0; i < 2000; i++) {
  const data = JSON.stringify({ n: i, prefs: { theme: "dark", lang: "en" } });
  ids.push(nativeStore.createSession(undefined, `did:plc:user${i}`, `user${i}.bsky.social`, data));
}
const adapter = new pkg.SQLiteAdapter(file);
const store = new pkg.SessionStore({ adapter, cleanupInterval: 0 });
const headers = ids.map((id) => `_ga=GA1.2.1234567890.1700000000; slice-session=${id}; lang=en-GB`);
const original = await import(new URL("../contenders/original.mjs", import.meta.url).href);
const memoryStore = new pkg.SessionStore({ adapter: new pkg.MemoryAdapter(), cleanupInterval: 0 });
const originalStore = new original.SessionStore({ adapter: new original.MemoryAdapter(), cleanupInterval: 0 });
const memoryHeaders = [];
const originalHeaders = [];
for (let i = 0; i < 2000; i++) {
  const data = { n: i, prefs: { theme: "dark", lang: "en" } };
  const id = await memoryStore.createSession(`did:plc:user${i}`, `user${i}.bsky.social`, data);
  memoryHeaders.push(`_ga=GA1.2.1234567890.1700000000; slice-session=${id}; lang=en-GB`);
  const oid = await originalStore.createSession(`did:plc:user${i}`, `user${i}.bsky.social`, data);
  originalHeaders.push(`_ga=GA1.2.1234567890.1700000000; slice-session=${oid}; lang=en-GB`);
}

const layers = {
  rawRequest: (i) => nativeStore.getSessionFromCookieHeader(headers[i % 2000]),
  rawRequestParse: (i) => JSON.parse(nativeStore.getSessionFromCookieHeader(headers[i % 2000])),
  apiRequest: (i) => store.getSessionFromRequest({ headers: { cookie: headers[i % 2000] } }),
  memoryRequest: (i) => memoryStore.getSessionFromRequest({ headers: { cookie: memoryHeaders[i % 2000] } }),
  originalMemoryRequest: (i) => originalStore.getSessionFromRequest({ headers: { cookie: originalHeaders[i % 2000] } }),
  rawGet: (i) => nativeAdapter.get(ids[i % 2000]),
  apiGet: (i) => adapter.get(ids[i % 2000]),
};
const [layer, n] = [process.argv[2], Number(process.argv[3])];
const run = layers[layer];
if (!run || !Number.isInteger(n)) throw new Error(`usage: layers.mjs <${Object.keys(layers).join("|")}> <n>`);
for (let i = 0; i < 3000; i++) await run(i);
for (let i = 0; i < n; i++) {
  const result = await run(i);
  if (result === null || result === undefined) throw new Error(`${layer}: no session`);
}
await store.close();
await adapter.close();
await memoryStore.close();
originalStore.close();
removeFiles();

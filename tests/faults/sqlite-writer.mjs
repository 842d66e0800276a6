// A writer process for the SQLite fault tests (not a test file itself).
//
//   node sqlite-writer.mjs FILE NAME MODE COUNT
//     MODE "mixed":   COUNT iterations of create / update / get / delete / deleteUserSessions /
//                     cleanup, then prints one JSON summary line: what must be in the file.
//     MODE "journal": creates and updates sessions until killed, printing a line as soon as
//                     each call resolved ("C id" after createSession, "U id n" after an update;
//                     "I id n" before an update is issued). Node writes to a pipe synchronously,
//                     so every printed line survives a SIGKILL.
//
// Any error is counted by message; "mixed" exits 1 when there was one.
import { SessionStore, SQLiteAdapter } from "../../npm/index.js";

const [file, name, mode, countArg] = process.argv.slice(2);
const count = Number(countArg ?? 0);
const adapter = new SQLiteAdapter(file);
const store = new SessionStore({ adapter, cleanupInterval: 0 });
let seq = 0;
const errors = new Map();
function fail(error) {
  const key = `${error?.constructor?.name}: ${error?.message}`;
  errors.set(key, (errors.get(key) ?? 0) + 1);
}

// Event-loop stalls: a synchronous SQLite call that waits for another process's lock blocks
// the JS thread; the largest gap between 5 ms ticks is reported.
let lastTick = performance.now();
let maxStall = 0;
const ticker = setInterval(() => {
  const now = performance.now();
  maxStall = Math.max(maxStall, now - lastTick - 5);
  lastTick = now;
}, 5);

if (mode === "mixed") {
  const live = new Map(); // id -> { userId, n }
  const userOf = (i) => `${name}-user-${i % 25}`;
  let maxCall = 0;
  for (let i = 0; i < count; i += 1) {
    if (i % 20 === 0) await new Promise((r) => setImmediate(r)); // let the ticker run
    const t0 = performance.now();
    try {
      const kind = i % 10;
      const ids = [...live.keys()];
      if (kind < 4 || ids.length === 0) {
        const userId = userOf(i);
        const n = ++seq;
        const id = await store.createSession(userId, undefined, { n, by: name });
        live.set(id, { userId, n });
      } else if (kind < 7) {
        const id = ids[(i * 7) % ids.length];
        const n = ++seq;
        if (!(await store.updateSession(id, { data: { n, by: name } }))) throw new Error(`update of ${id} found no row`);
        live.get(id).n = n;
      } else if (kind === 7) {
        const id = ids[(i * 13) % ids.length];
        const s = await store.getSession(id);
        if (s?.data?.n !== live.get(id).n) throw new Error(`read ${JSON.stringify(s?.data)} for ${id}, expected n=${live.get(id).n}`);
      } else if (kind === 8) {
        const id = ids[(i * 17) % ids.length];
        await store.deleteSession(id);
        live.delete(id);
      } else if (i % 100 === 9) {
        const userId = userOf(i);
        const mine = [...live].filter(([, s]) => s.userId === userId).map(([id]) => id);
        const removed = await store.deleteUserSessions(userId);
        if (removed !== mine.length) throw new Error(`deleteUserSessions removed ${removed}, expected ${mine.length}`);
        for (const id of mine) live.delete(id);
      } else {
        await store.cleanup(); // nothing is expired: it must remove nothing of ours
      }
    } catch (error) {
      fail(error);
    }
    maxCall = Math.max(maxCall, performance.now() - t0);
  }
  clearInterval(ticker);
  const summary = { name, live: Object.fromEntries(live), errors: Object.fromEntries(errors) };
  Object.assign(summary, { maxCallMs: Math.round(maxCall * 10) / 10, maxStallMs: Math.round(maxStall) });
  console.log(JSON.stringify(summary));
  await store.close();
  await adapter.close();
  process.exit(errors.size === 0 ? 0 : 1);
} else if (mode === "journal") {
  const mine = [];
  for (let i = 0; ; i += 1) {
    try {
      if (i % 3 === 2 && mine.length > 0) {
        const id = mine[(i * 7) % mine.length];
        const n = ++seq;
        process.stdout.write(`I ${id} ${n}\n`);
        if (!(await store.updateSession(id, { data: { n } }))) throw new Error(`update of ${id} found no row`);
        process.stdout.write(`U ${id} ${n}\n`);
      } else {
        const n = ++seq;
        const id = await store.createSession(`${name}-user`, undefined, { n });
        mine.push(id);
        process.stdout.write(`C ${id} ${n}\n`);
      }
    } catch (error) {
      fail(error);
      process.stdout.write(`E ${JSON.stringify(error?.message)}\n`);
    }
    // Let the ticker and signals in now and then.
    if (i % 50 === 0) await new Promise((r) => setImmediate(r));
  }
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}

// A writer process for the SQLite fault tests (not a test file itself).
//
//   node sqlite-writer.mjs FILE NAME mixed COUNT
//   node sqlite-writer.mjs FILE NAME journal JOURNAL_FILE
//     "mixed":   COUNT iterations of create / update / get / delete / deleteUserSessions /
//                cleanup, then prints one JSON summary line: what must be in the file.
//     "journal": creates and updates sessions until killed, appending a line to JOURNAL_FILE
//                as soon as each call resolved ("C id n" after createSession, "U id n" after
//                an update; "I id n" before an update is issued). The lines go to a file with
//                fs.writeSync, so each is in the kernel before the next call starts and
//                survives a SIGKILL. Not to stdout: a pipe's writes are asynchronous once the
//                pipe is full (the reader lags on a loaded machine), and the lines Node still
//                holds are lost with the process.
//
// Any error is counted by message; "mixed" exits 1 when there was one.
import { openSync, writeSync } from "node:fs";
import { SessionStore, SQLiteAdapter } from "../../npm/index.js";

const [file, name, mode, countArg] = process.argv.slice(2);
const count = mode === "mixed" ? Number(countArg ?? 0) : 0;
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
  const journal = openSync(countArg, "a");
  const note = (line) => writeSync(journal, `${line}\n`);
  const mine = [];
  for (let i = 0; ; i += 1) {
    try {
      if (i % 3 === 2 && mine.length > 0) {
        const id = mine[(i * 7) % mine.length];
        const n = ++seq;
        note(`I ${id} ${n}`);
        if (!(await store.updateSession(id, { data: { n } }))) throw new Error(`update of ${id} found no row`);
        note(`U ${id} ${n}`);
      } else {
        const n = ++seq;
        const id = await store.createSession(`${name}-user`, undefined, { n });
        mine.push(id);
        note(`C ${id} ${n}`);
      }
    } catch (error) {
      fail(error);
      note(`E ${JSON.stringify(error?.message)}`);
    }
    // Let the ticker and signals in now and then.
    if (i % 50 === 0) await new Promise((r) => setImmediate(r));
  }
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}

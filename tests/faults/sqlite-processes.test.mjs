// Faults: several processes on one SQLite file; a writer killed with SIGKILL mid-load; the
// file locked by another program. The file is checked with python3's sqlite3 module, an SQLite
// independent of the package.
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { PKG, tmpDir, removeTmpDirs, startNode, pySqlite, sleep, figure } from "./helpers.mjs";

const { SessionStore, SQLiteAdapter, AdapterError } = await import(PKG);
const WRITER = fileURLToPath(new URL("./sqlite-writer.mjs", import.meta.url));

/** Every row of the file: id -> { userId, n } (python3 sqlite3). */
function rowsOf(file) {
  const rows = pySqlite(file, "SELECT session_id, user_id, json_extract(data, '$.n') FROM sessions");
  return new Map(rows.map(([id, userId, n]) => [id, { userId, n }]));
}

function integrity(file) {
  return pySqlite(file, "PRAGMA integrity_check").map((r) => r[0]).join("; ");
}

after(() => removeTmpDirs());

describe("SQLite: several processes, kills, locks", () => {
  test("4 processes write one new file at once (3000 mixed calls each): no busy/locked error, every write present", async () => {
    const file = join(tmpDir(), "shared.db");
    const started = performance.now();
    const writers = ["p1", "p2", "p3", "p4"].map((name) => startNode(WRITER, [file, name, "mixed", "3000"]));
    const exits = await Promise.all(writers.map((w) => w.done));
    const wall = performance.now() - started;
    const summaries = writers.map((w, i) => {
      assert.equal(exits[i].code, 0, `writer ${i + 1} exited ${JSON.stringify(exits[i])}: ${w.out} ${w.err}`);
      return JSON.parse(w.out.trim().split("\n").pop());
    });
    for (const s of summaries) assert.deepEqual(s.errors, {}, `${s.name} saw errors`);
    const rows = rowsOf(file);
    const expected = new Map(summaries.flatMap((s) => Object.entries(s.live)));
    assert.equal(rows.size, expected.size, "row count");
    for (const [id, s] of expected) assert.deepEqual(rows.get(id), s, `session ${id}`);
    assert.equal(integrity(file), "ok");
    figure("sqlite 4 processes", {
      callsPerProcess: 3000,
      wallMs: Math.round(wall),
      rowsAtEnd: rows.size,
      errors: 0,
      maxCallMs: summaries.map((s) => s.maxCallMs),
      maxEventLoopStallMs: summaries.map((s) => s.maxStallMs),
    });
  });

  test("writers killed with SIGKILL mid-load (3 rounds): integrity ok, every acknowledged session and update present", async () => {
    const file = join(tmpDir(), "killed.db");
    const acked = new Map(); // id -> n (last acknowledged)
    const inFlight = new Map(); // id -> Set of n issued after the last acknowledgement
    let kills = 0;
    for (let round = 0; round < 3; round += 1) {
      const journals = [`k${round}a`, `k${round}b`].map((name) => join(tmpDir(), `${name}.journal`));
      const writers = journals.map((journal, i) => startNode(WRITER, [file, `k${round}${"ab"[i]}`, "journal", journal]));
      await sleep(1200 + round * 300);
      // Kill one mid-stream, let the other run on for a moment, then kill it too.
      writers[0].kill("SIGKILL");
      await sleep(200);
      writers[1].kill("SIGKILL");
      const exits = await Promise.all(writers.map((w) => w.done));
      for (const [i, w] of writers.entries()) {
        assert.equal(exits[i].signal, "SIGKILL", `writer exited on its own: ${JSON.stringify(exits[i])} ${w.err}`);
        kills += 1;
        const lines = existsSync(journals[i]) ? readFileSync(journals[i], "utf8").split("\n") : [];
        for (const line of lines) {
          const [kind, id, n] = line.split(" ");
          if (kind === "C") {
            acked.set(id, Number(n));
            inFlight.set(id, new Set());
          } else if (kind === "I") {
            inFlight.get(id).add(Number(n));
          } else if (kind === "U") {
            acked.set(id, Number(n));
            inFlight.set(id, new Set());
          } else if (kind === "E") {
            assert.fail(`a writer saw an error: ${line}`);
          }
        }
      }
      assert.equal(integrity(file), "ok", `integrity after round ${round + 1}`);
    }
    const rows = rowsOf(file);
    let unacknowledged = 0;
    for (const [id, n] of acked) {
      const row = rows.get(id);
      assert.ok(row, `acknowledged session ${id} is missing`);
      assert.ok(row.n === n || inFlight.get(id).has(row.n), `session ${id}: n=${row.n}, acknowledged ${n}`);
    }
    for (const id of rows.keys()) if (!acked.has(id)) unacknowledged += 1;
    // Each killed writer had at most one create in flight.
    assert.ok(unacknowledged <= kills, `${unacknowledged} rows nobody was told about`);
    // The package itself reopens the file and reads everything.
    const adapter = new SQLiteAdapter(file);
    const store = new SessionStore({ adapter, cleanupInterval: 0 });
    for (const [id, n] of [...acked].slice(0, 200)) {
      const s = await store.getSession(id);
      assert.ok(s.data.n === n || inFlight.get(id).has(s.data.n));
    }
    await store.close();
    await adapter.close();
    figure("sqlite SIGKILL", { kills, acknowledgedSessions: acked.size, rows: rows.size, unacknowledgedRows: unacknowledged, integrity: "ok" });
  });

  test("another program holds the write lock: writes wait (busy timeout), then succeed or fail with a clear AdapterError", async () => {
    const file = join(tmpDir(), "locked.db");
    const adapter = new SQLiteAdapter(file, { busyTimeout: 1000 });
    const store = new SessionStore({ adapter, cleanupInterval: 0 });
    const id = await store.createSession("locked-user");
    // python3 takes the write lock (BEGIN IMMEDIATE), says so, holds it for `seconds`.
    const hold = (seconds) => {
      const child = spawn("python3", ["-c", `
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("COMMIT")
`, file, String(seconds)], { stdio: ["ignore", "pipe", "inherit"] });
      const closed = new Promise((r) => child.on("close", r));
      // Wrapped: resolving with the promise itself would wait for it.
      return new Promise((resolve) => child.stdout.once("data", () => resolve({ closed })));
    };

    // Held 0.5 s < busy timeout 1 s: the write waits and succeeds; no error reaches the user.
    let { closed: released } = await hold(0.5);
    let t0 = performance.now();
    assert.equal(await store.updateSession(id, { handle: "waited" }), true);
    const waited = performance.now() - t0;
    await released;

    // Held 3 s > busy timeout: the write fails after ~1 s with a clear error; reads still work (WAL).
    ({ closed: released } = await hold(3));
    t0 = performance.now();
    await assert.rejects(store.updateSession(id, { handle: "too-late" }), (e) => {
      assert.ok(e instanceof AdapterError);
      assert.match(e.message, /SQLite error while trying to update the session: database is locked/);
      return true;
    });
    const failedAfter = performance.now() - t0;
    assert.ok(failedAfter >= 900 && failedAfter < 2500, `failed after ${failedAfter} ms`);
    assert.equal((await adapter.get(id)).handle, "waited");
    await released;
    assert.equal(await store.updateSession(id, { handle: "after" }), true);
    assert.equal((await store.getSession(id)).handle, "after");
    figure("sqlite locked by another program (busyTimeout 1000)", {
      shortLockWriteMs: Math.round(waited),
      longLockFailedAfterMs: Math.round(failedAfter),
    });
    await store.close();
    await adapter.close();
  });
});

// node bench/lib/seed-sqlite.mjs FILE SCHEMA N: inserts N expired rows into FILE in one
// transaction (run in a process of its own; see contenders/common.mjs). Node >= 22.13.
import { DatabaseSync } from "node:sqlite";

const [file, schema, nText] = process.argv.slice(2);
const n = Number(nText);
const db = new DatabaseSync(file);
db.exec("PRAGMA busy_timeout = 30000");
db.exec("BEGIN IMMEDIATE");
if (schema === "slices") {
  const stmt = db.prepare(
    "INSERT INTO sessions (session_id, user_id, handle, is_authenticated, data, created_at, expires_at, last_accessed_at) VALUES (?, ?, NULL, 1, NULL, 1000, 2000, 1000)",
  );
  for (let k = 0; k < n; k++) stmt.run(`expired-${k}`, `did:plc:old${k}`);
} else if (schema === "bss") {
  const stmt = db.prepare("INSERT INTO sessions (sid, sess, expire) VALUES (?, ?, ?)");
  for (let k = 0; k < n; k++) stmt.run(`expired-${k}`, '{"cookie":{}}', "2000-01-01T00:00:00.000Z");
} else {
  throw new Error(`unknown schema ${schema}`);
}
db.exec("COMMIT");
db.close();

// The parameterised adapter suite on SQLiteAdapter: a real temporary file, and ":memory:".
import { join } from "node:path";
import { after } from "node:test";
import { pkg, tmpDir, removeTmpDirs } from "./target.mjs";
import { adapterSuite } from "./adapter-suite.mjs";

after(() => removeTmpDirs());

adapterSuite("SQLiteAdapter (temp file)", async () => {
  const adapter = new pkg.SQLiteAdapter(join(tmpDir(), "sessions.db"));
  return { adapter, close: () => adapter.close() };
});

adapterSuite('SQLiteAdapter (":memory:")', async () => {
  const adapter = new pkg.SQLiteAdapter(":memory:");
  return { adapter, close: () => adapter.close() };
});

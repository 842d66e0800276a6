// The parameterised adapter suite on PostgresAdapter. Needs SLICES_TEST_PG_URL (see target.mjs):
// without it these tests FAIL, they are never skipped. The table is shared with other test
// files and runs, so every test uses unique ids and user ids.
import { pkg, pgUrl } from "./target.mjs";
import { adapterSuite } from "./adapter-suite.mjs";

adapterSuite(
  "PostgresAdapter",
  async () => {
    const adapter = new pkg.PostgresAdapter(pgUrl());
    return { adapter, close: () => adapter.close() };
  },
  { sharedTable: true },
);

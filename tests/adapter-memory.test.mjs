// The parameterised adapter suite on MemoryAdapter.
import { pkg } from "./target.mjs";
import { adapterSuite } from "./adapter-suite.mjs";

adapterSuite("MemoryAdapter", async () => ({ adapter: new pkg.MemoryAdapter() }));

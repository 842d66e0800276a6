// The parameterised adapter suite on custom adapters written in JavaScript: one with the
// optional listByUser/deleteByUser, one with only the six required methods.
import { adapterSuite } from "./adapter-suite.mjs";
import { MapAdapter, FullMapAdapter } from "./custom-adapters.mjs";

adapterSuite("custom JS adapter (with listByUser/deleteByUser)", async () => ({ adapter: new FullMapAdapter() }));
adapterSuite("custom JS adapter (required methods only)", async () => ({ adapter: new MapAdapter() }), { userOps: false });

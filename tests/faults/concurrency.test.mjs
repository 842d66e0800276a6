// Concurrency of one store under load: N concurrent calls on a store over a custom JS adapter
// whose calls take 200 ms should all be in flight at once and finish in about 200 ms, as the
// adapter is free to run them concurrently (SPEC §5: custom adapters work as on the original).
// On Node (N-API) and on Deno (jsr/mod.ts through FFI), each in its own process
// (concurrency-child.mjs).
import { describe, test, before } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startNode, startDeno, figure, ROOT } from "./helpers.mjs";

const CHILD = fileURLToPath(new URL("./concurrency-child.mjs", import.meta.url));

// The Deno binding once held one of Deno's blocking threads per call of a store over a JS
// adapter (and per PostgreSQL and OAuth call), and Deno ran at most 32 at once
// (docs/reliability.md, bug 7, fixed): such calls are now started on the library's runtime and
// complete through one long poll per JS context.

// Without this check a missing build would fail obscurely.
before(() => {
  for (const file of ["jsr/session.js", "target/release/libslices_session_deno.so"]) {
    if (!existsSync(join(ROOT, file))) throw new Error(`${file} is missing: run 'make build-deno' first`);
  }
});

async function run(child) {
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const { code, signal } = await child.done;
  clearTimeout(timer);
  assert.equal(signal, null, child.err);
  assert.equal(code, 0, child.err);
  return JSON.parse(child.out.trim().split("\n").pop());
}

function check(results) {
  for (const [n, { ms, maxInFlight }] of Object.entries(results)) {
    assert.equal(maxInFlight, Number(n), `${n} concurrent calls: at most ${maxInFlight} ran at once`);
    assert.ok(ms < 2 * 200, `${n} concurrent calls of 200 ms took ${ms} ms`);
  }
}

describe("N concurrent calls on a store over a 200 ms JS adapter all run at once", () => {
  test("Node (npm package, N-API)", async () => {
    const results = await run(startNode(CHILD));
    figure("concurrency, Node", results);
    check(results);
  });

  test("Deno (jsr/mod.ts, FFI)", async () => {
    const results = await run(startDeno(CHILD, [], { env: { SLICES_SESSION_MODULE: "jsr/mod.ts" } }));
    figure("concurrency, Deno", results);
    check(results);
  });
});

// getSessionFromRequest on SQLite in Deno: the JSR package (Deno FFI) against the npm package
// (N-API, loaded by Deno), measured in one process, alternating rounds so both see the same
// machine state. Prints a Markdown table (pasted into docs/deno-ffi.md).
//
//   make build build-deno
//   DENO_DIR=.deno .tools/deno/node_modules/deno/deno run -A --node-modules-dir=manual \
//     bench/deno-ffi-vs-napi.ts [--rounds 7] [--iterations 20000]
//
// Run it from the repository root (never inside bench/, whose package.json Deno must not touch).

import * as ffi from "../jsr/mod.ts";
// @ts-types="../npm/index.d.ts"
import * as napi from "../npm/index.js";

interface Package {
  SessionStore: typeof ffi.SessionStore;
  SQLiteAdapter: typeof ffi.SQLiteAdapter;
}

function flag(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Number(Deno.args[i + 1]) : fallback;
}
const ROUNDS = flag("rounds", 7);
const ITERATIONS = flag("iterations", 20000);

interface Case {
  binding: string;
  scenario: string;
  run: (iterations: number) => Promise<number>;
  close: () => Promise<void>;
}

const dir = await Deno.makeTempDir({ prefix: "slices-bench-ffi-napi-" });

/** A store over its own SQLite file holding one session, and a Request carrying its cookie. */
async function makeCase(binding: string, pkg: Package, scenario: string, touchAfter: number): Promise<Case> {
  const adapter = new pkg.SQLiteAdapter(`${dir}/${binding.replace(/[^a-z]+/gi, "-")}${touchAfter}.db`);
  const store = new pkg.SessionStore({ adapter, cleanupInterval: 0, touchAfter });
  const id = await store.createSession("did:plc:bench", "bench.example", { theme: "dark", n: 1 });
  const request = new Request("http://localhost/", {
    headers: { cookie: `theme=dark; ${store.createSessionCookie(id).split(";")[0]}; lang=en` },
  });
  return {
    binding,
    scenario,
    async run(iterations: number): Promise<number> {
      const start = performance.now();
      for (let i = 0; i < iterations; i++) {
        const session = await store.getSessionFromRequest(request);
        if (session === null) throw new Error("session lost");
      }
      return performance.now() - start;
    },
    async close(): Promise<void> {
      await store.close();
      await adapter.close();
    },
  };
}

const scenarios: [string, number][] = [
  ["read + lastAccessedAt write (default)", 0],
  ["read only (touchAfter: 60 s)", 60_000],
];
const cases: Case[] = [];
for (const [scenario, touchAfter] of scenarios) {
  cases.push(await makeCase("Deno FFI (jsr/mod.ts)", ffi as unknown as Package, scenario, touchAfter));
  cases.push(await makeCase("N-API (npm/index.js)", napi as unknown as Package, scenario, touchAfter));
}

// Warm-up (JIT, SQLite page cache), then alternating measured rounds.
for (const c of cases) await c.run(Math.min(ITERATIONS, 5000));
const samples = new Map<Case, number[]>(cases.map((c) => [c, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const c of round % 2 === 0 ? cases : [...cases].reverse()) {
    samples.get(c)!.push((await c.run(ITERATIONS)) * 1000 / ITERATIONS);
  }
}
for (const c of cases) await c.close();
await Deno.remove(dir, { recursive: true });

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const lines = [
  `Deno ${Deno.version.deno} (V8 ${Deno.version.v8}), ${Deno.build.target}, ${navigator.hardwareConcurrency} CPUs; ` +
  `${ROUNDS} alternating rounds of ${ITERATIONS} sequential awaited calls each, median round`,
  "",
  "| scenario | binding | µs per call | calls per second | vs N-API |",
  "|---|---|---:|---:|---:|",
];
for (const [scenario] of scenarios) {
  const rows = cases.filter((c) => c.scenario === scenario);
  const base = median(samples.get(rows.find((c) => c.binding.startsWith("N-API"))!)!);
  for (const c of rows) {
    const us = median(samples.get(c)!);
    lines.push(
      `| ${scenario} | ${c.binding} | ${us.toFixed(2)} | ${Math.round(1e6 / us).toLocaleString("en-US")} | ${(base / us).toFixed(2)}x |`,
    );
  }
}
console.log(lines.join("\n"));

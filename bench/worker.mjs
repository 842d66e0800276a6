// One contender on one backend, in a process of its own: `node bench/worker.mjs CONFIG_JSON`
// (or `deno run -A bench/worker.mjs CONFIG_JSON`). Prints "BENCH_RESULT <json>" on stdout.
// Started by bench/run.mjs; see docs/benchmarks.md.
import process from "node:process";
import { runWorkload } from "./lib/workload.mjs";

const cfg = JSON.parse(process.argv[2]);
const log = (msg) => process.stderr.write(`  [${cfg.id}/${cfg.backend}] ${msg}\n`);
const modules = {
  ours: "./contenders/ours.mjs",
  original: "./contenders/original.mjs",
  tuned: "./contenders/tuned.mjs",
  peer: "./contenders/peers.mjs",
  oauth: "./contenders/oauth.mjs",
};

const runtime = typeof Deno !== "undefined" ? `deno ${Deno.version.deno}` : `node ${process.version}`;
let results;
let name;
try {
  const { open, run } = await import(modules[cfg.kind]);
  if (run) {
    // Contenders with their own operations (OAuth).
    results = await run(cfg, log);
  } else {
    const contender = await open(cfg);
    name = contender.name;
    results = await runWorkload(contender, cfg, log);
    await contender.close();
  }
} catch (error) {
  process.stdout.write(`BENCH_RESULT ${JSON.stringify({ runtime, error: String(error?.stack ?? error) })}\n`);
  process.exit(1);
}
process.stdout.write(`BENCH_RESULT ${JSON.stringify({ runtime, name, results })}\n`);
// Some stores keep timers or pools alive: the measurement is done, leave now.
process.exit(0);

// Latency statistics shared by the JS workers (the Rust floor computes the same in its main.rs).

/** Nearest-rank percentile of an ascending array (p in 0..100). */
export function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(Math.max(rank, 1), sorted.length) - 1];
}

/** One phase's summary: ops, wall time, ops/s, p50/p99/mean latency in microseconds. */
export function summarize(op, concurrency, latenciesMs, wallMs, extra = {}) {
  const sorted = Float64Array.from(latenciesMs).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  const ops = sorted.length;
  return {
    op,
    concurrency,
    ops: extra.ops ?? ops,
    wallMs: round(wallMs, 3),
    opsPerSec: round(wallMs > 0 ? (extra.ops ?? ops) / (wallMs / 1000) : 0, 1),
    p50Us: round(percentile(sorted, 50) * 1000, 2),
    p99Us: round(percentile(sorted, 99) * 1000, 2),
    meanUs: round(ops ? (sum / ops) * 1000 : 0, 2),
    ...(extra.removed !== undefined ? { removed: extra.removed } : {}),
  };
}

export function round(v, digits) {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

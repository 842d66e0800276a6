// Turns a run record (what bench/run.mjs writes to bench/results/*.json) into the printed
// tables, the target verdicts and the SVG chart. Used by run.mjs and by update-docs.mjs, so the
// docs show exactly what the harness printed.

export const BACKENDS = [
  { id: "memory", title: "Memory" },
  { id: "sqlite", title: "SQLite (a file in a temp dir)" },
  { id: "postgres", title: "PostgreSQL (loopback TCP)" },
  { id: "redis", title: "Redis (loopback TCP)" },
];

export const OPS = [
  { id: "hit", title: "request path, hit: Cookie header → live session, access recorded" },
  { id: "miss", title: "request path, miss: Cookie header with an unknown id → null" },
  { id: "create", title: "create a session" },
  { id: "update", title: "update a session's data" },
];

/** The contender every ratio is taken against. */
export const REFERENCE = "ours-node24";

// ---- formatting ----------------------------------------------------------------------------

export function fmtOps(v) {
  if (v === undefined || v === null || !Number.isFinite(v)) return "—";
  if (v >= 100) return Math.round(v).toLocaleString("en-US");
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

export function fmtUs(us) {
  if (us === undefined || us === null || !Number.isFinite(us)) return "—";
  if (us >= 1e6) return `${(us / 1e6).toPrecision(3)} s`;
  if (us >= 1000) return `${(us / 1000).toPrecision(3)} ms`;
  return `${us.toPrecision(3)} µs`;
}

export function fmtRatio(r) {
  if (r === undefined || r === null || !Number.isFinite(r)) return "—";
  if (r >= 100) return `${Math.round(r)}x`;
  if (r >= 10) return `${r.toFixed(1)}x`;
  return `${r.toFixed(2)}x`;
}

// ---- lookups -------------------------------------------------------------------------------

/** The run of `contenderId` on `backend`, or undefined. */
export function findRun(record, contenderId, backend) {
  return record.runs.find((r) => r.contender === contenderId && r.backend === backend);
}

export function findResult(run, op, concurrency) {
  if (!run || run.status !== "ok") return undefined;
  return run.results.find((x) => x.op === op && x.concurrency === concurrency);
}

/** ours (Node 24) ops/s ÷ this contender's ops/s for one op. */
export function ratioToOurs(record, backend, op, concurrency, run) {
  const ours = findResult(findRun(record, REFERENCE, backend), op, concurrency);
  const mine = findResult(run, op, concurrency);
  if (!ours || !mine || !mine.opsPerSec) return undefined;
  return ours.opsPerSec / mine.opsPerSec;
}

function statusCell(run) {
  if (!run) return "not run";
  if (run.status === "unavailable") return `not available yet: ${run.reason}`;
  if (run.status === "failed") return `failed: ${run.reason}`;
  return "";
}

function labelOf(run) {
  return run.name ? `${run.label} (${run.name})` : run.label;
}

// ---- tables --------------------------------------------------------------------------------

/** The markdown tables of a run record (what run.mjs prints and the docs embed). */
export function renderTables(record) {
  const out = [];
  const conc = record.config.concurrency;
  for (const backend of BACKENDS) {
    const runs = record.runs.filter((r) => r.backend === backend.id);
    if (runs.length === 0) continue;
    out.push(`### ${backend.title}`, "");
    for (const op of OPS) {
      out.push(`**${op.title}**`, "");
      const head = ["contender"];
      const rule = ["---"];
      for (const c of conc) {
        const who = c === 1 ? "1 caller" : `${c} callers`;
        head.push(`${who}: ops/s`, "p50", "p99", "ours ÷ this");
        rule.push("---:", "---:", "---:", "---:");
      }
      out.push(`| ${head.join(" | ")} |`, `| ${rule.join(" | ")} |`);
      for (const run of runs) {
        const cells = [labelOf(run)];
        const status = statusCell(run);
        if (status) {
          cells.push(status, ...Array(conc.length * 4 - 1).fill(""));
        } else {
          for (const c of conc) {
            const r = findResult(run, op.id, c);
            cells.push(fmtOps(r?.opsPerSec), fmtUs(r?.p50Us), fmtUs(r?.p99Us), fmtRatio(ratioToOurs(record, backend.id, op.id, c, run)));
          }
        }
        out.push(`| ${cells.join(" | ")} |`);
      }
      out.push("");
    }
    // Cleanup: one timed call per contender.
    out.push(`**cleanup of ${record.config.cleanupRows.toLocaleString("en-US")} expired rows (one call)**`, "");
    out.push("| contender | time | rows/s | ours ÷ this |", "| --- | ---: | ---: | ---: |");
    for (const run of runs) {
      const status = statusCell(run);
      if (status) {
        out.push(`| ${labelOf(run)} | ${status} |  |  |`);
        continue;
      }
      const r = findResult(run, "cleanup", 1);
      out.push(`| ${labelOf(run)} | ${fmtUs(r?.wallMs * 1000)} | ${fmtOps(r?.opsPerSec)} | ${fmtRatio(ratioToOurs(record, backend.id, "cleanup", 1, run))} |`);
    }
    out.push("");
  }
  const oauth = record.runs.filter((r) => r.backend === "oauth");
  if (oauth.length > 0) {
    out.push("### OAuth (withOAuthSession, loopback AIP server)", "");
    out.push("| contender | operation | ops/s | p50 | p99 | refreshes at the server |", "| --- | --- | ---: | ---: | ---: | ---: |");
    for (const run of oauth) {
      const status = statusCell(run);
      if (status) {
        out.push(`| ${labelOf(run)} | ${status} |  |  |  |  |`);
        continue;
      }
      for (const r of run.results) {
        const what = r.op === "storm" ? `refresh storm: ${r.callers} concurrent calls on one expired session, ×${r.storms}` : `getOAuthSession, fresh tokens, ${r.concurrency === 1 ? "1 caller" : `${r.concurrency} callers`}`;
        const refreshes = r.op === "storm" ? r.refreshesPerStorm.join(", ") : "—";
        out.push(`| ${labelOf(run)} | ${what} | ${fmtOps(r.opsPerSec)} | ${fmtUs(r.p50Us)} | ${fmtUs(r.p99Us)} | ${refreshes} |`);
      }
    }
    out.push("");
  }
  return out.join("\n");
}

export function renderMachine(record) {
  const m = record.machine;
  const lines = [
    `- CPU: ${m.cpu}, ${m.cores} cores; ${m.memoryGiB} GiB RAM; ${m.os}`,
    `- load average (1 min) at start ${m.loadStart} and at end ${m.loadEnd}: ${m.noisy ? "**other work was running: the numbers are noisy**" : "quiet"}`,
    `- runtimes: ${Object.entries(m.runtimes).map(([k, v]) => `${k} ${v}`).join(", ")}`,
    `- our addon: ${m.addon ?? "not recorded"}`,
    `- PostgreSQL: ${m.postgres}; Redis: ${m.redis ?? "?"}; SQLite: ours ${m.sqlite.ours ?? "?"}, node:sqlite ${m.sqlite.node ?? "?"}, better-sqlite3 ${m.sqlite.betterSqlite3 ?? "?"}`,
    `- mode: ${record.config.quick ? "quick" : "full"} (${(record.config.rounds ?? 1) > 1 ? `${record.config.rounds} rounds over all contenders, the median round per operation; ` : ""}warm-up ${record.config.warmupMs} ms, then ${record.config.runMs} ms per measurement; cleanup of ${record.config.cleanupRows.toLocaleString("en-US")} rows); request object: ${record.config.request === "fetch" ? "Fetch `Request`" : "`{ headers: { cookie } }` (Node IncomingMessage shape)"}`,
    `- run at ${record.startedAt}, git ${record.git}`,
  ];
  return lines.join("\n");
}

// ---- targets -------------------------------------------------------------------------------

/** Each target of the benchmarks issue with its measured value and PASS / MISS / n/a. */
export function evaluateTargets(record) {
  const targets = [];
  const ops = (id, backend, op, c) => findResult(findRun(record, id, backend), op, c)?.opsPerSec;
  const why = (id, backend) => {
    const run = findRun(record, id, backend);
    if (!run) return "not run";
    if (run.status === "ok") return "no result";
    return `${run.status === "unavailable" ? "not available yet" : "failed"}: ${run.reason}`;
  };
  const atLeast = (name, ours, other, backend, op, c, factor) => {
    const a = ops(ours, backend, op, c);
    const b = ops(other, backend, op, c);
    if (a === undefined || b === undefined) {
      targets.push({ name, result: "n/a", measured: why(a === undefined ? ours : other, backend) });
      return;
    }
    const r = a / b;
    targets.push({ name, result: r >= factor ? "PASS" : "MISS", measured: `${fmtRatio(r)} (${fmtOps(a)} vs ${fmtOps(b)} ops/s)` });
  };
  const withinFloor = (name, ours, backend, op, c, factor) => {
    const a = ops(ours, backend, op, c);
    const f = ops("floor", backend, op, c);
    if (a === undefined || f === undefined) {
      targets.push({ name, result: "n/a", measured: why(a === undefined ? ours : "floor", backend) });
      return;
    }
    const r = f / a;
    targets.push({ name, result: r <= factor ? "PASS" : "MISS", measured: `floor is ${fmtRatio(r)} ours (${fmtOps(f)} vs ${fmtOps(a)} ops/s)` });
  };
  for (const [rt, ours, orig, tuned] of [
    ["Node 24", "ours-node24", "original-node24", "tuned-node24"],
    ["Deno", "ours-deno-ffi", "original-deno", "tuned-deno"],
  ]) {
    atLeast(`SQLite request path (hit, 1 caller), ${rt}: ours ≥ 10x the original's approach`, ours, orig, "sqlite", "hit", 1, 10);
    atLeast(`SQLite request path (hit, 1 caller), ${rt}: ours ≥ 1.5x the tuned plain-JS variant`, ours, tuned, "sqlite", "hit", 1, 1.5);
  }
  withinFloor("SQLite request path (hit, 1 caller): ours (Node 24) within 1.5x of the raw rusqlite floor", "ours-node24", "sqlite", "hit", 1, 1.5);
  atLeast("PostgreSQL request path (hit, 64 callers): ours ≥ 20x the original's approach (client per call)", "ours-node24", "original-node24", "postgres", "hit", 64, 20);
  atLeast("PostgreSQL request path (hit, 64 callers): ours ≥ 1.5x connect-pg-simple", "ours-node24", "peer-node24", "postgres", "hit", 64, 1.5);
  withinFloor("PostgreSQL request path (hit, 64 callers): ours within 1.5x of the raw tokio-postgres floor", "ours-node24", "postgres", "hit", 64, 1.5);
  atLeast("Redis request path (hit, 64 callers): ours ≥ 1.5x connect-redis", "ours-node24", "peer-node24", "redis", "hit", 64, 1.5);
  withinFloor("Redis request path (hit, 64 callers): ours within 1.5x of the raw redis-crate floor (same Lua script)", "ours-node24", "redis", "hit", 64, 1.5);
  for (const c of record.config.concurrency) {
    atLeast(`Memory request path (hit, ${c === 1 ? "1 caller" : `${c} callers`}): ours not slower than memorystore`, "ours-node24", "peer-node24", "memory", "hit", c, 1);
  }
  // Refresh storm.
  const oauth = record.runs.find((r) => r.backend === "oauth" && r.contender === "ours-node24");
  const storm = oauth?.status === "ok" ? oauth.results.find((r) => r.op === "storm") : undefined;
  if (!storm) {
    const reason = oauth ? `${oauth.status === "unavailable" ? "not available yet" : "failed"}: ${oauth.reason}` : "not run";
    targets.push({ name: "Refresh storm: exactly 1 refresh per storm", result: "n/a", measured: reason });
    targets.push({ name: "Refresh storm: p99 < 50 ms on loopback", result: "n/a", measured: reason });
  } else {
    const ok = storm.refreshesPerStorm.every((n) => n === 1) && storm.errors === 0 && storm.distinctTokensPerStorm.every((n) => n === 1);
    targets.push({
      name: "Refresh storm: exactly 1 refresh per storm",
      result: ok ? "PASS" : "MISS",
      measured: `refreshes per storm: ${storm.refreshesPerStorm.join(", ")}; errors ${storm.errors}; distinct tokens handed out per storm: ${storm.distinctTokensPerStorm.join(", ")}`,
    });
    targets.push({ name: "Refresh storm: p99 < 50 ms on loopback", result: storm.p99Us < 50_000 ? "PASS" : "MISS", measured: `p99 ${fmtUs(storm.p99Us)} (p50 ${fmtUs(storm.p50Us)})` });
  }
  return targets;
}

export function renderTargets(targets) {
  const out = ["| target | measured | result |", "| --- | --- | :---: |"];
  for (const t of targets) out.push(`| ${t.name} | ${t.measured} | ${t.result === "n/a" ? "n/a" : `**${t.result}**`} |`);
  return out.join("\n");
}

// ---- chart ---------------------------------------------------------------------------------

const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

function colorOf(contenderId) {
  if (contenderId.startsWith("ours")) return "#2f7d32";
  if (contenderId === "floor") return "#757575";
  if (contenderId.startsWith("tuned")) return "#1565c0";
  if (contenderId.startsWith("original")) return "#c62828";
  return "#ef6c00"; // peers
}

/**
 * Horizontal bars of the request path (hit), one group per backend and caller count; bar
 * length is ops/s relative to the fastest contender of the group (linear), labelled with
 * ops/s and the ratio to ours.
 */
export function renderSvg(record) {
  const width = 1120;
  const labelW = 420;
  const barMax = 330;
  const rowH = 20;
  const groups = [];
  for (const backend of BACKENDS) {
    for (const c of record.config.concurrency) {
      const rows = record.runs
        .filter((r) => r.backend === backend.id)
        .map((run) => ({ run, r: findResult(run, "hit", c) }));
      if (rows.length === 0) continue;
      groups.push({ title: `${backend.title}: request path (hit), ${c === 1 ? "1 caller" : `${c} callers`}`, backend: backend.id, c, rows });
    }
  }
  let y = 68;
  const parts = [];
  for (const g of groups) {
    parts.push(`<text x="10" y="${y}" font-weight="bold" font-size="14">${esc(g.title)}</text>`);
    y += 8;
    const max = Math.max(1, ...g.rows.map(({ r }) => r?.opsPerSec ?? 0));
    for (const { run, r } of g.rows) {
      y += rowH;
      parts.push(`<text x="${labelW - 8}" y="${y - 5}" text-anchor="end" font-size="12">${esc(labelOf(run))}</text>`);
      if (!r) {
        const status = run.status === "ok" ? "no result" : statusCell(run);
        parts.push(`<text x="${labelW}" y="${y - 5}" font-size="12" fill="#777" font-style="italic">${esc(status.length > 70 ? `${status.slice(0, 67)}...` : status)}</text>`);
        continue;
      }
      const w = Math.max(1, (r.opsPerSec / max) * barMax);
      const ratio = ratioToOurs(record, g.backend, "hit", g.c, run);
      parts.push(`<rect x="${labelW}" y="${y - rowH + 5}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${colorOf(run.contender)}"/>`);
      parts.push(`<text x="${(labelW + w + 6).toFixed(1)}" y="${y - 5}" font-size="12">${esc(`${fmtOps(r.opsPerSec)} ops/s · p99 ${fmtUs(r.p99Us)}${run.contender === REFERENCE ? "" : ` · ours ÷ this ${fmtRatio(ratio)}`}`)}</text>`);
    }
    y += 30;
  }
  const height = y;
  const title = `@slices-rs/session benchmarks: request path ops/s (longer is better) — ${record.config.quick ? "quick" : "full"} run, ${record.startedAt}`;
  const sub = `${record.machine.cpu}, ${record.machine.cores} cores${record.machine.noisy ? " — machine busy with other work: noisy" : ""}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="10" y="38" font-size="12" fill="#555">${esc(sub)}</text>`,
    ...parts,
    `</svg>`,
    "",
  ].join("\n");
}

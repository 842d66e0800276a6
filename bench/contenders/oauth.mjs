// OAuth operations of this package (withOAuthSession, SPEC §6) against the loopback AIP server
// (tests/aip/server.mjs, started here as a child process on Node 24):
// - getOAuthSession on sessions whose tokens are fresh (no HTTP on this path), 1 and 64 callers;
// - refresh storms: `stormCallers` concurrent getOAuthSession calls on ONE session whose tokens
//   have expired; the refreshes that reached the server are read from /_admin/counters.
// Sessions live in a MemoryAdapter; tokens in the native MemoryOAuthStorage when the package
// exports it, else in a plain JS storage object.

import { spawn } from "node:child_process";
import { timedPhase } from "../lib/workload.mjs";
import { summarize } from "../lib/stats.mjs";

async function startAip(node, script) {
  const child = spawn(node, [script, "--port", "0", "--die-with-stdin", "--ttl", "900"], { stdio: ["pipe", "pipe", "inherit"] });
  const port = await new Promise((resolve, reject) => {
    let buf = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl >= 0) resolve(JSON.parse(buf.slice(0, nl)).port);
    });
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`the AIP server exited (${code})`)));
  });
  return { child, base: `http://127.0.0.1:${port}` };
}

async function admin(base, path, body) {
  const res = await fetch(`${base}/_admin/${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`/_admin/${path}: HTTP ${res.status}`);
  return res.json();
}

/** A plain JS OAuthStorage (used when the package has no native MemoryOAuthStorage). */
function jsStorage() {
  const tokens = new Map();
  return {
    async setTokens(t, sessionId) {
      tokens.set(sessionId, { ...t });
    },
    async getTokens(sessionId) {
      const t = tokens.get(sessionId);
      return t ? { ...t } : null;
    },
    async clearTokens(sessionId) {
      tokens.delete(sessionId);
    },
  };
}

const toTokens = (minted, expiresAt) => ({
  accessToken: minted.access_token,
  tokenType: minted.token_type,
  refreshToken: minted.refresh_token ?? undefined,
  expiresAt,
  scope: minted.scope ?? undefined,
});

export async function run(cfg, log) {
  const pkg = await import(cfg.module);
  const aip = await startAip(cfg.seedNode, cfg.aipServer);
  try {
    const adapter = new pkg.MemoryAdapter();
    const store = new pkg.SessionStore({ adapter, cleanupInterval: 0 });
    const storage = typeof pkg.MemoryOAuthStorage === "function" ? new pkg.MemoryOAuthStorage() : jsStorage();
    const oauthConfig = {
      clientId: "test-client",
      clientSecret: "test-secret",
      authBaseUrl: aip.base,
      redirectUri: "http://localhost:8000/oauth/callback",
      scopes: ["atproto", "profile"],
    };
    const oauth = pkg.withOAuthSession(store, oauthConfig, storage, { autoRefresh: true });
    const results = [];

    const newSession = async (expiresAt) => {
      const minted = await admin(aip.base, "issue", { sub: "did:plc:alice", expiresIn: 3600, scope: "atproto profile" });
      const sessionId = await store.createSession("did:plc:alice", "alice.test");
      await storage.setTokens(toTokens(minted, expiresAt), sessionId);
      return { sessionId, accessToken: minted.access_token };
    };

    // Fresh tokens: the read path of an OAuth app.
    await admin(aip.base, "reset", {});
    const fresh = [];
    for (let k = 0; k < 100; k++) fresh.push((await newSession(Date.now() + 3_600_000)).sessionId);
    for (const c of cfg.concurrency) {
      log(`getOAuthSession (fresh tokens) x${c}`);
      const r = await timedPhase("oauth-fresh", c, cfg.warmupMs, cfg.runMs, async (i) => {
        const s = await oauth.getOAuthSession(fresh[i % fresh.length]);
        if (!s || !s.tokens) throw new Error("getOAuthSession: no session or no tokens for a fresh session");
      });
      results.push(r);
    }
    const afterFresh = await admin(aip.base, "counters");
    if (afterFresh.refresh.total !== 0) throw new Error(`fresh tokens were refreshed ${afterFresh.refresh.total} times`);

    // Refresh storms.
    const latencies = [];
    const refreshesPerStorm = [];
    const distinctTokensPerStorm = [];
    let errors = 0;
    let wallMs = 0;
    for (let s = 0; s < cfg.oauthStorms; s++) {
      log(`refresh storm ${s + 1}/${cfg.oauthStorms} (${cfg.stormCallers} callers)`);
      await admin(aip.base, "reset", {});
      // Expired for the client; still valid at the server, so the refresh is accepted.
      const { sessionId, accessToken } = await newSession(Date.now() - 1000);
      const tokens = new Set();
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: cfg.stormCallers }, async () => {
          const start = performance.now();
          try {
            const session = await oauth.getOAuthSession(sessionId);
            const token = session?.tokens?.accessToken;
            if (!token || token === accessToken) errors++;
            else tokens.add(token);
          } catch {
            errors++;
          }
          latencies.push(performance.now() - start);
        }),
      );
      wallMs += performance.now() - t0;
      refreshesPerStorm.push((await admin(aip.base, "counters")).refresh.total);
      distinctTokensPerStorm.push(tokens.size);
    }
    const storm = summarize("storm", cfg.stormCallers, latencies, wallMs);
    results.push({ ...storm, callers: cfg.stormCallers, storms: cfg.oauthStorms, refreshesPerStorm, distinctTokensPerStorm, errors });
    await store.close();
    return results;
  } finally {
    aip.child.stdin.end();
    aip.child.kill();
  }
}

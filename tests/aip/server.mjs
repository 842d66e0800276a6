#!/usr/bin/env node
// A loopback stand-in for AIP (https://github.com/graze-social/aip), the OAuth 2.1 server of
// SPEC §6, for tests. Plain node:http, no dependencies; runs under Node and Deno:
//
//   node tests/aip/server.mjs [--port N] [--die-with-stdin] [--ttl SECONDS]
//   deno run --allow-net --allow-env tests/aip/server.mjs [...]
//
// It listens on 127.0.0.1 only and prints one JSON line `{"port":N}` on stdout when ready.
// It runs as its own process so that several application processes can share it.
// `--die-with-stdin`: exit when stdin closes (so a test that dies takes the server along).
// `--ttl`: exit after this many seconds whatever happens (default 900; 0 = never).
//
// What it reproduces of AIP:
// - GET  /oauth/authorize: auto-consent; 302 to redirect_uri?code=..&state=.. (PKCE S256
//   required; the challenge is kept with the code). The user is the one named by
//   `login_hint` (handle or DID), else the first configured user.
// - POST /oauth/token (form): client auth by HTTP Basic or form fields (client_id,
//   client_secret). `authorization_code` (PKCE checked) and `refresh_token` grants. Refresh
//   tokens are single-use and rotated: a reused one gives 400 {"error":"invalid_grant"}.
//   Like the AIP snapshot of 2025-09, a refresh presented after its access token expired
//   burns the refresh token and answers invalid_grant (`burnRefreshAfterAccessExpiry`,
//   default on; switch it with POST /_admin/config).
// - GET  /oauth/userinfo (Bearer): {sub, did, name?}; `name` (the handle) only with the
//   `profile` scope, as AIP does (`nameRequiresProfileScope`, default on). 401 invalid_token
//   when the token is unknown or expired.
// Error statuses as AIP: 400 invalid_request/invalid_grant/unsupported_grant_type, 401
// invalid_client, 500 server_error.
//
// Admin endpoints for tests:
// - GET  /_admin/counters  {refresh, authorizationCode, userinfo, authorize: {total,
//   byStatus}, tokenRequests, refreshTokensPresented: [...], dropped}
// - POST /_admin/reset     counters, tokens, codes and faults cleared; config kept
// - POST /_admin/config    {accessTokenLifetime (s), burnRefreshAfterAccessExpiry,
//   nameRequiresProfileScope, users: [{sub, handle}], clients: [{clientId, clientSecret}]}
// - POST /_admin/faults    {faults: [{type: "500"} | {type: "latency", ms} |
//   {type: "drop_after_rotate"}], append?: bool}: each fault applies to one token request,
//   in order. "latency" delays the request, then processes it normally (the answer may
//   reach a client that has given up: a lost response). "drop_after_rotate" rotates, then
//   destroys the socket without answering.
// - POST /_admin/issue     {sub | handle, expiresIn (s, may be <= 0), scope, clientId}:
//   mints an access/refresh token pair directly, as the token endpoint would answer.

import http from "node:http";
import crypto from "node:crypto";
import process from "node:process";
import { Buffer } from "node:buffer";

const args = process.argv.slice(2);
function arg(name, fallback) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
}
const port = Number(arg("--port", "0"));
const ttlSeconds = Number(arg("--ttl", "900"));
const dieWithStdin = args.includes("--die-with-stdin");

const DEFAULT_CONFIG = () => ({
  accessTokenLifetime: 3600,
  burnRefreshAfterAccessExpiry: true,
  nameRequiresProfileScope: true,
  users: [
    { sub: "did:plc:alice", handle: "alice.test" },
    { sub: "did:plc:bob", handle: "bob.test" },
  ],
  clients: [{ clientId: "test-client", clientSecret: "test-secret" }],
});

let config = DEFAULT_CONFIG();
let state;
function resetState() {
  state = {
    codes: new Map(), // code -> {clientId, redirectUri, challenge, scope, user, expiresAt, used}
    access: new Map(), // token -> {user, scope, clientId, expiresAt}
    refresh: new Map(), // token -> {user, scope, clientId, accessToken, used}
    faults: [],
    counters: {
      refresh: { total: 0, byStatus: {} },
      authorizationCode: { total: 0, byStatus: {} },
      userinfo: { total: 0, byStatus: {} },
      authorize: { total: 0, byStatus: {} },
      tokenRequests: 0,
      refreshTokensPresented: [],
      dropped: 0,
    },
  };
}
resetState();

const token = (prefix) => `${prefix}_${crypto.randomBytes(24).toString("base64url")}`;
const now = () => Date.now();

function count(bucket, status) {
  bucket.total += 1;
  bucket.byStatus[status] = (bucket.byStatus[status] ?? 0) + 1;
}

function send(res, status, body, headers = {}) {
  const text = body === undefined ? "" : JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "cache-control": "no-store",
    "content-length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function oauthError(res, status, error, description) {
  send(res, status, { error, error_description: description });
  return status;
}

function readBody(req, limit = 1 << 20) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size > limit) {
        reject(new Error("body too large"));
        req.destroy();
      } else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function findUser(hint) {
  if (hint) {
    const u = config.users.find((u) => u.sub === hint || u.handle === hint);
    if (u) return u;
  }
  return config.users[0];
}

function mint(user, scope, clientId, expiresIn = config.accessTokenLifetime) {
  const accessToken = token("at");
  const refreshToken = token("rt");
  state.access.set(accessToken, { user, scope, clientId, expiresAt: now() + expiresIn * 1000 });
  state.refresh.set(refreshToken, { user, scope, clientId, accessToken, used: false });
  return {
    access_token: accessToken,
    token_type: "Bearer",
    expires_in: expiresIn,
    refresh_token: refreshToken,
    scope: scope || null,
  };
}

// RFC 6749 §2.3.1: HTTP Basic with form-urlencoded id and secret.
function clientCredentials(req, form) {
  const auth = req.headers.authorization ?? "";
  if (auth.toLowerCase().startsWith("basic ")) {
    const decoded = Buffer.from(auth.slice(6).trim(), "base64").toString("utf8");
    const i = decoded.indexOf(":");
    if (i >= 0) {
      const dec = (s) => {
        try {
          return decodeURIComponent(s.replace(/\+/g, " "));
        } catch {
          return s;
        }
      };
      return { id: dec(decoded.slice(0, i)), secret: dec(decoded.slice(i + 1)) };
    }
  }
  return { id: form.get("client_id"), secret: form.get("client_secret") };
}

function s256(verifier) {
  return crypto.createHash("sha256").update(verifier).digest("base64url");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function handleToken(req, res) {
  state.counters.tokenRequests += 1;
  const fault = state.faults.shift();
  const form = new URLSearchParams(await readBody(req));
  if (fault?.type === "latency") await sleep(Number(fault.ms) || 0);
  const grant = form.get("grant_type");
  const bucket =
    grant === "refresh_token"
      ? state.counters.refresh
      : grant === "authorization_code"
        ? state.counters.authorizationCode
        : null;
  const finish = (status) => bucket && count(bucket, status);
  if (grant === "refresh_token") {
    state.counters.refreshTokensPresented.push(form.get("refresh_token") ?? "");
  }
  if (fault?.type === "500") {
    finish(500);
    return oauthError(res, 500, "server_error", "injected fault");
  }
  const { id, secret } = clientCredentials(req, form);
  const client = config.clients.find((c) => c.clientId === id);
  if (!client || client.clientSecret !== secret) {
    finish(401);
    return oauthError(res, 401, "invalid_client", "client authentication failed");
  }
  if (grant === "authorization_code") {
    const code = state.codes.get(form.get("code") ?? "");
    if (!code || code.used || code.expiresAt <= now() || code.clientId !== id) {
      if (code) code.used = true;
      finish(400);
      return oauthError(res, 400, "invalid_grant", "unknown, expired or used code");
    }
    code.used = true;
    if (form.get("redirect_uri") !== code.redirectUri) {
      finish(400);
      return oauthError(res, 400, "invalid_grant", "redirect_uri mismatch");
    }
    const verifier = form.get("code_verifier") ?? "";
    if (!verifier || s256(verifier) !== code.challenge) {
      finish(400);
      return oauthError(res, 400, "invalid_grant", "PKCE verification failed");
    }
    finish(200);
    return send(res, 200, mint(code.user, code.scope, id));
  }
  if (grant === "refresh_token") {
    const presented = form.get("refresh_token") ?? "";
    const record = state.refresh.get(presented);
    if (!record || record.used || record.clientId !== id) {
      finish(400);
      return oauthError(res, 400, "invalid_grant", "refresh token unknown or already used");
    }
    // Single use: spent from here on, whatever happens next.
    record.used = true;
    const access = state.access.get(record.accessToken);
    if (config.burnRefreshAfterAccessExpiry && (!access || access.expiresAt <= now())) {
      finish(400);
      return oauthError(res, 400, "invalid_grant", "access token expired; refresh token burned");
    }
    // The old access token stops working once it is rotated away.
    state.access.delete(record.accessToken);
    const body = mint(record.user, record.scope, id);
    if (fault?.type === "drop_after_rotate") {
      finish("dropped");
      state.counters.dropped += 1;
      req.socket.destroy();
      return;
    }
    finish(200);
    return send(res, 200, body);
  }
  finish(400);
  return oauthError(res, 400, "unsupported_grant_type", `grant_type ${grant}`);
}

function handleAuthorize(url, res) {
  const p = url.searchParams;
  const bucket = state.counters.authorize;
  const fail = (error, description) => {
    count(bucket, 400);
    return oauthError(res, 400, error, description);
  };
  if (p.get("response_type") !== "code") return fail("unsupported_response_type", "code only");
  const client = config.clients.find((c) => c.clientId === p.get("client_id"));
  if (!client) return fail("invalid_client", "unknown client_id");
  const redirectUri = p.get("redirect_uri");
  if (!redirectUri) return fail("invalid_request", "redirect_uri required");
  if (p.get("code_challenge_method") !== "S256" || !p.get("code_challenge")) {
    return fail("invalid_request", "PKCE S256 required");
  }
  const code = token("code");
  state.codes.set(code, {
    clientId: client.clientId,
    redirectUri,
    challenge: p.get("code_challenge"),
    scope: p.get("scope") ?? "",
    user: findUser(p.get("login_hint")),
    expiresAt: now() + 60_000,
    used: false,
  });
  const target = new URL(redirectUri);
  target.searchParams.set("code", code);
  if (p.get("state") !== null) target.searchParams.set("state", p.get("state"));
  count(bucket, 302);
  res.writeHead(302, { location: target.toString(), "content-length": 0 });
  res.end();
}

function handleUserinfo(req, res) {
  const bucket = state.counters.userinfo;
  const auth = req.headers.authorization ?? "";
  const match = /^Bearer\s+(.+)$/i.exec(auth);
  const record = match && state.access.get(match[1].trim());
  if (!record || record.expiresAt <= now()) {
    count(bucket, 401);
    return oauthError(res, 401, "invalid_token", "unknown or expired access token");
  }
  const scopes = new Set((record.scope ?? "").split(/\s+/).filter(Boolean));
  const body = { sub: record.user.sub, did: record.user.sub };
  if (!config.nameRequiresProfileScope || scopes.has("profile")) body.name = record.user.handle;
  count(bucket, 200);
  send(res, 200, body);
}

async function handleAdmin(req, res, url) {
  const path = url.pathname;
  if (req.method === "GET" && path === "/_admin/counters") return send(res, 200, state.counters);
  if (req.method !== "POST") return send(res, 405, { error: "method_not_allowed" });
  const text = await readBody(req);
  let body = {};
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      return send(res, 400, { error: "invalid_json" });
    }
  }
  if (path === "/_admin/reset") {
    resetState();
    return send(res, 200, { ok: true });
  }
  if (path === "/_admin/config") {
    for (const key of Object.keys(DEFAULT_CONFIG())) {
      if (body[key] !== undefined) config[key] = body[key];
    }
    return send(res, 200, config);
  }
  if (path === "/_admin/faults") {
    const faults = Array.isArray(body.faults) ? body.faults : [];
    state.faults = body.append ? state.faults.concat(faults) : faults;
    return send(res, 200, { pending: state.faults.length });
  }
  if (path === "/_admin/issue") {
    const user = findUser(body.sub ?? body.handle);
    const clientId = body.clientId ?? config.clients[0]?.clientId;
    const expiresIn = body.expiresIn ?? config.accessTokenLifetime;
    return send(res, 200, mint(user, body.scope ?? "atproto", clientId, expiresIn));
  }
  return send(res, 404, { error: "not_found" });
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (url.pathname.startsWith("/_admin/")) return await handleAdmin(req, res, url);
    if (req.method === "GET" && url.pathname === "/oauth/authorize") return handleAuthorize(url, res);
    if (req.method === "POST" && url.pathname === "/oauth/token") return await handleToken(req, res);
    if (req.method === "GET" && url.pathname === "/oauth/userinfo") return handleUserinfo(req, res);
    send(res, 404, { error: "not_found" });
  } catch (e) {
    if (!res.headersSent) send(res, 500, { error: "server_error", error_description: String(e) });
    else res.destroy();
  }
});

server.listen(port, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
});

if (ttlSeconds > 0) setTimeout(() => process.exit(0), ttlSeconds * 1000).unref();
if (dieWithStdin) {
  process.stdin.on("end", () => process.exit(0));
  process.stdin.on("close", () => process.exit(0));
  process.stdin.resume();
}

// Fault: the authorization server (tests/aip/server.mjs, its own process) misbehaving while
// sessions need their tokens refreshed, under load (SPEC §6 edge rules, docs/oauth.md "Failure
// classification" and "Lost responses"). For each kind of OAuth storage (memory, SQLite file,
// PostgreSQL, a custom JS class):
//
// - an outage of 3 rounds, each round 50 concurrent callers (getOAuthSession, getAccessToken,
//   hasValidOAuthTokens) on a session whose tokens are due for refresh (still valid) and 50 on
//   one whose access token has expired, with the server
//     - down: nothing listens on its port (connection refused),
//     - slow: every token request waits 4 000 ms, longer than `requestTimeout` (500 ms),
//     - answering 500 to every token request;
//   every caller keeps the session and its current tokens (getAccessToken: the current token
//   while it is valid, null once expired), the failure is reported through onError, and once
//   the server is back the next burst refreshes, with one request;
// - a lost refresh response (the server rotated the refresh token, and its answer was dropped,
//   or arrived after the client had given up): never a silent logout, exactly what docs/oauth.md
//   "Lost responses" says.
//
// "Down": the port the client uses is a loopback forwarder owned by this file (a `Door`) in
// front of the AIP process. Closing the door leaves nothing listening on that port, so the
// client's connects are refused, while the AIP process keeps its tokens, as a restarted AIP
// keeps its database. (Killing the AIP process itself would lose every token it issued.)
//
// Single flight of failures (docs/oauth.md "Bursts"): every caller that began reading the tokens
// before a flight ended shares its result; a caller that began later is SPEC §6's "next call",
// which tries again. A server slower than the burst's dispatch (slow, 500 over HTTP) therefore
// sees exactly one request per burst; one that refuses connections fails faster than the JS
// thread issues 50 calls, so later calls of the same round can start flights of their own: for
// it the test checks that callers did share flights (far fewer attempts than callers), each
// attempt reported once.
//
// Uses the package under test through tests/target.mjs (SLICES_SESSION_MODULE), so the file
// can run under Deno once jsr/mod.ts exposes OAuth. Lines "# FIGURE" feed docs/reliability.md.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { removeTmpDirs } from "../target.mjs";
import { startAip, STORAGE_KINDS, setup, assertOAuthError, sleep } from "../oauth-support.mjs";
import { figure } from "./helpers.mjs";

const CALLERS = 50;
const ROUNDS = 3;
const REQUEST_TIMEOUT = 500;
const SLOW_MS = 4000;

let aip;
let door;
before(async () => {
  aip = await startAip();
  door = new Door(aip.port);
  await door.open();
});
after(async () => {
  await door?.close();
  await aip?.stop();
  removeTmpDirs();
});

/** The authorization server's port as the client sees it: forwards to the AIP process while open. */
class Door {
  #server;
  #sockets = new Set();
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.port = 0;
    this.accepted = 0;
  }
  get url() {
    return `http://127.0.0.1:${this.port}`;
  }
  async open() {
    if (this.#server) return;
    const server = net.createServer((client) => {
      this.accepted += 1;
      const upstream = net.connect(this.targetPort, "127.0.0.1");
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on("close", () => this.#sockets.delete(socket));
        socket.on("error", () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", resolve);
    });
    this.port = server.address().port;
    this.#server = server;
  }
  /** Stops listening and cuts every connection: connects to the port are refused from now on. */
  async close() {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    const closed = new Promise((resolve) => server.close(resolve));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }
}

/**
 * 50 concurrent callers on one session: getOAuthSession, getAccessToken, hasValidOAuthTokens in
 * turn. Resolves to { results: [{ call, value } | { call, rejected }], ms }.
 */
async function burst(manager, id) {
  const started = performance.now();
  const calls = [];
  for (let i = 0; i < CALLERS; i += 1) {
    const call = ["getOAuthSession", "getAccessToken", "hasValidOAuthTokens"][i % 3];
    calls.push(
      manager[call](id).then(
        (value) => ({ call, value: call === "getOAuthSession" && value !== null ? { sessionId: value.sessionId, tokens: value.tokens } : value }),
        (rejected) => ({ call, rejected }),
      ),
    );
  }
  const results = await Promise.all(calls);
  return { results, ms: performance.now() - started };
}

/** Every caller of `b` got the session with `tokens` (the access token only while it is valid). */
function assertKept(b, id, tokens, { valid }, what) {
  for (const r of b.results) {
    assert.equal(r.rejected, undefined, `${what}: ${r.call} rejected: ${r.rejected?.stack ?? r.rejected}`);
    if (r.call === "getOAuthSession") assert.deepEqual(r.value, { sessionId: id, tokens }, `${what}: getOAuthSession`);
    if (r.call === "getAccessToken") assert.equal(r.value, valid ? tokens.accessToken : null, `${what}: getAccessToken`);
    if (r.call === "hasValidOAuthTokens") assert.equal(r.value, valid, `${what}: hasValidOAuthTokens`);
  }
}

/** How many callers of `b` got what assertKept expects (for the figures). */
function countKept(b, id, tokens, { valid }) {
  return b.results.filter((r) => {
    if (r.rejected !== undefined) return false;
    if (r.call === "getOAuthSession") return JSON.stringify(r.value) === JSON.stringify({ sessionId: id, tokens });
    if (r.call === "getAccessToken") return r.value === (valid ? tokens.accessToken : null);
    return r.value === valid;
  }).length;
}

/** Every caller of `b` got the same new token set, different from `old`; returns it. */
function assertRefreshed(b, id, old, what) {
  const session = b.results.find((r) => r.call === "getOAuthSession");
  const fresh = session?.value?.tokens;
  assert.ok(fresh, `${what}: no tokens (${JSON.stringify(session)})`);
  assert.notEqual(fresh.accessToken, old.accessToken, `${what}: not refreshed`);
  assert.ok(fresh.expiresAt > Date.now() + 60_000, `${what}: the new tokens are not valid for long`);
  assertKept(b, id, fresh, { valid: true }, what);
  return fresh;
}

/** The recorded events as short strings: "refresh", "logout", "error:<code>" (asserting OAuthError). */
function eventNames(s) {
  return s.rec.events.map((e) => {
    if (e[0] !== "error") return e[0];
    assertOAuthError(e[1], e[1]?.code);
    return `error:${e[1].code}`;
  });
}

/** Token requests that reached the server between two counter snapshots (counted on arrival). */
const requests = (before, afterwards) => afterwards.tokenRequests - before.tokenRequests;

// ---------------------------------------------------------------------------------------------
// Outages: down, slow, 500.
// ---------------------------------------------------------------------------------------------

const OUTAGES = [
  {
    name: "down (connection refused)",
    code: "network_error",
    // Nothing reaches the server: the requests are counted by the reports (one per flight).
    reachesServer: false,
    failsFast: true,
    start: () => door.close(),
    end: () => door.open(),
  },
  {
    name: `slow (every token request delayed ${SLOW_MS} ms, requestTimeout ${REQUEST_TIMEOUT} ms)`,
    code: "timeout",
    reachesServer: true,
    start: () => aip.faults(Array(500).fill({ type: "latency", ms: SLOW_MS })),
    end: () => aip.faults([]),
    // The delayed requests are still at the server; they reach its token logic later.
    slow: true,
  },
  {
    name: "answering 500 to every token request",
    code: "server_error",
    reachesServer: true,
    // Usually slower than the dispatch of a burst (one per round in every run so far), but
    // not by design: held to the weaker check.
    failsFast: true,
    start: () => aip.faults(Array(500).fill({ type: "500" })),
    end: () => aip.faults([]),
  },
];

for (const outage of OUTAGES) {
  describe(`authorization server ${outage.name}, ${CALLERS} concurrent callers per session`, () => {
    const runs = new Map();
    before(async () => {
      for (const kind of STORAGE_KINDS) runs.set(kind, await runOutage(outage, kind));
    });

    for (const kind of STORAGE_KINDS) {
      test(`${kind}: every caller keeps the session and its current tokens, the failure goes to onError, the next call after the outage refreshes`, () => {
        const run = runs.get(kind);
        // A failed refresh costs a caller about one requestTimeout, not more (slowest burst).
        assert.ok(run.slowest < REQUEST_TIMEOUT + 1000, `the slowest burst of ${2 * CALLERS} callers took ${run.slowest} ms (requestTimeout ${REQUEST_TIMEOUT} ms)`);
        if (outage.slow) {
          assert.equal(run.answeredDuringOutage, 0, `the outage outlasted the server's ${SLOW_MS} ms delay: held requests were answered during it`);
        }
        for (const [name, session, valid] of [["due", run.due, true], ["expired", run.expired, false]]) {
          run.rounds.forEach((round, i) => assertKept(round[name], session.id, session.tokens, { valid }, `${name} session, round ${i + 1}`));
          // The storage and the session store still hold them after the outage.
          assert.deepEqual(run.afterOutage[name].stored, session.tokens, `${name}: stored tokens`);
          assert.equal(run.afterOutage[name].session?.sessionId, session.id, `${name}: session`);
          // Reported: one OAuthError with the outage's code per flight, at least one per round;
          // nothing else (no logout, no refresh).
          for (const [i, round] of run.rounds.entries()) {
            const codes = round[`${name}Events`];
            assert.ok(codes.length >= 1, `${name}, round ${i + 1}: the failure was not reported`);
            assert.deepEqual(codes, Array(codes.length).fill(`error:${outage.code}`), `${name}, round ${i + 1}`);
          }
          // Back: the next burst refreshes, every caller gets the same new tokens, one report.
          const fresh = assertRefreshed(run.recovery[name], session.id, session.tokens, `${name}, after the outage`);
          assert.deepEqual(run.recovery[`${name}Events`], ["refresh"], `${name}: events of the burst after the outage`);
          assert.deepEqual(run.final[name].stored, fresh, `${name}: stored after the outage`);
          // Later: the late answers of the outage (slow server) change nothing.
          assertKept(run.final[name].burst, session.id, fresh, { valid: true }, `${name}, later`);
          assert.deepEqual(run.final[`${name}Events`], [], `${name}: events after the refresh`);
        }
        // Requests that reached the server (counted on arrival): one per reported failure, none
        // while it was down; 2 (one per session) after the outage; none later.
        for (const [i, round] of run.rounds.entries()) {
          const reports = round.dueEvents.length + round.expiredEvents.length;
          assert.equal(round.tokenRequests, outage.reachesServer ? reports : 0, `round ${i + 1}: token requests`);
        }
        assert.equal(run.recovery.tokenRequests, 2, "token requests of the burst after the outage");
        assert.equal(run.final.tokenRequests, 0, "token requests after the refresh");
      });

      if (outage.failsFast) {
        // How many later calls of a round find the previous flight ended depends on scheduling
        // (1 to 31 attempts per round seen for connection refused, and all 50 once, on a loaded
        // CI machine): a failure that comes back faster than the app issues its calls ends the
        // flight before the next caller reads the tokens, and docs/oauth.md says such a caller
        // tries again. So sharing is not guaranteed here (the latency tests and
        // tests/oauth-concurrency.test.mjs check it where it is); what is: no caller makes
        // more than one attempt (SPEC §6: a failed refresh is not retried within the call),
        // and each attempt is reported once (above).
        test(`${kind}: at most one refresh attempt per caller (${CALLERS} callers per session and round)`, () => {
          const run = runs.get(kind);
          for (const [i, r] of run.rounds.entries()) {
            for (const n of [r.dueFlights, r.expiredFlights]) {
              assert.ok(n >= 1 && n <= CALLERS, `round ${i + 1}: ${n} attempts for ${CALLERS} callers`);
            }
          }
        });
      } else {
        test(`${kind}: single flight, one refresh attempt per session per round of ${CALLERS} callers`, () => {
          const run = runs.get(kind);
          const counts = run.rounds.map((r) => [r.dueFlights, r.expiredFlights]);
          assert.deepEqual(counts, Array(ROUNDS).fill([1, 1]), "[due, expired] refresh attempts per round");
        });
      }
    }
  });
}

async function runOutage(outage, kind) {
  await aip.reset({ burnRefreshAfterAccessExpiry: false });
  const opts = { options: { requestTimeout: REQUEST_TIMEOUT }, config: { authBaseUrl: door.url } };
  const due = await setup(aip, kind, opts);
  const expired = await setup(aip, kind, opts);
  try {
    // Due: valid at the server for an hour, but the client believes it expires in 30 s (within
    // refreshSkew, 60 s). Expired: expired for the server and the client.
    due.tokens = await aip.issue({ expiresIn: 3600, localExpiresAt: Date.now() + 30_000 });
    due.id = await due.seed(due.tokens);
    expired.tokens = await aip.issue({ expiresIn: -5 });
    expired.id = await expired.seed(expired.tokens);
    const both = { due, expired };
    const snapshot = async () => ({ counters: await aip.counters(), events: { due: due.rec.events.length, expired: expired.rec.events.length } });
    const delta = (before, afterwards, out) => {
      for (const [name, s] of Object.entries(both)) out[`${name}Events`] = eventNames(s).slice(before.events[name]);
      out.tokenRequests = afterwards.counters.tokenRequests - before.counters.tokenRequests;
      return out;
    };

    await outage.start();
    const rounds = [];
    for (let i = 0; i < ROUNDS; i += 1) {
      const before = await snapshot();
      const [d, e] = await Promise.all([burst(due.manager, due.id), burst(expired.manager, expired.id)]);
      const round = delta(before, await snapshot(), { due: d, expired: e });
      // One report per flight (docs/oauth.md: events are delivered once per flight).
      for (const name of Object.keys(both)) round[`${name}Flights`] = round[`${name}Events`].length;
      rounds.push(round);
    }
    const afterOutage = {};
    for (const [name, s] of Object.entries(both)) {
      afterOutage[name] = { stored: await s.storage.getTokens(s.id), session: await s.store.getSession(s.id) };
    }
    // Token requests the server has answered (processed) by the end of the outage: none of the
    // held ones may have been, or the next burst would meet a rotated refresh token.
    const answeredDuringOutage = (await aip.counters()).refresh.total;
    await outage.end();

    let before = await snapshot();
    const [d, e] = await Promise.all([burst(due.manager, due.id), burst(expired.manager, expired.id)]);
    const recovery = delta(before, await snapshot(), { due: d, expired: e });

    // The slow server's delayed requests: wait until its token logic has seen every one of them.
    let lateAnswers;
    if (outage.slow) {
      const c = await aip.waitForCounters((c) => c.refresh.total === c.tokenRequests, { timeoutMs: SLOW_MS + 5000, what: "every delayed request processed" });
      lateAnswers = c.refresh.byStatus;
    }
    before = await snapshot();
    const final = {};
    for (const [name, s] of Object.entries(both)) final[name] = { burst: await burst(s.manager, s.id), stored: await s.storage.getTokens(s.id) };
    delta(before, await snapshot(), final);

    const kept = rounds.reduce(
      (n, r) => n + countKept(r.due, due.id, due.tokens, { valid: true }) + countKept(r.expired, expired.id, expired.tokens, { valid: false }),
      0,
    );
    const perRound = rounds.map((r) => `${r.dueFlights}+${r.expiredFlights}`).join(", ");
    const slowest = Math.round(Math.max(...rounds.flatMap((r) => [r.due.ms, r.expired.ms])));
    figure(
      `oauth server ${outage.name}, ${kind}`,
      `${ROUNDS} rounds x ${2 * CALLERS} callers (due + expired session): ${kept} of ${ROUNDS * 2 * CALLERS} calls kept the session and current tokens; ` +
        `refresh attempts per round (due+expired) ${perRound}; onError ${outage.code} ${rounds.reduce((n, r) => n + r.dueEvents.length + r.expiredEvents.length, 0)}x; ` +
        `slowest burst ${slowest} ms; token requests at the server per round ${rounds.map((r) => r.tokenRequests).join(", ")}; ` +
        `after the outage: ${recovery.tokenRequests} requests, refreshed` +
        (lateAnswers ? `; the server's answers to all token requests ${JSON.stringify(lateAnswers)}` : ""),
    );
    return { due, expired, rounds, afterOutage, answeredDuringOutage, slowest, recovery, final };
  } finally {
    await outage.end();
    await due.close();
    await expired.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Lost responses (docs/oauth.md "Lost responses"), under load: the server rotated the refresh
// token and its answer never arrived. Two causes:
//  - "dropped": fault drop_after_rotate (the server rotates, then closes the connection);
//  - "late": the server is slower than requestTimeout, the client gives up, and the server then
//    rotates and answers into a closed connection.
// What docs/oauth.md promises, checked with 50 concurrent callers per read:
//  1. the read that lost the answer: session kept, current tokens (a transient failure);
//  2. the next refresh, with the same refresh token, gets invalid_grant: onError gets
//     OAuthError("refresh_response_lost") once, the session stays signed in with its current
//     tokens while the access token is valid, and no further request is sent with that token;
//  3. once the access token has expired, the next read logs out (onLogout, tokens cleared,
//     session deleted), reports refresh_response_lost again and resolves null. Never silent.
// ---------------------------------------------------------------------------------------------

/** { value: count } of a list. */
const tally = (list) => list.reduce((acc, x) => ({ ...acc, [x]: (acc[x] ?? 0) + 1 }), {});

const LOST_WINDOW = 3000; // ms the access token stays valid after the answer was lost
const LATE_MS = 900;

const CAUSES = [
  { name: "dropped after rotation", code: "network_error", faults: [{ type: "drop_after_rotate" }] },
  { name: `answered ${LATE_MS} ms late (requestTimeout ${REQUEST_TIMEOUT} ms)`, code: "timeout", faults: [{ type: "latency", ms: LATE_MS }], late: true },
];

for (const cause of CAUSES) {
  describe(`refresh response lost (${cause.name}), ${CALLERS} concurrent callers per read: never a silent logout`, () => {
    const runs = new Map();
    before(async () => {
      await aip.reset();
      for (const kind of STORAGE_KINDS) runs.set(kind, await lostSteps12(cause, kind));
      // Step 3 for all, once every access token has expired.
      const last = Math.max(...[...runs.values()].map((r) => r.tokens.expiresAt));
      await sleep(Math.max(0, last - Date.now() + 50));
      for (const run of runs.values()) await lostStep3(run);
    });

    for (const kind of STORAGE_KINDS) {
      test(kind, () => {
        const run = runs.get(kind);
        assert.ok(run.step2At < run.tokens.expiresAt, "steps 1-2 ran within the access token's lifetime (machine too slow?)");
        // 1. every caller of the read that lost the answer keeps the session and its tokens
        assertKept(run.step1, run.id, run.tokens, { valid: true }, "step 1");
        // 2. the loss found and reported once; still signed in; no more requests with that token
        assertKept(run.step2, run.id, run.tokens, { valid: true }, "step 2");
        assertKept(run.step2b, run.id, run.tokens, { valid: true }, "step 2, again");
        assert.deepEqual(run.eventsAfterStep2, [`error:${cause.code}`, "error:refresh_response_lost"]);
        assert.equal(run.requestsSteps12, 2, "token requests in steps 1-2: the lost one, and the one that found the loss");
        assert.equal(run.requestsStep2b, 0, "no request with the spent refresh token once the loss is known");
        assert.deepEqual(run.storedAfterStep2, run.tokens);
        assert.equal(run.sessionAfterStep2?.sessionId, run.id);
        // 3. after expiry: logged out, and told why; no request, no caller gets the session or
        // a token.
        for (const r of run.step3.results) {
          assert.equal(r.rejected, undefined, `step 3: ${r.call} rejected: ${r.rejected}`);
          assert.equal(r.value, r.call === "hasValidOAuthTokens" ? false : null, `step 3: ${r.call}`);
        }
        assert.equal(run.issuedStep3, 0, "tokens issued after the loss");
        assert.equal(run.sessionAfterStep3, null);
        assert.equal(run.storedAfterStep3, null);
        // Not silent: the logout and its reason are both reported (docs/oauth.md does not fix
        // their order for this case), and nothing else.
        assert.ok(run.eventsStep3.includes("logout"), `step 3 events: ${run.eventsStep3}`);
        assert.ok(run.eventsStep3.includes("error:refresh_response_lost"), `step 3 events: ${run.eventsStep3}`);
        assert.deepEqual([...new Set(run.eventsStep3)].sort(), ["error:refresh_response_lost", "logout"]);
        assert.ok(run.s.rec.logouts().every((e) => e[1] === run.id));
      });

      test(`${kind}: the ${CALLERS} concurrent reads after expiry all resolve null, send nothing, and report the logout and its reason once`, () => {
        const run = runs.get(kind);
        assert.equal(run.step3Sessions, 0, "getOAuthSession calls that returned the session");
        assert.equal(run.requestsStep3, 0, "requests with the spent refresh token after the loss was known");
        assert.deepEqual(tally(run.eventsStep3), { "error:refresh_response_lost": 1, logout: 1 });
      });

      // The dropped answer fails fast: a later caller of the read may be a "next call" and send
      // the token once more, which finds the loss already (see "Single flight of failures").
      test(`${kind}: the ${CALLERS} callers of the read that lost the answer share its flight`, () => {
        const run = runs.get(kind);
        if (cause.late) {
          assert.equal(run.requestsStep1, 1);
          assert.deepEqual(run.eventsAfterStep1, [`error:${cause.code}`]);
        } else {
          assert.ok(run.requestsStep1 === 1 || run.requestsStep1 === 2, `requests: ${run.requestsStep1}`);
          const expected = [`error:${cause.code}`, "error:refresh_response_lost"].slice(0, run.requestsStep1);
          assert.deepEqual(run.eventsAfterStep1, expected);
        }
      });
    }
  });
}

async function lostSteps12(cause, kind) {
  const s = await setup(aip, kind, { options: { requestTimeout: REQUEST_TIMEOUT } });
  const run = { kind, s, cause: cause.name };
  const issued = await aip.issue({ expiresIn: 3600 });
  run.tokens = { ...issued, expiresAt: Date.now() + LOST_WINDOW };
  run.id = await s.seed(run.tokens);
  const c0 = await aip.counters();
  await aip.faults(cause.faults);
  run.step1 = await burst(s.manager, run.id);
  const c1 = await aip.counters();
  run.requestsStep1 = requests(c0, c1);
  run.eventsAfterStep1 = eventNames(s);
  if (cause.late) {
    // The server rotates once the delay is over; its answer goes to a closed connection.
    await aip.waitForCounters((c) => c.refresh.total === c.tokenRequests, { timeoutMs: LATE_MS + 5000, what: "the late refresh processed" });
  }
  run.step2 = await burst(s.manager, run.id);
  const c2 = await aip.counters();
  run.eventsAfterStep2 = eventNames(s);
  run.requestsSteps12 = requests(c0, c2);
  run.step2b = await burst(s.manager, run.id);
  run.step2At = Date.now();
  run.requestsStep2b = requests(c2, await aip.counters());
  run.storedAfterStep2 = await s.storage.getTokens(run.id);
  run.sessionAfterStep2 = await s.store.getSession(run.id);
  run.statusesAfterStep2 = (await aip.counters()).refresh.byStatus;
  return run;
}

async function lostStep3(run) {
  const { s } = run;
  try {
    const c = await aip.counters();
    const before = s.rec.events.length;
    run.step3 = await burst(s.manager, run.id);
    const c3 = await aip.counters();
    run.requestsStep3 = requests(c, c3);
    run.issuedStep3 = (c3.refresh.byStatus[200] ?? 0) - (c.refresh.byStatus[200] ?? 0);
    run.eventsStep3 = eventNames(s).slice(before);
    run.step3Sessions = run.step3.results.filter((r) => r.call === "getOAuthSession" && r.value).length;
    run.step3Tokens = run.step3.results.filter((r) => (r.call === "getOAuthSession" ? r.value?.tokens : r.value)).length;
    run.sessionAfterStep3 = await s.store.getSession(run.id);
    run.storedAfterStep3 = await s.storage.getTokens(run.id);
    figure(
      `oauth lost refresh response (${run.cause}), ${run.kind}`,
      `step 1 (${CALLERS} callers): ${run.requestsStep1} request(s), events ${JSON.stringify(run.eventsAfterStep1)}; ` +
        `steps 1-2: ${run.requestsSteps12} requests in all, events ${JSON.stringify(run.eventsAfterStep2)}, ` +
        `${[run.step1, run.step2, run.step2b].reduce((n, b) => n + countKept(b, run.id, run.tokens, { valid: true }), 0)} of ${3 * CALLERS} calls kept the session and tokens; ` +
        `after expiry (${CALLERS} callers): ${run.step3Tokens} got a token or valid=true, ${run.step3Sessions} getOAuthSession returned the session (the others null), ` +
        `events ${JSON.stringify(tally(run.eventsStep3))}, ${run.requestsStep3} requests (${run.issuedStep3} answered with tokens)`,
    );
  } finally {
    await s.close();
  }
}

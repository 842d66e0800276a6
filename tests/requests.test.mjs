// SPEC §3 getSessionFromRequest / getCurrentUser: the request shapes accepted, and hostile
// Cookie headers (never a throw, never a crash).
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { pkg } from "./target.mjs";

const { SessionStore, MemoryAdapter } = pkg;

describe("getSessionFromRequest: request shapes", () => {
  const adapter = new MemoryAdapter();
  const store = new SessionStore({ adapter, cleanupInterval: 0 });
  let id;
  before(async () => {
    id = await store.createSession("req-user", "req.handle", { n: 1 });
  });
  after(() => store.close());

  const check = (s) => {
    assert.ok(s, "expected a session");
    assert.equal(s.sessionId, id);
    assert.equal(s.userId, "req-user");
    assert.equal(s.handle, "req.handle");
    assert.deepStrictEqual(s.data, { n: 1 });
  };

  test("a Fetch Request", async () => {
    check(await store.getSessionFromRequest(new Request("http://localhost/", { headers: { cookie: `a=1; slice-session=${id}; b=2` } })));
  });

  test("a Headers object", async () => {
    check(await store.getSessionFromRequest(new Headers({ Cookie: `slice-session=${id}` })));
  });

  test("a plain object { headers: { cookie } }", async () => {
    check(await store.getSessionFromRequest({ headers: { cookie: `slice-session=${id}` } }));
  });

  test("a plain object whose headers is a Headers instance", async () => {
    check(await store.getSessionFromRequest({ headers: new Headers({ cookie: `slice-session=${id}` }) }));
  });

  test("a real node:http IncomingMessage", async () => {
    const results = [];
    const server = http.createServer(async (req, res) => {
      try {
        results.push(await store.getSessionFromRequest(req));
        results.push(await store.getCurrentUser(req));
        res.end("ok");
      } catch (e) {
        results.push(e);
        res.statusCode = 500;
        res.end(String(e));
      }
    });
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    try {
      const { port } = server.address();
      const response = await fetch(`http://127.0.0.1:${port}/`, { headers: { cookie: `x=y; slice-session=${id}` } });
      assert.equal(await response.text(), "ok");
    } finally {
      await new Promise((r) => server.close(r));
    }
    assert.equal(results.length, 2);
    check(results[0]);
    assert.deepStrictEqual(results[1], { sessionId: id, sub: "req-user", handle: "req.handle", isAuthenticated: true });
  });

  test("no Cookie header gives null", async () => {
    assert.equal(await store.getSessionFromRequest(new Request("http://localhost/")), null);
    assert.equal(await store.getSessionFromRequest(new Headers()), null);
    assert.equal(await store.getSessionFromRequest({ headers: {} }), null);
    assert.equal(await store.getSessionFromRequest({}), null);
    assert.equal(await store.getSessionFromRequest({ headers: { cookie: "" } }), null);
    assert.equal(await store.getSessionFromRequest({ headers: { cookie: "other=1" } }), null);
  });

  test("an unknown session id gives null", async () => {
    assert.equal(await store.getSessionFromRequest({ headers: { cookie: "slice-session=unknown" } }), null);
    assert.equal(await store.getSessionFromRequest({ headers: { cookie: "slice-session=" } }), null);
  });

  test("the value is URI-decoded before the lookup", async () => {
    let n = 0;
    const s2 = new SessionStore({ adapter, cleanupInterval: 0, generateId: () => `id with spaces;=é ${++n}` });
    try {
      const weird = await s2.createSession("weird");
      const cookie = s2.createSessionCookie(weird).split("; ")[0];
      assert.equal(cookie, `slice-session=${encodeURIComponent(weird)}`);
      const s = await s2.getSessionFromRequest({ headers: { cookie } });
      assert.equal(s?.sessionId, weird);
    } finally {
      await s2.close();
    }
  });

  test("a non-object request rejects with a TypeError naming request", async () => {
    for (const bad of [42, "slice-session=x", null, undefined]) {
      const p = store.getSessionFromRequest(bad);
      assert.ok(p instanceof Promise, `getSessionFromRequest(${String(bad)}) must return a Promise`);
      await assert.rejects(p, (e) => e instanceof TypeError && /request/.test(e.message), `getSessionFromRequest(${String(bad)})`);
      const q = store.getCurrentUser(bad);
      assert.ok(q instanceof Promise, `getCurrentUser(${String(bad)}) must return a Promise`);
      await assert.rejects(q, (e) => e instanceof TypeError && /request/.test(e.message), `getCurrentUser(${String(bad)})`);
    }
  });
});

describe("getSessionFromRequest: hostile Cookie headers", () => {
  const adapter = new MemoryAdapter();
  const store = new SessionStore({ adapter, cleanupInterval: 0 });
  let id;
  before(async () => {
    id = await store.createSession("hostile-user");
  });
  after(() => store.close());

  function junk(len, seed) {
    let x = seed;
    let s = "";
    for (let i = 0; i < len; i++) {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      s += String.fromCharCode(x % 256);
    }
    return s;
  }

  const hostile = () => [
    ["malformed escape %E0%A4%A", "slice-session=%E0%A4%A"],
    ["lone %", "slice-session=%"],
    ["encoded lone surrogate", "slice-session=%ED%A0%80"],
    ["1 MB header", "slice-session=" + "a".repeat(1024 * 1024)],
    ["1 MB of '%'", "%".repeat(1024 * 1024)],
    ["random binary junk", junk(65536, 7)],
    ["binary junk containing the name", junk(4096, 3) + "; slice-session=" + junk(4096, 5)],
    ["thousands of ';'", ";".repeat(100000)],
    ["thousands of '='", "=".repeat(100000)],
    ["unicode junk", "slice-session=\u{1F600}\u0000\uFFFF\u202E"],
    ["quotes", 'slice-session="' + "x".repeat(50) + '"'],
    ["many cookies", Array.from({ length: 20000 }, (_, i) => `c${i}=v${i}`).join("; ")],
  ];

  for (const [name, cookie] of hostile()) {
    test(`${name}: null, no throw`, async () => {
      assert.equal(await store.getSessionFromRequest({ headers: { cookie } }), null);
      assert.deepStrictEqual(await store.getCurrentUser({ headers: { cookie } }), { isAuthenticated: false });
    });
  }

  test("hostile ASCII headers through a Fetch Request and Headers", async () => {
    for (const cookie of ["slice-session=%E0%A4%A", "slice-session=%", ";".repeat(10000), "slice-session=" + "b".repeat(1024 * 1024)]) {
      assert.equal(await store.getSessionFromRequest(new Request("http://localhost/", { headers: { cookie } })), null);
      assert.equal(await store.getSessionFromRequest(new Headers({ cookie })), null);
    }
  });

  test("the right session is still found among junk", async () => {
    const cookies = [
      `junk=%; slice-session=${id}; x=%E0%A4%A`,
      `${";".repeat(5000)}slice-session=${id}${";".repeat(5000)}`,
      `${"z".repeat(1024 * 1024)}=1; slice-session=${id}`,
      `${junk(2048, 11).replaceAll(";", "")}; slice-session=${id}`,
      `  slice-session  =  ${id}  `,
    ];
    for (const cookie of cookies) {
      const s = await store.getSessionFromRequest({ headers: { cookie } });
      assert.equal(s?.sessionId, id, `cookie header starting ${JSON.stringify(cookie.slice(0, 40))}`);
    }
  });

  test("the cookie name repeated: the last one wins", async () => {
    const s1 = await store.getSessionFromRequest({ headers: { cookie: `slice-session=bogus; slice-session=${id}` } });
    assert.equal(s1?.sessionId, id);
    const s2 = await store.getSessionFromRequest({ headers: { cookie: `slice-session=${id}; slice-session=bogus` } });
    assert.equal(s2, null);
    const many = Array.from({ length: 5000 }, () => "slice-session=bogus").join("; ") + `; slice-session=${id}`;
    assert.equal((await store.getSessionFromRequest({ headers: { cookie: many } }))?.sessionId, id);
  });

  test("the store still works afterwards", async () => {
    const id2 = await store.createSession("after-hostile");
    assert.equal((await store.getSession(id2)).userId, "after-hostile");
  });
});

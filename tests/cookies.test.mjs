// SPEC §4: serializeCookie / parseCookie byte for byte, the store's cookie methods, and the
// cookie option validation done at construction.
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { pkg } from "./target.mjs";

const { serializeCookie, parseCookie, SessionStore, MemoryAdapter } = pkg;

describe("serializeCookie", () => {
  test("name and value only", () => {
    assert.equal(serializeCookie("a", "b"), "a=b");
    assert.equal(serializeCookie("a", "b", {}), "a=b");
    assert.equal(serializeCookie("a", ""), "a=");
  });

  test("all attributes, in the fixed order", () => {
    assert.equal(
      serializeCookie("sid", "v", {
        sameSite: "strict",
        secure: true,
        httpOnly: true,
        path: "/app",
        domain: "example.com",
        maxAge: 3600,
      }),
      "sid=v; Max-Age=3600; Domain=example.com; Path=/app; HttpOnly; Secure; SameSite=strict",
    );
  });

  test("Max-Age is written whenever maxAge is defined, as JavaScript prints the number", () => {
    assert.equal(serializeCookie("a", "b", { maxAge: 0 }), "a=b; Max-Age=0");
    assert.equal(serializeCookie("a", "b", { maxAge: -1 }), "a=b; Max-Age=-1");
    assert.equal(serializeCookie("a", "b", { maxAge: 1.5 }), "a=b; Max-Age=1.5");
    assert.equal(serializeCookie("a", "b", { maxAge: 0.1 + 0.2 }), "a=b; Max-Age=0.30000000000000004");
    assert.equal(serializeCookie("a", "b", { maxAge: 1e21 }), "a=b; Max-Age=1e+21");
    assert.equal(serializeCookie("a", "b", { maxAge: 2592000 }), "a=b; Max-Age=2592000");
    assert.equal(serializeCookie("a", "b", { maxAge: undefined }), "a=b");
  });

  test("Domain and Path only when truthy", () => {
    assert.equal(serializeCookie("a", "b", { domain: "", path: "" }), "a=b");
    assert.equal(serializeCookie("a", "b", { domain: "x.org" }), "a=b; Domain=x.org");
    assert.equal(serializeCookie("a", "b", { path: "/" }), "a=b; Path=/");
  });

  test("HttpOnly and Secure only when true", () => {
    assert.equal(serializeCookie("a", "b", { httpOnly: false, secure: false }), "a=b");
    assert.equal(serializeCookie("a", "b", { httpOnly: true }), "a=b; HttpOnly");
    assert.equal(serializeCookie("a", "b", { secure: true }), "a=b; Secure");
  });

  test("SameSite is printed as given", () => {
    assert.equal(serializeCookie("a", "b", { sameSite: "lax" }), "a=b; SameSite=lax");
    assert.equal(serializeCookie("a", "b", { sameSite: "none" }), "a=b; SameSite=none");
    assert.equal(serializeCookie("a", "b", { sameSite: "Strict" }), "a=b; SameSite=Strict");
  });

  test("name and value are encodeURIComponent-ed", () => {
    assert.equal(serializeCookie("a b", "c;d=é"), "a%20b=c%3Bd%3D%C3%A9");
    assert.equal(serializeCookie("n", "😀"), "n=%F0%9F%98%80");
    assert.equal(serializeCookie("n", "a!~*'()-_.b"), "n=a!~*'()-_.b");
    assert.equal(serializeCookie("n", "%20/?#&+,"), "n=%2520%2F%3F%23%26%2B%2C");
    assert.equal(serializeCookie("n", "\"\\"), "n=%22%5C");
    const value = "x ;=\u00e9\u4e2d\u{1F600}\u0301";
    assert.equal(serializeCookie("k", value), `k=${encodeURIComponent(value)}`);
  });

  test("the default session cookie, byte for byte", () => {
    const id = "0b6bd5c1-4c7a-4a39-9d2e-7a3f3f1c9a10";
    assert.equal(
      serializeCookie("slice-session", id, { httpOnly: true, secure: true, sameSite: "lax", path: "/", maxAge: 2592000 }),
      `slice-session=${id}; Max-Age=2592000; Path=/; HttpOnly; Secure; SameSite=lax`,
    );
  });
});

describe("parseCookie", () => {
  test("falsy header gives {}", () => {
    assert.deepStrictEqual(parseCookie(""), {});
    assert.deepStrictEqual(parseCookie(undefined), {});
    assert.deepStrictEqual(parseCookie(null), {});
  });

  test("a non-string, non-falsy argument is a TypeError", () => {
    assert.throws(() => parseCookie(123), TypeError);
    assert.throws(() => parseCookie({ cookie: "a=b" }), TypeError);
  });

  test("basic pairs, trimmed", () => {
    assert.deepStrictEqual(parseCookie("a=1; b=2"), { a: "1", b: "2" });
    assert.deepStrictEqual(parseCookie("  a  =  1  ;b=2;   c = 3 "), { a: "1", b: "2", c: "3" });
  });

  test("trim uses JavaScript's whitespace set", () => {
    assert.deepStrictEqual(parseCookie("\u00a0a\u2003=\ufeff1\u3000; \tb\n=\r2\u2028"), { a: "1", b: "2" });
  });

  test("split on the first '='", () => {
    assert.deepStrictEqual(parseCookie("a=b=c"), { a: "b=c" });
    assert.deepStrictEqual(parseCookie("token=abc==; x=="), { token: "abc==", x: "=" });
  });

  test("surrounding quotes are kept", () => {
    assert.deepStrictEqual(parseCookie('a="b c"'), { a: '"b c"' });
    assert.deepStrictEqual(parseCookie('a=""'), { a: '""' });
  });

  test("a later duplicate wins", () => {
    assert.deepStrictEqual(parseCookie("a=1; a=2; b=3; a=4"), { a: "4", b: "3" });
  });

  test("empty keys are skipped", () => {
    assert.deepStrictEqual(parseCookie("=x; b=2"), { b: "2" });
    assert.deepStrictEqual(parseCookie("  =x;;; ;b=2;"), { b: "2" });
    assert.deepStrictEqual(parseCookie(";;;"), {});
  });

  test("a piece without '=' gives an empty value", () => {
    assert.deepStrictEqual(parseCookie("flag; b=2"), { flag: "", b: "2" });
    assert.deepStrictEqual(parseCookie("lonely"), { lonely: "" });
  });

  test("values are URI-decoded, keys are not", () => {
    assert.deepStrictEqual(parseCookie("a=%20b%C3%A9"), { a: " bé" });
    assert.deepStrictEqual(parseCookie("a%20b=1"), { "a%20b": "1" });
    assert.deepStrictEqual(parseCookie("a=%2520"), { a: "%20" });
    assert.deepStrictEqual(parseCookie("e=%F0%9F%98%80"), { e: "😀" });
    assert.deepStrictEqual(parseCookie("p=a+b"), { p: "a+b" });
  });

  test("a malformed escape is returned undecoded, and never throws", () => {
    assert.deepStrictEqual(parseCookie("a=%E0%A4%A"), { a: "%E0%A4%A" });
    assert.deepStrictEqual(parseCookie("a=%"), { a: "%" });
    assert.deepStrictEqual(parseCookie("a=100%; b=%zz; c=%41"), { a: "100%", b: "%zz", c: "A" });
    assert.deepStrictEqual(parseCookie("a=%C3"), { a: "%C3" });
    assert.deepStrictEqual(parseCookie("a=%ED%A0%80"), { a: "%ED%A0%80" }); // encoded lone surrogate
  });

  test("round trip with serializeCookie", () => {
    const value = "x ;=\u00e9\u4e2d\u{1F600}\u0301'\"%";
    const header = serializeCookie("k", value, { path: "/", httpOnly: true }).split("; ")[0];
    assert.deepStrictEqual(parseCookie(header), { k: value });
  });
});

describe("SessionStore cookie methods", () => {
  const stores = [];
  const mk = (opts = {}) => {
    const store = new SessionStore({ adapter: new MemoryAdapter(), cleanupInterval: 0, ...opts });
    stores.push(store);
    return store;
  };
  after(async () => {
    for (const s of stores) await s.close();
  });
  const id = "0b6bd5c1-4c7a-4a39-9d2e-7a3f3f1c9a10";

  test("createSessionCookie with the defaults", () => {
    assert.equal(mk().createSessionCookie(id), `slice-session=${id}; Max-Age=2592000; Path=/; HttpOnly; Secure; SameSite=lax`);
  });

  test("createLogoutCookie with the defaults", () => {
    assert.equal(mk().createLogoutCookie(), "slice-session=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=lax");
  });

  test("both are synchronous (return strings)", () => {
    const s = mk();
    assert.equal(typeof s.createSessionCookie(id), "string");
    assert.equal(typeof s.createLogoutCookie(), "string");
  });

  test("custom cookieName", () => {
    const s = mk({ cookieName: "sid" });
    assert.equal(s.createSessionCookie("x"), "sid=x; Max-Age=2592000; Path=/; HttpOnly; Secure; SameSite=lax");
    assert.equal(s.createLogoutCookie(), "sid=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=lax");
  });

  test("Max-Age = floor(sessionTTL / 1000)", () => {
    assert.equal(mk({ sessionTTL: 1000 }).createSessionCookie("x"), "slice-session=x; Max-Age=1; Path=/; HttpOnly; Secure; SameSite=lax");
    assert.equal(mk({ sessionTTL: 1999 }).createSessionCookie("x"), "slice-session=x; Max-Age=1; Path=/; HttpOnly; Secure; SameSite=lax");
    assert.equal(mk({ sessionTTL: 3600000 }).createSessionCookie("x"), "slice-session=x; Max-Age=3600; Path=/; HttpOnly; Secure; SameSite=lax");
  });

  test("cookieOptions.maxAge wins over sessionTTL; logout still Max-Age=0", () => {
    const s = mk({ sessionTTL: 1000, cookieOptions: { maxAge: 60 } });
    assert.equal(s.createSessionCookie("x"), "slice-session=x; Max-Age=60; Path=/; HttpOnly; Secure; SameSite=lax");
    assert.equal(s.createLogoutCookie(), "slice-session=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=lax");
  });

  test("cookieOptions overlay the defaults key by key", () => {
    const s = mk({ cookieOptions: { sameSite: "strict", domain: "example.com" } });
    assert.equal(
      s.createSessionCookie("x"),
      "slice-session=x; Max-Age=2592000; Domain=example.com; Path=/; HttpOnly; Secure; SameSite=strict",
    );
    assert.equal(
      s.createLogoutCookie(),
      "slice-session=; Max-Age=0; Domain=example.com; Path=/; HttpOnly; Secure; SameSite=strict",
    );
    assert.equal(
      mk({ cookieOptions: { path: "/app", httpOnly: false } }).createSessionCookie("x"),
      "slice-session=x; Max-Age=2592000; Path=/app; Secure; SameSite=lax",
    );
  });

  test("an explicit undefined removes a default", () => {
    assert.equal(
      mk({ cookieOptions: { secure: undefined } }).createSessionCookie("x"),
      "slice-session=x; Max-Age=2592000; Path=/; HttpOnly; SameSite=lax",
    );
    assert.equal(
      mk({ cookieOptions: { path: undefined, sameSite: undefined, httpOnly: undefined } }).createSessionCookie("x"),
      "slice-session=x; Max-Age=2592000; Secure",
    );
  });

  test("the session id is encodeURIComponent-ed in the cookie", () => {
    assert.equal(mk().createSessionCookie("a b;c"), "slice-session=a%20b%3Bc; Max-Age=2592000; Path=/; HttpOnly; Secure; SameSite=lax");
  });

  test("the cookie methods are usable on every store of a file (cookie header round trip)", () => {
    const s = mk({ cookieName: "my sid" });
    const header = s.createSessionCookie("é/1").split("; ")[0];
    assert.equal(header, "my%20sid=%C3%A9%2F1");
    // the key is not decoded by parseCookie (original behaviour)
    assert.deepStrictEqual(parseCookie(header), { "my%20sid": "é/1" });
  });
});

describe("cookie option validation at construction", () => {
  const adapter = new MemoryAdapter();
  const make = (opts) => new SessionStore({ adapter, cleanupInterval: 0, ...opts });
  const stores = [];
  after(async () => {
    for (const s of stores) await s.close();
  });

  test('sameSite "none" without secure throws', () => {
    assert.throws(() => make({ cookieOptions: { sameSite: "none", secure: false } }), (e) => e instanceof Error && /sameSite/i.test(e.message) && /secure/i.test(e.message));
    assert.throws(() => make({ cookieOptions: { sameSite: "none", secure: undefined } }), (e) => e instanceof Error && /sameSite/i.test(e.message));
  });

  test('sameSite "none" with secure is accepted', () => {
    const s = make({ cookieOptions: { sameSite: "none" } });
    stores.push(s);
    assert.equal(s.createSessionCookie("x"), "slice-session=x; Max-Age=2592000; Path=/; HttpOnly; Secure; SameSite=none");
  });

  test("__Host- name with a domain throws", () => {
    assert.throws(() => make({ cookieName: "__Host-sid", cookieOptions: { domain: "example.com" } }), (e) => e instanceof Error && /__Host-/.test(e.message) && /domain/i.test(e.message));
  });

  test("__Host- name without secure throws", () => {
    assert.throws(() => make({ cookieName: "__Host-sid", cookieOptions: { secure: false } }), (e) => e instanceof Error && /__Host-/.test(e.message) && /secure/i.test(e.message));
  });

  test('__Host- name with path other than "/" throws', () => {
    assert.throws(() => make({ cookieName: "__Host-sid", cookieOptions: { path: "/x" } }), (e) => e instanceof Error && /__Host-/.test(e.message) && /path/i.test(e.message));
  });

  test("__Host- name with the defaults is accepted", () => {
    const s = make({ cookieName: "__Host-sid" });
    stores.push(s);
    assert.equal(s.createSessionCookie("x"), "__Host-sid=x; Max-Age=2592000; Path=/; HttpOnly; Secure; SameSite=lax");
  });

  test("__Secure- name without secure throws", () => {
    assert.throws(() => make({ cookieName: "__Secure-sid", cookieOptions: { secure: false } }), (e) => e instanceof Error && /__Secure-/.test(e.message) && /secure/i.test(e.message));
  });

  test("__Secure- name with secure (and a domain) is accepted", () => {
    const s = make({ cookieName: "__Secure-sid", cookieOptions: { domain: "example.com", path: "/x" } });
    stores.push(s);
    assert.equal(s.createSessionCookie("x"), "__Secure-sid=x; Max-Age=2592000; Domain=example.com; Path=/x; HttpOnly; Secure; SameSite=lax");
  });

  test("a rejected configuration is thrown synchronously by the constructor", () => {
    let threw = false;
    try {
      make({ cookieOptions: { sameSite: "none", secure: false } });
    } catch (e) {
      threw = e instanceof Error;
    }
    assert.equal(threw, true);
  });
});

// The JavaScript face of @slices-rs/session, shared by every runtime binding.
//
// It only marshals: checks the types of JS arguments (so a TypeError can name the argument),
// converts records to and from the native wire shape (`data` travels as JSON text), maps
// native errors to the error classes, and runs the cleanup timer on the JS event loop.
// Every session, cookie and expiry rule lives in the Rust core.

/** Base class of every error this package raises on purpose. */
export class SessionError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = new.target.name;
  }
}
/** An async method was called after `SessionStore.close()`. */
export class SessionStoreClosedError extends SessionError {}
/** The storage failed (database error, unreachable server, a custom adapter that threw). */
export class AdapterError extends SessionError {}
/** An OAuth request failed; `code` is the OAuth error code (e.g. "invalid_grant"). */
export class OAuthError extends SessionError {
  constructor(message, options = {}) {
    super(message, options);
    this.code = options.code;
  }
}

const ERROR_CLASSES = {
  TypeError,
  SessionError,
  SessionStoreClosedError,
  AdapterError,
  OAuthError,
};
const NATIVE_ERROR = /^(TypeError|SessionError|SessionStoreClosedError|AdapterError|OAuthError)(?:\(([\w.-]*)\))?: ([\s\S]*)$/;

/** Native errors carry their class as a message prefix (see bindings-node/src/lib.rs). */
function translateError(error) {
  if (!(error instanceof Error) || error instanceof SessionError) return error;
  const match = NATIVE_ERROR.exec(error.message);
  if (match) {
    const [, name, code, message] = match;
    return name === "OAuthError" ? new OAuthError(message, { code }) : new ERROR_CLASSES[name](message);
  }
  // napi-rs argument conversion failures.
  if (error.code === "InvalidArg" || error.code === "NumberExpected" || error.code === "StringExpected") {
    return new TypeError(error.message);
  }
  return error;
}

/** Calls into native code, turning a sync throw or an async rejection into our classes. */
function callNative(fn) {
  let result;
  try {
    result = fn();
  } catch (error) {
    throw translateError(error);
  }
  // napi-rs hands back (rather than throws) the error of a method that may return a Promise.
  if (result instanceof Error) throw translateError(result);
  if (result instanceof Promise) {
    return result.catch((error) => {
      throw translateError(error);
    });
  }
  return result;
}

// ---- argument checks ----------------------------------------------------------------------

function describe(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "string" ? `a string (${JSON.stringify(value.slice(0, 40))})` : `${typeof value}`;
}

function fail(name, expected, value) {
  return new TypeError(`${name} must be ${expected}, got ${describe(value)}`);
}

function checkString(value, name) {
  if (typeof value !== "string") throw fail(name, "a string", value);
  return value;
}

function optionalString(value, name) {
  if (value === undefined || value === null) return undefined;
  return checkString(value, name);
}

function checkMillis(value, name) {
  if (typeof value !== "number" || !Number.isFinite(value)) throw fail(name, "a finite number", value);
  return Math.trunc(value);
}

function optionalMillis(value, name) {
  return value === undefined ? undefined : checkMillis(value, name);
}

function checkBoolean(value, name) {
  if (typeof value !== "boolean") throw fail(name, "a boolean", value);
  return value;
}

function isPlainObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** `data` as JSON text, or undefined when absent. */
function encodeData(value, name) {
  if (value === undefined || value === null) return undefined;
  if (!isPlainObject(value)) throw fail(name, "an object", value);
  return JSON.stringify(value);
}

// ---- wire conversion ----------------------------------------------------------------------

/** A native wire record to the SessionData users see: absent handle/data keys are omitted. */
function fromWire(wire) {
  if (wire === null || wire === undefined) return null;
  const session = { sessionId: wire.sessionId, userId: wire.userId };
  if (wire.handle !== undefined && wire.handle !== null) session.handle = wire.handle;
  session.isAuthenticated = wire.isAuthenticated;
  if (wire.data !== undefined && wire.data !== null) {
    try {
      session.data = JSON.parse(wire.data);
    } catch (error) {
      throw new AdapterError(`stored session ${JSON.stringify(wire.sessionId)} has data that is not JSON: ${error.message}`);
    }
  }
  session.createdAt = wire.createdAt;
  session.expiresAt = wire.expiresAt;
  session.lastAccessedAt = wire.lastAccessedAt;
  return session;
}

/**
 * A session (or an array of them) as the core hands it out, already in the shape users see
 * (core `SessionData::to_js_json`): JSON text from N-API, parsed once here; the FFI binding's
 * reply is that same JSON, so it arrives parsed. `null` when there is none.
 */
function sessionRecord(record) {
  if (typeof record !== "string") return record ?? null;
  try {
    return JSON.parse(record);
  } catch (error) {
    throw new AdapterError(`a stored session could not be read: ${error.message}`);
  }
}

/**
 * Bounds of a SessionReader, per key space: records kept (oldest dropped first), and the
 * longest key (cookie header) and record (JSON text) it keeps. A kept record costs its strings,
 * its `data` copy and its key, so a full key space is some 10-20 MB (docs/design.md); a server
 * whose active sessions outnumber it gets whole-record replies for the rest, as without it.
 */
const READER_CAPACITY = 16384;
const READER_MAX_KEY = 4096;
const READER_MAX_RECORD = 8192;

/** Nesting a SessionReader copies (deeper `data` is not kept: copying it recurses). */
const READER_MAX_DEPTH = 64;
const TOO_DEEP = Symbol("too deep");

/**
 * A deep copy of a value JSON.parse made (plain objects, arrays, strings, numbers, booleans,
 * null): the same result as parsing its JSON text again, several times faster for the small
 * `data` objects sessions carry. A "__proto__" key stays an own property, as JSON.parse makes it.
 * Throws TOO_DEEP past READER_MAX_DEPTH levels.
 */
function copyJsonValue(value, depth = 0) {
  if (value === null || typeof value !== "object") return value;
  if (depth >= READER_MAX_DEPTH) throw TOO_DEEP;
  if (Array.isArray(value)) {
    const out = new Array(value.length);
    for (let i = 0; i < value.length; i++) out[i] = copyJsonValue(value[i], depth + 1);
    return out;
  }
  const out = {};
  for (const key in value) {
    if (key === "__proto__") {
      Object.defineProperty(out, key, { value: copyJsonValue(value[key], depth + 1), writable: true, enumerable: true, configurable: true });
    } else {
      out[key] = copyJsonValue(value[key], depth + 1);
    }
  }
  return out;
}

/** `data` copied for a SessionReader entry, or TOO_DEEP. */
function keptData(data) {
  if (data === undefined) return undefined;
  try {
    return copyJsonValue(data);
  } catch (error) {
    if (error === TOO_DEEP) return TOO_DEEP;
    throw error;
  }
}

/**
 * Request-path reads of a synchronous store (memory, SQLite) without decoding the same record
 * again on every request (core/src/reply.rs explains the protocol; docs/design.md why). It
 * keeps, per cookie header and per session id, the stable fields of the record it last decoded
 * (its own copy, never an object it handed out) and their fingerprint; the native
 * side answers `1` ("still those, here are the timestamps") or the whole record. Every call
 * returns a new object, `data` included.
 */
class SessionReader {
  #reader;
  #fromHeader;
  #byIdFn;
  #words;
  #times;
  #byHeader = new Map();
  #byId = new Map();

  /** `functions`: the binding's `replyFunctions()`; `open(words)` makes the native reader. */
  constructor(functions, open) {
    const buffer = new ArrayBuffer(64); // core's BUFFER_WORDS (16) u32 words
    this.#words = new Uint32Array(buffer);
    this.#times = new Float64Array(buffer);
    // The reader writes into #words: this object keeps both alive together.
    this.#reader = open(this.#words);
    this.#fromHeader = functions.fromHeader;
    this.#byIdFn = functions.byId;
  }

  fromHeader(header) {
    return this.#read(this.#byHeader, header, this.#fromHeader);
  }

  byId(id) {
    return this.#read(this.#byId, id, this.#byIdFn);
  }

  #read(cache, key, fn) {
    const words = this.#words;
    const cacheable = key !== undefined && key.length <= READER_MAX_KEY;
    const known = cacheable ? cache.get(key) : undefined;
    if (known === undefined) {
      words[8] = 0;
    } else {
      words[4] = known.f0;
      words[5] = known.f1;
      words[6] = known.f2;
      words[7] = known.f3;
      words[8] = 1;
    }
    let out;
    try {
      out = fn(this.#reader, key);
    } catch (error) {
      throw translateError(error);
    }
    if (out === null) {
      if (known !== undefined) cache.delete(key);
      return null;
    }
    if (out === 1) {
      if (known === undefined) throw new AdapterError("the native store answered a hint that was not given");
      const session = { sessionId: known.sessionId, userId: known.userId };
      if (known.handle !== undefined) session.handle = known.handle;
      session.isAuthenticated = known.isAuthenticated;
      if (known.data !== undefined) session.data = copyJsonValue(known.data);
      session.createdAt = known.createdAt;
      session.expiresAt = this.#times[0];
      session.lastAccessedAt = this.#times[1];
      return session;
    }
    const session = sessionRecord(out);
    // The record's JSON text bounds its `data`'s size.
    const data = cacheable && out.length <= READER_MAX_RECORD ? keptData(session.data) : TOO_DEEP;
    if (data === TOO_DEEP) {
      if (known !== undefined) cache.delete(key);
    } else {
      if (known === undefined && cache.size >= READER_CAPACITY) cache.delete(cache.keys().next().value);
      cache.set(key, {
        f0: words[9],
        f1: words[10],
        f2: words[11],
        f3: words[12],
        sessionId: session.sessionId,
        userId: session.userId,
        handle: session.handle,
        isAuthenticated: session.isAuthenticated,
        // A copy of its own: the caller may change the `data` it gets.
        data,
        createdAt: session.createdAt,
      });
    }
    return session;
  }
}

/** A SessionData given by a user (adapter.set) or returned by a custom adapter, to the wire. */
function toWire(session, name) {
  if (!isPlainObject(session)) throw fail(name, "a SessionData object", session);
  return {
    sessionId: checkString(session.sessionId, `${name}.sessionId`),
    userId: checkString(session.userId, `${name}.userId`),
    handle: optionalString(session.handle, `${name}.handle`),
    isAuthenticated: checkBoolean(session.isAuthenticated, `${name}.isAuthenticated`),
    data: encodeData(session.data, `${name}.data`),
    createdAt: checkMillis(session.createdAt, `${name}.createdAt`),
    expiresAt: checkMillis(session.expiresAt, `${name}.expiresAt`),
    lastAccessedAt: checkMillis(session.lastAccessedAt, `${name}.lastAccessedAt`),
  };
}

const has = (object, key) => Object.prototype.hasOwnProperty.call(object, key);

/** `Partial<SessionData>` to the wire patch; a `sessionId` key is ignored (SPEC §3). */
function toWirePatch(updates, name) {
  if (!isPlainObject(updates)) throw fail(name, "an object", updates);
  const patch = {};
  if (has(updates, "userId")) patch.userId = checkString(updates.userId, `${name}.userId`);
  if (has(updates, "handle")) {
    const handle = optionalString(updates.handle, `${name}.handle`);
    if (handle === undefined) patch.clearHandle = true;
    else patch.handle = handle;
  }
  if (has(updates, "isAuthenticated")) {
    patch.isAuthenticated = checkBoolean(updates.isAuthenticated, `${name}.isAuthenticated`);
  }
  if (has(updates, "data")) {
    const data = encodeData(updates.data, `${name}.data`);
    if (data === undefined) patch.clearData = true;
    else patch.data = data;
  }
  for (const key of ["createdAt", "expiresAt", "lastAccessedAt"]) {
    if (has(updates, key)) patch[key] = checkMillis(updates[key], `${name}.${key}`);
  }
  return patch;
}

/** The wire patch back to the `Partial<SessionData>` a custom adapter's `update` receives. */
function fromWirePatch(patch) {
  const updates = {};
  if (patch.userId !== undefined) updates.userId = patch.userId;
  if (patch.handle !== undefined) updates.handle = patch.handle;
  else if (patch.clearHandle) updates.handle = undefined;
  if (patch.isAuthenticated !== undefined) updates.isAuthenticated = patch.isAuthenticated;
  if (patch.data !== undefined) updates.data = JSON.parse(patch.data);
  else if (patch.clearData) updates.data = undefined;
  for (const key of ["createdAt", "expiresAt", "lastAccessedAt"]) {
    if (patch[key] !== undefined) updates[key] = patch[key];
  }
  return updates;
}

const COOKIE_OPTION_TYPES = {
  httpOnly: "boolean",
  secure: "boolean",
  sameSite: "string",
  domain: "string",
  path: "string",
  maxAge: "number",
};

/** Cookie options to the wire; keys given as `undefined` are listed in `unset` (JS spread semantics). */
function toWireCookieOptions(options, name) {
  if (options === undefined || options === null) return undefined;
  if (!isPlainObject(options)) throw fail(name, "an object", options);
  const wire = { unset: [] };
  for (const [key, type] of Object.entries(COOKIE_OPTION_TYPES)) {
    if (!has(options, key)) continue;
    const value = options[key];
    if (value === undefined) wire.unset.push(key);
    else if (typeof value !== type) throw fail(`${name}.${key}`, `a ${type}`, value);
    else wire[key] = value;
  }
  return wire;
}

/** The `Cookie` header of a Fetch `Request`, a Node `IncomingMessage`, or a `Headers`. */
function cookieHeaderOf(request) {
  if (request === null || typeof request !== "object") {
    throw fail("request", "a Request, an IncomingMessage or a Headers object", request);
  }
  const headers = request.headers ?? request;
  if (headers === null || typeof headers !== "object") return undefined;
  if (typeof headers.get === "function") {
    const value = headers.get("cookie");
    return typeof value === "string" ? value : undefined;
  }
  const value = headers.cookie ?? headers.Cookie;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.filter((v) => typeof v === "string").join("; ");
  return undefined;
}

/** A custom adapter or storage may throw anything; the native side needs an Error with a message. */
function asError(thrown) {
  if (thrown instanceof Error) return thrown;
  let text;
  try {
    text = typeof thrown === "string" ? thrown : (JSON.stringify(thrown) ?? String(thrown));
  } catch {
    text = String(thrown);
  }
  return new Error(text);
}

/** The same functions, each rejecting with an Error whatever the user's code throws. */
function guarded(fns) {
  const out = {};
  for (const [name, fn] of Object.entries(fns)) {
    out[name] = async (...args) => {
      try {
        return await fn(...args);
      } catch (thrown) {
        throw asError(thrown);
      }
    };
  }
  return out;
}

const REQUIRED_ADAPTER_METHODS = ["get", "set", "update", "delete", "cleanup", "exists"];

/** A user's adapter object as the threadsafe functions the native store calls. */
function jsAdapterFunctions(adapter) {
  for (const method of REQUIRED_ADAPTER_METHODS) {
    if (typeof adapter[method] !== "function") {
      throw new TypeError(`adapter must implement SessionAdapter: adapter.${method} is not a function`);
    }
  }
  // Methods are called on the adapter (so `this` works) and always return a Promise of a
  // normalised value: the native side expects exact types.
  const fns = {
    get: async (id) => {
      const session = await adapter.get(id);
      return session === null || session === undefined ? null : toWire(session, "adapter.get() result");
    },
    set: async (id, wire) => {
      await adapter.set(id, fromWire(wire));
    },
    update: async (id, patch) => Boolean(await adapter.update(id, fromWirePatch(patch))),
    delete: async (id) => {
      await adapter.delete(id);
    },
    cleanup: async (expiresBefore) => Math.max(0, Math.trunc(Number(await adapter.cleanup(expiresBefore)) || 0)),
    exists: async (id) => Boolean(await adapter.exists(id)),
  };
  if (typeof adapter.listByUser === "function") {
    fns.listByUser = async (userId) => {
      const rows = await adapter.listByUser(userId);
      if (!Array.isArray(rows)) throw new TypeError("adapter.listByUser() must resolve to an array");
      return rows.map((row) => toWire(row, "adapter.listByUser() result"));
    };
  }
  if (typeof adapter.deleteByUser === "function") {
    fns.deleteByUser = async (userId, except) =>
      Math.max(0, Math.trunc(Number(await adapter.deleteByUser(userId, except ?? undefined)) || 0));
  }
  return guarded(fns);
}

/** OAuthTokens given by a user or a custom storage, to the wire. */
function toWireTokens(tokens, name) {
  if (!isPlainObject(tokens)) throw fail(name, "an OAuthTokens object", tokens);
  return {
    accessToken: checkString(tokens.accessToken, `${name}.accessToken`),
    tokenType: checkString(tokens.tokenType, `${name}.tokenType`),
    refreshToken: optionalString(tokens.refreshToken, `${name}.refreshToken`),
    expiresAt: tokens.expiresAt === undefined || tokens.expiresAt === null ? undefined : checkMillis(tokens.expiresAt, `${name}.expiresAt`),
    scope: optionalString(tokens.scope, `${name}.scope`),
  };
}

/** Wire tokens to the OAuthTokens users see (absent keys omitted). */
function fromWireTokens(wire) {
  if (wire === null || wire === undefined) return null;
  const tokens = { accessToken: wire.accessToken, tokenType: wire.tokenType };
  for (const key of ["refreshToken", "expiresAt", "scope"]) {
    if (wire[key] !== undefined && wire[key] !== null) tokens[key] = wire[key];
  }
  return tokens;
}

function toWireOAuthConfig(config, name) {
  if (!isPlainObject(config)) throw fail(name, "an OAuthConfig object", config);
  const scopes = config.scopes;
  if (!Array.isArray(scopes) || !scopes.every((scope) => typeof scope === "string")) {
    throw fail(`${name}.scopes`, "an array of strings", scopes);
  }
  return {
    clientId: checkString(config.clientId, `${name}.clientId`),
    clientSecret: checkString(config.clientSecret, `${name}.clientSecret`),
    authBaseUrl: checkString(config.authBaseUrl, `${name}.authBaseUrl`),
    redirectUri: checkString(config.redirectUri, `${name}.redirectUri`),
    scopes: [...scopes],
  };
}

function optionalFunction(value, name) {
  if (value !== undefined && typeof value !== "function") throw fail(name, "a function", value);
  return value;
}

// ---- lifetimes of the JS objects the native side calls (OAuth storages and callbacks) ------
//
// The functions handed to the native side are held from its roots (N-API threadsafe functions,
// the FFI binding's callback table) for as long as the native handle lives. Were they to refer
// to the user's object strongly, that object could never be collected: a JS OAuth storage is
// the key of the WeakMap whose value is that very handle, and callbacks commonly refer to their
// manager, which owns the handle. So they refer to it through a WeakRef only, and the JS objects
// that use the handle (OAuthSessionManager, OAuthClient) hold it strongly; every call on those
// keeps its object reachable until the call settles.

/** Does nothing, visibly to the optimiser: `value` is reachable until here. */
function keepAlive(value) {
  if (value === keptAliveSentinel) throw new Error("unreachable");
}
const keptAliveSentinel = {};

/** As callNative; a Promise it returns keeps `owner` reachable until it settles. */
function callNativeFor(owner, fn) {
  const result = callNative(fn);
  if (!(result instanceof Promise)) return result;
  return result.then(
    (value) => {
      keepAlive(owner);
      return value;
    },
    (error) => {
      keepAlive(owner);
      throw error;
    },
  );
}

/**
 * A getter of `target` through a WeakRef. If the target is gone when the native side calls in
 * (which the strong references above rule out), the call fails with a SessionError.
 */
function weakTarget(target, what) {
  const ref = new WeakRef(target);
  return () => {
    const value = ref.deref();
    if (value === undefined) {
      throw new SessionError(
        `${what} was garbage-collected while the native side still used it ` +
          "(its manager or client was unreachable and no call of theirs was in flight)",
      );
    }
    return value;
  };
}

/**
 * The optional coordination methods of a JS OAuth storage (docs/oauth.md, "JS storages"), in
 * pairs: a storage has both methods of a pair or neither. With `putState`/`takeState` it keeps
 * OAuthClient's PKCE state; with `tryLockRefresh`/`unlockRefresh` the refresh lease that makes
 * refresh single-flight across processes; with `getRefreshAttempt`/`setRefreshAttempt` the
 * refresh-attempt record that survives a lost response.
 */
const OAUTH_STORAGE_PAIRS = [
  ["putState", "takeState"],
  ["tryLockRefresh", "unlockRefresh"],
  ["getRefreshAttempt", "setRefreshAttempt"],
];

/** The optional methods `storage` has; a half pair is a TypeError naming the missing one. */
function oauthStorageExtras(storage, name) {
  const present = [];
  for (const pair of OAUTH_STORAGE_PAIRS) {
    const has = pair.map((method) => typeof storage[method] === "function");
    if (has[0] !== has[1]) {
      const [missing, given] = has[0] ? [pair[1], pair[0]] : [pair[0], pair[1]];
      throw new TypeError(`${name} has ${given} but not ${missing}: ${name}.${missing} is not a function`);
    }
    if (has[0]) present.push(...pair);
  }
  return present;
}

function toWirePkceState(value, name) {
  if (!isPlainObject(value)) throw fail(name, "an object with codeVerifier and createdAt", value);
  return {
    codeVerifier: checkString(value.codeVerifier, `${name}.codeVerifier`),
    createdAt: checkMillis(value.createdAt, `${name}.createdAt`),
  };
}

function toWireRefreshAttempt(value, name) {
  if (!isPlainObject(value)) throw fail(name, "an object with tokenFingerprint, startedAt and lost", value);
  return {
    tokenFingerprint: checkString(value.tokenFingerprint, `${name}.tokenFingerprint`),
    startedAt: checkMillis(value.startedAt, `${name}.startedAt`),
    lost: checkBoolean(value.lost, `${name}.lost`),
  };
}

/**
 * A user's OAuth storage as the functions the native storage handle calls; `storage()` is a
 * weakTarget; `extras` the optional methods it has (oauthStorageExtras). (Module level: a
 * closure made next to the storage object would share, and keep, the scope that holds it.)
 * Results are checked here, so a storage returning the wrong shape fails with a TypeError
 * naming the method.
 */
function jsOAuthStorageFunctions(storage, name, extras = []) {
  const fns = {
    getTokens: async (sessionId) => {
      const tokens = await storage().getTokens(sessionId);
      return tokens === null || tokens === undefined ? null : toWireTokens(tokens, `${name}.getTokens() result`);
    },
    setTokens: async (tokens, sessionId) => {
      await storage().setTokens(fromWireTokens(tokens), sessionId);
    },
    clearTokens: async (sessionId) => {
      await storage().clearTokens(sessionId);
    },
  };
  const optional = {
    putState: async (state, value, expiresAt) => {
      await storage().putState(state, { codeVerifier: value.codeVerifier, createdAt: value.createdAt }, expiresAt);
    },
    takeState: async (state) => {
      const value = await storage().takeState(state);
      return value === null || value === undefined ? null : toWirePkceState(value, `${name}.takeState() result`);
    },
    tryLockRefresh: async (sessionId, owner, leaseMs) =>
      checkBoolean(await storage().tryLockRefresh(sessionId, owner, leaseMs), `${name}.tryLockRefresh() result`),
    unlockRefresh: async (sessionId, owner) => {
      await storage().unlockRefresh(sessionId, owner);
    },
    getRefreshAttempt: async (sessionId) => {
      const value = await storage().getRefreshAttempt(sessionId);
      return value === null || value === undefined ? null : toWireRefreshAttempt(value, `${name}.getRefreshAttempt() result`);
    },
    setRefreshAttempt: async (sessionId, attempt) => {
      const value = attempt === null || attempt === undefined
        ? null
        : { tokenFingerprint: attempt.tokenFingerprint, startedAt: attempt.startedAt, lost: attempt.lost };
      await storage().setRefreshAttempt(sessionId, value);
    },
  };
  for (const method of extras) fns[method] = optional[method];
  return guarded(fns);
}

/**
 * withOAuthSession's callbacks as the one `onEvent` function the native side awaits, in the
 * order events happen; `callbacks()` is a weakTarget of `{ onTokenRefresh, onLogout, onError }`.
 */
function oauthEventFunctions(callbacks) {
  return {
    onEvent: async (event) => {
      const { onTokenRefresh, onLogout, onError } = callbacks();
      if (event.kind === "tokenRefresh") {
        if (onTokenRefresh) await onTokenRefresh(event.sessionId, fromWireTokens(event.tokens));
      } else if (event.kind === "logout") {
        if (onLogout) await onLogout(event.sessionId);
      } else if (event.kind === "error") {
        // Failures that did not fail the call (a refresh that kept the session, ...).
        const error = translateError(new Error(event.error));
        if (!onError) {
          console.error("@slices-rs/session:", error);
          return;
        }
        try {
          await onError(error);
        } catch (reportError) {
          console.error("@slices-rs/session: onError threw:", reportError);
        }
      }
    },
  };
}

/** Keeps a timer from holding the process open, in Node and in Deno. */
function unrefTimer(timer) {
  if (typeof timer === "object" && timer !== null && typeof timer.unref === "function") timer.unref();
  else if (typeof globalThis.Deno?.unrefTimer === "function") globalThis.Deno.unrefTimer(timer);
}

/** The options of PostgresAdapter and PostgresOAuthStorage, checked. */
function postgresOptions(options) {
  if (!isPlainObject(options)) throw fail("options", "an object", options);
  const max = options.maxConnections === undefined ? undefined : checkMillis(options.maxConnections, "options.maxConnections");
  if (max !== undefined && max < 1) throw new TypeError("options.maxConnections must be at least 1");
  const queryTimeout = options.queryTimeout === undefined ? undefined : checkMillis(options.queryTimeout, "options.queryTimeout");
  if (queryTimeout !== undefined && (queryTimeout < 0 || queryTimeout > 0xffffffff)) {
    throw new TypeError("options.queryTimeout must be between 0 (no limit) and 4294967295 ms");
  }
  return { max, queryTimeout };
}

/** The options of RedisAdapter and RedisOAuthStorage, checked. */
function redisOptions(options) {
  const { max, queryTimeout } = postgresOptions(options);
  const prefix = options.prefix === undefined ? undefined : options.prefix;
  if (prefix !== undefined && typeof prefix !== "string") throw fail("options.prefix", "a string", prefix);
  return { prefix, max, queryTimeout };
}

const HEX_KEY = /^[0-9a-fA-F]{64}$/;
const BASE64_KEY = /^[A-Za-z0-9+/_-]{43}={0,1}$/;

/** One `encryptionKey` (32 bytes: bytes, 64 hex digits, or base64/base64url) as 64 hex digits. */
function keyToHex(key, name) {
  let bytes;
  if (key instanceof Uint8Array) {
    bytes = key;
  } else if (typeof key === "string" && HEX_KEY.test(key)) {
    return key.toLowerCase();
  } else if (typeof key === "string" && BASE64_KEY.test(key)) {
    const binary = atob(key.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, ""));
    bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  } else {
    // Never echo the value: it may be a key of the wrong length.
    throw new TypeError(`${name} must be 32 bytes: a Uint8Array, 64 hex digits or base64 of 32 bytes`);
  }
  if (bytes.length !== 32) {
    throw new TypeError(`${name} must be 32 bytes: a Uint8Array, 64 hex digits or base64 of 32 bytes (got ${bytes.length} bytes)`);
  }
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The at-rest options of the native OAuth storages (docs/security.md), checked: `encryptionKey`
 * (one key, or a non-empty array: the first seals, all open) and `hashIds`. `undefined` when
 * neither is set.
 */
function atRestOptions(options) {
  const { encryptionKey, hashIds } = options;
  if (hashIds !== undefined && typeof hashIds !== "boolean") throw fail("options.hashIds", "a boolean", hashIds);
  if (encryptionKey === undefined && !hashIds) return undefined;
  let keys = [];
  if (Array.isArray(encryptionKey)) {
    if (encryptionKey.length === 0) throw new TypeError("options.encryptionKey must not be an empty array");
    keys = encryptionKey.map((key, i) => keyToHex(key, `options.encryptionKey[${i}]`));
  } else if (encryptionKey !== undefined) {
    keys = [keyToHex(encryptionKey, "options.encryptionKey")];
  }
  return { keys, hashIds: hashIds === true };
}

// The cleanup timers of stores that were dropped without close().
const cleanupTimers = new FinalizationRegistry((timer) => clearInterval(timer));

// setInterval fires at once for delays above 2^31-1 ms.
const MAX_TIMER_DELAY = 2 ** 31 - 1;

/**
 * Builds the public API over a native binding object exposing `NativeAdapter`, `NativeStore`,
 * `parseCookie` and `serializeCookie` (N-API in Node, FFI in Deno).
 */
export function createApi(native) {
  /** @type {(adapter: object) => object | undefined} */
  let nativeOf;
  /** @type {(store: object) => { native: object, newId: () => string | undefined } | undefined} */
  let storeInternals;
  /** The binding's reply functions (SessionReader), made on first use. */
  let replyFunctions;

  /** Shared face of the native adapters: the SessionAdapter interface of SPEC §2. */
  class NativeBackedAdapter {
    #native;
    static {
      nativeOf = (adapter) => (#native in adapter ? adapter.#native : undefined);
    }

    constructor(create) {
      this.#native = callNative(create);
    }

    async get(id) {
      checkString(id, "id");
      return sessionRecord(await callNative(() => this.#native.get(id)));
    }

    async set(id, data) {
      checkString(id, "id");
      const wire = toWire(data, "data");
      await callNative(() => this.#native.set(id, wire));
    }

    async update(id, updates) {
      checkString(id, "id");
      const patch = toWirePatch(updates, "updates");
      return callNative(() => this.#native.update(id, patch));
    }

    async delete(id) {
      checkString(id, "id");
      await callNative(() => this.#native.delete(id));
    }

    async cleanup(expiresBefore) {
      const before = checkMillis(expiresBefore, "expiresBefore");
      return callNative(() => this.#native.cleanup(before));
    }

    async exists(id) {
      checkString(id, "id");
      return callNative(() => this.#native.exists(id));
    }

    async listByUser(userId) {
      checkString(userId, "userId");
      return sessionRecord(await callNative(() => this.#native.listByUser(userId)));
    }

    async deleteByUser(userId, except) {
      checkString(userId, "userId");
      const keep = optionalString(except, "except");
      return callNative(() => this.#native.deleteByUser(userId, keep));
    }

    /** Releases the adapter's connections or file; later calls reject with AdapterError. */
    async close() {
      await callNative(() => this.#native.close());
    }
  }

  class MemoryAdapter extends NativeBackedAdapter {
    constructor() {
      super(() => native.NativeAdapter.memoryAdapter());
    }
    /** Removes every session (synchronous). */
    clear() {
      callNative(() => nativeOf(this).clear());
    }
    /** Number of stored sessions, expired ones included (synchronous). */
    size() {
      return callNative(() => nativeOf(this).size());
    }
    /** Stored session ids (synchronous). */
    keys() {
      return callNative(() => nativeOf(this).keys());
    }
  }

  class SQLiteAdapter extends NativeBackedAdapter {
    /** @param pathOrUrl a file path, `sqlite://<path>` or ":memory:" */
    constructor(pathOrUrl, options = {}) {
      checkString(pathOrUrl, "pathOrUrl");
      if (!isPlainObject(options)) throw fail("options", "an object", options);
      const busyTimeout = options.busyTimeout === undefined ? undefined : checkMillis(options.busyTimeout, "options.busyTimeout");
      super(() => native.NativeAdapter.sqliteAdapter(pathOrUrl, busyTimeout));
    }
  }

  class PostgresAdapter extends NativeBackedAdapter {
    /** Does not connect: the pool connects on first use. */
    constructor(connectionString, options = {}) {
      checkString(connectionString, "connectionString");
      const { max, queryTimeout } = postgresOptions(options);
      super(() => native.NativeAdapter.postgresAdapter(connectionString, max, queryTimeout));
    }
    /** Creates the table and indexes if missing (also done on first use). */
    async initialize() {
      await callNative(() => nativeOf(this).initialize());
    }
  }

  class RedisAdapter extends NativeBackedAdapter {
    /**
     * @param url `redis://[user:password@]host[:port][/db]`, `rediss://` (TLS) or
     *   `redis+unix:///path`; `valkey://` and `valkeys://` too. Does not connect: the first
     *   call does.
     */
    constructor(url, options = {}) {
      checkString(url, "url");
      const { prefix, max, queryTimeout } = redisOptions(options);
      super(() => native.NativeAdapter.redisAdapter(url, prefix, max, queryTimeout));
    }
    /** Checks that the server answers (optional: there is no schema to create). */
    async initialize() {
      await callNative(() => nativeOf(this).initialize());
    }
  }

  class SessionStore {
    #native;
    /** A SessionReader when the store is synchronous and the binding speaks core/src/reply.rs. */
    #reader;
    #generateId;
    #onError;
    #timer;
    #cleanupRunning = false;
    static {
      storeInternals = (store) =>
        store !== null && typeof store === "object" && #native in store
          ? { native: store.#native, newId: () => store.#newId() }
          : undefined;
    }

    constructor(options) {
      if (!isPlainObject(options)) throw fail("options", "an object with an `adapter`", options);
      const { adapter, cookieName, cookieOptions, sessionTTL, cleanupInterval, generateId, onError, touchAfter, rolling, hashIds } = options;
      if (adapter === null || typeof adapter !== "object") throw fail("adapter", "a SessionAdapter object", adapter);
      if (generateId !== undefined && typeof generateId !== "function") throw fail("generateId", "a function", generateId);
      if (onError !== undefined && typeof onError !== "function") throw fail("onError", "a function", onError);
      const interval = cleanupInterval === undefined ? 60 * 60 * 1000 : checkMillis(cleanupInterval, "cleanupInterval");
      const config = {
        cookieName: cookieName === undefined ? undefined : checkString(cookieName, "cookieName"),
        cookieOptions: toWireCookieOptions(cookieOptions, "cookieOptions"),
        sessionTtl: optionalMillis(sessionTTL, "sessionTTL"),
        touchAfter: optionalMillis(touchAfter, "touchAfter"),
        rolling: rolling === undefined ? undefined : checkBoolean(rolling, "rolling"),
        hashIds: hashIds === undefined ? undefined : checkBoolean(hashIds, "hashIds"),
      };
      const nativeAdapter = nativeOf(adapter);
      this.#native = callNative(() =>
        nativeAdapter
          ? native.NativeStore.withNativeAdapter(nativeAdapter, config)
          : native.NativeStore.withJsAdapter(jsAdapterFunctions(adapter), config),
      );
      if (this.#native.isSync && typeof native.replyFunctions === "function") {
        replyFunctions ??= native.replyFunctions();
        const store = this.#native;
        this.#reader = new SessionReader(replyFunctions, (words) => callNative(() => native.openReplyReader(store, words)));
      }
      this.#generateId = generateId;
      this.#onError = onError;
      if (interval > 0) {
        // The timer reaches the store only weakly: a store dropped without close() is
        // collected, and then its timer is cleared.
        const store = new WeakRef(this);
        this.#timer = setInterval(() => store.deref()?.#runCleanup(), Math.min(interval, MAX_TIMER_DELAY));
        unrefTimer(this.#timer);
        cleanupTimers.register(this, this.#timer, this);
      }
    }

    #newId() {
      if (this.#generateId === undefined) return undefined;
      const id = this.#generateId();
      if (typeof id !== "string" || id === "") throw fail("generateId()", "a non-empty string", id);
      return id;
    }

    // Runs never overlap; failures go to onError, else console.error, never thrown.
    #runCleanup() {
      if (this.#cleanupRunning) return;
      this.#cleanupRunning = true;
      this.cleanup()
        .catch((error) => {
          if (error instanceof SessionStoreClosedError) return;
          if (this.#onError) {
            try {
              this.#onError(error);
            } catch (reportError) {
              console.error("@slices-rs/session: onError threw:", reportError);
            }
          } else {
            console.error("@slices-rs/session: session cleanup failed:", error);
          }
        })
        .finally(() => {
          this.#cleanupRunning = false;
        });
    }

    async createSession(userId, handle, data) {
      checkString(userId, "userId");
      const h = optionalString(handle, "handle");
      const d = encodeData(data, "data");
      const id = this.#newId();
      return callNative(() => this.#native.createSession(id, userId, h, d));
    }

    async getSession(sessionId) {
      checkString(sessionId, "sessionId");
      if (this.#reader) return this.#reader.byId(sessionId);
      return sessionRecord(await callNative(() => this.#native.getSession(sessionId)));
    }

    async updateSession(sessionId, updates) {
      checkString(sessionId, "sessionId");
      const p = toWirePatch(updates, "updates");
      return callNative(() =>
        this.#native.updateSessionFields(
          sessionId,
          p.userId,
          p.handle,
          p.clearHandle,
          p.isAuthenticated,
          p.data,
          p.clearData,
          p.createdAt,
          p.expiresAt,
          p.lastAccessedAt,
        ),
      );
    }

    async deleteSession(sessionId) {
      checkString(sessionId, "sessionId");
      await callNative(() => this.#native.deleteSession(sessionId));
    }

    async getSessionFromRequest(request) {
      const header = cookieHeaderOf(request);
      if (this.#reader) return this.#reader.fromHeader(header);
      return sessionRecord(await callNative(() => this.#native.getSessionFromCookieHeader(header)));
    }

    async getCurrentUser(request) {
      const header = cookieHeaderOf(request);
      const user = await callNative(() => this.#native.currentUser(header));
      const out = {};
      if (user.sessionId !== undefined) out.sessionId = user.sessionId;
      if (user.sub !== undefined) out.sub = user.sub;
      if (user.handle !== undefined) out.handle = user.handle;
      out.isAuthenticated = user.isAuthenticated;
      return out;
    }

    createSessionCookie(sessionId) {
      checkString(sessionId, "sessionId");
      return callNative(() => this.#native.sessionCookie(sessionId));
    }

    createLogoutCookie() {
      return callNative(() => this.#native.logoutCookie());
    }

    async cleanup() {
      return callNative(() => this.#native.cleanup());
    }

    async listUserSessions(userId) {
      checkString(userId, "userId");
      return sessionRecord(await callNative(() => this.#native.listUserSessions(userId)));
    }

    async deleteUserSessions(userId, options = {}) {
      checkString(userId, "userId");
      if (!isPlainObject(options)) throw fail("options", "an object", options);
      const except = optionalString(options.except, "options.except");
      return callNative(() => this.#native.deleteUserSessions(userId, except));
    }

    async regenerateSession(sessionId) {
      checkString(sessionId, "sessionId");
      const id = this.#newId();
      return callNative(() => this.#native.regenerateSession(sessionId, id));
    }

    /** Stops the cleanup timer; later async calls reject with SessionStoreClosedError. */
    async close() {
      clearInterval(this.#timer);
      cleanupTimers.unregister(this);
      this.#timer = undefined;
      this.#native.close();
    }

    async [Symbol.asyncDispose ?? Symbol.for("Symbol.asyncDispose")]() {
      await this.close();
    }
  }

  function parseCookie(header) {
    if (!header) return {};
    checkString(header, "header");
    return callNative(() => native.parseCookie(header));
  }

  function serializeCookie(name, value, options = {}) {
    checkString(name, "name");
    checkString(value, "value");
    const wire = toWireCookieOptions(options, "options");
    return callNative(() => native.serializeCookie(name, value, wire));
  }


  // ---- OAuth (SPEC §6) --------------------------------------------------------------------

  /** @type {(storage: object) => object | undefined} */
  let oauthNativeOf;

  /** Shared face of the native OAuth storages (the `@slices/oauth` storage interface). */
  class NativeBackedOAuthStorage {
    #native;
    static {
      oauthNativeOf = (storage) => (#native in storage ? storage.#native : undefined);
    }

    constructor(create) {
      this.#native = callNative(create);
    }

    async getTokens(sessionId) {
      checkString(sessionId, "sessionId");
      return fromWireTokens(await callNative(() => this.#native.getTokens(sessionId)));
    }

    async setTokens(tokens, sessionId) {
      const wire = toWireTokens(tokens, "tokens");
      checkString(sessionId, "sessionId");
      await callNative(() => this.#native.setTokens(wire, sessionId));
    }

    async clearTokens(sessionId) {
      checkString(sessionId, "sessionId");
      await callNative(() => this.#native.clearTokens(sessionId));
    }

    /** Releases the storage's connections or file. */
    async close() {
      await callNative(() => this.#native.close());
    }
  }

  class MemoryOAuthStorage extends NativeBackedOAuthStorage {
    /** `options`: `encryptionKey`, `hashIds` (docs/security.md). */
    constructor(options = {}) {
      if (!isPlainObject(options)) throw fail("options", "an object", options);
      const atRest = atRestOptions(options);
      super(() => native.NativeOAuthStorage.memoryStorage(atRest));
    }
  }

  class SQLiteOAuthStorage extends NativeBackedOAuthStorage {
    /** @param pathOrUrl a file path, `sqlite://<path>` or ":memory:"; `options`: `encryptionKey`, `hashIds` */
    constructor(pathOrUrl, options = {}) {
      checkString(pathOrUrl, "pathOrUrl");
      if (!isPlainObject(options)) throw fail("options", "an object", options);
      const atRest = atRestOptions(options);
      super(() => native.NativeOAuthStorage.sqliteStorage(pathOrUrl, atRest));
    }
  }

  class PostgresOAuthStorage extends NativeBackedOAuthStorage {
    /** Does not connect: the pool connects on first use. */
    constructor(connectionString, options = {}) {
      checkString(connectionString, "connectionString");
      const { max, queryTimeout } = postgresOptions(options);
      const atRest = atRestOptions(options);
      super(() => native.NativeOAuthStorage.postgresStorage(connectionString, max, queryTimeout, atRest));
    }
    /** Creates the tables if missing (also done on first use). */
    async initialize() {
      await callNative(() => oauthNativeOf(this).initialize());
    }
  }

  class RedisOAuthStorage extends NativeBackedOAuthStorage {
    /** Does not connect: the first call does. */
    constructor(url, options = {}) {
      checkString(url, "url");
      const { prefix, max, queryTimeout } = redisOptions(options);
      const atRest = atRestOptions(options);
      super(() => native.NativeOAuthStorage.redisStorage(url, prefix, max, queryTimeout, atRest));
    }
    /** Checks that the server answers (optional). */
    async initialize() {
      await callNative(() => oauthNativeOf(this).initialize());
    }
  }

  // One native handle per JS storage object: the manager and every OAuthClient over the same
  // storage then share one refresh flight per session. The handle refers to the object only
  // weakly (see weakTarget), so the entry goes once no manager, client or user holds the object.
  const jsOAuthStorages = new WeakMap();

  function oauthStorageHandle(storage, name) {
    if (storage === null || typeof storage !== "object") throw fail(name, "an OAuth storage object", storage);
    const own = oauthNativeOf(storage);
    if (own) return own;
    let handle = jsOAuthStorages.get(storage);
    if (handle === undefined) {
      for (const method of ["getTokens", "setTokens", "clearTokens"]) {
        if (typeof storage[method] !== "function") {
          throw new TypeError(`${name} must implement OAuthStorage: ${name}.${method} is not a function`);
        }
      }
      const extras = oauthStorageExtras(storage, name);
      const fns = jsOAuthStorageFunctions(weakTarget(storage, `the JS OAuth storage (${name})`), name, extras);
      handle = callNative(() => native.NativeOAuthStorage.fromJs(fns));
      jsOAuthStorages.set(storage, handle);
    }
    return handle;
  }

  /** What `withOAuthSession` returns. */
  class OAuthSessionManager {
    #native;
    #newId;
    // What the native manager calls, which it refers to only weakly (see weakTarget).
    #storage;
    #callbacks;

    constructor(nativeManager, newId, storage, callbacks) {
      this.#native = nativeManager;
      this.#newId = newId;
      this.#storage = storage;
      this.#callbacks = callbacks;
    }

    /** Fetches userinfo, creates the session, stores the tokens; `null` on failure. */
    async createOAuthSession(tokens) {
      const wire = toWireTokens(tokens, "tokens");
      const id = this.#newId();
      return callNativeFor(this, () => this.#native.createOAuthSession(wire, id));
    }

    /** The session with its tokens (refreshed first when due), or `null`. */
    async getOAuthSession(sessionId) {
      checkString(sessionId, "sessionId");
      const result = await callNativeFor(this, () => this.#native.getOAuthSession(sessionId));
      if (result === null || result === undefined) return null;
      const session = fromWire(result.session);
      if (result.tokens !== undefined && result.tokens !== null) session.tokens = fromWireTokens(result.tokens);
      return session;
    }

    async getAccessToken(sessionId) {
      checkString(sessionId, "sessionId");
      return callNativeFor(this, () => this.#native.getAccessToken(sessionId));
    }

    async hasValidOAuthTokens(sessionId) {
      checkString(sessionId, "sessionId");
      return callNativeFor(this, () => this.#native.hasValidOAuthTokens(sessionId));
    }

    /** Clears the tokens, deletes the session, calls `onLogout`. Idempotent. */
    async logout(sessionId) {
      checkString(sessionId, "sessionId");
      await callNativeFor(this, () => this.#native.logout(sessionId));
    }
  }

  function withOAuthSession(sessionStore, oauthConfig, oauthStorage, options = {}) {
    const store = storeInternals(sessionStore);
    if (store === undefined) throw fail("sessionStore", "a SessionStore of this package", sessionStore);
    const config = toWireOAuthConfig(oauthConfig, "oauthConfig");
    const storage = oauthStorageHandle(oauthStorage, "oauthStorage");
    if (!isPlainObject(options)) throw fail("options", "an object", options);
    const callbacks = {
      onTokenRefresh: optionalFunction(options.onTokenRefresh, "options.onTokenRefresh"),
      onLogout: optionalFunction(options.onLogout, "options.onLogout"),
      onError: optionalFunction(options.onError, "options.onError"),
    };
    const wireOptions = {
      autoRefresh: options.autoRefresh === undefined ? undefined : checkBoolean(options.autoRefresh, "options.autoRefresh"),
      refreshSkew: optionalMillis(options.refreshSkew, "options.refreshSkew"),
      requestTimeout: optionalMillis(options.requestTimeout, "options.requestTimeout"),
      lockWait: optionalMillis(options.lockWait, "options.lockWait"),
    };
    // One callback for every event: the native side awaits it, in the order events happen.
    const events = oauthEventFunctions(weakTarget(callbacks, "the OAuth callbacks of withOAuthSession"));
    const manager = callNative(() => native.NativeOAuthManager.create(store.native, config, storage, wireOptions, events));
    return new OAuthSessionManager(manager, store.newId, oauthStorage, callbacks);
  }

  /** Mirrors `@slices/oauth`'s OAuthClient: PKCE login, userinfo and token refresh for one session. */
  class OAuthClient {
    #native;
    // What the native client calls, which it refers to only weakly (see weakTarget).
    #storage;

    constructor(config, storage, sessionId) {
      const wire = toWireOAuthConfig(config, "config");
      const handle = oauthStorageHandle(storage, "storage");
      checkString(sessionId, "sessionId");
      this.#native = callNative(() => new native.NativeOAuthClient(wire, handle, sessionId));
      this.#storage = storage;
    }

    /** `{ authorizationUrl, state, codeVerifier }`; the state is stored for `handleCallback`. */
    async authorize(options = {}) {
      if (!isPlainObject(options)) throw fail("options", "an object", options);
      const loginHint = optionalString(options.loginHint, "options.loginHint");
      const result = await callNativeFor(this, () => this.#native.authorize(loginHint));
      return { authorizationUrl: result.authorizationUrl, state: result.state, codeVerifier: result.codeVerifier };
    }

    /** Exchanges the code; rejects an unknown or reused state. Does not store the tokens. */
    async handleCallback(params) {
      if (!isPlainObject(params)) throw fail("params", "an object with code and state", params);
      const code = checkString(params.code, "params.code");
      const state = checkString(params.state, "params.state");
      return fromWireTokens(await callNativeFor(this, () => this.#native.handleCallback(code, state)));
    }

    /** The userinfo JSON, plus `handle` copied from `name` when present. */
    async getUserInfo() {
      return callNativeFor(this, () => this.#native.getUserInfo());
    }

    /** Always refreshes (sharing a refresh already in flight) and resolves to the new tokens. */
    async refreshAccessToken() {
      return fromWireTokens(await callNativeFor(this, () => this.#native.refreshAccessToken()));
    }

    /** A valid access token, refreshed when due. */
    async ensureValidToken() {
      return callNativeFor(this, () => this.#native.ensureValidToken());
    }

    /** Clears this session's tokens. */
    async logout() {
      await callNativeFor(this, () => this.#native.logout());
    }
  }

  return {
    SessionStore,
    MemoryAdapter,
    SQLiteAdapter,
    PostgresAdapter,
    RedisAdapter,
    parseCookie,
    serializeCookie,
    withOAuthSession,
    OAuthClient,
    MemoryOAuthStorage,
    SQLiteOAuthStorage,
    PostgresOAuthStorage,
    RedisOAuthStorage,
  };
}

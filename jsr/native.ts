// The Deno FFI implementation of the "native" interface that npm/session.js builds the public
// API from (npm/native.d.ts describes it; the N-API addon is the other implementation). Only
// marshalling lives here: JSON over (pointer, length) buffers, handle lifetimes, and the
// channel through which started calls complete and Rust calls JS (custom adapters, OAuth
// storages, OAuth events). docs/deno-ffi.md explains the design.

import { locateLibrary } from "./loader.ts";

/** Must equal ABI_VERSION in bindings-deno/src/lib.rs. */
const ABI_VERSION = 4;

// Memory and SQLite handles are called synchronously (`*_call`). PostgreSQL and JS-backed
// handles, OAuth managers and clients are started (`*_start`, synchronous too: it returns at
// once) and complete through this context's channel, which one `nonblocking` long poll
// (`ssd_channel_wait`) watches while anything is outstanding.
const START = { parameters: ["u64", "u64", "u64", "u32", "buffer", "usize"], result: "pointer" } as const;
const SYMBOLS = {
  ssd_abi_version: { parameters: [], result: "u32" },
  ssd_buffer_free: { parameters: ["pointer"], result: "void" },
  ssd_adapter_open: { parameters: ["buffer", "usize"], result: "pointer" },
  ssd_adapter_call: { parameters: ["u64", "u32", "buffer", "usize"], result: "pointer" },
  ssd_adapter_start: START,
  ssd_adapter_free: { parameters: ["u64"], result: "void" },
  ssd_store_open: { parameters: ["buffer", "usize"], result: "pointer" },
  ssd_store_call: { parameters: ["u64", "u32", "buffer", "usize"], result: "pointer" },
  ssd_store_start: START,
  ssd_store_free: { parameters: ["u64"], result: "void" },
  ssd_store_reply: { parameters: ["u64", "u32", "buffer", "usize", "buffer", "usize"], result: "pointer" },
  ssd_parse_cookie: { parameters: ["buffer", "usize"], result: "pointer" },
  ssd_serialize_cookie: { parameters: ["buffer", "usize"], result: "pointer" },
  ssd_channel_open: { parameters: [], result: "pointer" },
  // The long poll: holds one of Deno's blocking threads (one per context, not per call).
  ssd_channel_wait: { parameters: ["u64", "u32"], result: "u32", nonblocking: true },
  ssd_channel_wake: { parameters: ["u64"], result: "void" },
  ssd_channel_take: { parameters: ["u64"], result: "pointer" },
  ssd_channel_reply: { parameters: ["u64", "u64", "buffer", "usize"], result: "void" },
  ssd_channel_close: { parameters: ["u64"], result: "void" },
  ssd_oauth_storage_open: { parameters: ["buffer", "usize"], result: "pointer" },
  ssd_oauth_storage_call: { parameters: ["u64", "u32", "buffer", "usize"], result: "pointer" },
  ssd_oauth_storage_start: START,
  ssd_oauth_storage_free: { parameters: ["u64"], result: "void" },
  ssd_oauth_manager_open: { parameters: ["buffer", "usize"], result: "pointer" },
  ssd_oauth_manager_start: START,
  ssd_oauth_manager_free: { parameters: ["u64"], result: "void" },
  ssd_oauth_client_open: { parameters: ["buffer", "usize"], result: "pointer" },
  ssd_oauth_client_start: START,
  ssd_oauth_client_free: { parameters: ["u64"], result: "void" },
} as const;

// Operation numbers: the order of AdapterOp / StoreOp in bindings-deno/src/handles.rs.
const AdapterOp = {
  get: 0,
  set: 1,
  update: 2,
  delete: 3,
  cleanup: 4,
  exists: 5,
  listByUser: 6,
  deleteByUser: 7,
  initialize: 8,
  close: 9,
  clear: 10,
  size: 11,
  keys: 12,
} as const;

const StoreOp = {
  createSession: 0,
  getSession: 1,
  updateSession: 2,
  deleteSession: 3,
  getSessionFromCookieHeader: 4,
  currentUser: 5,
  sessionCookie: 6,
  logoutCookie: 7,
  cleanup: 8,
  listUserSessions: 9,
  deleteUserSessions: 10,
  regenerateSession: 11,
  close: 12,
} as const;

// The order of StorageOp / ManagerOp / ClientOp in bindings-deno/src/oauth/mod.rs.
const OAuthStorageOp = {
  getTokens: 0,
  setTokens: 1,
  clearTokens: 2,
  initialize: 3,
  close: 4,
  size: 5,
} as const;

const OAuthManagerOp = {
  createOAuthSession: 0,
  getOAuthSession: 1,
  getAccessToken: 2,
  hasValidOAuthTokens: 3,
  logout: 4,
} as const;

const OAuthClientOp = {
  authorize: 0,
  handleCallback: 1,
  getUserInfo: 2,
  refreshAccessToken: 3,
  ensureValidToken: 4,
  logout: 5,
} as const;

const libraryPath = await locateLibrary();
const library: Deno.DynamicLibrary<typeof SYMBOLS> = Deno.dlopen(libraryPath, SYMBOLS);
const ffi = library.symbols;
{
  const abi = ffi.ssd_abi_version();
  if (abi !== ABI_VERSION) {
    library.close();
    throw new Error(
      `@slices-rs/session: ${libraryPath} has native ABI ${abi}, this package needs ${ABI_VERSION} ` +
        "(a library from another version: rebuild it, or unset SLICES_SESSION_LIB)",
    );
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** JSON text as bytes for the native side. */
function encode(value: unknown): Uint8Array<ArrayBuffer> {
  return encoder.encode(JSON.stringify(value));
}

/**
 * As `encode`, keeping non-finite numbers (JSON would turn them into null, i.e. "absent"): a
 * `maxAge: NaN` must reach the core's cookie-option validation and be refused there.
 */
function encodeKeepingNonFinite(value: unknown): Uint8Array<ArrayBuffer> {
  return encoder.encode(
    JSON.stringify(value, (_key, v) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v)),
  );
}

/**
 * Reads and frees a reply: `[u64 LE body length][body][NUL]`, the body being the JSON result,
 * or `!` and an error text "Class: message" (thrown as an Error; session.js maps the class).
 */
function reply(pointer: Deno.PointerValue): unknown {
  return JSON.parse(replyBody(pointer));
}

/** `reply` without the parse: the body text, or the thrown error. */
function replyBody(pointer: Deno.PointerValue): string {
  if (pointer === null) throw new Error("AdapterError: the native library returned no reply");
  let text: string;
  try {
    text = Deno.UnsafePointerView.getCString(pointer, 8);
  } finally {
    ffi.ssd_buffer_free(pointer);
  }
  if (text.charCodeAt(0) === 33 /* "!" */) throw new Error(text.slice(1));
  return text;
}

// Arguments are encoded into one reused buffer: every export only borrows it while it runs
// (a started call parses its arguments before it returns), and no JS runs meanwhile.
let scratch = new Uint8Array(4096);

/** `args` as JSON in the scratch buffer; the view covers exactly the encoded bytes. */
function encodeScratch(args: unknown): Uint8Array<ArrayBuffer> {
  return textScratch(JSON.stringify(args));
}

/** `text` as UTF-8 in the scratch buffer; the view covers exactly the encoded bytes. */
function textScratch(text: string): Uint8Array<ArrayBuffer> {
  // UTF-8 takes at most 3 bytes per UTF-16 code unit.
  if (text.length * 3 > scratch.length) scratch = new Uint8Array(text.length * 3);
  const { written } = encoder.encodeInto(text, scratch);
  return scratch.subarray(0, written);
}

// Handles are freed by close() and, when close() was forgotten, by these finalizers. Freeing a
// handle may release JS objects the native side called (a JS adapter, an OAuth storage, OAuth
// callbacks): the finalizer then lets them go at once (drainReleases).
function finalizer(free: (handle: bigint) => void): FinalizationRegistry<bigint> {
  return new FinalizationRegistry<bigint>((handle) => {
    free(handle);
    drainReleases();
  });
}
const adapterFinalizer = finalizer((handle) => ffi.ssd_adapter_free(handle));
const storeFinalizer = finalizer((handle) => ffi.ssd_store_free(handle));
const oauthStorageFinalizer = finalizer((handle) => ffi.ssd_oauth_storage_free(handle));
const oauthManagerFinalizer = finalizer((handle) => ffi.ssd_oauth_manager_free(handle));
const oauthClientFinalizer = finalizer((handle) => ffi.ssd_oauth_client_free(handle));

interface Opened {
  id: number;
  isSync: boolean;
}

/** `NativeAdapter` of npm/native.d.ts. */
class FfiAdapter {
  readonly id: number;
  readonly isSync: boolean;
  readonly #handle: bigint;

  private constructor(spec: Record<string, unknown>) {
    const bytes = encode(spec);
    const opened = reply(ffi.ssd_adapter_open(bytes, BigInt(bytes.length))) as Opened;
    this.id = opened.id;
    this.#handle = BigInt(opened.id);
    this.isSync = opened.isSync;
    adapterFinalizer.register(this, this.#handle, this);
  }

  static memoryAdapter(): FfiAdapter {
    return new FfiAdapter({ kind: "memory" });
  }

  static sqliteAdapter(path: string, busyTimeoutMs?: number | null): FfiAdapter {
    return new FfiAdapter({ kind: "sqlite", path, busyTimeoutMs: busyTimeoutMs ?? null });
  }

  static postgresAdapter(url: string, maxConnections?: number | null, queryTimeoutMs?: number | null): FfiAdapter {
    return new FfiAdapter({ kind: "postgres", url, maxConnections: maxConnections ?? null, queryTimeoutMs: queryTimeoutMs ?? null });
  }

  static redisAdapter(url: string, prefix?: string | null, maxConnections?: number | null, queryTimeoutMs?: number | null): FfiAdapter {
    return new FfiAdapter({ kind: "redis", url, prefix: prefix ?? null, maxConnections: maxConnections ?? null, queryTimeoutMs: queryTimeoutMs ?? null });
  }

  #call(op: number, args: unknown[], sync: boolean = this.isSync): unknown {
    if (sync) {
      const bytes = encodeScratch(args);
      return reply(ffi.ssd_adapter_call(this.#handle, op, bytes, BigInt(bytes.length)));
    }
    return start(ffi.ssd_adapter_start, this, this.#handle, op, args);
  }

  get(id: string): unknown {
    return this.#call(AdapterOp.get, [id]);
  }
  set(id: string, data: unknown): unknown {
    return this.#call(AdapterOp.set, [id, data]);
  }
  update(id: string, patch: unknown): unknown {
    return this.#call(AdapterOp.update, [id, patch]);
  }
  delete(id: string): unknown {
    return this.#call(AdapterOp.delete, [id]);
  }
  cleanup(expiresBefore: number): unknown {
    return this.#call(AdapterOp.cleanup, [expiresBefore]);
  }
  exists(id: string): unknown {
    return this.#call(AdapterOp.exists, [id]);
  }
  listByUser(userId: string): unknown {
    return this.#call(AdapterOp.listByUser, [userId]);
  }
  deleteByUser(userId: string, except?: string | null): unknown {
    return this.#call(AdapterOp.deleteByUser, [userId, except ?? null]);
  }
  initialize(): unknown {
    return this.#call(AdapterOp.initialize, []);
  }
  /** Closes the adapter and releases its handle (the native side drops it once closed). */
  close(): unknown {
    const done = (value: unknown): unknown => {
      adapterFinalizer.unregister(this);
      return value;
    };
    const result = this.#call(AdapterOp.close, []);
    return result instanceof Promise ? result.then(done) : done(result);
  }
  clear(): void {
    this.#call(AdapterOp.clear, [], true);
  }
  size(): number {
    return this.#call(AdapterOp.size, [], true) as number;
  }
  keys(): string[] {
    return this.#call(AdapterOp.keys, [], true) as string[];
  }
}

// ---- The channel: completions of started calls, and JS objects called from Rust -------------

/**
 * The functions npm/session.js makes from a user's object: jsAdapterFunctions() for an adapter,
 * `{getTokens, setTokens, clearTokens}` for an OAuth storage, `{onEvent}` for withOAuthSession's
 * callbacks. Each returns a Promise.
 */
type JsFns = Record<string, ((...args: unknown[]) => Promise<unknown>) | undefined>;

/** What `ssd_channel_take` returns, in queue order. */
type ChannelItem =
  | { call: number; ok: unknown }
  | { call: number; err: string }
  | { id: number; bridge: number; method: string; args: unknown[] }
  | { release: number };

/**
 * The JS functions native handles call, by bridge number (the native side asks for them by
 * number, and releases the number when its handle is gone); held here until that release.
 *
 * npm/session.js makes an OAuth storage's and withOAuthSession's functions refer to the user's
 * objects only weakly (its OAuthSessionManager and OAuthClient hold those, and each of their
 * calls keeps them alive until it settles): an entry here never keeps a storage, whose handle
 * session.js keys by the storage object, or callbacks that refer to their manager alive.
 */
const bridges = new Map<number, JsFns>();
let nextBridge = 1;

/**
 * Started calls not settled yet, by call number. Each entry holds the JS object that owns the
 * handle (`owner`): a call keeps it alive until it settles, so that its finalizer cannot free
 * the handle, and with it the objects the call may still need (a JS storage, callbacks).
 */
const calls = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void; owner: object }>();
let nextCall = 1;
/** Requests from the native side whose JS function has not settled yet. */
let running = 0;

let channel: bigint | undefined;
let channelClosed = false;
/** The poll loop runs (at most one per context). */
let polling = false;
/** A long poll (`ssd_channel_wait`) is pending. */
let waiting = false;
/**
 * The long poll's timeout. A wait never outlives it, so the blocking thread of a context that
 * ended (a terminated Worker) is back within this time; while calls are outstanding the loop
 * simply waits again.
 */
const WAIT_MS = 1000;
const WAIT_CLOSED = 2;

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Answers request `id` of the native side. */
function replyTo(id: number, outcome: { ok?: unknown; err?: string }): void {
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = encode(outcome);
  } catch (error) {
    // A result JSON cannot carry (a BigInt, a cycle): still settle the request.
    bytes = encode({ err: `the adapter returned a value that cannot be sent: ${errorText(error)}` });
  }
  ffi.ssd_channel_reply(channel ?? 0n, BigInt(id), bytes, BigInt(bytes.length));
}

/** Runs a request's function; the outcome goes back with `replyTo` whenever it settles. */
function run(id: number, fn: (...args: unknown[]) => Promise<unknown>, args: unknown[]): void {
  running += 1;
  Promise.resolve()
    .then(() => fn(...args))
    .then(
      (ok) => replyTo(id, { ok }),
      (error) => replyTo(id, { err: errorText(error) }),
    )
    .finally(() => {
      running -= 1;
    });
}

/**
 * Takes everything queued on the channel, on the JS thread, in queue order: settles started
 * calls, starts requested functions, forgets released objects (never throws).
 */
function drain(): void {
  let items: ChannelItem[];
  try {
    items = reply(ffi.ssd_channel_take(channel ?? 0n)) as ChannelItem[];
  } catch (error) {
    console.error("@slices-rs/session: cannot read the native channel:", error);
    return;
  }
  for (const item of items) {
    if ("call" in item) {
      const pending = calls.get(item.call);
      if (pending === undefined) continue;
      calls.delete(item.call);
      if ("err" in item) pending.reject(new Error(item.err));
      else pending.resolve(item.ok);
    } else if ("release" in item) {
      bridges.delete(item.release);
    } else {
      const fn = bridges.get(item.bridge)?.[item.method];
      if (fn === undefined) {
        replyTo(item.id, { err: `${item.method} is not available on this JS object` });
        continue;
      }
      // Started now, in queue order, settled whenever the function's Promise does. (OAuth
      // events are ordered by the native side: it queues an event only once the previous one
      // settled.)
      run(item.id, fn, item.args);
    }
  }
  // Drained outside the poll loop (below) with nothing left outstanding: end the pending wait
  // now, or it would keep the event loop alive until its timeout.
  if (waiting && calls.size === 0 && running === 0) ffi.ssd_channel_wake(channel ?? 0n);
}

/**
 * The poll loop: one long poll at a time, only while calls or requests are outstanding (a
 * pending wait keeps the process alive, as the calls it stands for should; an idle context
 * polls nothing and may exit).
 */
async function pollLoop(opened: bigint): Promise<void> {
  polling = true;
  try {
    while ((calls.size > 0 || running > 0) && !channelClosed) {
      waiting = true;
      let status: number;
      try {
        status = await ffi.ssd_channel_wait(opened, WAIT_MS);
      } finally {
        waiting = false;
      }
      if (status === WAIT_CLOSED) break;
      drain();
    }
  } finally {
    polling = false;
  }
}

/**
 * Drains the queue now, on the JS thread. Releases come with no call outstanding: after a
 * handle was freed or a store closed, nothing may poll for a long time (OAuth callbacks that
 * never fire, an app that stopped using its JS adapter), so the objects the native side let go
 * of are dropped here.
 */
function drainReleases(): void {
  if (channel !== undefined && !channelClosed) drain();
}

function openChannel(): bigint {
  if (channel !== undefined) return channel;
  const opened = BigInt(reply(ffi.ssd_channel_open()) as number);
  channel = opened;
  // When this JS context ends (a worker, a `deno test` module) while the process goes on: the
  // pending wait returns, and requests still waiting for this context fail. (A terminated
  // Worker gets no unload event: its requests fail once its poll has not come back for a
  // while, see bindings-deno/src/channel.rs.)
  globalThis.addEventListener("unload", () => {
    channelClosed = true;
    ffi.ssd_channel_close(opened);
  });
  return opened;
}

type StartSymbol = (
  channel: bigint,
  call: bigint,
  handle: bigint,
  op: number,
  args: Uint8Array<ArrayBuffer>,
  len: bigint,
) => Deno.PointerValue;

/**
 * Starts operation `op` of `handle` (owned by `owner`). The native side polls it once: done
 * then, its reply settles the Promise at once; otherwise it goes on on the native runtime, and
 * the Promise settles when its completion is drained from the channel.
 */
function start(symbol: StartSymbol, owner: object, handle: bigint, op: number, args: unknown[]): Promise<unknown> {
  const opened = openChannel();
  if (channelClosed) return Promise.reject(new Error("AdapterError: the JS context of this object has ended"));
  const call = nextCall++;
  const bytes = encodeScratch(args);
  const done = symbol(opened, BigInt(call), handle, op, bytes, BigInt(bytes.length));
  if (done !== null) {
    // Done on its first poll (or not started: bad arguments, a stale handle): its reply.
    try {
      return Promise.resolve(reply(done));
    } catch (error) {
      return Promise.reject(error);
    }
  }
  const settled = new Promise<unknown>((resolve, reject) => calls.set(call, { resolve, reject, owner }));
  if (!polling) void pollLoop(opened);
  return settled;
}

/**
 * Keeps `fns` under a new bridge number on this context's channel while `open` makes the native
 * handle that calls them (forgotten again if that fails; later, at the native side's release).
 */
function withBridge<T>(fns: JsFns, open: (js: { channel: number; bridge: number }) => T): T {
  const bridge = nextBridge++;
  const channel = Number(openChannel());
  bridges.set(bridge, fns);
  try {
    return open({ channel, bridge });
  } catch (error) {
    bridges.delete(bridge);
    throw error;
  }
}

/** `NativeStore` of npm/native.d.ts. */
class FfiStore {
  /** The native handle (for withOAuthSession). */
  readonly id: number;
  readonly isSync: boolean;
  readonly #handle: bigint;

  private constructor(spec: Record<string, unknown>) {
    const bytes = encodeKeepingNonFinite(spec);
    const opened = reply(ffi.ssd_store_open(bytes, BigInt(bytes.length))) as Opened;
    this.id = opened.id;
    this.#handle = BigInt(opened.id);
    this.isSync = opened.isSync;
    storeFinalizer.register(this, this.#handle, this);
  }

  static withNativeAdapter(adapter: FfiAdapter, config: unknown): FfiStore {
    return new FfiStore({ adapter: adapter.id, config });
  }

  static withJsAdapter(fns: JsFns, config: unknown): FfiStore {
    const methods = {
      listByUser: typeof fns.listByUser === "function",
      deleteByUser: typeof fns.deleteByUser === "function",
    };
    return withBridge(fns, (js) => new FfiStore({ js: { ...js, ...methods }, config }));
  }

  #call(op: number, args: unknown[], sync: boolean = this.isSync): unknown {
    if (sync) {
      const bytes = encodeScratch(args);
      return reply(ffi.ssd_store_call(this.#handle, op, bytes, BigInt(bytes.length)));
    }
    return start(ffi.ssd_store_start, this, this.#handle, op, args);
  }

  createSession(id: string | undefined | null, userId: string, handle?: string | null, data?: string | null): unknown {
    return this.#call(StoreOp.createSession, [id ?? null, userId, handle ?? null, data ?? null]);
  }
  getSession(id: string): unknown {
    return this.#call(StoreOp.getSession, [id]);
  }
  /** `updateSession`, the wire patch's fields as arguments (the N-API binding's shape). */
  updateSessionFields(
    id: string,
    userId?: string,
    handle?: string,
    clearHandle?: boolean,
    isAuthenticated?: boolean,
    data?: string,
    clearData?: boolean,
    createdAt?: number,
    expiresAt?: number,
    lastAccessedAt?: number,
  ): unknown {
    const patch = { userId, handle, clearHandle, isAuthenticated, data, clearData, createdAt, expiresAt, lastAccessedAt };
    return this.#call(StoreOp.updateSession, [id, patch]);
  }
  deleteSession(id: string): unknown {
    return this.#call(StoreOp.deleteSession, [id]);
  }
  getSessionFromCookieHeader(header?: string | null): unknown {
    return this.#call(StoreOp.getSessionFromCookieHeader, [header ?? null]);
  }
  currentUser(header?: string | null): unknown {
    return this.#call(StoreOp.currentUser, [header ?? null]);
  }
  sessionCookie(id: string): string {
    return this.#call(StoreOp.sessionCookie, [id], true) as string;
  }
  logoutCookie(): string {
    return this.#call(StoreOp.logoutCookie, [], true) as string;
  }
  cleanup(): unknown {
    return this.#call(StoreOp.cleanup, []);
  }
  listUserSessions(userId: string): unknown {
    return this.#call(StoreOp.listUserSessions, [userId]);
  }
  deleteUserSessions(userId: string, except?: string | null): unknown {
    return this.#call(StoreOp.deleteUserSessions, [userId, except ?? null]);
  }
  regenerateSession(id: string, newId?: string | null): unknown {
    return this.#call(StoreOp.regenerateSession, [id, newId ?? null]);
  }
  /**
   * Marks the store closed and lets its adapter go; false when already closed. The small
   * remainder the cookie methods need is freed with the object (finalizer).
   */
  close(): boolean {
    const closed = this.#call(StoreOp.close, [], true) as boolean;
    // A JS adapter is released now (unless calls are still in flight): let the user's object go.
    drainReleases();
    return closed;
  }
}

function parseCookie(header: string): Record<string, string> {
  const bytes = encoder.encode(header);
  const pairs = reply(ffi.ssd_parse_cookie(bytes, BigInt(bytes.length))) as [string, string][];
  // Assigned in header order, as the N-API binding sets them: first-seen key order, later
  // duplicates winning (and the same treatment of keys such as "__proto__").
  const out: Record<string, string> = {};
  for (const [key, value] of pairs) out[key] = value;
  return out;
}

function serializeCookie(name: string, value: string, options?: unknown): string {
  const bytes = encodeKeepingNonFinite([name, value, options ?? null]);
  return reply(ffi.ssd_serialize_cookie(bytes, BigInt(bytes.length))) as string;
}

// ---- OAuth (SPEC §6) ----------------------------------------------------------------------------

/**
 * `NativeOAuthStorage` of npm/native.d.ts: a native token storage, or a user's JS storage
 * object (`fromJs`). npm/session.js makes one per JS storage object, so the manager and every
 * OAuthClient over that object share one refresh flight per session.
 */
class FfiOAuthStorage {
  /** The native handle (for managers and clients). */
  readonly id: number;
  readonly isSync: boolean;
  readonly #handle: bigint;

  private constructor(spec: Record<string, unknown>) {
    const bytes = encode(spec);
    const opened = reply(ffi.ssd_oauth_storage_open(bytes, BigInt(bytes.length))) as Opened;
    this.id = opened.id;
    this.#handle = BigInt(opened.id);
    this.isSync = opened.isSync;
    oauthStorageFinalizer.register(this, this.#handle, this);
  }

  // `atRest`: `{ keys, hashIds }` (docs/security.md), as npm/session.js passes it, or absent.
  static memoryStorage(atRest?: unknown): FfiOAuthStorage {
    return new FfiOAuthStorage({ kind: "memory", atRest: atRest ?? null });
  }

  static sqliteStorage(path: string, atRest?: unknown): FfiOAuthStorage {
    return new FfiOAuthStorage({ kind: "sqlite", path, atRest: atRest ?? null });
  }

  static postgresStorage(url: string, maxConnections?: number | null, queryTimeoutMs?: number | null, atRest?: unknown): FfiOAuthStorage {
    return new FfiOAuthStorage({ kind: "postgres", url, maxConnections: maxConnections ?? null, queryTimeoutMs: queryTimeoutMs ?? null, atRest: atRest ?? null });
  }

  static redisStorage(url: string, prefix?: string | null, maxConnections?: number | null, queryTimeoutMs?: number | null, atRest?: unknown): FfiOAuthStorage {
    return new FfiOAuthStorage({ kind: "redis", url, prefix: prefix ?? null, maxConnections: maxConnections ?? null, queryTimeoutMs: queryTimeoutMs ?? null, atRest: atRest ?? null });
  }

  /**
   * `fns`: `getTokens`, `setTokens(tokens, sessionId)`, `clearTokens`, and the optional
   * coordination methods the user's object has (npm/session.js), bound to the user's object.
   */
  static fromJs(fns: JsFns): FfiOAuthStorage {
    const methods = Object.keys(fns).filter((name) => typeof fns[name] === "function");
    return withBridge(fns, (js) => new FfiOAuthStorage({ kind: "js", ...js, methods }));
  }

  #call(op: number, args: unknown[], sync: boolean = this.isSync): unknown {
    if (sync) {
      const bytes = encodeScratch(args);
      return reply(ffi.ssd_oauth_storage_call(this.#handle, op, bytes, BigInt(bytes.length)));
    }
    return start(ffi.ssd_oauth_storage_start, this, this.#handle, op, args);
  }

  getTokens(sessionId: string): unknown {
    return this.#call(OAuthStorageOp.getTokens, [sessionId]);
  }
  setTokens(tokens: unknown, sessionId: string): unknown {
    return this.#call(OAuthStorageOp.setTokens, [tokens, sessionId]);
  }
  clearTokens(sessionId: string): unknown {
    return this.#call(OAuthStorageOp.clearTokens, [sessionId]);
  }
  /** PostgreSQL: creates the tables now; Redis: checks the server answers; the others have nothing to do. */
  initialize(): unknown {
    return this.#call(OAuthStorageOp.initialize, []);
  }
  /** Closes the storage; the handle stays (managers and clients over it get its errors). */
  close(): unknown {
    return this.#call(OAuthStorageOp.close, []);
  }
  /** Memory storage only: how many sessions have tokens. */
  size(): number {
    return this.#call(OAuthStorageOp.size, [], true) as number;
  }
}

/** `NativeOAuthManager` of npm/native.d.ts: what `withOAuthSession` returns. */
class FfiOAuthManager {
  readonly #handle: bigint;

  private constructor(handle: bigint) {
    this.#handle = handle;
    oauthManagerFinalizer.register(this, handle, this);
  }

  /**
   * `events.onEvent(event)` receives every callback (`tokenRefresh`, `logout`, `error`) through
   * this context's channel, one at a time and in the order they happened: the native side
   * awaits each one before it goes on.
   */
  static create(
    store: FfiStore,
    config: unknown,
    storage: FfiOAuthStorage,
    options: unknown,
    events: JsFns,
  ): FfiOAuthManager {
    return withBridge(events, (js) => {
      const bytes = encode({ store: store.id, storage: storage.id, config, options, events: js });
      const opened = reply(ffi.ssd_oauth_manager_open(bytes, BigInt(bytes.length))) as Opened;
      return new FfiOAuthManager(BigInt(opened.id));
    });
  }

  #call(op: number, args: unknown[]): Promise<unknown> {
    return start(ffi.ssd_oauth_manager_start, this, this.#handle, op, args);
  }

  createOAuthSession(tokens: unknown, sessionId?: string | null): Promise<unknown> {
    return this.#call(OAuthManagerOp.createOAuthSession, [tokens, sessionId ?? null]);
  }
  getOAuthSession(sessionId: string): Promise<unknown> {
    return this.#call(OAuthManagerOp.getOAuthSession, [sessionId]);
  }
  getAccessToken(sessionId: string): Promise<unknown> {
    return this.#call(OAuthManagerOp.getAccessToken, [sessionId]);
  }
  hasValidOAuthTokens(sessionId: string): Promise<unknown> {
    return this.#call(OAuthManagerOp.hasValidOAuthTokens, [sessionId]);
  }
  logout(sessionId: string): Promise<unknown> {
    return this.#call(OAuthManagerOp.logout, [sessionId]);
  }
}

/** `NativeOAuthClient` of npm/native.d.ts: `new OAuthClient(config, storage, sessionId)`. */
class FfiOAuthClient {
  readonly #handle: bigint;

  constructor(config: unknown, storage: FfiOAuthStorage, sessionId: string) {
    const bytes = encode({ config, storage: storage.id, sessionId });
    const opened = reply(ffi.ssd_oauth_client_open(bytes, BigInt(bytes.length))) as Opened;
    this.#handle = BigInt(opened.id);
    oauthClientFinalizer.register(this, this.#handle, this);
  }

  #call(op: number, args: unknown[]): Promise<unknown> {
    return start(ffi.ssd_oauth_client_start, this, this.#handle, op, args);
  }

  authorize(loginHint?: string | null): Promise<unknown> {
    return this.#call(OAuthClientOp.authorize, [loginHint ?? null]);
  }
  handleCallback(code: string, state: string): Promise<unknown> {
    return this.#call(OAuthClientOp.handleCallback, [code, state]);
  }
  getUserInfo(): Promise<unknown> {
    return this.#call(OAuthClientOp.getUserInfo, []);
  }
  refreshAccessToken(): Promise<unknown> {
    return this.#call(OAuthClientOp.refreshAccessToken, []);
  }
  ensureValidToken(): Promise<unknown> {
    return this.#call(OAuthClientOp.ensureValidToken, []);
  }
  logout(): Promise<unknown> {
    return this.#call(OAuthClientOp.logout, []);
  }
}

// ---- request-path replies (core/src/reply.rs; npm/session.js SessionReader) ---------------

/** A reader of one synchronous store: its handle and the reply words it exchanges. */
interface ReplyReader {
  readonly store: bigint;
  readonly words: Uint32Array<ArrayBuffer>;
  readonly wordCount: bigint;
}

const REPLY_STATUS = 13; // ssd_store_reply's status word: 0 none, 1 same, 2 full, 3 error
const NO_TEXT = new Uint8Array(0);

function openReplyReader(store: FfiStore, words: Uint32Array<ArrayBuffer>): ReplyReader {
  if (!store.isSync) throw new Error("SessionError: reply readers exist only for synchronous stores");
  if (words.length < 16) throw new Error("TypeError: the reply words need 16 elements");
  return { store: BigInt(store.id), words, wordCount: BigInt(words.length) };
}

/** null, 1 (the hinted record: timestamps in the words) or the record's JSON text. */
function storeReply(reader: ReplyReader, kind: number, text: string | null | undefined): null | number | string {
  let bytes = NO_TEXT;
  if (typeof text === "string") {
    bytes = textScratch(text);
  } else if (kind === 0) {
    kind = 2;
  }
  const { words } = reader;
  const pointer = ffi.ssd_store_reply(reader.store, kind, bytes, BigInt(bytes.length), words, reader.wordCount);
  const status = words[REPLY_STATUS];
  if (status === 0) return null;
  if (status === 1) return 1;
  // Status 2 is the record's JSON, 3 an error body ("!..."), which replyBody throws.
  const body = replyBody(pointer);
  if (status === 3) throw new Error(body);
  return body;
}

const replyFunctionsObject = {
  fromHeader: (reader: ReplyReader, header?: string | null) => storeReply(reader, 0, header),
  byId: (reader: ReplyReader, id: string) => {
    if (typeof id !== "string") throw new Error("TypeError: sessionId must be a string");
    return storeReply(reader, 1, id);
  },
};

/** The object npm/session.js's createApi() takes. */
export interface NativeBinding {
  readonly NativeAdapter: typeof FfiAdapter;
  readonly NativeStore: typeof FfiStore;
  readonly NativeOAuthStorage: typeof FfiOAuthStorage;
  readonly NativeOAuthManager: typeof FfiOAuthManager;
  readonly NativeOAuthClient: typeof FfiOAuthClient;
  parseCookie(header: string): Record<string, string>;
  serializeCookie(name: string, value: string, options?: unknown): string;
  openReplyReader(store: FfiStore, words: Uint32Array<ArrayBuffer>): ReplyReader;
  replyFunctions(): typeof replyFunctionsObject;
  /** Where the library was loaded from (diagnostics). */
  readonly libraryPath: string;
}

export const native: NativeBinding = {
  NativeAdapter: FfiAdapter,
  NativeStore: FfiStore,
  NativeOAuthStorage: FfiOAuthStorage,
  NativeOAuthManager: FfiOAuthManager,
  NativeOAuthClient: FfiOAuthClient,
  parseCookie,
  serializeCookie,
  openReplyReader,
  replyFunctions: () => replyFunctionsObject,
  libraryPath,
};

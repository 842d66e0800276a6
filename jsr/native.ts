// The Deno FFI implementation of the "native" interface that npm/session.js builds the public
// API from (npm/native.d.ts describes it; the N-API addon is the other implementation). Only
// marshalling lives here: JSON over (pointer, length) buffers, handle lifetimes, and the
// request protocol through which Rust calls JS (custom adapters, OAuth storages, OAuth
// events). docs/deno-ffi.md explains the design.

import { locateLibrary } from "./loader.ts";

/** Must equal ABI_VERSION in bindings-deno/src/lib.rs. */
const ABI_VERSION = 2;

const SYMBOLS = {
  ssd_abi_version: { parameters: [], result: "u32" },
  ssd_buffer_free: { parameters: ["pointer"], result: "void" },
  ssd_adapter_open: { parameters: ["buffer", "usize"], result: "pointer" },
  ssd_adapter_call: { parameters: ["u64", "u32", "buffer", "usize"], result: "pointer" },
  // The same export, run by Deno on a blocking thread: for PostgreSQL.
  ssd_adapter_call_nonblocking: {
    name: "ssd_adapter_call",
    parameters: ["u64", "u32", "buffer", "usize"],
    result: "pointer",
    nonblocking: true,
  },
  ssd_adapter_free: { parameters: ["u64"], result: "void" },
  ssd_store_open: { parameters: ["buffer", "usize"], result: "pointer" },
  ssd_store_call: { parameters: ["u64", "u32", "buffer", "usize"], result: "pointer" },
  // For PostgreSQL and JS adapters (the JS thread must stay free to run JS adapter calls).
  ssd_store_call_nonblocking: {
    name: "ssd_store_call",
    parameters: ["u64", "u32", "buffer", "usize"],
    result: "pointer",
    nonblocking: true,
  },
  ssd_store_free: { parameters: ["u64"], result: "void" },
  ssd_parse_cookie: { parameters: ["buffer", "usize"], result: "pointer" },
  ssd_serialize_cookie: { parameters: ["buffer", "usize"], result: "pointer" },
  ssd_js_channel_open: { parameters: ["function"], result: "pointer" },
  ssd_js_channel_close: { parameters: ["u64"], result: "void" },
  ssd_js_take: { parameters: ["u64"], result: "pointer" },
  ssd_js_complete: { parameters: ["u64", "u64", "buffer", "usize"], result: "void" },
  ssd_oauth_storage_open: { parameters: ["buffer", "usize"], result: "pointer" },
  ssd_oauth_storage_call: { parameters: ["u64", "u32", "buffer", "usize"], result: "pointer" },
  // For PostgreSQL and JS storages.
  ssd_oauth_storage_call_nonblocking: {
    name: "ssd_oauth_storage_call",
    parameters: ["u64", "u32", "buffer", "usize"],
    result: "pointer",
    nonblocking: true,
  },
  ssd_oauth_storage_free: { parameters: ["u64"], result: "void" },
  ssd_oauth_manager_open: { parameters: ["buffer", "usize"], result: "pointer" },
  // Manager and client calls may do HTTP and call JS (events, JS storages): nonblocking only.
  ssd_oauth_manager_call: {
    parameters: ["u64", "u32", "buffer", "usize"],
    result: "pointer",
    nonblocking: true,
  },
  ssd_oauth_manager_free: { parameters: ["u64"], result: "void" },
  ssd_oauth_client_open: { parameters: ["buffer", "usize"], result: "pointer" },
  ssd_oauth_client_call: {
    parameters: ["u64", "u32", "buffer", "usize"],
    result: "pointer",
    nonblocking: true,
  },
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
  if (pointer === null) throw new Error("AdapterError: the native library returned no reply");
  let text: string;
  try {
    text = Deno.UnsafePointerView.getCString(pointer, 8);
  } finally {
    ffi.ssd_buffer_free(pointer);
  }
  if (text.charCodeAt(0) === 33 /* "!" */) throw new Error(text.slice(1));
  return JSON.parse(text);
}

// Arguments of synchronous calls are encoded into one reused buffer: the native side only
// borrows it for the duration of the call. (Nonblocking calls get a buffer of their own.)
let scratch = new Uint8Array(4096);

/** `args` as JSON in the scratch buffer; the view covers exactly the encoded bytes. */
function encodeScratch(args: unknown): Uint8Array<ArrayBuffer> {
  const text = JSON.stringify(args);
  // UTF-8 takes at most 3 bytes per UTF-16 code unit.
  if (text.length * 3 > scratch.length) scratch = new Uint8Array(text.length * 3);
  const { written } = encoder.encodeInto(text, scratch);
  return scratch.subarray(0, written);
}

/**
 * Settles a nonblocking call. `args` and `owner` (the JS object whose handle is called) stay
 * referenced until then: Deno does not keep the argument buffer alive, and it may start the
 * export on its blocking thread only later; were the owner collected meanwhile, its finalizer
 * would free the handle before the call looks it up.
 */
async function replyLater(call: Promise<Deno.PointerValue>, args: Uint8Array, owner: object): Promise<unknown> {
  const pointer = await call;
  void args.byteLength;
  keepAlive(owner);
  return reply(pointer);
}

/** Does nothing, visibly to the optimiser: `value` is reachable until here. */
function keepAlive(value: object): void {
  if (value === keptAliveSentinel) throw new Error("unreachable");
}
const keptAliveSentinel = {};

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

  static postgresAdapter(url: string, maxConnections?: number | null): FfiAdapter {
    return new FfiAdapter({ kind: "postgres", url, maxConnections: maxConnections ?? null });
  }

  #call(op: number, args: unknown[], sync: boolean = this.isSync): unknown {
    if (sync) {
      const bytes = encodeScratch(args);
      return reply(ffi.ssd_adapter_call(this.#handle, op, bytes, BigInt(bytes.length)));
    }
    const bytes = encode(args);
    return replyLater(ffi.ssd_adapter_call_nonblocking(this.#handle, op, bytes, BigInt(bytes.length)), bytes, this);
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

// ---- JS objects called from Rust: custom adapters, OAuth storages, OAuth events --------------

/**
 * The functions npm/session.js makes from a user's object: jsAdapterFunctions() for an adapter,
 * `{getTokens, setTokens, clearTokens}` for an OAuth storage, `{onEvent}` for withOAuthSession's
 * callbacks. Each returns a Promise.
 */
type JsFns = Record<string, ((...args: unknown[]) => Promise<unknown>) | undefined>;

type ChannelMessage =
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
let channel: bigint | undefined;
let channelClosed = false;
// Kept for the life of the process: the notifier thread may call it at any time.
let notifier: Deno.UnsafeCallback<{ readonly parameters: readonly []; readonly result: "void" }> | undefined;

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function complete(id: number, outcome: { ok?: unknown; err?: string }): void {
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = encode(outcome);
  } catch (error) {
    // A result JSON cannot carry (a BigInt, a cycle): still settle the request.
    bytes = encode({ err: `the adapter returned a value that cannot be sent: ${errorText(error)}` });
  }
  ffi.ssd_js_complete(channel ?? 0n, BigInt(id), bytes, BigInt(bytes.length));
}

/** Runs on the JS thread whenever the native side has queued requests (never throws). */
function drain(): void {
  let messages: ChannelMessage[];
  try {
    messages = reply(ffi.ssd_js_take(channel ?? 0n)) as ChannelMessage[];
  } catch (error) {
    console.error("@slices-rs/session: cannot read requests for JS adapters:", error);
    return;
  }
  for (const message of messages) {
    if ("release" in message) {
      bridges.delete(message.release);
      continue;
    }
    const fn = bridges.get(message.bridge)?.[message.method];
    if (fn === undefined) {
      complete(message.id, { err: `${message.method} is not available on this JS object` });
      continue;
    }
    // Started now, in queue order, settled whenever the function's Promise does. (OAuth events
    // are ordered by the native side: it queues an event only once the previous one settled.)
    Promise.resolve()
      .then(() => fn(...message.args))
      .then(
        (ok) => complete(message.id, { ok }),
        (error) => complete(message.id, { err: errorText(error) }),
      );
  }
}

/**
 * Drains the queue now, on the JS thread. A release never wakes the notifier (see
 * docs/deno-ffi.md): it rides along with the next request. After a handle was freed or a store
 * closed, no request may come for a long time (OAuth callbacks that never fire, an app that
 * stopped using its JS adapter), so the objects the native side let go of are dropped here.
 */
function drainReleases(): void {
  if (channel !== undefined && !channelClosed) drain();
}

function openChannel(): bigint {
  if (channel !== undefined) return channel;
  notifier = Deno.UnsafeCallback.threadSafe({ parameters: [], result: "void" } as const, drain);
  // A live store must not keep the process alive: the pending nonblocking call of a store
  // operation does that while requests can arrive.
  notifier.unref();
  const opened = BigInt(reply(ffi.ssd_js_channel_open(notifier.pointer)) as number);
  channel = opened;
  // When this JS context ends (a worker, a `deno test` module) while the process goes on, the
  // native side must stop calling into it: the callback would point into a dead isolate.
  globalThis.addEventListener("unload", () => {
    channelClosed = true;
    ffi.ssd_js_channel_close(opened);
    notifier?.close();
  });
  return opened;
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
    const bytes = encode(args);
    return replyLater(ffi.ssd_store_call_nonblocking(this.#handle, op, bytes, BigInt(bytes.length)), bytes, this);
  }

  createSession(id: string | undefined | null, userId: string, handle?: string | null, data?: string | null): unknown {
    return this.#call(StoreOp.createSession, [id ?? null, userId, handle ?? null, data ?? null]);
  }
  getSession(id: string): unknown {
    return this.#call(StoreOp.getSession, [id]);
  }
  updateSession(id: string, patch: unknown): unknown {
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

/** A nonblocking call of a manager or client operation. */
function callLater(
  symbol: (id: bigint, op: number, args: Uint8Array<ArrayBuffer>, len: bigint) => Promise<Deno.PointerValue>,
  owner: object,
  handle: bigint,
  op: number,
  args: unknown[],
): Promise<unknown> {
  const bytes = encode(args);
  return replyLater(symbol(handle, op, bytes, BigInt(bytes.length)), bytes, owner);
}

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

  static memoryStorage(): FfiOAuthStorage {
    return new FfiOAuthStorage({ kind: "memory" });
  }

  static sqliteStorage(path: string): FfiOAuthStorage {
    return new FfiOAuthStorage({ kind: "sqlite", path });
  }

  static postgresStorage(url: string, maxConnections?: number | null): FfiOAuthStorage {
    return new FfiOAuthStorage({ kind: "postgres", url, maxConnections: maxConnections ?? null });
  }

  /** `fns`: `getTokens`, `setTokens(tokens, sessionId)`, `clearTokens`, bound to the user's object. */
  static fromJs(fns: JsFns): FfiOAuthStorage {
    return withBridge(fns, (js) => new FfiOAuthStorage({ kind: "js", ...js }));
  }

  #call(op: number, args: unknown[], sync: boolean = this.isSync): unknown {
    if (sync) {
      const bytes = encodeScratch(args);
      return reply(ffi.ssd_oauth_storage_call(this.#handle, op, bytes, BigInt(bytes.length)));
    }
    const bytes = encode(args);
    return replyLater(ffi.ssd_oauth_storage_call_nonblocking(this.#handle, op, bytes, BigInt(bytes.length)), bytes, this);
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
  /** PostgreSQL: creates the tables now; the other storages have nothing to do. */
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
    return callLater(ffi.ssd_oauth_manager_call, this, this.#handle, op, args);
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
    return callLater(ffi.ssd_oauth_client_call, this, this.#handle, op, args);
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

/** The object npm/session.js's createApi() takes. */
export interface NativeBinding {
  readonly NativeAdapter: typeof FfiAdapter;
  readonly NativeStore: typeof FfiStore;
  readonly NativeOAuthStorage: typeof FfiOAuthStorage;
  readonly NativeOAuthManager: typeof FfiOAuthManager;
  readonly NativeOAuthClient: typeof FfiOAuthClient;
  parseCookie(header: string): Record<string, string>;
  serializeCookie(name: string, value: string, options?: unknown): string;
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
  libraryPath,
};

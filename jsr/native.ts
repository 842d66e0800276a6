// The Deno FFI implementation of the "native" interface that npm/session.js builds the public
// API from (npm/native.d.ts describes it; the N-API addon is the other implementation). Only
// marshalling lives here: JSON over (pointer, length) buffers, handle lifetimes, and the
// request protocol through which the Rust store calls JS adapters. docs/deno-ffi.md explains
// the design.

import { locateLibrary } from "./loader.ts";

/** Must equal ABI_VERSION in bindings-deno/src/lib.rs. */
const ABI_VERSION = 1;

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

/** Settles a nonblocking call; `args` stays referenced (untouched) until then. */
async function replyLater(call: Promise<Deno.PointerValue>, args: Uint8Array): Promise<unknown> {
  const pointer = await call;
  // Deno does not keep the argument buffer alive for a nonblocking call: we do, until here.
  void args.byteLength;
  return reply(pointer);
}

// Handles are freed by close() and, when close() was forgotten, by these finalizers.
const adapterFinalizer = new FinalizationRegistry<bigint>((handle) => ffi.ssd_adapter_free(handle));
const storeFinalizer = new FinalizationRegistry<bigint>((handle) => ffi.ssd_store_free(handle));

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
    return replyLater(ffi.ssd_adapter_call_nonblocking(this.#handle, op, bytes, BigInt(bytes.length)), bytes);
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

// ---- stores over JS adapters -------------------------------------------------------------------

/** The functions npm/session.js's jsAdapterFunctions() makes from a user's adapter. */
type JsAdapterFns = Record<string, ((...args: unknown[]) => Promise<unknown>) | undefined>;

type ChannelMessage =
  | { id: number; bridge: number; method: string; args: unknown[] }
  | { release: number };

/** The adapters of live stores, by bridge number (the native side asks for them by number). */
const bridges = new Map<number, JsAdapterFns>();
let nextBridge = 1;
let channel: bigint | undefined;
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
      complete(message.id, { err: `${message.method} is not available on this adapter` });
      continue;
    }
    // Started now, settled whenever the adapter's Promise does.
    Promise.resolve()
      .then(() => fn(...message.args))
      .then(
        (ok) => complete(message.id, { ok }),
        (error) => complete(message.id, { err: errorText(error) }),
      );
  }
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
    ffi.ssd_js_channel_close(opened);
    notifier?.close();
  });
  return opened;
}

/** `NativeStore` of npm/native.d.ts. */
class FfiStore {
  readonly isSync: boolean;
  readonly #handle: bigint;

  private constructor(spec: Record<string, unknown>) {
    const bytes = encodeKeepingNonFinite(spec);
    const opened = reply(ffi.ssd_store_open(bytes, BigInt(bytes.length))) as Opened;
    this.#handle = BigInt(opened.id);
    this.isSync = opened.isSync;
    storeFinalizer.register(this, this.#handle, this);
  }

  static withNativeAdapter(adapter: FfiAdapter, config: unknown): FfiStore {
    return new FfiStore({ adapter: adapter.id, config });
  }

  static withJsAdapter(fns: JsAdapterFns, config: unknown): FfiStore {
    const bridge = nextBridge++;
    const js = {
      channel: Number(openChannel()),
      bridge,
      listByUser: typeof fns.listByUser === "function",
      deleteByUser: typeof fns.deleteByUser === "function",
    };
    bridges.set(bridge, fns);
    try {
      return new FfiStore({ js, config });
    } catch (error) {
      bridges.delete(bridge);
      throw error;
    }
  }

  #call(op: number, args: unknown[], sync: boolean = this.isSync): unknown {
    if (sync) {
      const bytes = encodeScratch(args);
      return reply(ffi.ssd_store_call(this.#handle, op, bytes, BigInt(bytes.length)));
    }
    const bytes = encode(args);
    return replyLater(ffi.ssd_store_call_nonblocking(this.#handle, op, bytes, BigInt(bytes.length)), bytes);
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
    return this.#call(StoreOp.close, [], true) as boolean;
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

/** OAuth is not exposed through FFI yet: its natives fail with a clear error when used. */
function oauthUnavailable(): never {
  throw new Error(
    "SessionError: OAuth (withOAuthSession, OAuthClient, OAuth storages) is not available through " +
      "the Deno FFI binding yet; under Deno, import the npm package (npm:@slices-rs/session) for OAuth",
  );
}
const OAuthNatives = {
  memoryStorage: oauthUnavailable,
  sqliteStorage: oauthUnavailable,
  postgresStorage: oauthUnavailable,
  fromJs: oauthUnavailable,
  create: oauthUnavailable,
};
class NativeOAuthClient {
  constructor() {
    oauthUnavailable();
  }
}

/** The object npm/session.js's createApi() takes. */
export interface NativeBinding {
  readonly NativeAdapter: typeof FfiAdapter;
  readonly NativeStore: typeof FfiStore;
  readonly NativeOAuthStorage: typeof OAuthNatives;
  readonly NativeOAuthManager: typeof OAuthNatives;
  readonly NativeOAuthClient: typeof NativeOAuthClient;
  parseCookie(header: string): Record<string, string>;
  serializeCookie(name: string, value: string, options?: unknown): string;
  /** Where the library was loaded from (diagnostics). */
  readonly libraryPath: string;
}

export const native: NativeBinding = {
  NativeAdapter: FfiAdapter,
  NativeStore: FfiStore,
  NativeOAuthStorage: OAuthNatives,
  NativeOAuthManager: OAuthNatives,
  NativeOAuthClient,
  parseCookie,
  serializeCookie,
  libraryPath,
};

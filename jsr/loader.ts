// Finds the native library (libslices_session_deno) for Deno.dlopen. In this order:
//
// 1. SLICES_SESSION_LIB: a path to the library, used as is (you built or vetted it yourself).
// 2. A build inside this repository (development): target/release, then target/debug,
//    located relative to this file (only when the package is loaded from a file: URL).
// 3. A download of the library for this platform from the release URL
//    (RELEASE_BASE_URL, or SLICES_SESSION_LIB_BASE_URL) into Deno's cache directory. The bytes
//    must hash to the SHA-256 recorded in checksums.ts before they are written or opened; a
//    cached copy is checked again on every load. A mismatch is an error and nothing is opened.
//
// JSR packages cannot carry native libraries, hence the download; unlike the packages that do
// the same (@db/sqlite, @webview/webview), this one verifies what it downloads.

import { CHECKSUMS, VERSION } from "./checksums.ts";

/** Where releases are downloaded from: `<base>/v<version>/<asset name>`. */
export const RELEASE_BASE_URL: string = "https://github.com/slices-rs/session/releases/download";

/** The library's file name in a cargo build directory, on `os`. */
export function buildFileName(os: typeof Deno.build.os = Deno.build.os): string {
  if (os === "windows") return "slices_session_deno.dll";
  if (os === "darwin") return "libslices_session_deno.dylib";
  return "libslices_session_deno.so";
}

/** The release asset name for `target` (a Rust target triple, as `Deno.build.target`). */
export function assetName(
  target: string = Deno.build.target,
  os: typeof Deno.build.os = Deno.build.os,
): string {
  const file = buildFileName(os);
  const dot = file.lastIndexOf(".");
  return `${file.slice(0, dot)}-${target}${file.slice(dot)}`;
}

/** An environment variable, or undefined when unset or when reading it is not allowed. */
function optionalEnv(name: string): string | undefined {
  // Only when already granted: the overrides are optional and must not cause a prompt.
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
    return undefined;
  }
  const value = Deno.env.get(name);
  return value === "" ? undefined : value;
}

function isFile(path: string): boolean {
  if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") return false;
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** target/release (then target/debug) of the repository this file is in, if built. */
function repositoryBuild(): string | undefined {
  if (!import.meta.url.startsWith("file:")) return undefined;
  for (const profile of ["release", "debug"]) {
    const url = new URL(`../target/${profile}/${buildFileName()}`, import.meta.url);
    const path = decodeURIComponent(url.pathname.replace(/^\/([A-Za-z]:)/, "$1"));
    if (isFile(path)) return path;
  }
  return undefined;
}

/** Deno's cache directory: $DENO_DIR, else the platform's cache location + "/deno". */
export function denoCacheDir(): string {
  const denoDir = Deno.env.get("DENO_DIR");
  if (denoDir) return denoDir;
  const home = Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE");
  switch (Deno.build.os) {
    case "windows": {
      const local = Deno.env.get("LOCALAPPDATA");
      if (local) return `${local}\\deno`;
      break;
    }
    case "darwin":
      if (home) return `${home}/Library/Caches/deno`;
      break;
    default: {
      const xdg = Deno.env.get("XDG_CACHE_HOME");
      if (xdg) return `${xdg}/deno`;
      if (home) return `${home}/.cache/deno`;
    }
  }
  throw new Error(
    "@slices-rs/session: cannot tell where Deno's cache directory is (set DENO_DIR), so the native library cannot be downloaded",
  );
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function readIfExists(path: string): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Downloads (or finds in the cache) the verified library for this platform; its path. */
async function downloadedLibrary(): Promise<string> {
  const asset = assetName();
  const expected = CHECKSUMS[asset];
  if (expected === undefined) {
    throw new Error(
      `@slices-rs/session ${VERSION} has no prebuilt native library for ${Deno.build.target} ` +
        `(known: ${Object.keys(CHECKSUMS).join(", ") || "none"}). Build it with ` +
        "`cargo build --release -p slices-session-deno` and set SLICES_SESSION_LIB to the library's path.",
    );
  }
  const dir = `${denoCacheDir()}/slices-rs-session/${VERSION}`;
  const path = `${dir}/${asset}`;

  const cached = await readIfExists(path);
  if (cached !== undefined && (await sha256Hex(cached)) === expected) return path;
  // Missing, or not the bytes we expect (a partial write, tampering): download it again.

  const base = (optionalEnv("SLICES_SESSION_LIB_BASE_URL") ?? RELEASE_BASE_URL).replace(/\/+$/, "");
  const url = `${base}/v${VERSION}/${asset}`;
  let response: Response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new Error(`@slices-rs/session: cannot download the native library from ${url}: ${error}`, { cause: error });
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`@slices-rs/session: cannot download the native library from ${url}: HTTP ${response.status}`);
  }
  const bytes = new Uint8Array(await response.arrayBuffer());
  const actual = await sha256Hex(bytes);
  if (actual !== expected) {
    throw new Error(
      `@slices-rs/session: the native library downloaded from ${url} failed its integrity check ` +
        `(SHA-256 ${actual}, expected ${expected}); it was neither saved nor opened`,
    );
  }
  await Deno.mkdir(dir, { recursive: true });
  // Written under a temporary name and renamed: a concurrent loader never sees half a file.
  const partial = `${path}.${crypto.randomUUID()}.partial`;
  await Deno.writeFile(partial, bytes, { mode: 0o755 });
  await Deno.rename(partial, path);
  return path;
}

/** The path of the native library to open (see the top of this file for the order). */
export async function locateLibrary(): Promise<string> {
  return optionalEnv("SLICES_SESSION_LIB") ?? repositoryBuild() ?? (await downloadedLibrary());
}

/**
 * Readable names for C++ (Itanium `_Z…`) and Rust (legacy `_ZN…17h<hash>E`, v0 `_R…`) symbols,
 * through the WASM build of the cpp_demangle and rustc-demangle crates that the Firefox profiler
 * uses.
 */

import { demangle_any } from "gecko-profiler-demangle";

// Symbol names repeat across every sample of a hot function; the bound keeps a long trace of a
// huge C++ program from growing the cache without limit.
const CACHE_MAX = 65536;
// cpp_demangle's time grows with input; real names stay far below this.
const MAX_INPUT = 65536;
const RUST_HASH = /::h[0-9a-f]{16}$/;

const cache = new Map<string, string>();

function looksMangled(name: string): boolean {
  return name.startsWith("_Z") || name.startsWith("_R");
}

/** The demangled form of `name`, or `name` itself when it is not a mangled name it can read. */
export function demangle(name: string): string {
  if (!looksMangled(name) || name.length > MAX_INPUT) return name;
  const hit = cache.get(name);
  if (hit !== undefined) return hit;
  let out: string;
  try {
    out = demangle_any(name);
  } catch {
    // A panic inside the WASM demangler surfaces as an exception; the raw name is still a name.
    out = name;
  }
  // demangle_any's last resort drops a leading underscore (for Mach-O names); for anything it
  // could not demangle that is only a corrupted name.
  if (out === "" || out === name.slice(1)) out = name;
  out = out.replace(RUST_HASH, "");
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!);
  cache.set(name, out);
  return out;
}

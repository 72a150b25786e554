/**
 * Readable names for C++ (Itanium `_Z…`) and Rust (v0 `_R…`, legacy `_ZN…17h<hash>E`) symbols,
 * with our own demanglers: symbol names are hostile input, and a demangler that is not bounded
 * can be made to write a 100 MB name from a 246-byte one. Ours give up at their limits (see
 * DEFAULT_LIMITS) and the frame keeps its mangled name.
 */
import { DEFAULT_LIMITS, demangleItanium } from "./itanium_demangler.ts";
import { demangleRustLegacy, demangleRustV0 } from "./rust_demangler.ts";

// Symbol names repeat across every sample of a hot function. The bounds keep a long trace of a
// huge C++ program from growing the cache without limit (each name is at most maxOutput long).
const CACHE_MAX_ENTRIES = 65536;
const CACHE_MAX_CHARS = 16 << 20;

const cache = new Map<string, string>();
let cachedChars = 0;

/** The demangled form of `name`, or `name` itself when it is not a name it can (or may) read. */
export function demangle(name: string): string {
  if (!(name.startsWith("_Z") || name.startsWith("_R"))) return name;
  if (name.length > DEFAULT_LIMITS.maxInput) return name;
  const hit = cache.get(name);
  if (hit !== undefined) return hit;
  const out =
    (name.startsWith("_R")
      ? demangleRustV0(name)
      : demangleRustLegacy(name) ?? demangleItanium(name)) ?? name;
  while (
    cache.size > 0 &&
    (cache.size >= CACHE_MAX_ENTRIES || cachedChars + name.length + out.length > CACHE_MAX_CHARS)
  ) {
    const [k, v] = cache.entries().next().value!;
    cache.delete(k);
    cachedChars -= k.length + v.length;
  }
  cache.set(name, out);
  cachedChars += name.length + out.length;
  return out;
}

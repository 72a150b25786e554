/**
 * A parsed probe spec made into something to attach, checked against this machine first so a
 * mistake is one line before anything loads: the binary (a path, or a library name found as the
 * dynamic loader would find it), the tracepoint and its record format, and the kernel function
 * (this kernel has no kprobes: kprobe:/kretprobe: become fentry/fexit on the same function,
 * which needs it in BTF; one BTF has but ftrace cannot patch fails at load, naming the event).
 */
import { KernelBtf } from "../ffi/kernel_btf.ts";
import { ProbeError } from "./probe_error.ts";
import { describeSpec, type ProbeSpec } from "./probe_spec.ts";
import { parseTracepointFormat, type TracepointFormat } from "./tracepoint_format.ts";

export type ProbeTarget =
  | { kind: "uprobe"; binary: string; func: string; offset: number; ret: boolean }
  | { kind: "usdt"; binary: string; provider: string; name: string }
  | { kind: "tracepoint"; category: string; name: string; format: TracepointFormat }
  | { kind: "fentry" | "fexit"; func: string };

/** What resolving asks of the machine; tests give their own. */
export interface ProbeHost {
  /** Follows links; undefined when nothing is there or it is not a regular file. */
  regularFile(path: string): string | undefined;
  /** Directories the dynamic loader searches, in order, and the libraries its cache names. */
  librarySearch(): { cache: Map<string, string>; dirs: string[] };
  /** A tracefs file's text, or undefined. */
  tracefs(path: string): string | undefined;
  /** Whether BTF describes kernel function NAME (fentry/fexit need it). */
  kernelFunction(name: string): boolean;
  /** Every kernel function BTF describes, for close matches. */
  kernelFunctions(): Iterable<string>;
}

const TRACEFS = "/sys/kernel/tracing";

export function resolveProbe(spec: ProbeSpec, host: ProbeHost): ProbeTarget {
  const what = `--trace-event ${describeSpec(spec)}`;
  switch (spec.kind) {
    case "uprobe":
    case "uretprobe":
      return {
        kind: "uprobe",
        binary: resolveBinary(spec.path, host, what),
        func: spec.func,
        offset: spec.offset,
        ret: spec.kind === "uretprobe",
      };
    case "usdt":
      return {
        kind: "usdt",
        binary: resolveBinary(spec.path, host, what),
        provider: spec.provider,
        name: spec.name,
      };
    case "tracepoint": {
      const text = host.tracefs(`events/${spec.category}/${spec.name}/format`);
      if (text === undefined) {
        throw new ProbeError(
          `${what}: this kernel has no tracepoint ${spec.category}:${spec.name} ` +
            `(see ${TRACEFS}/events/${spec.category}/)`,
        );
      }
      return { ...spec, format: parseTracepointFormat(text, what) };
    }
    case "kprobe":
    case "kretprobe": {
      if (!host.kernelFunction(spec.func)) {
        const near = closeMatches(spec.func, host.kernelFunctions());
        throw new ProbeError(
          `${what}: this kernel's BTF has no function ${spec.func}, so fentry/fexit cannot ` +
            `attach to it (inlined, or not a function; this kernel has no kprobes)` +
            `${near.length ? `; close matches: ${near.join(", ")}` : ""}`,
        );
      }
      return { kind: spec.kind === "kprobe" ? "fentry" : "fexit", func: spec.func };
    }
  }
}

function resolveBinary(path: string, host: ProbeHost, what: string): string {
  if (path.includes("/")) {
    const real = host.regularFile(path);
    if (!real) throw new ProbeError(`${what}: ${path} is not a file`);
    return real;
  }
  const { cache, dirs } = host.librarySearch();
  const found = cache.get(path) ?? dirs.map((d) => `${d}/${path}`).find((p) => host.regularFile(p));
  const real = found && host.regularFile(found);
  if (!real) {
    throw new ProbeError(
      `${what}: no library ${path} where the dynamic loader looks (ld.so.cache, ` +
        `${dirs.join(", ")}); give its path`,
    );
  }
  return real;
}

/** Up to five names that contain NAME or that NAME contains, shortest first. */
export function closeMatches(name: string, names: Iterable<string>): string[] {
  const out: string[] = [];
  const core = name.replace(/^(__x64_sys_|__do_sys_|__se_sys_|sys_|do_|__)/, "");
  for (const n of names) {
    if (core.length >= 3 && (n.includes(core) || (n.length >= 4 && core.includes(n)))) out.push(n);
    if (out.length > 200) break;
  }
  return out.sort((a, b) => a.length - b.length || (a < b ? -1 : 1)).slice(0, 5);
}

const MAX_CACHE = 16 << 20;
const CACHE_MAGIC = "glibc-ld.so.cache1.1";
/** FLAG_ELF_LIBC6 | FLAG_X8664_LIB64: what this machine's loader takes. */
const X86_64_LIBC6 = 0x0303;

/** The new-format ld.so.cache: library name → path, for x86-64 libraries. */
export function parseLdCache(bytes: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  const magic = new TextDecoder().decode(bytes.subarray(0, CACHE_MAGIC.length));
  if (magic !== CACHE_MAGIC || bytes.length < 48) return out;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getUint32(20, true);
  const str = (off: number) => {
    let end = off;
    while (end < bytes.length && bytes[end] !== 0 && end - off < 4096) end++;
    return new TextDecoder().decode(bytes.subarray(off, end));
  };
  for (let i = 0; i < n && 48 + (i + 1) * 24 <= bytes.length; i++) {
    const e = 48 + i * 24;
    if ((dv.getInt32(e, true) & 0xffff) !== X86_64_LIBC6) continue;
    const key = dv.getUint32(e + 4, true), value = dv.getUint32(e + 8, true);
    if (key >= bytes.length || value >= bytes.length) continue;
    const name = str(key);
    if (!out.has(name)) out.set(name, str(value));
  }
  return out;
}

/** This machine. */
export const hostProbes: ProbeHost = {
  regularFile(path) {
    try {
      const real = Deno.realPathSync(path);
      return Deno.statSync(real).isFile ? real : undefined;
    } catch {
      return undefined;
    }
  },
  librarySearch() {
    let cache = new Map<string, string>();
    try {
      const f = Deno.openSync("/etc/ld.so.cache");
      try {
        const size = f.statSync().size;
        if (size <= MAX_CACHE) {
          const bytes = new Uint8Array(size);
          let at = 0;
          while (at < size) {
            const n = f.readSync(bytes.subarray(at));
            if (!n) break;
            at += n;
          }
          cache = parseLdCache(bytes.subarray(0, at));
        }
      } finally {
        f.close();
      }
    } catch { /* no cache: the directories alone */ }
    const env = (Deno.env.get("LD_LIBRARY_PATH") ?? "").split(":").filter((d) => d.startsWith("/"));
    return {
      cache,
      dirs: [
        ...env,
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
        "/lib64",
        "/usr/lib64",
        "/lib",
        "/usr/lib",
      ],
    };
  },
  tracefs(path) {
    try {
      return Deno.readTextFileSync(`${TRACEFS}/${path}`);
    } catch {
      return undefined;
    }
  },
  kernelFunction(name) {
    const btf = KernelBtf.load();
    try {
      return btf.hasFunction(name);
    } finally {
      btf.close();
    }
  },
  kernelFunctions() {
    const btf = KernelBtf.load();
    try {
      return btf.functionNames();
    } finally {
      btf.close();
    }
  },
};

/**
 * Checks made before anything is loaded, each failing with the reason and
 * the fix rather than with an errno from deep inside libbpf.
 */
import { cstr, lastErrno, loadLibc } from "../ffi/library.ts";

export class PreflightError extends Error {
  override name = "PreflightError";
}

const CAP_SYS_ADMIN = 21n;
const CAP_PERFMON = 38n;
const CAP_BPF = 39n;

/** Effective capabilities of this process, from /proc/self/status. */
export function effectiveCapabilities(statusText: string): bigint {
  const m = /^CapEff:\s*([0-9a-fA-F]+)$/m.exec(statusText);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

export function hasTracingCapabilities(caps: bigint): boolean {
  const has = (c: bigint) => (caps >> c) & 1n;
  return has(CAP_SYS_ADMIN) === 1n || (has(CAP_BPF) === 1n && has(CAP_PERFMON) === 1n);
}

export function checkPrivileges(): void {
  const caps = effectiveCapabilities(Deno.readTextFileSync("/proc/self/status"));
  if (!hasTracingCapabilities(caps)) {
    throw new PreflightError(
      "systing needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN) to load BPF: run it with sudo",
    );
  }
}

export function checkBtf(path = "/sys/kernel/btf/vmlinux"): void {
  try {
    Deno.statSync(path);
  } catch {
    throw new PreflightError(
      `this kernel exposes no BTF (${path} is missing): systing needs a kernel built with CONFIG_DEBUG_INFO_BTF=y`,
    );
  }
}

const TRACEFS = "/sys/kernel/tracing";

/**
 * Makes sure tracefs is mounted (tracepoint probes need it). Returns what
 * was done, or throws when it is missing and cannot be mounted.
 */
export function ensureTracefs(): "mounted" | "already mounted" {
  try {
    Deno.statSync(`${TRACEFS}/events`);
    return "already mounted";
  } catch { /* not mounted: try below */ }
  const rc = loadLibc().mount(cstr("nodev"), cstr(TRACEFS), cstr("tracefs"), 0n, null);
  if (rc !== 0) {
    const errno = lastErrno();
    throw new PreflightError(
      `tracefs is not mounted at ${TRACEFS} and mounting it failed (errno ${errno}): run 'mount -t tracefs nodev ${TRACEFS}'`,
    );
  }
  return "mounted";
}

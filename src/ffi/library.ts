/**
 * Loads libbpf and libc once per thread (workers load their own copy of the
 * handles; the libraries themselves are shared by the process).
 */
import { LibbpfError } from "./libbpf_error.ts";
import { libbpfSymbols, libcSymbols } from "./symbols.ts";

type Libbpf = Deno.DynamicLibrary<typeof libbpfSymbols>["symbols"];
type Libc = Deno.DynamicLibrary<typeof libcSymbols>["symbols"];

let libbpf: Libbpf | undefined;
let libc: Libc | undefined;

export function loadLibbpf(): Libbpf {
  if (!libbpf) {
    try {
      libbpf = Deno.dlopen("libbpf.so.1", libbpfSymbols).symbols;
    } catch (e) {
      throw new LibbpfError(
        "loading libbpf.so.1",
        0,
        `${(e as Error).message.split("\n")[0]}; install it (Debian: apt-get install libbpf1)`,
      );
    }
  }
  return libbpf;
}

export function loadLibc(): Libc {
  libc ??= Deno.dlopen("libc.so.6", libcSymbols).symbols;
  return libc;
}

/** The calling thread's errno, read right after a failed call. */
export function lastErrno(): number {
  const p = loadLibc().__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
}

/** libbpf's own message for a (positive or negative) error code. */
export function describeError(err: number): string {
  const buf = new Uint8Array(256);
  loadLibbpf().libbpf_strerror(-Math.abs(err), buf, BigInt(buf.length));
  const end = buf.indexOf(0);
  return new TextDecoder().decode(buf.subarray(0, end < 0 ? buf.length : end));
}

/** libc's message for an errno, for failures outside libbpf. */
export function describeSyscallError(errno: number): string {
  if (errno === 0) return "unknown error";
  const p = loadLibc().strerror(errno);
  return p ? Deno.UnsafePointerView.getCString(p) : `errno ${errno}`;
}

/** Throws a LibbpfError for a libbpf call that returned -errno. */
export function check(rc: number, operation: string): number {
  if (rc < 0) throw new LibbpfError(operation, -rc, describeError(rc));
  return rc;
}

/** Throws a LibbpfError for a NULL result, taking errno as libbpf 1.x sets it. */
export function checkPointer<T extends Deno.PointerValue>(
  p: T,
  operation: string,
): NonNullable<T> {
  if (p === null) {
    const errno = lastErrno();
    throw new LibbpfError(operation, errno, errno ? describeError(errno) : "unknown error");
  }
  return p as NonNullable<T>;
}

export function cstr(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(s + "\0");
  return bytes as Uint8Array<ArrayBuffer>;
}

export function systemPageSize(): number {
  return loadLibc().getpagesize();
}

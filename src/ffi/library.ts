/**
 * Loads libc (once per thread) and libbpf. libbpf is not the host's: the
 * program carries libbpf and what it needs (src/gen/native_libs.ts, from the
 * build machine) and loads them from sealed memory files, dependencies first,
 * so that it behaves the same on any host and needs none installed. Only the
 * main thread loads it (a worker doing so would load a second copy).
 */
import { nativeLibs } from "../gen/native_libs.ts";
import { LibbpfError } from "./libbpf_error.ts";
import { libbpfSymbols, libcSymbols } from "./symbols.ts";

type Libbpf = Deno.DynamicLibrary<typeof libbpfSymbols>["symbols"];
type Libc = Deno.DynamicLibrary<typeof libcSymbols>["symbols"];

let libbpf: Libbpf | undefined;
let libc: Libc | undefined;
/** The carried libraries' handles: open for as long as the process runs. */
const carried: Deno.DynamicLibrary<Deno.ForeignLibraryInterface>[] = [];

const MFD_CLOEXEC = 1;
const MFD_ALLOW_SEALING = 2;
const F_ADD_SEALS = 1033;
/** F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE: nobody can change it now. */
const ALL_SEALS = 1 | 2 | 4 | 8;

/** BYTES as a sealed memory file; returns its fd. */
function sealedMemoryFile(name: string, bytes: Uint8Array): number {
  const c = loadLibc();
  const fd = c.memfd_create(cstr(name), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) throw new LibbpfError(`memfd_create(${name})`, lastErrno(), "cannot hold it");
  for (let at = 0; at < bytes.length;) {
    const n = Number(c.write(fd, bytes.subarray(at), BigInt(bytes.length - at)));
    if (n <= 0) {
      const errno = lastErrno();
      c.close(fd);
      throw new LibbpfError(`writing ${name} to memory`, errno, describeSyscallError(errno));
    }
    at += n;
  }
  if (c.fcntl(fd, F_ADD_SEALS, ALL_SEALS) !== 0) {
    const errno = lastErrno();
    c.close(fd);
    throw new LibbpfError(`sealing ${name}`, errno, describeSyscallError(errno));
  }
  return fd;
}

export function loadLibbpf(): Libbpf {
  if (libbpf) return libbpf;
  // All open until all are loaded: the loader knows a library by the path it was opened by, and
  // a path reused (a closed fd's number) would find the earlier library instead.
  const fds: number[] = [];
  try {
    for (const [i, lib] of nativeLibs.entries()) {
      fds.push(sealedMemoryFile(lib.name, lib.bytes));
      // By path: the loader then knows it by its soname, and the libraries after it find
      // their dependency loaded already instead of searching the host for it.
      const path = `/proc/self/fd/${fds[i]}`;
      try {
        if (i < nativeLibs.length - 1) carried.push(Deno.dlopen(path, {}));
        else libbpf = Deno.dlopen(path, libbpfSymbols).symbols;
      } catch (e) {
        throw new LibbpfError(
          `loading the carried ${lib.name}`,
          0,
          (e as Error).message.split("\n")[0],
        );
      }
    }
  } finally {
    for (const fd of fds) loadLibc().close(fd);
  }
  return libbpf!;
}

/** Whether this thread has loaded libbpf (workers do not). */
export function libbpfLoaded(): boolean {
  return libbpf !== undefined;
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

/** libbpf's own message for a (positive or negative) error code (libc's in a worker). */
export function describeError(err: number): string {
  if (!libbpf) return describeSyscallError(Math.abs(err));
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

/**
 * Gives the memory malloc holds free back to the kernel. libbpf's parse of the kernel's BTF and the
 * object frees tens of MB inside glibc's arenas, which glibc keeps for reuse that never comes.
 */
export function releaseFreeMemory(): void {
  loadLibc().malloc_trim(0n);
}

const PR_SET_NAME = 15;

/** Names the calling thread (its comm, at most 15 bytes), as ps, top and traces show it. */
export function nameThisThread(name: string): void {
  loadLibc().prctl(PR_SET_NAME, cstr(name.slice(0, 15)));
}

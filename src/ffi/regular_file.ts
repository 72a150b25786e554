/**
 * Regular files opened as root from paths that any user can influence: the binaries other
 * processes map. Opening must not hang (a FIFO waits for a writer, a device open can have side
 * effects), must not be redirected by a symlink, and must end up on exactly the file the caller
 * expects.
 *
 * So opening takes two steps. First an O_PATH handle, which opens nothing (no FIFO wait, no
 * device open), resolved without symlinks where the caller asks; it is fstat'ed and must be a
 * regular file on a real filesystem that the caller's check accepts. Only then is that same
 * inode reopened for reading, through /proc/self/fd, so no path is looked up twice. Reads are
 * positioned (pread) and each one is counted, so that callers can bound what a file costs.
 */
import { LibbpfError } from "./libbpf_error.ts";
import { cstr, describeSyscallError, lastErrno, loadLibc } from "./library.ts";

const ARM64 = Deno.build.arch === "aarch64";
const O_RDONLY = 0;
const O_NOCTTY = 0o400;
const O_NONBLOCK = 0o4000;
const O_DIRECTORY = ARM64 ? 0o40000 : 0o200000;
const O_NOFOLLOW = ARM64 ? 0o100000 : 0o400000;
const O_CLOEXEC = 0o2000000;
const O_PATH = 0o10000000;
const AT_FDCWD = -100;
const AT_EMPTY_PATH = 0x1000;
const STATX_BASIC_STATS = 0x7ff;
const SYS_OPENAT2 = 437n;
const RESOLVE_NO_MAGICLINKS = 0x02n;
const RESOLVE_NO_SYMLINKS = 0x04n;
const RESOLVE_IN_ROOT = 0x10n;
const EINTR = 4;

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const FILE_TYPES: Record<number, string> = {
  0o010000: "a FIFO",
  0o020000: "a character device",
  0o040000: "a directory",
  0o060000: "a block device",
  0o120000: "a symbolic link",
  0o140000: "a socket",
};

/**
 * Filesystems whose "regular files" are not data on a disk: reads may block on a user's daemon
 * (FUSE) or have side effects (sysfs attributes, debugfs, tracefs, ...).
 */
const REFUSED_FILESYSTEMS: Record<number, string> = {
  0x65735546: "fuse",
  0x9fa0: "proc",
  0x62656572: "sysfs",
  0x64626720: "debugfs",
  0x74726163: "tracefs",
  0x73636673: "securityfs",
  0xcafe4a11: "bpf",
  0x27e0eb: "cgroup",
  0x63677270: "cgroup2",
  0x1cd1: "devpts",
  0x62656570: "configfs",
  0xde5e81e4: "efivarfs",
  0x6e736673: "nsfs",
};

/** What fstat says about an opened file. */
export interface FileIdentity {
  readonly devMajor: number;
  readonly devMinor: number;
  readonly ino: number;
  readonly size: number;
  /** Bytes the file occupies on its device (smaller than size for a sparse file). */
  readonly allocated: number;
  readonly mode: number;
}

export interface RegularFileOptions {
  /**
   * "refuse" (default): no symlink anywhere in the path (RESOLVE_NO_SYMLINKS); the paths the
   * kernel reports for mapped files never contain one. "follow": for /proc magic links such as
   * /proc/PID/map_files/…, which lead straight to the mapped file.
   */
  links?: "refuse" | "follow";
  /** Resolve the (absolute) path inside this directory as its root, e.g. /proc/PID/root. */
  root?: string;
  /** Looks at the file before it is opened for reading: returns why it is refused, or undefined. */
  accept?: (id: FileIdentity) => string | undefined;
}

function statxOf(fd: number, what: string): FileIdentity {
  const buf = new Uint8Array(256);
  if (loadLibc().statx(fd, cstr(""), AT_EMPTY_PATH, STATX_BASIC_STATS, buf) !== 0) {
    const errno = lastErrno();
    throw new LibbpfError(`fstat of ${what}`, errno, describeSyscallError(errno));
  }
  const dv = new DataView(buf.buffer);
  const u64 = (at: number) => dv.getUint32(at, true) + dv.getUint32(at + 4, true) * 2 ** 32;
  return {
    mode: dv.getUint16(28, true),
    ino: u64(32),
    size: u64(40),
    allocated: u64(48) * 512,
    devMajor: dv.getUint32(136, true),
    devMinor: dv.getUint32(140, true),
  };
}

function fsTypeOf(fd: number): number | undefined {
  const buf = new Uint8Array(128);
  if (loadLibc().fstatfs(fd, buf) !== 0) return undefined;
  return new DataView(buf.buffer).getUint32(0, true);
}

function closeQuietly(fd: number): void {
  if (fd >= 0) loadLibc().close(fd);
}

/** An O_PATH handle on `path`, resolved as the options say. */
function openPathHandle(path: string, opts: RegularFileOptions): number {
  const libc = loadLibc();
  const fail = (what: string, errno: number): never => {
    throw new LibbpfError(what, errno, describeSyscallError(errno));
  };
  if (opts.links === "follow") {
    const fd = libc.open(cstr(path), O_PATH | O_CLOEXEC, 0);
    if (fd < 0) fail(`opening ${path}`, lastErrno());
    return fd;
  }
  let dirfd = AT_FDCWD;
  let rel = path;
  let resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  if (opts.root !== undefined) {
    // The root itself is a magic link (/proc/PID/root): it is followed, nothing below it is.
    dirfd = libc.open(cstr(opts.root), O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
    if (dirfd < 0) fail(`opening ${opts.root}`, lastErrno());
    rel = path.replace(/^\/+/, "") || ".";
    resolve |= RESOLVE_IN_ROOT;
  }
  try {
    const how = new BigUint64Array([BigInt(O_PATH | O_CLOEXEC | O_NOFOLLOW), 0n, resolve]);
    let fd: number;
    do {
      fd = Number(
        libc.openat2(SYS_OPENAT2, dirfd, cstr(rel), new Uint8Array(how.buffer), 24n),
      );
    } while (fd < 0 && lastErrno() === EINTR);
    if (fd < 0) {
      const errno = lastErrno();
      // ELOOP: a symlink on the way, which the kernel's own paths never have.
      fail(`opening ${opts.root ?? ""}${path}`, errno);
    }
    return fd;
  } finally {
    if (dirfd !== AT_FDCWD) closeQuietly(dirfd);
  }
}

export class RegularFile {
  readonly identity: FileIdentity;
  readonly path: string;
  #fd: number;
  /** Bytes read so far. */
  bytesRead = 0;

  private constructor(fd: number, identity: FileIdentity, path: string) {
    this.#fd = fd;
    this.identity = identity;
    this.path = path;
  }

  /**
   * Opens `path` for reading if it is a regular file the options accept; throws LibbpfError
   * (errno 0 when the file was refused rather than unreachable).
   */
  static open(path: string, opts: RegularFileOptions = {}): RegularFile {
    const handle = openPathHandle(path, opts);
    let fd = -1;
    try {
      const id = statxOf(handle, path);
      const type = id.mode & S_IFMT;
      if (type !== S_IFREG) {
        throw new LibbpfError(
          `opening ${path}`,
          0,
          `it is ${FILE_TYPES[type] ?? "not a regular file"}`,
        );
      }
      const fs = fsTypeOf(handle);
      if (fs !== undefined && REFUSED_FILESYSTEMS[fs]) {
        throw new LibbpfError(
          `opening ${path}`,
          0,
          `it is on a ${REFUSED_FILESYSTEMS[fs]} filesystem, whose reads may block or have effects`,
        );
      }
      const why = opts.accept?.(id);
      if (why !== undefined) throw new LibbpfError(`opening ${path}`, 0, why);
      fd = loadLibc().open(
        cstr(`/proc/self/fd/${handle}`),
        O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
        0,
      );
      if (fd < 0) {
        const errno = lastErrno();
        throw new LibbpfError(`opening ${path} for reading`, errno, describeSyscallError(errno));
      }
      const again = statxOf(fd, path);
      if (
        again.ino !== id.ino || again.devMajor !== id.devMajor || again.devMinor !== id.devMinor
      ) {
        throw new LibbpfError(`opening ${path}`, 0, "the file changed while it was opened");
      }
      const file = new RegularFile(fd, again, path);
      fd = -1;
      return file;
    } finally {
      closeQuietly(fd);
      closeQuietly(handle);
    }
  }

  /** Exactly `length` bytes at `offset`; throws when the file is shorter (truncated since). */
  read(offset: number, length: number): Uint8Array<ArrayBuffer> {
    if (this.#fd < 0) throw new LibbpfError(`reading ${this.path}`, 9, "the file is closed");
    const out = new Uint8Array(length);
    const libc = loadLibc();
    let got = 0;
    while (got < length) {
      const n = Number(libc.pread(
        this.#fd,
        got === 0 ? out : out.subarray(got),
        BigInt(length - got),
        BigInt(offset + got),
      ));
      if (n < 0) {
        const errno = lastErrno();
        if (errno === EINTR) continue;
        throw new LibbpfError(
          `reading ${length} bytes at ${offset} of ${this.path}`,
          errno,
          describeSyscallError(errno),
        );
      }
      if (n === 0) {
        throw new LibbpfError(
          `reading ${length} bytes at ${offset} of ${this.path}`,
          0,
          `the file ends at ${offset + got}`,
        );
      }
      got += n;
    }
    this.bytesRead += length;
    return out;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** Idempotent. */
  close(): void {
    closeQuietly(this.#fd);
    this.#fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * A one-shot scan of /proc taken when tracing starts, so that tasks which
 * already exist get names and command lines in the trace. Later changes come
 * from BPF events (see process_table.ts).
 */

/** /proc content that does not have the shape proc(5) promises, or /proc itself is missing. */
export class ProcScanError extends Error {
  override name = "ProcScanError";
}

export interface StatFields {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  /** Field 9; needed for PF_KTHREAD, which is the only reliable kernel-thread test. */
  flags: number;
  startTimeTicks: bigint;
}

export interface ThreadSnapshot {
  tid: number;
  comm: string;
}

export interface ProcessSnapshot {
  pid: number;
  ppid: number;
  /** Real uid; undefined only if /proc/PID/status had no parsable Uid line. */
  uid: number | undefined;
  comm: string;
  /** Empty for kernel threads and zombies. */
  cmdline: string[];
  isKthread: boolean;
  startFromBootNs: bigint;
  /** Every thread including the main one (tid === pid). */
  threads: ThreadSnapshot[];
}

const PF_KTHREAD = 0x00200000;

// USER_HZ, the unit of /proc/PID/stat times, is part of the kernel ABI and is
// 100 on x86-64 and arm64 whatever CONFIG_HZ is. Deno cannot call
// sysconf(_SC_CLK_TCK), so it is fixed here.
const CLK_TCK = 100n;
const NS_PER_TICK = 1_000_000_000n / CLK_TCK;

const UNSIGNED = /^\d+$/;
/**
 * What is kept of a command line (Perfetto's UI shows a line of it). Any process can give itself
 * megabytes of arguments, and every fork of it would carry them into the trace again.
 */
export const MAX_CMDLINE_BYTES = 4096;
/** Appended to a command line cut at MAX_CMDLINE_BYTES. */
export const CMDLINE_CUT = "…";
const decoder = new TextDecoder("utf-8", { fatal: false });

function unsignedField(text: string, name: string, value: string | undefined): string {
  if (value === undefined || !UNSIGNED.test(value)) {
    throw new ProcScanError(`malformed stat: bad ${name} in ${JSON.stringify(text.slice(0, 80))}`);
  }
  return value;
}

/** Parses /proc/PID/stat (or task/TID/stat). */
export function parseStat(text: string): StatFields {
  // comm is whatever the task set via prctl, so it may hold spaces, parens
  // and newlines; only the first "(" and the last ")" are trustworthy.
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) {
    throw new ProcScanError(`malformed stat: no (comm) in ${JSON.stringify(text.slice(0, 80))}`);
  }
  const pid = Number(unsignedField(text, "pid", text.slice(0, open).trim()));
  const comm = text.slice(open + 1, close);
  // rest[0] is field 3 (state), so field n of proc(5) is rest[n - 3].
  const rest = text.slice(close + 1).trim().split(/\s+/);
  const state = rest[0];
  if (state === undefined || state.length !== 1) {
    throw new ProcScanError(`malformed stat: bad state in ${JSON.stringify(text.slice(0, 80))}`);
  }
  return {
    pid,
    comm,
    state,
    ppid: Number(unsignedField(text, "ppid", rest[4 - 3])),
    flags: Number(unsignedField(text, "flags", rest[9 - 3])),
    startTimeTicks: BigInt(unsignedField(text, "starttime", rest[22 - 3])),
  };
}

/**
 * Splits /proc/PID/cmdline: NUL-separated, one trailing NUL, lossy UTF-8. More than
 * MAX_CMDLINE_BYTES is cut there, the last argument ending in CMDLINE_CUT.
 */
export function parseCmdline(bytes: Uint8Array): string[] {
  if (bytes.length === 0) return [];
  const whole = bytes.length <= MAX_CMDLINE_BYTES ||
    (bytes.length === MAX_CMDLINE_BYTES + 1 && bytes[MAX_CMDLINE_BYTES] === 0);
  if (!whole) {
    const args = decoder.decode(bytes.subarray(0, MAX_CMDLINE_BYTES)).split("\0");
    args[args.length - 1] += CMDLINE_CUT;
    return args;
  }
  const end = bytes[bytes.length - 1] === 0 ? bytes.length - 1 : bytes.length;
  return decoder.decode(bytes.subarray(0, end)).split("\0");
}

/** The first `max` bytes of a file, without reading the rest (a /proc file may be huge). */
function readHead(path: string, max: number): Uint8Array {
  using f = Deno.openSync(path);
  const buf = new Uint8Array(max);
  let n = 0;
  while (n < max) {
    const r = f.readSync(buf.subarray(n));
    if (r === null || r === 0) break;
    n += r;
  }
  return buf.subarray(0, n);
}

/** The real uid (first of four) from /proc/PID/status. */
export function parseStatusUid(text: string): number | undefined {
  const match = /^Uid:\s+(\d+)/m.exec(text);
  return match ? Number(match[1]) : undefined;
}

/** The task went away between listing and reading, or we may not look at it. */
function isGone(err: unknown): boolean {
  return err instanceof Deno.errors.NotFound ||
    err instanceof Deno.errors.PermissionDenied ||
    // A read racing with exit can fail with ESRCH rather than ENOENT.
    (err instanceof Error && (err as { code?: string }).code === "ESRCH");
}

function numericEntries(dir: string): number[] {
  const out: number[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    if (UNSIGNED.test(entry.name)) out.push(Number(entry.name));
  }
  return out;
}

function stripNewline(s: string): string {
  return s.endsWith("\n") ? s.slice(0, -1) : s;
}

function scanThreads(procRoot: string, pid: number, mainComm: string): ThreadSnapshot[] {
  const threads: ThreadSnapshot[] = [];
  for (const tid of numericEntries(`${procRoot}/${pid}/task`)) {
    if (tid === pid) {
      threads.push({ tid, comm: mainComm });
      continue;
    }
    try {
      threads.push({
        tid,
        comm: stripNewline(Deno.readTextFileSync(`${procRoot}/${pid}/task/${tid}/comm`)),
      });
    } catch (err) {
      if (!isGone(err)) throw err;
    }
  }
  return threads;
}

function scanOne(procRoot: string, pid: number): ProcessSnapshot {
  const stat = parseStat(Deno.readTextFileSync(`${procRoot}/${pid}/stat`));
  const isKthread = (stat.flags & PF_KTHREAD) !== 0;
  const startFromBootNs = stat.startTimeTicks * NS_PER_TICK;
  if (isKthread) {
    // Kernel threads have no cmdline, run as root and are never multi-threaded,
    // so skip three reads per kthread (they are often half of all tasks).
    return {
      pid,
      ppid: stat.ppid,
      uid: 0,
      comm: stat.comm,
      cmdline: [],
      isKthread,
      startFromBootNs,
      threads: [{ tid: pid, comm: stat.comm }],
    };
  }
  const cmdline = parseCmdline(readHead(`${procRoot}/${pid}/cmdline`, MAX_CMDLINE_BYTES + 2));
  const uid = parseStatusUid(Deno.readTextFileSync(`${procRoot}/${pid}/status`));
  return {
    pid,
    ppid: stat.ppid,
    uid,
    comm: stat.comm,
    cmdline,
    isKthread,
    startFromBootNs,
    threads: scanThreads(procRoot, pid, stat.comm),
  };
}

/**
 * Every process and thread visible in procRoot. Tasks that exit mid-scan or
 * cannot be read are left out; only an unreadable procRoot is an error.
 */
export function scanProcesses(procRoot = "/proc"): ProcessSnapshot[] {
  let pids: number[];
  try {
    pids = numericEntries(procRoot);
  } catch (err) {
    throw new ProcScanError(`cannot list ${procRoot}: ${(err as Error).message}`);
  }
  const out: ProcessSnapshot[] = [];
  for (const pid of pids) {
    try {
      out.push(scanOne(procRoot, pid));
    } catch (err) {
      // A malformed stat for one task should not stop the trace; it is
      // as good as gone.
      if (!isGone(err) && !(err instanceof ProcScanError)) throw err;
    }
  }
  return out;
}

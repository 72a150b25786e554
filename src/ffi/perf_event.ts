/**
 * perf_event_open(2) for systing: the per-CPU sampling events the stack
 * sampler's BPF program attaches to, plus the attr encoding and the call
 * itself, shared with perf_sideband.ts.
 *
 * Every offset and bit below is from <linux/perf_event.h> (checked with
 * offsetof() against the installed header).
 */
import { LibbpfError } from "./libbpf_error.ts";
import { describeError, lastErrno, loadLibc } from "./library.ts";

/** A bad argument to one of the perf wrappers (not a kernel failure). */
export class PerfEventError extends Error {
  override name = "PerfEventError";
}

export const PERF_TYPE_HARDWARE = 0;
export const PERF_TYPE_SOFTWARE = 1;
export const PERF_COUNT_HW_CPU_CYCLES = 0;
export const PERF_COUNT_SW_CPU_CLOCK = 0;
export const PERF_COUNT_SW_DUMMY = 9;
export const PERF_SAMPLE_TID = 1 << 1;
export const PERF_SAMPLE_TIME = 1 << 2;
export const PERF_FLAG_FD_CLOEXEC = 1n << 3n;
export const PERF_FORMAT_TOTAL_TIME_ENABLED = 1 << 0;
export const PERF_FORMAT_TOTAL_TIME_RUNNING = 1 << 1;
/** _IO('$', 0) */
export const PERF_EVENT_IOC_ENABLE = 0x2400;
const CLOCK_BOOTTIME = 7;
const SYS_PERF_EVENT_OPEN = 298n;

/** Bit numbers in the u64 bitfield at offset 40 of struct perf_event_attr. */
export const AttrBit = {
  disabled: 0,
  mmap: 8,
  comm: 9,
  freq: 10,
  task: 13,
  watermark: 14,
  sampleIdAll: 18,
  mmap2: 23,
  commExec: 24,
  useClockid: 25,
} as const;

/**
 * PERF_ATTR_SIZE_VER3: the first layout that has clockid (@92), the last
 * field we set. Telling the kernel the size we actually fill keeps us working
 * on every kernel since 4.1 whatever the header's newest size is.
 */
const ATTR_SIZE = 96;

export interface PerfEventAttr {
  type: number;
  config: number | bigint;
  /** The PMU-specific extensions of config (a sysfs event's config1/config2 terms). */
  config1?: bigint;
  config2?: bigint;
  /** PERF_FORMAT_* bits: what read(2) of the event returns. */
  readFormat?: number;
  /** sample_period, or sample_freq when the freq bit is set. */
  period?: number;
  sampleType?: number;
  bits: (keyof typeof AttrBit)[];
  /** wakeup_events, or wakeup_watermark (bytes) when the watermark bit is set. */
  wakeup?: number;
  /**
   * Stamp samples with CLOCK_BOOTTIME (use_clockid; default true). Counting
   * events take no samples, and some PMUs (msr) refuse the bit.
   */
  timestamps?: boolean;
}

export function encodeAttr(attr: PerfEventAttr): Uint8Array<ArrayBuffer> {
  const buf = new Uint8Array(ATTR_SIZE);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, attr.type, true);
  dv.setUint32(4, ATTR_SIZE, true);
  dv.setBigUint64(8, BigInt(attr.config), true);
  dv.setBigUint64(16, BigInt(attr.period ?? 0), true);
  dv.setBigUint64(24, BigInt(attr.sampleType ?? 0), true);
  dv.setBigUint64(32, BigInt(attr.readFormat ?? 0), true);
  let bits = attr.timestamps === false ? 0n : 1n << BigInt(AttrBit.useClockid);
  for (const b of attr.bits) bits |= 1n << BigInt(AttrBit[b]);
  dv.setBigUint64(40, bits, true);
  dv.setUint32(48, attr.wakeup ?? 0, true);
  dv.setBigUint64(56, attr.config1 ?? 0n, true);
  dv.setBigUint64(64, attr.config2 ?? 0n, true);
  // Our BPF records are stamped with bpf_ktime_get_boot_ns(): same clock, no
  // conversion when the two streams are merged.
  dv.setInt32(92, CLOCK_BOOTTIME, true);
  return buf;
}

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  7: "E2BIG",
  13: "EACCES",
  16: "EBUSY",
  19: "ENODEV",
  22: "EINVAL",
  24: "EMFILE",
  95: "EOPNOTSUPP",
};

export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

function paranoidLevel(): string {
  try {
    return Deno.readTextFileSync("/proc/sys/kernel/perf_event_paranoid").trim();
  } catch {
    return "unknown";
  }
}

/** Opens one event for all tasks on `cpu`; throws LibbpfError carrying errno. */
export function perfEventOpen(attr: PerfEventAttr, cpu: number, what: string): number {
  const fd = Number(
    loadLibc().perf_event_open(
      SYS_PERF_EVENT_OPEN,
      encodeAttr(attr),
      -1,
      cpu,
      -1,
      PERF_FLAG_FD_CLOEXEC,
    ),
  );
  if (fd >= 0) return fd;
  const errno = lastErrno();
  const operation = `perf_event_open(${what}, cpu ${cpu})`;
  if (errno === 1 || errno === 13) {
    throw new LibbpfError(
      operation,
      errno,
      "permission denied: system-wide perf events need root or CAP_PERFMON, or " +
        `kernel.perf_event_paranoid <= 0 (it is ${paranoidLevel()})`,
    );
  }
  throw new LibbpfError(operation, errno, describeError(errno));
}

/** A counter's value and how long it was enabled and running (less: multiplexed). */
export interface CounterReading {
  value: bigint;
  enabled: bigint;
  running: bigint;
}

/**
 * Counting events for all tasks on given CPUs, opened disabled and enabled
 * together by enable(): their counts start when recording does.
 */
export class CountingEvents {
  #fds: number[] = [];

  /** Opens ATTR (read_format enabled+running is added) on CPU; returns its index. */
  open(attr: PerfEventAttr, cpu: number, what: string): number {
    const fd = perfEventOpen(
      {
        ...attr,
        timestamps: false,
        readFormat: PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING,
        bits: [...attr.bits, "disabled"],
      },
      cpu,
      what,
    );
    this.#fds.push(fd);
    return this.#fds.length - 1;
  }

  /** The fd of event I, for a BPF perf event array (which takes its own reference). */
  fd(i: number): number {
    return this.#fds[i];
  }

  enable(): void {
    for (const fd of this.#fds) {
      if (loadLibc().ioctl(fd, BigInt(PERF_EVENT_IOC_ENABLE), 0n) !== 0) {
        const errno = lastErrno();
        throw new LibbpfError("enabling a perf counter", errno, describeError(errno));
      }
    }
  }

  read(i: number): CounterReading {
    const buf = new BigUint64Array(3);
    const n = Number(loadLibc().read(this.#fds[i], new Uint8Array(buf.buffer), 24n));
    if (n !== 24) {
      const errno = n < 0 ? lastErrno() : 0;
      throw new LibbpfError(
        "reading a perf counter",
        errno,
        errno ? describeError(errno) : `${n} bytes`,
      );
    }
    return { value: buf[0], enabled: buf[1], running: buf[2] };
  }

  close(): void {
    for (const fd of this.#fds) loadLibc().close(fd);
    this.#fds = [];
  }
}

export interface SamplingEvent {
  cpu: number;
  fd: number;
}

/** Owns the sampling events' fds until they are closed or handed to a BPF link. */
export class PerfEventSet {
  readonly source: "cycles" | "cpu-clock";
  /** Why hardware cycles were not used, when they were not. */
  readonly fallback?: string;
  #events: SamplingEvent[];

  constructor(events: SamplingEvent[], source: "cycles" | "cpu-clock", fallback?: string) {
    this.#events = events;
    this.source = source;
    if (fallback !== undefined) this.fallback = fallback;
  }

  get events(): readonly SamplingEvent[] {
    return this.#events;
  }

  /**
   * Gives up ownership of fd: bpf_link__destroy() of a perf-event link closes
   * the perf fd itself, so after a successful bpf_program__attach_perf_event()
   * closing it here too would close whatever reused that number.
   */
  release(fd: number): void {
    this.#events = this.#events.filter((e) => e.fd !== fd);
  }

  close(): void {
    const libc = loadLibc();
    for (const e of this.#events) libc.close(e.fd);
    this.#events = [];
  }
}

function openOnAll(cpus: number[], attr: PerfEventAttr, what: string): SamplingEvent[] {
  const events: SamplingEvent[] = [];
  try {
    for (const cpu of cpus) events.push({ cpu, fd: perfEventOpen(attr, cpu, what) });
  } catch (e) {
    for (const ev of events) loadLibc().close(ev.fd);
    throw e;
  }
  return events;
}

/** Without a PMU the kernel has no driver for PERF_TYPE_HARDWARE. */
const NO_PMU_ERRNOS = new Set([2, 19, 95]);

/**
 * One sampling event per CPU for all tasks, opened disabled: nothing may
 * sample before the BPF program is attached, and
 * bpf_program__attach_perf_event() enables the event itself.
 */
export function openSamplingEvents(
  cpus: number[],
  hz: number,
  opts: { forceSoftware?: boolean } = {},
): PerfEventSet {
  if (!Number.isInteger(hz) || hz < 1 || hz > 100_000) {
    throw new PerfEventError(`sampling frequency must be an integer 1..100000 Hz, got ${hz}`);
  }
  if (cpus.length === 0) throw new PerfEventError("no CPUs to sample on");
  let fallback = "software events forced";
  if (!opts.forceSoftware) {
    try {
      const events = openOnAll(cpus, {
        type: PERF_TYPE_HARDWARE,
        config: PERF_COUNT_HW_CPU_CYCLES,
        period: hz,
        bits: ["disabled", "freq"],
      }, "cycles");
      return new PerfEventSet(events, "cycles");
    } catch (e) {
      if (!(e instanceof LibbpfError) || e.errno === 1 || e.errno === 13) throw e;
      fallback =
        `${NO_PMU_ERRNOS.has(e.errno) ? "no hardware PMU" : "hardware cycles unusable"}: ` +
        `perf_event_open(cycles) failed with ${errnoName(e.errno)}`;
    }
  }
  // A fixed period keeps the clock's ticks exact; freq mode would keep
  // re-estimating a period the software clock already knows.
  const events = openOnAll(cpus, {
    type: PERF_TYPE_SOFTWARE,
    config: PERF_COUNT_SW_CPU_CLOCK,
    period: Math.max(1, Math.round(1e9 / hz)),
    bits: ["disabled"],
  }, "cpu-clock");
  return new PerfEventSet(events, "cpu-clock", fallback);
}

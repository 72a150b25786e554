/**
 * The side-band perf itself relies on: per CPU, a dummy software event that
 * samples nothing but reports process lifecycle (fork, exec comm, exit) and
 * file mappings, decoded straight from its mmap'ed ring.
 *
 * Ring layout (<linux/perf_event.h>): one struct perf_event_mmap_page (data_head
 * @1024, data_tail @1032, data_offset @1040, data_size @1048), then 2^n data
 * pages. Because we map it writable the kernel honours data_tail and never
 * overwrites unread records; it drops them and later reports a LOST record.
 */
import { check, lastErrno, loadLibc } from "./library.ts";
import {
  PERF_COUNT_SW_DUMMY,
  PERF_EVENT_IOC_ENABLE,
  PERF_SAMPLE_TID,
  PERF_SAMPLE_TIME,
  PERF_TYPE_SOFTWARE,
  PerfEventError,
  perfEventOpen,
} from "./perf_event.ts";

const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const MAP_FAILED = 0xffffffffffffffffn;

const PERF_RECORD_LOST = 2;
const PERF_RECORD_COMM = 3;
const PERF_RECORD_EXIT = 4;
const PERF_RECORD_FORK = 7;
const PERF_RECORD_MMAP2 = 10;
const PERF_RECORD_MISC_COMM_EXEC = 1 << 13;
const PERF_RECORD_MISC_MMAP_BUILD_ID = 1 << 14;
const HEADER_SIZE = 8;
/** sample_id with PERF_SAMPLE_TID | PERF_SAMPLE_TIME: u32 pid, tid; u64 time. */
const SAMPLE_ID_SIZE = 16;

export type SidebandRecord =
  | {
    type: "mmap2";
    pid: number;
    tid: number;
    addr: number;
    len: number;
    /** File offset of the mapping in bytes (the kernel shifts vm_pgoff). */
    pgoff: number;
    maj: number;
    min: number;
    ino: number;
    inoGeneration: number;
    prot: number;
    flags: number;
    filename: string;
    time: number;
  }
  | { type: "comm"; pid: number; tid: number; comm: string; exec: boolean; time: number }
  | { type: "fork"; pid: number; ppid: number; tid: number; ptid: number; time: number }
  | { type: "exit"; pid: number; ppid: number; tid: number; ptid: number; time: number }
  | { type: "lost"; lost: number; time: number };

const decoder = new TextDecoder("utf-8", { fatal: false });

/**
 * u64 as a Number: exact below 2^53, which covers user addresses, offsets
 * and BOOTTIME nanoseconds for the first 104 days of uptime (then a few ns
 * of rounding).
 */
function u64(dv: DataView, off: number): number {
  return dv.getUint32(off, true) + dv.getUint32(off + 4, true) * 4294967296;
}

function cString(bytes: Uint8Array, start: number, end: number): string {
  let nul = start;
  while (nul < end && bytes[nul] !== 0) nul++;
  return decoder.decode(bytes.subarray(start, nul));
}

/** Decodes the record of `size` bytes at `base`; undefined for types we do not use. */
function decode(dv: DataView, bytes: Uint8Array, base: number, size: number) {
  const type = dv.getUint32(base, true);
  const misc = dv.getUint16(base + 4, true);
  const time = u64(dv, base + size - 8);
  const b = base + HEADER_SIZE;
  switch (type) {
    case PERF_RECORD_MMAP2: {
      // The build-id variant reuses maj..ino_generation; we never ask for it
      // (attr.build_id = 0), but if it appears its identity fields are not inodes.
      const hasIds = (misc & PERF_RECORD_MISC_MMAP_BUILD_ID) === 0;
      return {
        type: "mmap2",
        pid: dv.getUint32(b, true),
        tid: dv.getUint32(b + 4, true),
        addr: u64(dv, b + 8),
        len: u64(dv, b + 16),
        pgoff: u64(dv, b + 24),
        maj: hasIds ? dv.getUint32(b + 32, true) : 0,
        min: hasIds ? dv.getUint32(b + 36, true) : 0,
        ino: hasIds ? u64(dv, b + 40) : 0,
        inoGeneration: hasIds ? u64(dv, b + 48) : 0,
        prot: dv.getUint32(b + 56, true),
        flags: dv.getUint32(b + 60, true),
        filename: cString(bytes, b + 64, base + size - SAMPLE_ID_SIZE),
        time,
      } satisfies SidebandRecord;
    }
    case PERF_RECORD_COMM:
      return {
        type: "comm",
        pid: dv.getUint32(b, true),
        tid: dv.getUint32(b + 4, true),
        comm: cString(bytes, b + 8, base + size - SAMPLE_ID_SIZE),
        exec: (misc & PERF_RECORD_MISC_COMM_EXEC) !== 0,
        time,
      } satisfies SidebandRecord;
    case PERF_RECORD_FORK:
    case PERF_RECORD_EXIT:
      return {
        type: type === PERF_RECORD_FORK ? "fork" : "exit",
        pid: dv.getUint32(b, true),
        ppid: dv.getUint32(b + 4, true),
        tid: dv.getUint32(b + 8, true),
        ptid: dv.getUint32(b + 12, true),
        time,
      } satisfies SidebandRecord;
    case PERF_RECORD_LOST:
      return { type: "lost", lost: u64(dv, b + 8), time } satisfies SidebandRecord;
  }
  return undefined;
}

/** One CPU's event and its mapped ring. */
class Ring {
  readonly cpu: number;
  readonly fd: number;
  readonly dataSize: number;
  readonly dataOffset: number;
  readonly mapLen: number;
  readonly dv: DataView;
  readonly bytes: Uint8Array;
  readonly head: BigUint64Array;
  readonly tail: BigUint64Array;
  ptr: Deno.PointerObject | null;

  constructor(cpu: number, fd: number, ptr: Deno.PointerObject, mapLen: number) {
    this.cpu = cpu;
    this.fd = fd;
    this.ptr = ptr;
    this.mapLen = mapLen;
    const buf = Deno.UnsafePointerView.getArrayBuffer(ptr, mapLen);
    this.dv = new DataView(buf);
    this.bytes = new Uint8Array(buf);
    this.head = new BigUint64Array(buf, 1024, 1);
    this.tail = new BigUint64Array(buf, 1032, 1);
    this.dataOffset = u64(this.dv, 1040);
    this.dataSize = u64(this.dv, 1048);
  }
}

export class PerfSideband {
  #rings: Ring[];
  #scratch = new Uint8Array(65536);
  #scratchView = new DataView(this.#scratch.buffer);
  #lost = 0;
  #wrapped = 0;

  private constructor(rings: Ring[]) {
    this.#rings = rings;
  }

  /**
   * Opens and enables the side-band on `cpus`, each with a ring of
   * `pagesPerCpu` data pages (a power of two).
   */
  static open(cpus: number[], pagesPerCpu = 64): PerfSideband {
    if (!Number.isInteger(pagesPerCpu) || pagesPerCpu < 1 || (pagesPerCpu & (pagesPerCpu - 1))) {
      throw new PerfEventError(`side-band ring pages must be a power of two, got ${pagesPerCpu}`);
    }
    const libc = loadLibc();
    const page = libc.getpagesize();
    const mapLen = (1 + pagesPerCpu) * page;
    const dataSize = pagesPerCpu * page;
    const rings: Ring[] = [];
    const sideband = new PerfSideband(rings);
    try {
      for (const cpu of cpus) {
        // Opened disabled so that no record is produced before its ring exists.
        const fd = perfEventOpen(
          {
            type: PERF_TYPE_SOFTWARE,
            config: PERF_COUNT_SW_DUMMY,
            sampleType: PERF_SAMPLE_TID | PERF_SAMPLE_TIME,
            // MMAP2 is only sent for executable mappings (mmap_data is off):
            // those are what symbolising user stacks needs.
            bits: [
              "disabled",
              "mmap",
              "mmap2",
              "comm",
              "commExec",
              "task",
              "sampleIdAll",
              "watermark",
            ],
            // Wake a poller only once a quarter of the ring is full, not per record.
            wakeup: dataSize / 4,
          },
          cpu,
          "side-band dummy",
        );
        const ptr = libc.mmap(null, BigInt(mapLen), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0n);
        if (ptr === null || Deno.UnsafePointer.value(ptr) === MAP_FAILED) {
          const errno = lastErrno();
          libc.close(fd);
          check(-errno, `mmap of the side-band ring for cpu ${cpu} (${mapLen} bytes)`);
        }
        rings.push(new Ring(cpu, fd, ptr!, mapLen));
      }
      for (const r of rings) {
        if (libc.ioctl(r.fd, BigInt(PERF_EVENT_IOC_ENABLE), 0n) < 0) {
          check(-lastErrno(), `enabling the side-band event on cpu ${r.cpu}`);
        }
      }
    } catch (e) {
      sideband.close();
      throw e;
    }
    return sideband;
  }

  /** The events' fds, for epoll (readable once a ring passes its watermark). */
  fds(): number[] {
    return this.#rings.map((r) => r.fd);
  }

  /** Events the kernel dropped because a ring was full (from LOST records). */
  get lost(): number {
    return this.#lost;
  }

  /** Records that straddled the end of a ring and were decoded from a copy. */
  get wrapped(): number {
    return this.#wrapped;
  }

  /** Decodes every record now in the rings, in order per CPU; returns how many were read. */
  drain(onRecord: (r: SidebandRecord, cpu: number) => void): number {
    let n = 0;
    for (const r of this.#rings) {
      if (!r.ptr) continue;
      const head = Number(Atomics.load(r.head, 0));
      let tail = Number(r.tail[0]);
      try {
        while (tail < head) {
          const off = tail % r.dataSize;
          // Records are 8-aligned and the data size a multiple of 8: the header never wraps.
          const size = r.dv.getUint16(r.dataOffset + off + 6, true);
          if (size < HEADER_SIZE || size % 8 !== 0 || size > head - tail) {
            throw new PerfEventError(
              `side-band ring of cpu ${r.cpu}: corrupt record size ${size} at position ${tail}`,
            );
          }
          let rec;
          if (off + size <= r.dataSize) {
            rec = decode(r.dv, r.bytes, r.dataOffset + off, size);
          } else {
            const first = r.dataSize - off;
            const start = r.dataOffset + off;
            this.#scratch.set(r.bytes.subarray(start, start + first), 0);
            this.#scratch.set(r.bytes.subarray(r.dataOffset, r.dataOffset + size - first), first);
            rec = decode(this.#scratchView, this.#scratch, 0, size);
            this.#wrapped++;
          }
          tail += size;
          n++;
          if (rec) {
            if (rec.type === "lost") this.#lost += rec.lost;
            onRecord(rec, r.cpu);
          }
        }
      } finally {
        // Hands the space back even if onRecord threw: those records were delivered.
        Atomics.store(r.tail, 0, BigInt(tail));
      }
    }
    return n;
  }

  close(): void {
    const libc = loadLibc();
    for (const r of this.#rings) {
      if (r.ptr) {
        libc.munmap(r.ptr, BigInt(r.mapLen));
        r.ptr = null;
        libc.close(r.fd);
      }
    }
    this.#rings = [];
  }
}

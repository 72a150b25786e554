/**
 * Names code addresses from the machine itself: kernel addresses through
 * /proc/kallsyms, user addresses through the process's mappings and the
 * mapped ELF files' symbol tables. No network, no debuginfod. A frame that
 * cannot be named keeps its module and offset.
 *
 * The mapped files belong to whoever mapped them, so opening one is done as
 * if an attacker chose it: first through /proc/PID/map_files (the very file
 * mapped, no path lookup), else by path without following any symlink, and
 * always only a regular file with the mapping's device and inode (never a
 * FIFO, never a device). Whatever goes wrong inside one file (a corrupt table,
 * a read error, a limit reached) marks that file failed: its frames are
 * labelled, the recording goes on. Open files and what was parsed from them
 * are kept in a cache bounded by count (descriptors) and by bytes.
 */
import type { AddressSpaces, Mapping } from "../stacks/address_spaces.ts";
import { demangle } from "./demangle.ts";
import { ElfFile } from "./elf_file.ts";
import { EhFrame } from "../unwind/eh_frame.ts";
import type { UnwindModule } from "../unwind/dwarf_unwinder.ts";
import type { FileIdentity } from "../ffi/regular_file.ts";
import type { Kallsyms } from "./kallsyms.ts";
import type { FrameRef, ModuleRef } from "../perfetto/profile_writer.ts";

const KERNEL_MODULE: ModuleRef = { key: "[kernel.kallsyms]", path: "[kernel.kallsyms]" };

/** Files kept open (each holds a descriptor, and its debug file maybe a second). */
export const MAX_OPEN_FILES = 128;
/** Bytes the open files' parsed tables and caches may hold in all. */
export const MAX_CACHED_BYTES = 256 << 20;
/** Resolved frames remembered per file. */
const MAX_FRAMES_PER_FILE = 8192;
/** Distinct unreadable files remembered for the summary. */
const MAX_FAILURES = 1000;

export interface UserFrameResult {
  frame?: FrameRef;
  /** The address is not in an executable mapping: a frame-pointer walk went astray here. */
  invalid: boolean;
}

interface OpenedFile {
  key: string;
  elf: ElfFile | undefined;
  module: ModuleRef;
  /** Parsed on first use; null when the file has no usable unwind table. */
  eh?: EhFrame | null;
  /** Its separate debug file, looked up on first use; null when there is none. */
  debug?: ElfFile | null;
  /** Resolved frames by file offset (negative: looked up as a return address). */
  frames: Map<number, FrameRef>;
  label: string;
  /** When it was last used (the cache's clock): the least recently used is closed first. */
  used: number;
}

function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1) || path;
}

/** "fd:01" (as /proc/PID/maps and our side-band spell a device) → [major, minor]. */
function parseDev(dev: string): [number, number] | undefined {
  const m = /^([0-9a-f]+):([0-9a-f]+)$/i.exec(dev);
  return m ? [parseInt(m[1], 16), parseInt(m[2], 16)] : undefined;
}

/** Accepts only the file the mapping was made from. */
function sameFile(m: Mapping): (id: FileIdentity) => string | undefined {
  const dev = parseDev(m.dev);
  return (id) => {
    if (id.ino !== m.inode) return `inode ${id.ino}, but the mapping's is ${m.inode}`;
    if (dev && (id.devMajor !== dev[0] || id.devMinor !== dev[1])) {
      return `device ${id.devMajor.toString(16)}:${id.devMinor.toString(16)}, ` +
        `but the mapping's is ${m.dev}`;
    }
    return undefined;
  };
}

/** A mapping's file as the symbolizer opened it, and its unwind module once asked for. */
interface MappedFile {
  /** The symbolizer's count of closed files when this was made: a later close makes it stale. */
  closes: number;
  file: OpenedFile;
  module: UnwindModule | undefined;
}

export class Symbolizer {
  #kallsyms: Kallsyms | (() => Kallsyms);
  #spaces: AddressSpaces;
  #files = new Map<string, OpenedFile>();
  #clock = 0;
  /**
   * Each mapping's opened file (and unwindModule's answer for it), valid while no file has been
   * closed since (`closes`): frames and walks ask per new pc, a hot loop's pcs are many, and
   * finding the file by its identity builds a string each time.
   */
  #byMapping = new WeakMap<Mapping, MappedFile>();
  #closes = 0;
  #kernelNames = new Map<bigint, FrameRef>();
  #kernelReturns = new Map<bigint, FrameRef>();
  #kernelModules = new Map<string, ModuleRef>();
  #vdso: OpenedFile | undefined;
  /** Files that could not be read or parsed, with why (the first MAX_FAILURES of them). */
  readonly failures = new Map<string, string>();
  /** Failures beyond those remembered. */
  moreFailures = 0;
  /** Frames resolved (one per frame of each distinct stack): named by symbol vs labelled. */
  named = 0;
  labelled = 0;
  /** Files opened, and closed again to stay within the cache's bounds. */
  opened = 0;
  evicted = 0;

  /** `kallsyms` may be a loader: it then runs on the first kernel frame, not at start-up. */
  constructor(kallsyms: Kallsyms | (() => Kallsyms), spaces: AddressSpaces) {
    this.#kallsyms = kallsyms;
    this.#spaces = spaces;
  }

  /**
   * A kernel frame. `returnAddress` is true for every frame but the
   * innermost: a return address may belong to the next function when the
   * call was the caller's last instruction, so it is looked up one byte back.
   */
  kernelFrame(ip: bigint, returnAddress: boolean): FrameRef {
    // An address at a function's first byte names that function as the
    // innermost frame but its caller's neighbour as a return address.
    const cache = returnAddress ? this.#kernelReturns : this.#kernelNames;
    const cached = cache.get(ip);
    if (cached) {
      if (cached.module === KERNEL_MODULE && cached.name.startsWith("[kernel] ")) this.labelled++;
      else this.named++;
      return cached;
    }
    if (typeof this.#kallsyms === "function") this.#kallsyms = this.#kallsyms();
    const sym = this.#kallsyms.lookup(returnAddress ? ip - 1n : ip);
    let frame: FrameRef;
    if (sym) {
      const module = sym.module ? this.#kernelModule(sym.module) : KERNEL_MODULE;
      frame = { module, relPc: ip, name: sym.name };
      this.named++;
    } else {
      frame = { module: KERNEL_MODULE, relPc: ip, name: `[kernel] 0x${ip.toString(16)}` };
      this.labelled++;
    }
    if (cache.size < 1 << 18) cache.set(ip, frame);
    return frame;
  }

  #kernelModule(name: string): ModuleRef {
    let m = this.#kernelModules.get(name);
    if (!m) {
      m = { key: `[${name}]`, path: `[${name}]` };
      this.#kernelModules.set(name, m);
    }
    return m;
  }

  /** A user frame of process `tgid` at time `ts` (relative ns). */
  userFrame(tgid: number, ip: number, ts: number, returnAddress: boolean): UserFrameResult {
    const mapping = this.#spaces.lookup(tgid, ip, ts);
    if (!mapping || !mapping.executable) return { invalid: true };
    const fileOffset = ip - mapping.start + mapping.pgoff;
    const opened = this.#mapped(mapping, tgid).file;
    // The same code in every process that maps the file names alike: on a
    // fork-heavy host most samples are of processes seen for the first time.
    const cacheKey = returnAddress ? -fileOffset - 1 : fileOffset;
    const cache = opened.frames;
    const hit = cache.get(cacheKey);
    if (hit) {
      if (hit.name.startsWith(opened.label)) this.labelled++;
      else this.named++;
      return { invalid: false, frame: hit };
    }
    const r = this.#resolveUser(opened, fileOffset, returnAddress);
    if (cache.size >= MAX_FRAMES_PER_FILE) cache.clear();
    cache.set(cacheKey, r);
    return { invalid: false, frame: r };
  }

  #resolveUser(opened: OpenedFile, fileOffset: number, returnAddress: boolean): FrameRef {
    const lookupOffset = returnAddress ? fileOffset - 1 : fileOffset;
    if (opened.elf) {
      try {
        const vaddr = opened.elf.fileOffsetToVaddr(lookupOffset);
        if (vaddr !== undefined) {
          const sym = opened.elf.symbolize(vaddr) ?? this.#debugFile(opened)?.symbolize(vaddr);
          const relPc = BigInt(vaddr + (returnAddress ? 1 : 0));
          if (sym) {
            this.named++;
            return { module: opened.module, relPc, name: demangle(sym.name) };
          }
        }
      } catch (e) {
        // Whatever this file does wrong costs its own names only.
        this.#markFailed(opened, e);
      }
      this.#trim(opened);
    }
    this.labelled++;
    return {
      module: opened.module,
      relPc: BigInt(fileOffset),
      name: `${opened.label}0x${fileOffset.toString(16)}`,
    };
  }

  #markFailed(f: OpenedFile, e: unknown): void {
    this.#noteFailure(f.module.path, (e as Error)?.message ?? String(e));
    this.#closes++;
    f.elf?.close();
    f.elf = undefined;
    f.debug?.close();
    f.debug = null;
    f.eh = null;
  }

  #noteFailure(path: string, why: string): void {
    if (this.failures.has(path)) return;
    if (this.failures.size < MAX_FAILURES) this.failures.set(path, why);
    else this.moreFailures++;
  }

  /**
   * Separate debug symbols where the distribution installed them (Debian's
   * *-dbg / *-dbgsym packages), found by build id: stripped libraries such
   * as libc keep only exported names, the debug file has the rest. The
   * directory is root's, and the id is hex we formatted ourselves.
   */
  #debugFile(f: OpenedFile): ElfFile | undefined {
    if (f.debug !== undefined) return f.debug ?? undefined;
    f.debug = null;
    const id = f.elf?.buildId;
    if (id && id.length > 2) {
      const path = `/usr/lib/debug/.build-id/${id.slice(0, 2)}/${id.slice(2)}.debug`;
      try {
        f.debug = ElfFile.open(path, { links: "follow" });
        if (f.debug.buildId !== id) {
          f.debug.close();
          f.debug = null;
        }
      } catch { /* not installed: exported names only */ }
    }
    return f.debug ?? undefined;
  }

  /**
   * What the DWARF unwinder needs for `ip` in process `tgid` at `ts`: the
   * module's unwind table (parsed once per file) and its load bias.
   */
  /**
   * The file mapped at ADDR in process TGID at TS, opened (the cache owns it: use it now), with
   * its load bias and its identity.
   */
  mappedElf(
    tgid: number,
    addr: number,
    ts: number,
  ): { elf: ElfFile; bias: number; key: string } | undefined {
    const m = this.#spaces.lookup(tgid, addr, ts);
    if (!m || m.path === "[vdso]") return undefined;
    const f = this.#open(m, tgid);
    if (!f.elf) return undefined;
    const vaddr = f.elf.fileOffsetToVaddr(m.pgoff);
    return {
      elf: f.elf,
      bias: vaddr === undefined ? m.start - m.pgoff : m.start - vaddr,
      key: f.key,
    };
  }

  /**
   * Reads, ahead of need, the symbols and unwind table of the file mapped at ADDR in process
   * TGID: for the libraries in nearly every stack, before recording starts rather than in its
   * first second, where the work competes with the workload. Counts no frame.
   */
  preload(tgid: number, addr: number, ts: number): void {
    const m = this.#spaces.lookup(tgid, addr, ts);
    if (!m || !m.executable || m.path === "[vdso]") return;
    const f = this.#open(m, tgid);
    const elf = f.elf;
    if (!elf) return;
    try {
      const vaddr = elf.fileOffsetToVaddr(m.pgoff);
      if (vaddr !== undefined) {
        // Builds the symbol indexes: the file's, and its debug file's (local functions).
        elf.symbolize(vaddr);
        this.#debugFile(f)?.symbolize(vaddr);
      }
    } catch { /* the file's own problem, met again (and marked) on its first frame */ }
    this.unwindModule(tgid, addr, ts);
  }

  unwindModule(tgid: number, ip: number, ts: number): UnwindModule | undefined {
    const m = this.#spaces.lookup(tgid, ip, ts);
    if (!m || !m.executable) return undefined;
    const known = this.#mapped(m, tgid);
    if (known.module === undefined) {
      known.module = this.#unwindModuleOf(m, known.file);
      // Opening its table may have closed other files: their mappings' entries are stale now,
      // this one (whose file is kept open) is not.
      known.closes = this.#closes;
    }
    return known.module;
  }

  /** The file of mapping M, opened (or found) once per mapping. */
  #mapped(m: Mapping, tgid: number): MappedFile {
    const known = this.#byMapping.get(m);
    if (known !== undefined && known.closes === this.#closes) {
      known.file.used = ++this.#clock;
      return known;
    }
    // Opened first: opening may close other files, which moves `closes` on.
    const file = this.#open(m, tgid);
    const entry: MappedFile = { closes: this.#closes, file, module: undefined };
    this.#byMapping.set(m, entry);
    return entry;
  }

  #unwindModuleOf(m: Mapping, f: OpenedFile): UnwindModule {
    const elf = f.elf;
    if (!elf) return { table: undefined, bias: 0 };
    if (f.eh === undefined) {
      try {
        f.eh = EhFrame.fromElf(elf, m.path) ?? null;
      } catch {
        // A corrupt table: frame pointers, or the end of the walk, for this file's frames.
        f.eh = null;
      }
      this.#trim(f);
    }
    const vaddr = elf.fileOffsetToVaddr(m.pgoff);
    const bias = vaddr === undefined ? m.start - m.pgoff : m.start - vaddr;
    return { table: f.eh ?? undefined, bias, entry: elf.entry || undefined };
  }

  #open(m: Mapping, tgid: number): OpenedFile {
    if (m.path === "[vdso]") return this.#vdso ??= this.#openVdso();
    const key = m.inode ? `${m.dev}:${m.inode}` : m.path;
    const f = this.#files.get(key);
    if (f) {
      f.used = ++this.#clock;
      return f;
    }
    const module: ModuleRef = { key, path: m.path || "[anon]" };
    const opened: OpenedFile = {
      key,
      elf: undefined,
      module,
      frames: new Map(),
      label: `${basename(module.path)}+`,
      used: ++this.#clock,
    };
    if (m.inode) {
      opened.elf = this.#openMapped(m, tgid);
      if (opened.elf) {
        this.opened++;
        if (opened.elf.buildId) module.buildId = hexToBytes(opened.elf.buildId);
      }
    }
    this.#files.set(key, opened);
    this.#trim(opened);
    return opened;
  }

  /**
   * The mapped file itself, or undefined. map_files names exactly the mapped file while the
   * mapping exists; once it is gone, the path is tried in our mount namespace and in the
   * process's, with no symlink followed, and only the mapping's device and inode accepted.
   */
  #openMapped(m: Mapping, tgid: number): ElfFile | undefined {
    const accept = sameFile(m);
    const range = `${m.start.toString(16)}-${m.end.toString(16)}`;
    const tries: [string, Parameters<typeof ElfFile.open>[1]][] = [
      [`/proc/${tgid}/map_files/${range}`, { links: "follow", accept }],
    ];
    if (m.path.startsWith("/")) {
      tries.push([m.path, { links: "refuse", accept }]);
      tries.push([m.path, { links: "refuse", root: `/proc/${tgid}/root`, accept }]);
    }
    // Most tries fail for want of the file; a file that is there but refused says more.
    let gone: string | undefined;
    let refused: string | undefined;
    for (const [path, options] of tries) {
      try {
        return ElfFile.open(path, options);
      } catch (e) {
        const why = (e as Error).message;
        if (/\(errno 2\)$/.test(why)) gone ??= why;
        else refused ??= why;
      }
    }
    this.#noteFailure(m.path, refused ?? gone ?? "file replaced or gone");
    return undefined;
  }

  /** Closes the least recently used files until the cache is within its bounds. */
  #trim(keep: OpenedFile): void {
    if (this.#files.size <= MAX_OPEN_FILES && this.#cachedBytes() <= MAX_CACHED_BYTES) return;
    // Evictions are rare next to lookups: order the files only now.
    const oldestFirst = [...this.#files.values()].sort((a, b) => a.used - b.used);
    for (const f of oldestFirst) {
      if (this.#files.size <= 1) break;
      if (f === keep) continue;
      this.#files.delete(f.key);
      f.elf?.close();
      f.debug?.close();
      this.#closes++;
      this.evicted++;
      if (this.#files.size <= MAX_OPEN_FILES && this.#cachedBytes() <= MAX_CACHED_BYTES) break;
    }
  }

  #cachedBytes(): number {
    let n = 0;
    for (const f of this.#files.values()) {
      n += 512 + f.frames.size * 160 + (f.elf?.retainedBytes ?? 0) +
        (f.debug?.retainedBytes ?? 0) + (f.eh?.retainedBytes ?? 0);
    }
    return n;
  }

  /** The vDSO is the same image in every process: read ours from memory. */
  #openVdso(): OpenedFile {
    const module: ModuleRef = { key: "[vdso]", path: "[vdso]" };
    const f: OpenedFile = {
      key: "[vdso]",
      elf: undefined,
      module,
      frames: new Map(),
      label: "[vdso]+",
      used: 0,
    };
    try {
      const line = Deno.readTextFileSync("/proc/self/maps").split("\n")
        .find((l) => l.endsWith("[vdso]"));
      if (!line) return f;
      const [lo, hi] = line.split(" ")[0].split("-").map((h) => parseInt(h, 16));
      const mem = Deno.openSync("/proc/self/mem");
      try {
        const bytes = new Uint8Array(hi - lo);
        mem.seekSync(lo, Deno.SeekMode.Start);
        let n = 0;
        while (n < bytes.length) {
          const r = mem.readSync(bytes.subarray(n));
          if (r === null || r === 0) break;
          n += r;
        }
        f.elf = ElfFile.fromBytes(bytes.subarray(0, n), "[vdso]");
        if (f.elf.buildId) module.buildId = hexToBytes(f.elf.buildId);
        return f;
      } finally {
        mem.close();
      }
    } catch (e) {
      this.#noteFailure("[vdso]", (e as Error).message);
      return f;
    }
  }

  /** Files open right now. */
  get openFiles(): number {
    let n = 0;
    for (const f of this.#files.values()) if (f.elf) n++;
    return n;
  }

  close(): void {
    this.#closes++;
    for (const f of this.#files.values()) {
      f.elf?.close();
      f.debug?.close();
    }
    this.#files.clear();
  }
}

/**
 * Names code addresses from the machine itself: kernel addresses through
 * /proc/kallsyms, user addresses through the process's mappings and the
 * mapped ELF files' symbol tables (opened once per file, looked up by device
 * and inode so that a renamed or replaced path cannot mislead us). No network,
 * no debuginfod. A frame that cannot be named keeps its module and offset.
 */
import type { AddressSpaces, Mapping } from "./address_spaces.ts";
import { demangle } from "./demangle.ts";
import { ElfFile } from "./elf_file.ts";
import { EhFrame, EhFrameError } from "./eh_frame.ts";
import type { UnwindModule } from "./dwarf_unwinder.ts";
import type { Kallsyms } from "./kallsyms.ts";
import type { FrameRef, ModuleRef } from "./profile_writer.ts";

const KERNEL_MODULE: ModuleRef = { key: "[kernel.kallsyms]", path: "[kernel.kallsyms]" };

export interface UserFrameResult {
  frame?: FrameRef;
  /** The address is not in an executable mapping: a frame-pointer walk went astray here. */
  invalid: boolean;
}

interface OpenedFile {
  elf: ElfFile | undefined;
  module: ModuleRef;
  error?: string;
  /** Parsed on first use; null when the file has no usable unwind table. */
  eh?: EhFrame | null;
  /** Its separate debug file, looked up on first use; null when there is none. */
  debug?: ElfFile | null;
  /** Resolved frames by file offset (negative: looked up as a return address). */
  frames?: Map<number, FrameRef>;
  label?: string;
}

function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1) || path;
}

/** Unnamed frames read `libfoo.so+0x1234`. */
function labelPrefix(f: OpenedFile): string {
  return f.label ??= `${basename(f.module.path)}+`;
}

export class Symbolizer {
  #kallsyms: Kallsyms | (() => Kallsyms);
  #spaces: AddressSpaces;
  #files = new Map<string, OpenedFile>();
  #kernelNames = new Map<bigint, FrameRef>();
  #kernelReturns = new Map<bigint, FrameRef>();
  #kernelModules = new Map<string, ModuleRef>();
  #vdso: OpenedFile | undefined;
  /** Files that could not be read, with why (reported once each in the summary). */
  readonly failures = new Map<string, string>();
  /** Frames resolved (one per frame of each distinct stack): named by symbol vs labelled. */
  named = 0;
  labelled = 0;

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
    const opened = this.#open(mapping, tgid);
    // The same code in every process that maps the file names alike: on a
    // fork-heavy host most samples are of processes seen for the first time.
    const cacheKey = returnAddress ? -fileOffset - 1 : fileOffset;
    const cache = opened.frames ??= new Map();
    const hit = cache.get(cacheKey);
    if (hit) {
      if (hit.name.startsWith(labelPrefix(opened))) this.labelled++;
      else this.named++;
      return { invalid: false, frame: hit };
    }
    const r = this.#resolveUser(opened, fileOffset, returnAddress);
    if (cache.size >= 1 << 16) cache.clear();
    cache.set(cacheKey, r);
    return { invalid: false, frame: r };
  }

  #resolveUser(opened: OpenedFile, fileOffset: number, returnAddress: boolean): FrameRef {
    const lookupOffset = returnAddress ? fileOffset - 1 : fileOffset;
    if (opened.elf) {
      const vaddr = opened.elf.fileOffsetToVaddr(lookupOffset);
      if (vaddr !== undefined) {
        const sym = opened.elf.symbolize(vaddr) ?? this.#debugFile(opened)?.symbolize(vaddr);
        const relPc = BigInt(vaddr + (returnAddress ? 1 : 0));
        if (sym) {
          this.named++;
          return { module: opened.module, relPc, name: demangle(sym.name) };
        }
      }
    }
    this.labelled++;
    return {
      module: opened.module,
      relPc: BigInt(fileOffset),
      name: `${labelPrefix(opened)}0x${fileOffset.toString(16)}`,
    };
  }

  /**
   * Separate debug symbols where the distribution installed them (Debian's
   * *-dbg / *-dbgsym packages), found by build id: stripped libraries such
   * as libc keep only exported names, the debug file has the rest.
   */
  #debugFile(f: OpenedFile): ElfFile | undefined {
    if (f.debug !== undefined) return f.debug ?? undefined;
    f.debug = null;
    const id = f.elf?.buildId;
    if (id && id.length > 2) {
      const path = `/usr/lib/debug/.build-id/${id.slice(0, 2)}/${id.slice(2)}.debug`;
      try {
        f.debug = ElfFile.open(path);
      } catch { /* not installed: exported names only */ }
    }
    return f.debug ?? undefined;
  }

  /**
   * What the DWARF unwinder needs for `ip` in process `tgid` at `ts`: the
   * module's unwind table (parsed once per file) and its load bias.
   */
  unwindModule(tgid: number, ip: number, ts: number): UnwindModule | undefined {
    const m = this.#spaces.lookup(tgid, ip, ts);
    if (!m || !m.executable) return undefined;
    const f = this.#open(m, tgid);
    if (!f.elf) return { table: undefined, bias: 0 };
    if (f.eh === undefined) {
      try {
        f.eh = EhFrame.fromElf(f.elf, m.path) ?? null;
      } catch (e) {
        if (!(e instanceof EhFrameError)) throw e;
        f.eh = null;
      }
    }
    const vaddr = f.elf.fileOffsetToVaddr(m.pgoff);
    const bias = vaddr === undefined ? m.start - m.pgoff : m.start - vaddr;
    return { table: f.eh ?? undefined, bias };
  }

  #open(m: Mapping, tgid: number): OpenedFile {
    if (m.path === "[vdso]") return this.#vdso ??= this.#openVdso();
    const key = m.inode ? `${m.dev}:${m.inode}` : m.path;
    let f = this.#files.get(key);
    if (f) return f;
    const module: ModuleRef = { key, path: m.path || "[anon]" };
    f = { elf: undefined, module };
    if (m.inode) {
      // A process in another mount namespace sees the file under its own root;
      // a file deleted since it was mapped is still reachable through map_files
      // while the process lives.
      const candidates = [
        m.path,
        `/proc/${tgid}/root${m.path}`,
        `/proc/${tgid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`,
      ];
      for (const path of candidates) {
        try {
          const st = Deno.statSync(path);
          if (st.ino !== m.inode) continue; // replaced since it was mapped
          f.elf = ElfFile.open(path);
          if (f.elf.buildId) module.buildId = hexToBytes(f.elf.buildId);
          break;
        } catch (e) {
          f.error = (e as Error).message;
        }
      }
      if (!f.elf) this.failures.set(m.path, f.error ?? "file replaced or gone");
    }
    this.#files.set(key, f);
    return f;
  }

  /** The vDSO is the same image in every process: read ours from memory. */
  #openVdso(): OpenedFile {
    const module: ModuleRef = { key: "[vdso]", path: "[vdso]" };
    try {
      const line = Deno.readTextFileSync("/proc/self/maps").split("\n")
        .find((l) => l.endsWith("[vdso]"));
      if (!line) return { elf: undefined, module };
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
        const elf = ElfFile.fromBytes(bytes.subarray(0, n));
        if (elf.buildId) module.buildId = hexToBytes(elf.buildId);
        return { elf, module };
      } finally {
        mem.close();
      }
    } catch (e) {
      this.failures.set("[vdso]", (e as Error).message);
      return { elf: undefined, module };
    }
  }

  close(): void {
    for (const f of this.#files.values()) {
      f.elf?.close();
      f.debug?.close();
    }
    this.#files.clear();
  }
}

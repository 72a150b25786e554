/**
 * Finding the Python processes: each one that maps an interpreter (an executable or libpython
 * defining `_PyRuntime`) is told to the BPF side (map py_procs) with where its `_PyRuntime` is
 * and its version's offsets. Processes alive at the start come from their mappings; later ones
 * from the perf side-band's mmap records, so a process started, exec'd or forked while
 * recording is found too (fork is also handled in BPF: a child inherits its parent's entry).
 * Each interpreter file is read once. A version this build cannot walk is reported once per
 * process, and its stacks keep their native frames.
 */
import { type ElfFile, PF_X } from "../symbolize/elf_file.ts";
import { Layout } from "../records/records.ts";
import { pyProcBytes, PYTHON_FILE, type PythonImage, pythonImage } from "./python_image.ts";

/** A mapping of an interpreter file into a process, as /proc or the side-band tells it. */
export interface PythonMapping {
  pid: number;
  /** Any address of the mapping, to find the file and its load bias. */
  addr: number;
  path: string;
}

/** The interpreter file mapped at an address of a process, opened, with its load bias. */
export type OpenMapped = (
  pid: number,
  addr: number,
) => { elf: ElfFile; bias: number; key: string } | undefined;

const MAX_FILES = 256;

export class PythonProcesses {
  /** By file (device and inode): what it is as an interpreter (undefined: not one). */
  #files = new Map<string, PythonImage | undefined>();
  /** The processes told to BPF, with their version. */
  readonly found = new Map<number, string>();
  /** Processes whose interpreter this build cannot walk, with why (the first few). */
  readonly unsupported = new Map<number, string>();
  unsupportedCount = 0;

  /** Interpreter executables told to BPF (py_exes), by file. */
  #exes = new Set<string>();

  constructor(
    private readonly open: OpenMapped,
    /** Writes struct py_proc for a process (BPF map py_procs). */
    private readonly tell: (pid: number, value: Uint8Array) => void,
    /** Writes struct py_exe for an interpreter executable (BPF map py_exes). */
    private readonly tellExe: (key: Uint8Array, value: Uint8Array) => void = () => {},
  ) {}

  /** Whether PATH may be an interpreter (cheap: by its name). */
  static candidate(path: string): boolean {
    return PYTHON_FILE.test(path);
  }

  /** A mapping seen at SINCE (BOOTTIME ns; 0 for those alive at the start). */
  mapped(m: PythonMapping, since: bigint): void {
    if (!PythonProcesses.candidate(m.path)) return;
    const opened = this.open(m.pid, m.addr);
    if (!opened) return;
    let image = this.#files.get(opened.key);
    if (!this.#files.has(opened.key)) {
      try {
        image = pythonImage(opened.elf, m.path);
      } catch (e) {
        image = { kind: "unsupported", version: "?", why: `unreadable: ${(e as Error).message}` };
      }
      if (this.#files.size >= MAX_FILES) this.#files.clear();
      this.#files.set(opened.key, image);
    }
    if (!image) return;
    if (image.kind === "unsupported") {
      if (!this.unsupported.has(m.pid)) {
        this.unsupportedCount++;
        if (this.unsupported.size < 16) {
          this.unsupported.set(m.pid, `Python ${image.version} (${m.path}): ${image.why}`);
        }
      }
      return;
    }
    this.tell(m.pid, pyProcBytes(image, image.runtime + opened.bias, since));
    // An executable (not a library): its next execs need no userspace to become Python processes.
    const id = opened.elf.identity;
    if (id && !/libpython/.test(m.path) && !this.#exes.has(opened.key) && this.#exes.size < 256) {
      this.#exes.add(opened.key);
      const text = Math.min(
        ...opened.elf.segments.filter((s) => (s.flags & PF_X) !== 0).map((s) => s.vaddr),
      );
      if (Number.isFinite(text)) {
        const K = Layout.py_exe_key, E = Layout.py_exe;
        const key = new Uint8Array(K.size), value = new Uint8Array(E.size);
        const kv = new DataView(key.buffer);
        kv.setBigUint64(K.dev, (BigInt(id.devMajor) << 20n) | BigInt(id.devMinor), true);
        kv.setBigUint64(K.ino, BigInt(id.ino), true);
        value.set(pyProcBytes(image, image.runtime, 0n), E.proc);
        new DataView(value.buffer).setBigUint64(E.text_vaddr, BigInt(text), true);
        this.tellExe(key, value);
      }
    }
    if (this.found.size < 1 << 16) this.found.set(m.pid, image.version);
  }
}

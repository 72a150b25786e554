/**
 * The Python code objects the BPF side told us about (rec_py_code): their qualified names,
 * files, first lines and location tables, by process, address and fingerprint. The fingerprint
 * is what makes address reuse harmless: a code object freed and another allocated in its place
 * has other names, so it is another entry, told about anew. Bounded: past MAX_CODES the oldest
 * entries go (BPF's own memory of what it told is smaller, so it tells again first).
 */
import { Layout, PY_FILE_LEN, PY_NAME_LEN } from "../records/records.ts";
import { lineOf } from "./location_table.ts";

const MAX_CODES = 1 << 16;
/** And the bytes they may hold (names and location tables), whichever bound comes first. */
const MAX_CODE_BYTES = 32 << 20;
/** Frame names kept (by code object and place): past it they are named again when needed. */
const MAX_FRAME_NAMES = 1 << 17;

export interface PyCode {
  tgid: number;
  code: number;
  fpLo: number;
  fpHi: number;
  name: string;
  file: string;
  firstLine: number;
  table: Uint8Array;
  /** The location table was cut short: lines past its end are unknown. */
  tableCut: boolean;
  /** Where the bytecode starts in the code object (instr - bytecode = byte offset). */
  bytecode: number;
}

/** What an entry keeps in memory, roughly. */
function entryBytes(e: PyCode): number {
  return 200 + 2 * (e.name.length + e.file.length) + e.table.length;
}

const latin1 = new TextDecoder("latin1");
const utf16 = new TextDecoder("utf-16le");

/** A unicode object's text from its raw bytes and its state byte (kind, compact, ascii). */
export function decodePyString(bytes: Uint8Array, state: number): string {
  const kind = state & 0x40 ? 1 : (state >> 2) & 7;
  if (kind === 1) return latin1.decode(bytes);
  if (kind === 2) return utf16.decode(bytes.subarray(0, bytes.length & ~1));
  if (kind === 4) {
    let s = "";
    for (let i = 0; i + 4 <= bytes.length && s.length < 4096; i += 4) {
      const c = bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
      s += c >= 0 && c <= 0x10ffff ? String.fromCodePoint(c) : "\ufffd";
    }
    return s;
  }
  return "";
}

export class PythonCodes {
  /** By code address: the entries of every process and fingerprint seen there. */
  #byAddress = new Map<number, PyCode[]>();
  /** Insertion order, for eviction. */
  #order: PyCode[] = [];
  #head = 0;
  #frames = new Map<PyCode, Map<number, string>>();
  #frameNames = 0;
  #bytes = 0;
  evicted = 0;

  get size(): number {
    return this.#order.length - this.#head;
  }

  /** A rec_py_code at OFF of DV. */
  add(dv: DataView, off: number): void {
    const L = Layout.rec_py_code;
    const u32 = (at: number) => dv.getUint32(off + at, true);
    const code = u32(L.code) + u32(L.code + 4) * 2 ** 32;
    const nameLen = Math.min(dv.getUint16(off + L.name_len, true), PY_NAME_LEN);
    const fileLen = Math.min(dv.getUint16(off + L.file_len, true), PY_FILE_LEN);
    const linesLen = dv.getUint16(off + L.lines_len, true);
    const data = new Uint8Array(dv.buffer, dv.byteOffset + off + L.data, L.size - L.data);
    const entry: PyCode = {
      tgid: u32(L.tgid),
      code,
      fpLo: u32(L.fingerprint),
      fpHi: u32(L.fingerprint + 4),
      name: decodePyString(data.subarray(0, nameLen), dv.getUint8(off + L.name_state)) ||
        "<unnamed>",
      file: decodePyString(
        data.subarray(PY_NAME_LEN, PY_NAME_LEN + fileLen),
        dv.getUint8(off + L.file_state),
      ) || "<unknown file>",
      firstLine: u32(L.firstlineno) | 0,
      table: data.slice(PY_NAME_LEN + PY_FILE_LEN, PY_NAME_LEN + PY_FILE_LEN + linesLen),
      tableCut: u32(L.lines_total) > linesLen,
      bytecode: dv.getUint16(off + L.bytecode, true),
    };
    const list = this.#byAddress.get(code);
    if (list) {
      const i = list.findIndex((e) =>
        e.tgid === entry.tgid && e.fpLo === entry.fpLo && e.fpHi === entry.fpHi
      );
      if (i >= 0) return; // told twice (two CPUs at once, or after BPF forgot): the same
      list.push(entry);
    } else {
      this.#byAddress.set(code, [entry]);
    }
    this.#order.push(entry);
    this.#bytes += entryBytes(entry);
    while (this.size > MAX_CODES || this.#bytes > MAX_CODE_BYTES) this.#evictOldest();
  }

  get(tgid: number, code: number, fpLo: number, fpHi: number): PyCode | undefined {
    const list = this.#byAddress.get(code);
    if (!list) return undefined;
    for (const e of list) if (e.tgid === tgid && e.fpLo === fpLo && e.fpHi === fpHi) return e;
    return undefined;
  }

  /**
   * What a frame of CODE at byte offset INSTR (from the code object) is called:
   * `qualname (file:line)`, the line being the one that instruction belongs to.
   */
  frameName(code: PyCode, instr: number): string {
    let lines = this.#frames.get(code);
    if (!lines) this.#frames.set(code, lines = new Map());
    let name = lines.get(instr);
    if (name !== undefined) return name;
    const index = Math.floor((instr - code.bytecode) / 2);
    const line = index >= 0 ? lineOf(code.table, code.firstLine, index) : undefined;
    const where = line !== undefined
      ? `${code.file}:${line}`
      : `${code.file}:${code.firstLine}${code.tableCut ? " (line past its cut table)" : "+?"}`;
    name = `${code.name} (${where})`;
    if (++this.#frameNames > MAX_FRAME_NAMES) {
      this.#frames.clear();
      this.#frameNames = 1;
      this.#frames.set(code, lines = new Map());
    }
    lines.set(instr, name);
    return name;
  }

  #evictOldest(): void {
    const e = this.#order[this.#head++];
    this.evicted++;
    this.#bytes -= entryBytes(e);
    const list = this.#byAddress.get(e.code);
    if (list) {
      const rest = list.filter((x) => x !== e);
      if (rest.length) this.#byAddress.set(e.code, rest);
      else this.#byAddress.delete(e.code);
    }
    this.#frames.delete(e);
    if (this.#head > 4096 && this.#head * 2 > this.#order.length) {
      this.#order = this.#order.slice(this.#head);
      this.#head = 0;
    }
  }
}

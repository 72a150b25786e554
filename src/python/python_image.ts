/**
 * Whether a mapped file is a CPython interpreter (an executable or libpython that defines
 * `_PyRuntime`), which version, and where that version keeps what a stack walk reads: from the
 * offsets make derived from the version's own headers (src/gen/python_offsets.ts), or, for 3.13
 * and later, from the `_Py_DebugOffsets` table the interpreter carries at the start of
 * `_PyRuntime` for debuggers, read from the file itself (it is initialized data).
 */
import { PYTHON_OFFSETS } from "../gen/python_offsets.ts";
import { Layout, PY_OFF_NONE } from "../records/records.ts";
import type { ElfFile } from "../symbolize/elf_file.ts";

export type PyOffsets = Record<Exclude<keyof typeof Layout.py_offsets, "size">, number>;

export type PythonImage =
  | { kind: "python"; version: string; runtime: number; offsets: PyOffsets }
  | { kind: "unsupported"; version: string; why: string };

/** Interpreter files by name: python3.11, python3, libpython3.12.so.1.0, libpython3.13d.so… */
export const PYTHON_FILE = /(^|\/)(python\d(\.\d+)?[a-z]?|libpython\d\.\d+[a-z]?\.so[.\d]*)$/;

/**
 * The fields of _Py_DebugOffsets, in declaration order, each a uint64 (CPython 3.13's
 * Include/internal/pycore_runtime.h). Later versions changed the table: they get their own list
 * here when they are supported.
 */
const DEBUG_OFFSETS_313 = [
  "cookie",
  "version",
  "free_threaded",
  "runtime_state.size",
  "runtime_state.finalizing",
  "runtime_state.interpreters_head",
  "interpreter_state.size",
  "interpreter_state.id",
  "interpreter_state.next",
  "interpreter_state.threads_head",
  "interpreter_state.gc",
  "interpreter_state.imports_modules",
  "interpreter_state.sysdict",
  "interpreter_state.builtins",
  "interpreter_state.ceval_gil",
  "interpreter_state.gil_runtime_state",
  "interpreter_state.gil_runtime_state_enabled",
  "interpreter_state.gil_runtime_state_locked",
  "interpreter_state.gil_runtime_state_holder",
  "thread_state.size",
  "thread_state.prev",
  "thread_state.next",
  "thread_state.interp",
  "thread_state.current_frame",
  "thread_state.thread_id",
  "thread_state.native_thread_id",
  "thread_state.datastack_chunk",
  "thread_state.status",
  "interpreter_frame.size",
  "interpreter_frame.previous",
  "interpreter_frame.executable",
  "interpreter_frame.instr_ptr",
  "interpreter_frame.localsplus",
  "interpreter_frame.owner",
  "code_object.size",
  "code_object.filename",
  "code_object.name",
  "code_object.qualname",
  "code_object.linetable",
  "code_object.firstlineno",
  "code_object.argcount",
  "code_object.localsplusnames",
  "code_object.localspluskinds",
  "code_object.co_code_adaptive",
  "pyobject.size",
  "pyobject.ob_type",
  "type_object.size",
  "type_object.tp_name",
  "type_object.tp_repr",
  "type_object.tp_flags",
  "tuple_object.size",
  "tuple_object.ob_item",
  "tuple_object.ob_size",
  "list_object.size",
  "list_object.ob_item",
  "list_object.ob_size",
  "dict_object.size",
  "dict_object.ma_keys",
  "dict_object.ma_values",
  "float_object.size",
  "float_object.ob_fval",
  "long_object.size",
  "long_object.lv_tag",
  "long_object.ob_digit",
  "bytes_object.size",
  "bytes_object.ob_size",
  "bytes_object.ob_sval",
  "unicode_object.size",
  "unicode_object.state",
  "unicode_object.length",
  "unicode_object.asciiobject_size",
  "gc.size",
  "gc.collecting",
];

/** 3.12 and later: the C loop's shim frame under its first Python frame (enum _frameowner). */
const FRAME_OWNED_BY_CSTACK_313 = 3;

/** The fields of a _Py_DebugOffsets table (3.13's layout), by name. */
export function parseDebugOffsets(table: Uint8Array): Map<string, number> {
  const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
  const out = new Map<string, number>();
  DEBUG_OFFSETS_313.forEach((name, i) => {
    if (i === 0 || 8 * i + 8 > table.length) return;
    out.set(name, Number(dv.getBigUint64(8 * i, true)));
  });
  return out;
}

/** A 3.13 interpreter's offsets from its debug table, or why they cannot be used. */
function fromDebugOffsets(table: Uint8Array): PyOffsets | string {
  if (new TextDecoder().decode(table.subarray(0, 8)) !== "xdebugpy") {
    return "its _PyRuntime does not start with the debug offsets' cookie";
  }
  const d = parseDebugOffsets(table);
  if (d.get("free_threaded")) return "a free-threaded build (objects laid out differently)";
  const f = (name: string) => {
    const v = d.get(name);
    if (v === undefined || v >= PY_OFF_NONE) throw new Error(name);
    return v;
  };
  try {
    const ascii = f("unicode_object.asciiobject_size");
    return {
      runtime_interpreters: f("runtime_state.interpreters_head"),
      interp_next: f("interpreter_state.next"),
      interp_threads: f("interpreter_state.threads_head"),
      tstate_next: f("thread_state.next"),
      tstate_native_tid: f("thread_state.native_thread_id"),
      tstate_cframe: PY_OFF_NONE,
      current_frame: f("thread_state.current_frame"),
      frame_code: f("interpreter_frame.executable"),
      frame_previous: f("interpreter_frame.previous"),
      frame_instr: f("interpreter_frame.instr_ptr"),
      frame_owner: f("interpreter_frame.owner"),
      frame_is_entry: PY_OFF_NONE,
      code_firstlineno: f("code_object.firstlineno"),
      code_filename: f("code_object.filename"),
      code_qualname: f("code_object.qualname"),
      code_linetable: f("code_object.linetable"),
      code_bytecode: f("code_object.co_code_adaptive"),
      unicode_state: f("unicode_object.state"),
      unicode_length: f("unicode_object.length"),
      unicode_ascii_data: ascii,
      // PyCompactUnicodeObject: the ASCII header, then utf8_length and utf8.
      unicode_compact_data: ascii + 16,
      bytes_size: f("bytes_object.ob_size"),
      bytes_data: f("bytes_object.ob_sval"),
      owner_cstack: FRAME_OWNED_BY_CSTACK_313,
    };
  } catch (e) {
    return `its debug offsets have no usable ${(e as Error).message}`;
  }
}

/** The version a file says it is: its Py_Version (3.11+), else its name. */
function versionOf(elf: ElfFile, path: string): [number, number] | undefined {
  const sym = elf.lookupSymbol("Py_Version");
  const at = sym && elf.vaddrToFileOffset(sym.value);
  if (at !== undefined) {
    const b = elf.bytesAt(at, 4);
    if (b.length === 4) {
      const v = new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
      return [v >>> 24, (v >>> 16) & 0xff];
    }
  }
  const m = /python(\d)\.(\d+)/.exec(path);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/** What ELF (a file mapped from PATH) is as a Python interpreter; undefined if it is none. */
export function pythonImage(elf: ElfFile, path: string): PythonImage | undefined {
  const runtime = elf.lookupSymbol("_PyRuntime");
  if (!runtime) return undefined;
  const v = versionOf(elf, path);
  if (!v) return { kind: "unsupported", version: "?", why: "its version could not be read" };
  const version = `${v[0]}.${v[1]}`;
  if (v[0] !== 3 || v[1] < 11) {
    return {
      kind: "unsupported",
      version,
      why: "versions before 3.11 keep their frames differently (not supported)",
    };
  }
  if (v[1] >= 13) {
    if (v[1] > 13) {
      return {
        kind: "unsupported",
        version,
        why: "this build knows the _Py_DebugOffsets layout of 3.13 only",
      };
    }
    const at = elf.vaddrToFileOffset(runtime.value);
    if (at === undefined) {
      return { kind: "unsupported", version, why: "its _PyRuntime has no bytes in the file" };
    }
    const offsets = fromDebugOffsets(elf.bytesAt(at, 8 * DEBUG_OFFSETS_313.length));
    return typeof offsets === "string"
      ? { kind: "unsupported", version, why: offsets }
      : { kind: "python", version, runtime: runtime.value, offsets };
  }
  const known = PYTHON_OFFSETS[version];
  if (!known) {
    return {
      kind: "unsupported",
      version,
      why: `no offsets for ${version} in this build (its headers, python${version}-dev, were ` +
        "not installed when it was built)",
    };
  }
  return { kind: "python", version, runtime: runtime.value, offsets: known as PyOffsets };
}

/** struct py_proc for an interpreter at RUNTIME (an address in the process) seen at SINCE. */
export function pyProcBytes(
  image: Extract<PythonImage, { kind: "python" }>,
  runtime: number,
  since: bigint,
): Uint8Array {
  const P = Layout.py_proc, O = Layout.py_offsets;
  const b = new Uint8Array(P.size);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(P.runtime, BigInt(runtime), true);
  dv.setBigUint64(P.since, since, true);
  const [major, minor] = image.version.split(".").map(Number);
  dv.setUint32(P.version, (major << 8) | minor, true);
  for (const [field, value] of Object.entries(image.offsets)) {
    const at = P.off + O[field as keyof PyOffsets];
    if (field === "owner_cstack") b[at] = value;
    else dv.setUint16(at, value, true);
  }
  return b;
}

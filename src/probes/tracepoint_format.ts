/**
 * A tracepoint's record layout, from its `format` file in tracefs: the fields after the common
 * ones, by name, offset, size, signedness and kind (a number, a fixed char array, or a
 * __data_loc string), so that a probe event on it carries the fields by their names. Bounded:
 * the file is the kernel's, but its size and field count are checked all the same.
 */
import { ProbeError } from "./probe_error.ts";

export interface TracepointField {
  name: string;
  offset: number;
  size: number;
  signed: boolean;
  kind: "int" | "chars" | "dataloc" | "bytes";
}

export interface TracepointFormat {
  id: number;
  fields: TracepointField[];
  /** Bytes of the record up to the end of its last fixed field. */
  size: number;
}

const MAX_FIELDS = 64;

export function parseTracepointFormat(text: string, what: string): TracepointFormat {
  const id = Number(/^ID:\s*(\d+)/m.exec(text)?.[1]);
  const fields: TracepointField[] = [];
  let size = 0;
  for (const line of text.split("\n")) {
    const m = /^\s*field:(.*);\s*offset:(\d+);\s*size:(\d+);\s*signed:(\d);/.exec(line);
    if (!m) continue;
    const decl = m[1].trim();
    const offset = Number(m[2]), bytes = Number(m[3]);
    size = Math.max(size, offset + bytes);
    const name = /(\w+)\s*(\[[^\]]*\])?$/.exec(decl)?.[1] ?? "";
    if (name.startsWith("common_")) continue;
    const kind = decl.startsWith("__data_loc")
      ? "dataloc"
      : /\bchar\s+\w+\[\d+\]$/.test(decl)
      ? "chars"
      : bytes <= 8 && !decl.includes("[")
      ? "int"
      : "bytes";
    fields.push({ name, offset, size: bytes, signed: m[4] === "1", kind });
    if (fields.length > MAX_FIELDS) break;
  }
  if (!Number.isInteger(id)) throw new ProbeError(`${what}: its format file has no ID`);
  return { id, fields, size };
}

const decoder = new TextDecoder("utf-8", { fatal: false });

/** The fields of one raw record (the bytes the probe copied), as debug-annotation values. */
export function decodeFields(
  format: TracepointFormat,
  data: Uint8Array,
): [string, number | bigint | string][] {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: [string, number | bigint | string][] = [];
  const cstr = (from: number, max: number) => {
    let end = from;
    while (end < Math.min(from + max, data.length) && data[end] !== 0) end++;
    return decoder.decode(data.subarray(from, end));
  };
  for (const f of format.fields) {
    if (f.offset + f.size > data.length) continue;
    switch (f.kind) {
      case "int": {
        const v = f.size === 8
          ? (f.signed ? dv.getBigInt64(f.offset, true) : dv.getBigUint64(f.offset, true))
          : f.size === 4
          ? (f.signed ? dv.getInt32(f.offset, true) : dv.getUint32(f.offset, true))
          : f.size === 2
          ? (f.signed ? dv.getInt16(f.offset, true) : dv.getUint16(f.offset, true))
          : f.signed
          ? dv.getInt8(f.offset)
          : dv.getUint8(f.offset);
        out.push([
          f.name,
          typeof v === "bigint" && v >= -(2n ** 53n) && v <= 2n ** 53n ? Number(v) : v,
        ]);
        break;
      }
      case "chars":
        out.push([f.name, cstr(f.offset, f.size)]);
        break;
      case "dataloc": {
        // Low 16 bits: offset in the record; high 16: length.
        const loc = dv.getUint32(f.offset, true);
        const at = loc & 0xffff, len = loc >>> 16;
        if (at < data.length) out.push([f.name, cstr(at, len)]);
        break;
      }
      default:
        break;
    }
  }
  return out;
}

/** /proc/PID/maps: which file (and which part of it) backs each range of a process's addresses. */

/** A maps line that does not have the shape proc(5) promises. */
export class ProcMapsError extends Error {
  override name = "ProcMapsError";
}

export interface MapEntry {
  /** Addresses are page-aligned, so they stay exact as numbers even near 2^64 ([vsyscall]). */
  readonly start: number;
  readonly end: number;
  /** e.g. "r-xp". */
  readonly perms: string;
  /** File offset of `start`. */
  readonly offset: number;
  /** "major:minor" in hex, as the kernel prints it. */
  readonly dev: string;
  readonly inode: number;
  /**
   * The backing file, a special name ([vdso], [stack], [heap], [anon:NAME], …), or "" for an
   * anonymous mapping. Without the " (deleted)" suffix; see `deleted`.
   */
  readonly path: string;
  /** The file was unlinked (or replaced, e.g. by a package upgrade) after it was mapped. */
  readonly deleted: boolean;
}

// The path is separated by padding spaces; everything after them is the path, which may itself
// contain spaces.
const LINE =
  /^([0-9a-f]+)-([0-9a-f]+) ([r-][w-][x-][ps]) ([0-9a-f]+) ([0-9a-f]+:[0-9a-f]+) (\d+)(?: +(.*))?$/;
const DELETED = " (deleted)";

export function parseMaps(text: string): MapEntry[] {
  const out: MapEntry[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line === "") continue;
    const m = LINE.exec(line);
    if (!m) throw new ProcMapsError(`malformed maps line ${i + 1}: ${JSON.stringify(line)}`);
    const start = Number("0x" + m[1]);
    const end = Number("0x" + m[2]);
    if (end < start) {
      throw new ProcMapsError(`maps line ${i + 1} ends before it starts: ${JSON.stringify(line)}`);
    }
    let path = m[7] ?? "";
    const deleted = path.endsWith(DELETED);
    if (deleted) path = path.slice(0, -DELETED.length);
    out.push({
      start,
      end,
      perms: m[3],
      offset: Number("0x" + m[4]),
      dev: m[5],
      inode: Number(m[6]),
      path,
      deleted,
    });
  }
  return out;
}

/**
 * What is read of one process's maps: any process can give itself 65530 mappings under 4 KiB
 * paths (260 MB of text); real ones have a few hundred lines.
 */
export const MAX_MAPS_BYTES = 8 << 20;

/**
 * Reads and parses /proc/PID/maps ("self" for this process), at most `maxBytes` of it (a line cut
 * there is dropped); `truncated` says whether there was more.
 */
export function readMaps(
  pid: number | "self",
  maxBytes = MAX_MAPS_BYTES,
): { entries: MapEntry[]; truncated: boolean } {
  using f = Deno.openSync(`/proc/${pid}/maps`);
  const buf = new Uint8Array(maxBytes + 1);
  let n = 0;
  while (n < buf.length) {
    const r = f.readSync(buf.subarray(n));
    if (r === null || r === 0) break;
    n += r;
  }
  const truncated = n > maxBytes;
  let text = new TextDecoder().decode(buf.subarray(0, Math.min(n, maxBytes)));
  if (truncated) text = text.slice(0, text.lastIndexOf("\n") + 1);
  return { entries: parseMaps(text), truncated };
}

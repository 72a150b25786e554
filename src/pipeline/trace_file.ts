/**
 * The output file: packets are streamed into a temporary file beside the
 * target and renamed over it only once the trace is complete, so an existing
 * trace is never replaced by a broken one and a crash leaves no half trace
 * under the real name.
 *
 * The output directory may be writable by others (/tmp), so the temporary
 * file gets an unpredictable name and is created exclusively: a link planted
 * there is never followed, and the file we rename is checked to still be the
 * one we wrote. Only regular files are ever replaced.
 */
import { deflateSync } from "node:zlib";
import { encodePacket } from "../perfetto/trace_packets.ts";

export class TraceFileError extends Error {
  override name = "TraceFileError";
}

/** Uncompressed bytes per compressed_packets chunk (Perfetto's own tools use ~this order). */
const COMPRESS_CHUNK = 1 << 20;
/** Names tried before giving up: each collision means someone planted that very name. */
const TEMP_ATTEMPTS = 16;

function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

function describeType(info: Deno.FileInfo): string | undefined {
  if (info.isFile) return undefined;
  if (info.isDirectory) return "a directory";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  if (info.isFifo) return "a FIFO";
  if (info.isSocket) return "a socket";
  return "not a regular file";
}

function statOrUndefined(stat: () => Deno.FileInfo): Deno.FileInfo | undefined {
  try {
    return stat();
  } catch {
    return undefined; // missing (or a dangling link): a new file goes there
  }
}

/** Refuses a target that renaming over would destroy or that is not a file at all. */
function checkTarget(path: string): void {
  const link = statOrUndefined(() => Deno.lstatSync(path));
  if (!link) return;
  // A symlink itself is replaced by the rename; what it points to must still be a plain file,
  // or the user meant a device or stream (/dev/stdout is a link to one).
  const target = link.isSymlink ? statOrUndefined(() => Deno.statSync(path)) : link;
  const what = target && describeType(target);
  if (what) {
    throw new TraceFileError(
      `output ${path} is ${what}, not a regular file; give a file path with -o`,
    );
  }
}

function randomSuffix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

type State = "writing" | "finished" | "kept" | "discarded";

export class TraceFile {
  readonly path: string;
  readonly tempPath: string;
  #file: Deno.FsFile | null;
  #ino: number | null;
  #compress: boolean;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #state: State = "writing";
  /** Bytes written to disk so far. */
  bytesWritten = 0;
  /** Bytes of packets before compression. */
  rawBytes = 0;

  private constructor(path: string, tempPath: string, file: Deno.FsFile, compress: boolean) {
    this.path = path;
    this.tempPath = tempPath;
    this.#file = file;
    this.#ino = file.statSync().ino;
    this.#compress = compress;
  }

  /** Opens the temporary file; fails early, with the fix, when the target is not usable. */
  static create(path: string, options: { compress?: boolean } = {}): TraceFile {
    checkTarget(path);
    const dir = dirOf(path);
    const base = path.slice(path.lastIndexOf("/") + 1);
    let lastError: unknown;
    for (let attempt = 0; attempt < TEMP_ATTEMPTS; attempt++) {
      // Hidden, beside the target: the same filesystem, so the final rename is atomic.
      const tempPath = `${dir}/.${base}.tmp-${randomSuffix()}`;
      try {
        // O_CREAT|O_EXCL: fails on anything already there, a symlink included.
        const file = Deno.openSync(tempPath, { write: true, createNew: true, mode: 0o644 });
        return new TraceFile(path, tempPath, file, options.compress ?? false);
      } catch (e) {
        lastError = e;
        if (!(e instanceof Deno.errors.AlreadyExists)) break;
      }
    }
    const e = lastError as Error;
    const why = e instanceof Deno.errors.NotFound
      ? `directory ${dir} does not exist`
      : e instanceof Deno.errors.PermissionDenied || /read-only/i.test(e.message)
      ? `${dir} is not writable`
      : e instanceof Deno.errors.AlreadyExists
      ? `every temporary name tried in ${dir} was taken`
      : e.message;
    throw new TraceFileError(`cannot write output ${path}: ${why}; choose another path with -o`);
  }

  /** Appends framed packets (each a `Trace.packet` field). */
  write(framed: Uint8Array): void {
    this.rawBytes += framed.length;
    if (!this.#compress) {
      this.#writeAll(framed);
      return;
    }
    this.#pending.push(framed);
    this.#pendingBytes += framed.length;
    if (this.#pendingBytes >= COMPRESS_CHUNK) this.#flushCompressed();
  }

  #flushCompressed(): void {
    if (this.#pendingBytes === 0) return;
    const all = new Uint8Array(this.#pendingBytes);
    let o = 0;
    for (const p of this.#pending) {
      all.set(p, o);
      o += p.length;
    }
    this.#pending = [];
    this.#pendingBytes = 0;
    // zlib format: Perfetto's importer inflates with header auto-detection.
    const z = deflateSync(all);
    this.#writeAll(encodePacket({ data: { case: "compressedPackets", value: z } }));
  }

  #writeAll(bytes: Uint8Array): void {
    const f = this.#file;
    if (!f) throw new TraceFileError(`writing ${this.tempPath} after it was closed`);
    let off = 0;
    try {
      while (off < bytes.length) off += f.writeSync(bytes.subarray(off));
    } catch (e) {
      throw new TraceFileError(`writing ${this.tempPath} failed: ${(e as Error).message}`);
    }
    this.bytesWritten += bytes.length;
  }

  /**
   * Completes the trace: everything is on disk under its real name. If the rename fails (a
   * directory planted at the name, say), the complete trace stays at tempPath and the error says
   * so; `discard` then leaves it alone.
   */
  finish(): void {
    const f = this.#file;
    if (!f) return;
    try {
      if (this.#compress) this.#flushCompressed();
      f.syncSync();
    } catch (e) {
      if (e instanceof TraceFileError) throw e;
      throw new TraceFileError(`writing ${this.tempPath} failed: ${(e as Error).message}`);
    }
    // Whoever can write the directory could have swapped the name for a link of theirs.
    const atName = statOrUndefined(() => Deno.lstatSync(this.tempPath));
    f.close();
    this.#file = null;
    if (!atName || atName.isSymlink || atName.ino !== this.#ino) {
      this.#state = "discarded";
      throw new TraceFileError(
        `${this.tempPath} was replaced by another file while recording; no trace was written`,
      );
    }
    try {
      Deno.renameSync(this.tempPath, this.path);
    } catch (e) {
      this.#state = "kept";
      throw new TraceFileError(
        `the trace is complete but renaming it to ${this.path} failed (${(e as Error).message}); ` +
          `it is kept as ${this.tempPath}`,
      );
    }
    this.#state = "finished";
  }

  /**
   * Drops an unfinished trace (closes and removes the temporary file); idempotent, and a no-op
   * once the trace was finished or kept. Returns whether a temporary file was removed.
   */
  discard(): boolean {
    if (this.#state !== "writing") return false;
    this.#state = "discarded";
    if (this.#file) {
      try {
        this.#file.close();
      } catch { /* already closed */ }
      this.#file = null;
    }
    try {
      Deno.removeSync(this.tempPath);
      return true;
    } catch {
      return false; // never created or already gone
    }
  }
}

/**
 * The output file: packets are streamed into a temporary file beside the
 * target and renamed over it only once the trace is complete, so an existing
 * trace is never replaced by a broken one and a crash leaves no half trace
 * under the real name.
 */
import { deflateSync } from "node:zlib";
import { encodePacket } from "./trace_packets.ts";

export class TraceFileError extends Error {
  override name = "TraceFileError";
}

/** Uncompressed bytes per compressed_packets chunk (Perfetto's own tools use ~this order). */
const COMPRESS_CHUNK = 1 << 20;

function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

export class TraceFile {
  readonly path: string;
  readonly tempPath: string;
  #file: Deno.FsFile | null;
  #compress: boolean;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  /** Bytes written to disk so far. */
  bytesWritten = 0;
  /** Bytes of packets before compression. */
  rawBytes = 0;

  private constructor(path: string, tempPath: string, file: Deno.FsFile, compress: boolean) {
    this.path = path;
    this.tempPath = tempPath;
    this.#file = file;
    this.#compress = compress;
  }

  /** Hidden, beside the target (same filesystem, so the final rename is atomic). */
  static tempPathFor(path: string): string {
    const dir = dirOf(path);
    const base = path.slice(path.lastIndexOf("/") + 1);
    return `${dir}/.${base}.tmp-${Deno.pid}`;
  }

  /** For an abort from outside the recorder (second Ctrl-C). */
  static removeTemp(path: string): void {
    try {
      Deno.removeSync(TraceFile.tempPathFor(path));
    } catch { /* not there */ }
  }

  /** Opens the temporary file; fails early, with the fix, when the target is not writable. */
  static create(path: string, options: { compress?: boolean } = {}): TraceFile {
    const dir = dirOf(path);
    let info: Deno.FileInfo | undefined;
    try {
      info = Deno.statSync(path);
    } catch { /* does not exist yet: fine */ }
    if (info?.isDirectory) {
      throw new TraceFileError(`output ${path} is a directory; pass a file name with -o`);
    }
    const tempPath = TraceFile.tempPathFor(path);
    try {
      // The name carries our pid, so a file already there is a leftover of a
      // dead process that had the same pid (common in containers): reuse it.
      const file = Deno.openSync(tempPath, {
        write: true,
        create: true,
        truncate: true,
        mode: 0o644,
      });
      return new TraceFile(path, tempPath, file, options.compress ?? false);
    } catch (e) {
      const why = e instanceof Deno.errors.NotFound
        ? `directory ${dir} does not exist`
        : e instanceof Deno.errors.PermissionDenied || /read-only/i.test((e as Error).message)
        ? `${dir} is not writable`
        : (e as Error).message;
      throw new TraceFileError(`cannot write output ${path}: ${why}; choose another path with -o`);
    }
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

  /** Completes the trace: everything is on disk under its real name. */
  finish(): void {
    if (!this.#file) return;
    if (this.#compress) this.#flushCompressed();
    this.#file.syncSync();
    this.#file.close();
    this.#file = null;
    try {
      Deno.renameSync(this.tempPath, this.path);
    } catch (e) {
      throw new TraceFileError(
        `renaming ${this.tempPath} to ${this.path} failed: ${(e as Error).message}`,
      );
    }
  }

  /** Drops the unfinished trace; idempotent. */
  abort(): void {
    if (this.#file) {
      try {
        this.#file.close();
      } catch { /* already closed */ }
      this.#file = null;
    }
    try {
      Deno.removeSync(this.tempPath);
    } catch { /* never created or already gone */ }
  }
}

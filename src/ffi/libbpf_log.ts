/**
 * Routes libbpf's log through us: shown on stderr by verbosity, and the last
 * lines kept so that a failed load can say what the verifier said.
 */
import { loadLibbpf, loadLibc } from "./library.ts";

/** libbpf's levels: 0 warn, 1 info, 2 debug. */
const LEVEL_INFO = 1;
const LOG_BYTES = 4 << 20;

export class LibbpfLog {
  #callback: Deno.UnsafeCallback<{ parameters: ["i32", "pointer", "pointer"]; result: "i32" }>;
  #recent: string[] = [];
  /*
   * A failed load's verifier log comes as one message, often hundreds of KiB, and the reason
   * is in its last lines: a buffer that keeps only its start would show where the verifier
   * began, not why it refused. Untouched pages of it cost no memory.
   */
  #buf = new Uint8Array(LOG_BYTES);

  constructor(verbosity: number) {
    const libc = loadLibc();
    this.#callback = new Deno.UnsafeCallback(
      { parameters: ["i32", "pointer", "pointer"], result: "i32" } as const,
      (level, fmt, args) => {
        const n = libc.vsnprintf(this.#buf, BigInt(this.#buf.length), fmt, args);
        const text = new TextDecoder().decode(
          this.#buf.subarray(0, Math.max(0, Math.min(n, this.#buf.length - 1))),
        );
        const lines = text.split("\n");
        if (n >= this.#buf.length) lines.push(`(libbpf's message was cut at ${LOG_BYTES} bytes)`);
        for (const line of lines) {
          if (line.length === 0) continue;
          this.#recent.push(line);
          if (this.#recent.length > 40) this.#recent.shift();
          // -v shows libbpf's warnings and info, -vv its debug output too.
          if (verbosity >= 2 || (verbosity >= 1 && level <= LEVEL_INFO)) {
            console.error(`libbpf: ${line}`);
          }
        }
        return 0;
      },
    );
    loadLibbpf().libbpf_set_print(this.#callback.pointer);
  }

  /** The last lines libbpf printed, oldest first (verifier output on a failed load). */
  recent(max = 12): string[] {
    return this.#recent.slice(-max);
  }

  close(): void {
    loadLibbpf().libbpf_set_print(null);
    this.#callback.close();
  }
}

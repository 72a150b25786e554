/**
 * What this kernel offers, asked lazily and remembered: tracepoints (from its
 * BTF) and files in sysfs and procfs. The recorders' unsupported() checks ask
 * it; nothing is loaded to find out.
 */
import { KernelBtf } from "../ffi/kernel_btf.ts";

export class KernelFeatures {
  #btf: KernelBtf | undefined;
  #btfFailed = false;
  #tracepoints = new Map<string, boolean>();

  hasTracepoint(name: string): boolean {
    let has = this.#tracepoints.get(name);
    if (has === undefined) {
      if (!this.#btf && !this.#btfFailed) {
        try {
          this.#btf = KernelBtf.load();
        } catch {
          // No BTF: the preflight check reports it; here nothing can be confirmed.
          this.#btfFailed = true;
        }
      }
      has = this.#btf?.hasTracepoint(name) ?? false;
      this.#tracepoints.set(name, has);
    }
    return has;
  }

  exists(path: string): boolean {
    try {
      Deno.statSync(path);
      return true;
    } catch {
      return false;
    }
  }

  close(): void {
    this.#btf?.close();
    this.#btf = undefined;
  }
}

/**
 * The running kernel's BTF (/sys/kernel/btf/vmlinux), asked whether a type
 * exists: how recorders tell, before loading anything, that this kernel has
 * the tracepoints they attach to.
 */
import { LibbpfError } from "./libbpf_error.ts";
import { checkPointer, cstr, loadLibbpf } from "./library.ts";

/** BTF_KIND_TYPEDEF: every raw tracepoint has a `btf_trace_<name>` typedef. */
const BTF_KIND_TYPEDEF = 8;

export class KernelBtf {
  #btf: Deno.PointerObject | null;

  private constructor(btf: Deno.PointerObject) {
    this.#btf = btf;
  }

  static load(): KernelBtf {
    return new KernelBtf(
      checkPointer(loadLibbpf().btf__load_vmlinux_btf(), "reading the kernel's BTF"),
    );
  }

  /** Whether this kernel has tracepoint NAME (usable with tp_btf). */
  hasTracepoint(name: string): boolean {
    if (!this.#btf) throw new LibbpfError("using closed BTF", 0, "already closed");
    return loadLibbpf().btf__find_by_name_kind(
      this.#btf,
      cstr(`btf_trace_${name}`),
      BTF_KIND_TYPEDEF,
    ) > 0;
  }

  close(): void {
    if (this.#btf) loadLibbpf().btf__free(this.#btf);
    this.#btf = null;
  }
}

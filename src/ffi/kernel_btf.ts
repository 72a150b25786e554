/**
 * The running kernel's BTF (/sys/kernel/btf/vmlinux), asked whether a type
 * exists: how recorders tell, before loading anything, that this kernel has
 * the tracepoints they attach to.
 */
import { LibbpfError } from "./libbpf_error.ts";
import { checkPointer, cstr, loadLibbpf } from "./library.ts";

/** BTF_KIND_TYPEDEF: every raw tracepoint has a `btf_trace_<name>` typedef. */
const BTF_KIND_TYPEDEF = 8;
/** BTF_KIND_FUNC: a function fentry/fexit can name. */
const BTF_KIND_FUNC = 12;

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

  /** Whether this kernel's BTF describes function NAME (what fentry/fexit need). */
  hasFunction(name: string): boolean {
    return loadLibbpf().btf__find_by_name_kind(this.#handle(), cstr(name), BTF_KIND_FUNC) > 0;
  }

  /** Every function BTF describes (for suggesting close matches; ~60k names). */
  functionNames(): string[] {
    const lib = loadLibbpf(), btf = this.#handle();
    const out: string[] = [];
    const n = lib.btf__type_cnt(btf);
    for (let id = 1; id < n; id++) {
      const t = lib.btf__type_by_id(btf, id);
      if (!t) continue;
      const view = new Deno.UnsafePointerView(t);
      if (((view.getUint32(4) >>> 24) & 0x1f) !== BTF_KIND_FUNC) continue;
      const name = lib.btf__name_by_offset(btf, view.getUint32(0));
      if (name) out.push(Deno.UnsafePointerView.getCString(name));
    }
    return out;
  }

  #handle(): Deno.PointerObject {
    if (!this.#btf) throw new LibbpfError("using closed BTF", 0, "already closed");
    return this.#btf;
  }

  close(): void {
    if (this.#btf) loadLibbpf().btf__free(this.#btf);
    this.#btf = null;
  }
}

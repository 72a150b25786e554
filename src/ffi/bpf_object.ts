/**
 * One loaded BPF object: open from bytes, configure, load, attach, and the
 * maps userspace needs. Owns every libbpf handle and fd it creates.
 */
import { LibbpfError } from "./libbpf_error.ts";
import { check, checkPointer, cstr, lastErrno, loadLibbpf, loadLibc } from "./library.ts";

const OPEN_OPTS_SIZE = 80;
const BPF_MAP_TYPE_RINGBUF = 27;

export interface RingHandle {
  cpu: number;
  fd: number;
  size: number;
}

export class BpfObject {
  #obj: Deno.PointerObject | null;
  #links: Deno.PointerObject[] = [];
  #ownedFds: number[] = [];
  #pendingRings: { outerMap: string; rings: RingHandle[] } | undefined;
  /** Kept alive for as long as libbpf may read them. */
  #keepAlive: Uint8Array[] = [];
  readonly possibleCpus: number;

  private constructor(obj: Deno.PointerObject, keepAlive: Uint8Array[]) {
    this.#obj = obj;
    this.#keepAlive = keepAlive;
    this.possibleCpus = check(loadLibbpf().libbpf_num_possible_cpus(), "counting possible CPUs");
  }

  static open(bytes: Uint8Array<ArrayBuffer>, name: string): BpfObject {
    const nameBuf = cstr(name);
    const opts = new Uint8Array(OPEN_OPTS_SIZE);
    const dv = new DataView(opts.buffer);
    dv.setBigUint64(0, BigInt(OPEN_OPTS_SIZE), true);
    // Without object_name the kernel-visible map names are built from an address.
    dv.setBigUint64(8, Deno.UnsafePointer.value(Deno.UnsafePointer.of(nameBuf)), true);
    const obj = checkPointer(
      loadLibbpf().bpf_object__open_mem(bytes, BigInt(bytes.length), opts),
      "opening the BPF object",
    );
    return new BpfObject(obj, [nameBuf, bytes]);
  }

  #handle(): Deno.PointerObject {
    if (!this.#obj) throw new LibbpfError("using a closed BPF object", 0, "already closed");
    return this.#obj;
  }

  #map(name: string): Deno.PointerObject {
    const map = loadLibbpf().bpf_object__find_map_by_name(this.#handle(), cstr(name));
    if (!map) throw new LibbpfError(`finding map ${name}`, 2, "no such map in the BPF object");
    return map;
  }

  /** Overwrites .rodata (our one config struct) before load. */
  setReadOnlyData(data: Uint8Array): void {
    const sizeBuf = new BigUint64Array(1);
    const p = loadLibbpf().bpf_map__initial_value(
      this.#map(".rodata"),
      new Uint8Array(sizeBuf.buffer),
    );
    if (!p) throw new LibbpfError("writing .rodata", 0, "no initial value");
    const size = Number(sizeBuf[0]);
    if (size !== data.length) {
      throw new LibbpfError(
        "writing .rodata",
        0,
        `the object's .rodata is ${size} bytes, the config struct ${data.length}: rebuild the BPF object`,
      );
    }
    new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(p, size)).set(data);
  }

  /**
   * Replaces a global data section (.bss/.data) of the loaded object. libbpf
   * 1.1 without a skeleton does not map these, so write through the map.
   */
  writeSection(section: string, data: Uint8Array): void {
    const map = this.#map(section);
    const size = loadLibbpf().bpf_map__value_size(map);
    if (size !== data.length) {
      throw new LibbpfError(
        `writing ${section}`,
        0,
        `the section is ${size} bytes, the data ${data.length}: rebuild the BPF object`,
      );
    }
    const key = new Uint8Array(4);
    check(
      loadLibbpf().bpf_map_update_elem(this.mapFd(section), key, data, 0n),
      `writing ${section}`,
    );
  }

  setMaxEntries(mapName: string, maxEntries: number): void {
    check(
      loadLibbpf().bpf_map__set_max_entries(this.#map(mapName), maxEntries),
      `sizing map ${mapName} to ${maxEntries}`,
    );
  }

  /** Programs that should not be loaded at all (features turned off). */
  disablePrograms(names: readonly string[]): void {
    for (const [name, prog] of this.#programs()) {
      if (names.includes(name)) {
        check(loadLibbpf().bpf_program__set_autoload(prog, false), `disabling ${name}`);
      }
    }
  }

  load(): void {
    check(loadLibbpf().bpf_object__load(this.#handle()), "loading the BPF object into the kernel");
    this.#installRings();
  }

  *#programs(): Generator<[string, Deno.PointerObject]> {
    const lib = loadLibbpf();
    let prog = lib.bpf_object__next_program(this.#handle(), null);
    while (prog) {
      const name = Deno.UnsafePointerView.getCString(lib.bpf_program__name(prog)!);
      yield [name, prog];
      prog = lib.bpf_object__next_program(this.#handle(), prog);
    }
  }

  /** Attaches every loaded program; returns their names. */
  attachAll(skip: readonly string[] = []): string[] {
    const names: string[] = [];
    const lib = loadLibbpf();
    for (const [name, prog] of this.#programs()) {
      if (skip.includes(name)) continue;
      const link = checkPointer(lib.bpf_program__attach(prog), `attaching ${name}`);
      this.#links.push(link);
      names.push(name);
    }
    return names;
  }

  /**
   * Attaches a perf_event program to an open perf event. On success libbpf
   * owns the event's fd (bpf_link__destroy closes it); on failure it does not.
   */
  attachPerfEvent(progName: string, fd: number): void {
    const lib = loadLibbpf();
    for (const [name, prog] of this.#programs()) {
      if (name !== progName) continue;
      const link = checkPointer(
        lib.bpf_program__attach_perf_event(prog, fd),
        `attaching ${name} to perf event fd ${fd}`,
      );
      this.#links.push(link);
      return;
    }
    throw new LibbpfError(`attaching ${progName}`, 2, "no such program in the BPF object");
  }

  /** Detaches every program (no new records) while the maps stay readable. */
  detachAll(): void {
    const lib = loadLibbpf();
    for (const link of this.#links) lib.bpf_link__destroy(link);
    this.#links = [];
  }

  mapFd(name: string): number {
    return check(loadLibbpf().bpf_map__fd(this.#map(name)), `getting the fd of map ${name}`);
  }

  /**
   * Creates one ring buffer per CPU, to be installed in the array-of-maps
   * `outerMap` at index cpu when the object is loaded. Call before load():
   * the first ring also serves as the inner-map template (libbpf 1.1 cannot
   * resize the template it builds from BTF).
   */
  createRings(outerMap: string, cpus: readonly number[], size: number): RingHandle[] {
    const lib = loadLibbpf();
    const outer = this.#map(outerMap);
    check(lib.bpf_map__set_max_entries(outer, this.possibleCpus), `sizing map ${outerMap}`);
    const rings: RingHandle[] = [];
    for (const cpu of cpus) {
      const fd = lib.bpf_map_create(
        BPF_MAP_TYPE_RINGBUF,
        cstr(`systing_rb${cpu}`),
        0,
        0,
        size,
        null,
      );
      if (fd < 0) {
        check(
          fd < -1 ? fd : -lastErrno(),
          `creating the ${size >> 20} MiB ring buffer of CPU ${cpu}`,
        );
      }
      this.#ownedFds.push(fd);
      rings.push({ cpu, fd, size });
    }
    if (rings.length > 0) {
      check(
        lib.bpf_map__set_inner_map_fd(outer, rings[0].fd),
        `using a ring as ${outerMap}'s template`,
      );
    }
    this.#pendingRings = { outerMap, rings };
    return rings;
  }

  #installRings(): void {
    if (!this.#pendingRings) return;
    const { outerMap, rings } = this.#pendingRings;
    const outerFd = this.mapFd(outerMap);
    for (const { cpu, fd } of rings) {
      const key = new Uint32Array([cpu]);
      const value = new Uint32Array([fd]);
      check(
        loadLibbpf().bpf_map_update_elem(
          outerFd,
          new Uint8Array(key.buffer),
          new Uint8Array(value.buffer),
          0n,
        ),
        `installing the ring buffer of CPU ${cpu}`,
      );
    }
    this.#pendingRings = undefined;
  }

  /** Reads a per-CPU u64 array slot: one value per possible CPU. */
  readPerCpuU64(mapName: string, key: number, fd = this.mapFd(mapName)): bigint[] {
    const values = new BigUint64Array(this.possibleCpus);
    const k = new Uint32Array([key]);
    check(
      loadLibbpf().bpf_map_lookup_elem(fd, new Uint8Array(k.buffer), new Uint8Array(values.buffer)),
      `reading ${mapName}[${key}]`,
    );
    return Array.from(values);
  }

  close(): void {
    const lib = loadLibbpf();
    this.detachAll();
    for (const fd of this.#ownedFds) loadLibc().close(fd);
    this.#ownedFds = [];
    if (this.#obj) {
      lib.bpf_object__close(this.#obj);
      this.#obj = null;
    }
    this.#keepAlive = [];
  }
}

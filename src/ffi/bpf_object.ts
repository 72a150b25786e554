/**
 * One loaded BPF object: open from bytes, configure, load, attach, and the
 * maps userspace needs. Owns every libbpf handle and fd it creates.
 */
import { LibbpfError } from "./libbpf_error.ts";
import {
  check,
  checkPointer,
  cstr,
  describeSyscallError,
  lastErrno,
  loadLibbpf,
  loadLibc,
} from "./library.ts";

const OPEN_OPTS_SIZE = 80;
const BPF_MAP_TYPE_RINGBUF = 27;
const BPF_F_TEST_RUN_ON_CPU = 1;
const SYS_PIDFD_OPEN = 434n;

/** libbpf's { size_t sz; __u64 cookie; } options (bpf_usdt_opts, bpf_tracepoint_opts). */
function cookieOpts(cookie: number): Uint8Array {
  const opts = new Uint8Array(16);
  const dv = new DataView(opts.buffer);
  dv.setBigUint64(0, 16n, true);
  dv.setBigUint64(8, BigInt(cookie), true);
  return opts;
}

function pointerValue(buf: Uint8Array<ArrayBuffer>): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}
/** pidfd_open flag: TID names a thread, not only a thread-group leader (6.9+). */
const PIDFD_THREAD = 0o200;
const ESRCH = 3;

export interface RingHandle {
  cpu: number;
  fd: number;
  size: number;
}

/** A u32 map key's bytes. */
function u32Key(key: number): Uint8Array {
  return new Uint8Array(new Uint32Array([key]).buffer);
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

  /** Every program in the object, by name. */
  programNames(): string[] {
    return [...this.#programs()].map(([name]) => name);
  }

  /** Every map in the object, by name (libbpf names the global data sections "<obj>.<section>"). */
  mapNames(): string[] {
    const lib = loadLibbpf();
    const names: string[] = [];
    let map = lib.bpf_object__next_map(this.#handle(), null);
    while (map) {
      names.push(Deno.UnsafePointerView.getCString(lib.bpf_map__name(map)!));
      map = lib.bpf_object__next_map(this.#handle(), map);
    }
    return names;
  }

  /**
   * Before load: loads only `programs` and creates none of `dropMaps`. Code that
   * refers to a map not created must be dead for the verifier (a .rodata knob
   * off), or loading fails naming the program.
   */
  keepOnly(programs: ReadonlySet<string>, dropMaps: readonly string[]): void {
    const lib = loadLibbpf();
    for (const [name, prog] of this.#programs()) {
      if (!programs.has(name)) {
        check(lib.bpf_program__set_autoload(prog, false), `leaving program ${name} unloaded`);
      }
    }
    for (const name of dropMaps) {
      check(lib.bpf_map__set_autocreate(this.#map(name), false), `leaving map ${name} uncreated`);
    }
  }

  /** Before load: leaves program PROG unloaded. */
  disable(progName: string): void {
    check(
      loadLibbpf().bpf_program__set_autoload(this.#program(progName), false),
      `leaving program ${progName} unloaded`,
    );
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

  #program(progName: string): Deno.PointerObject {
    for (const [name, prog] of this.#programs()) if (name === progName) return prog;
    throw new LibbpfError(`finding program ${progName}`, 2, "no such program in the BPF object");
  }

  /** After load: which programs are in the kernel and which maps exist there. */
  loaded(): { programs: string[]; maps: string[] } {
    const lib = loadLibbpf();
    const programs = [...this.#programs()].filter(([, p]) => lib.bpf_program__fd(p) >= 0)
      .map(([name]) => name);
    const maps = this.mapNames().filter((name) => lib.bpf_map__fd(this.#map(name)) >= 0);
    return { programs, maps };
  }

  /** Attaches a loaded program where its section says (tracepoints, tp_btf, …). */
  attach(progName: string): void {
    const link = checkPointer(
      loadLibbpf().bpf_program__attach(this.#program(progName)),
      `attaching ${progName}`,
    );
    this.#links.push(link);
  }

  /**
   * Attaches a perf_event program to an open perf event. On success libbpf
   * owns the event's fd (bpf_link__destroy closes it); on failure it does not.
   */
  /**
   * A uprobe (or uretprobe) of PROG on FUNC (+ OFFSET) in BINARY, or at file offset OFFSET when
   * FUNC is empty; in process PID, or in every process that maps BINARY (-1). COOKIE reaches the
   * program (bpf_get_attach_cookie).
   */
  attachUprobe(
    progName: string,
    target: { pid: number; binary: string; func: string; offset: number; ret: boolean },
    cookie: number,
  ): void {
    const opts = new Uint8Array(40);
    const dv = new DataView(opts.buffer);
    const func = cstr(target.func);
    dv.setBigUint64(0, 40n, true);
    dv.setBigUint64(16, BigInt(cookie), true);
    opts[24] = target.ret ? 1 : 0;
    if (target.func) dv.setBigUint64(32, pointerValue(func), true);
    const link = checkPointer(
      loadLibbpf().bpf_program__attach_uprobe_opts(
        this.#program(progName),
        target.pid,
        cstr(target.binary),
        BigInt(target.offset),
        opts,
      ),
      `attaching ${target.ret ? "a uretprobe" : "a uprobe"} to ${target.binary}:` +
        `${target.func || `0x${target.offset.toString(16)}`}`,
    );
    this.#keepAlive.push(func);
    this.#links.push(link);
  }

  /** PROG on USDT probe PROVIDER:NAME of BINARY, in process PID or every process (-1). */
  attachUsdt(
    progName: string,
    target: { pid: number; binary: string; provider: string; name: string },
    cookie: number,
  ): void {
    const opts = cookieOpts(cookie);
    const link = checkPointer(
      loadLibbpf().bpf_program__attach_usdt(
        this.#program(progName),
        target.pid,
        cstr(target.binary),
        cstr(target.provider),
        cstr(target.name),
        opts,
      ),
      `attaching to USDT probe ${target.provider}:${target.name} of ${target.binary}`,
    );
    this.#links.push(link);
  }

  /** PROG on tracepoint CATEGORY:NAME, with COOKIE. */
  attachTracepoint(progName: string, category: string, name: string, cookie: number): void {
    const opts = cookieOpts(cookie);
    const link = checkPointer(
      loadLibbpf().bpf_program__attach_tracepoint_opts(
        this.#program(progName),
        cstr(category),
        cstr(name),
        opts,
      ),
      `attaching to tracepoint ${category}:${name}`,
    );
    this.#links.push(link);
  }

  /** Before load: the kernel function an fentry/fexit program PROG is for. */
  setAttachTarget(progName: string, func: string): void {
    check(
      loadLibbpf().bpf_program__set_attach_target(this.#program(progName), 0, cstr(func)),
      `setting the target of ${progName} to ${func}`,
    );
  }

  /** Up to MAX entries of a hash map, key and value bytes each (a map changing meanwhile may skip some). */
  entries(
    mapName: string,
    keySize: number,
    valueSize: number,
    max: number,
  ): [Uint8Array, Uint8Array][] {
    const lib = loadLibbpf(), fd = this.mapFd(mapName);
    const out: [Uint8Array, Uint8Array][] = [];
    let key: Uint8Array | null = null;
    for (let i = 0; i < max; i++) {
      const next = new Uint8Array(keySize);
      // A key that is in no map starts the walk at the first.
      const from = key ?? new Uint8Array(keySize).fill(0xff);
      if (lib.bpf_map_get_next_key(fd, from, next) < 0) break;
      const value = new Uint8Array(valueSize);
      if (lib.bpf_map_lookup_elem(fd, next, value) === 0) out.push([next, value]);
      key = next;
    }
    return out;
  }

  /** COUNT u64 values of an array map from KEY on. */
  readArrayU64(mapName: string, key: number, count: number): bigint[] {
    const fd = this.mapFd(mapName), out: bigint[] = [];
    for (let i = 0; i < count; i++) {
      const v = new BigUint64Array(1);
      check(
        loadLibbpf().bpf_map_lookup_elem(
          fd,
          new Uint8Array(new Uint32Array([key + i]).buffer),
          new Uint8Array(v.buffer),
        ),
        `reading ${mapName}[${key + i}]`,
      );
      out.push(v[0]);
    }
    return out;
  }

  /** Writes VALUE at the u32 KEY of an array map. */
  updateArray(mapName: string, key: number, value: Uint8Array): void {
    this.updateHashBytes(mapName, u32Key(key), value, `[${key}]`);
  }

  /** Writes VALUE at the u32 KEY of a hash map (a map full of other keys throws). */
  updateHash(mapName: string, key: number, value: Uint8Array): void {
    this.updateHashBytes(mapName, u32Key(key), value, `[${key}]`);
  }

  /** Writes VALUE at KEY (any bytes) of a map; WHICH names the key in an error. */
  updateHashBytes(mapName: string, key: Uint8Array, value: Uint8Array, which = ""): void {
    check(
      loadLibbpf().bpf_map_update_elem(this.mapFd(mapName), key, value, 0n),
      `writing ${mapName}${which}`,
    );
  }

  /** Removes the u32 KEY of a hash map; false when it was not there. */
  deleteHash(mapName: string, key: number): boolean {
    return loadLibbpf().bpf_map_delete_elem(this.mapFd(mapName), u32Key(key)) === 0;
  }

  attachPerfEvent(progName: string, fd: number): void {
    const link = checkPointer(
      loadLibbpf().bpf_program__attach_perf_event(this.#program(progName), fd),
      `attaching ${progName} to perf event fd ${fd}`,
    );
    this.#links.push(link);
  }

  /**
   * Runs a raw_tp program once on CPU (BPF_PROG_TEST_RUN with BPF_F_TEST_RUN_ON_CPU: from an
   * IPI there, or directly when this thread is on it); returns the program's return value.
   */
  runOnCpu(progName: string, cpu: number): number {
    const lib = loadLibbpf();
    const fd = check(lib.bpf_program__fd(this.#program(progName)), `finding ${progName}'s fd`);
    // struct bpf_test_run_opts (libbpf 1.x): sz @0, retval @56, flags @68, cpu @72; 80 bytes.
    const opts = new Uint8Array(80);
    const dv = new DataView(opts.buffer);
    dv.setBigUint64(0, 80n, true);
    dv.setUint32(68, BPF_F_TEST_RUN_ON_CPU, true);
    dv.setUint32(72, cpu, true);
    check(lib.bpf_prog_test_run_opts(fd, opts), `running ${progName} on CPU ${cpu}`);
    return dv.getUint32(56, true);
  }

  /**
   * Runs an iterator program (SEC("iter/…")) once and returns everything it
   * wrote, up to maxBytes (more is an error: an iterator's output is meant to
   * be small and whole).
   */
  runIterator(progName: string, maxBytes: number): Uint8Array {
    const lib = loadLibbpf();
    const libc = loadLibc();
    const link = checkPointer(
      lib.bpf_program__attach_iter(this.#program(progName), null),
      `attaching iterator ${progName}`,
    );
    let fd = -1;
    try {
      fd = check(lib.bpf_iter_create(lib.bpf_link__fd(link)), `creating iterator ${progName}`);
      const chunks: Uint8Array[] = [];
      let total = 0;
      for (;;) {
        const buf = new Uint8Array(64 * 1024);
        const n = Number(libc.read(fd, buf, BigInt(buf.length)));
        if (n < 0) {
          const errno = lastErrno();
          throw new LibbpfError(`reading iterator ${progName}`, errno, describeSyscallError(errno));
        }
        if (n === 0) break;
        total += n;
        if (total > maxBytes) {
          throw new LibbpfError(`reading iterator ${progName}`, 0, `more than ${maxBytes} bytes`);
        }
        chunks.push(buf.subarray(0, n));
      }
      const out = new Uint8Array(total);
      let at = 0;
      for (const c of chunks) {
        out.set(c, at);
        at += c.length;
      }
      return out;
    } finally {
      if (fd >= 0) libc.close(fd);
      lib.bpf_link__destroy(link);
    }
  }

  /** Writes a u32 value at a u32 key (array maps, perf event arrays). */
  updateU32(mapName: string, key: number, value: number): void {
    check(
      loadLibbpf().bpf_map_update_elem(
        this.mapFd(mapName),
        new Uint8Array(new Uint32Array([key]).buffer),
        new Uint8Array(new Uint32Array([value]).buffer),
        0n,
      ),
      `writing ${mapName}[${key}]`,
    );
  }

  /**
   * Gives thread TID an entry in the task storage map MAP_NAME (a u32 value of 1), found by a
   * pidfd: the entry belongs to that thread and goes when it does, whatever reuses its number.
   * Returns false when no such thread exists (any more).
   */
  markTask(mapName: string, tid: number): boolean {
    const libc = loadLibc();
    const pidfd = Number(libc.pidfd_open(SYS_PIDFD_OPEN, tid, PIDFD_THREAD));
    if (pidfd < 0) {
      const errno = lastErrno();
      if (errno === ESRCH) return false;
      throw new LibbpfError(
        `opening a pidfd for thread ${tid}`,
        errno,
        describeSyscallError(errno),
      );
    }
    try {
      const rc = loadLibbpf().bpf_map_update_elem(
        this.mapFd(mapName),
        new Uint8Array(new Int32Array([pidfd]).buffer),
        new Uint8Array(new Uint32Array([1]).buffer),
        0n,
      );
      if (rc === -ESRCH) return false;
      check(rc, `marking thread ${tid} in ${mapName}`);
      return true;
    } finally {
      libc.close(pidfd);
    }
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
  /** The u64 at byte OFFSET of every CPU's value at KEY in a per-CPU map of VALUE_SIZE bytes. */
  readPerCpuField(mapName: string, key: number, valueSize: number, offset: number): bigint[] {
    const stride = Math.ceil(valueSize / 8) * 8;
    const values = new Uint8Array(stride * this.possibleCpus);
    const k = new Uint32Array([key]);
    check(
      loadLibbpf().bpf_map_lookup_elem(this.mapFd(mapName), new Uint8Array(k.buffer), values),
      `reading ${mapName}[${key}]`,
    );
    const dv = new DataView(values.buffer);
    return Array.from(
      { length: this.possibleCpus },
      (_, c) => dv.getBigUint64(c * stride + offset, true),
    );
  }

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

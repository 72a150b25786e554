/**
 * The perf counters this kernel offers, by the names `perf list` uses: the
 * generic software and hardware events of <linux/perf_event.h>, and every
 * event a PMU publishes in sysfs (/sys/bus/event_source/devices/PMU/events,
 * encoded through PMU/format into config, config1 and config2). --perf-counter
 * takes a name or a glob; a hardware event on a machine without a PMU, or a
 * name that matches nothing, is an error that says so and what is close.
 */
import {
  errnoName,
  PERF_TYPE_HARDWARE,
  PERF_TYPE_SOFTWARE,
  perfEventOpen,
} from "../ffi/perf_event.ts";
import { LibbpfError } from "../ffi/libbpf_error.ts";
import { loadLibc } from "../ffi/library.ts";
import { parseCpuList } from "../machine/cpu_list.ts";
import { MAX_COUNTERS } from "../records/records.ts";

export class CounterError extends Error {
  override name = "CounterError";
}

export interface CounterSpec {
  /** As users write it: "context-switches", "msr/tsc". */
  name: string;
  /** Other names that mean it ("cs"). */
  aliases: string[];
  kind: "software" | "hardware" | "pmu";
  type: number;
  config: bigint;
  config1: bigint;
  config2: bigint;
  /** Each raw count times this (sysfs EVENT.scale) is the value shown. */
  scale: number;
  /** sysfs EVENT.unit, e.g. "Joules". */
  unit?: string;
  /** The CPUs the PMU counts on (its cpumask: once per package for uncore PMUs); all when unset. */
  cpus?: number[];
}

/** enum perf_sw_ids: the ones that count (dummy and bpf-output do not). */
const SOFTWARE: [string[], number][] = [
  [["cpu-clock"], 0],
  [["task-clock"], 1],
  [["page-faults", "faults"], 2],
  [["context-switches", "cs"], 3],
  [["cpu-migrations", "migrations"], 4],
  [["minor-faults"], 5],
  [["major-faults"], 6],
  [["alignment-faults"], 7],
  [["emulation-faults"], 8],
  [["cgroup-switches"], 11],
];

/** enum perf_hw_id */
const HARDWARE: [string[], number][] = [
  [["cycles", "cpu-cycles"], 0],
  [["instructions"], 1],
  [["cache-references"], 2],
  [["cache-misses"], 3],
  [["branch-instructions", "branches"], 4],
  [["branch-misses"], 5],
  [["bus-cycles"], 6],
  [["stalled-cycles-frontend", "idle-cycles-frontend"], 7],
  [["stalled-cycles-backend", "idle-cycles-backend"], 8],
  [["ref-cycles"], 9],
];

/** PMUs whose sysfs "events" are not counters (probes take a target, not a name). */
const NOT_COUNTERS = new Set(["tracepoint", "kprobe", "uprobe", "breakpoint", "software"]);

/** Most bytes read from one sysfs file: they hold a line. */
const SYSFS_READ_LIMIT = 4096;

function readSmall(path: string): string | undefined {
  try {
    const f = Deno.openSync(path, { read: true });
    try {
      const buf = new Uint8Array(SYSFS_READ_LIMIT);
      const n = f.readSync(buf) ?? 0;
      return new TextDecoder().decode(buf.subarray(0, n)).trim();
    } finally {
      f.close();
    }
  } catch {
    return undefined;
  }
}

function list(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  } catch {
    return [];
  }
}

/** "config:0-7,21" → the field and its bit ranges, low bit first. */
export function parseFormat(text: string): { field: string; bits: [number, number][] } {
  const m = /^(config[12]?):([\d,-]+)$/.exec(text.trim());
  if (!m) throw new CounterError(`unknown format ${JSON.stringify(text)}`);
  const bits = m[2].split(",").map((r): [number, number] => {
    const [lo, hi] = r.split("-").map(Number);
    return [lo, hi ?? lo];
  });
  for (const [lo, hi] of bits) {
    if (!(lo <= hi && hi < 64)) throw new CounterError(`bad bit range in ${JSON.stringify(text)}`);
  }
  return { field: m[1], bits };
}

/**
 * Encodes a sysfs event ("event=0x3c,umask=0x01,any") with its PMU's format
 * files: each term's value is spread over the term's bit ranges.
 */
export function encodeEvent(
  spec: string,
  formats: ReadonlyMap<string, string>,
): { config: bigint; config1: bigint; config2: bigint } {
  const out: Record<string, bigint> = { config: 0n, config1: 0n, config2: 0n };
  for (const term of spec.split(",").map((t) => t.trim()).filter(Boolean)) {
    const [name, raw] = term.split("=");
    const format = formats.get(name);
    if (format === undefined) throw new CounterError(`unknown term ${name} in ${spec}`);
    if (raw !== undefined && !/^(0x[0-9a-fA-F]+|\d+)$/.test(raw)) {
      throw new CounterError(`bad value in ${term}`);
    }
    let value = raw === undefined ? 1n : BigInt(raw);
    const { field, bits } = parseFormat(format);
    for (const [lo, hi] of bits) {
      const width = BigInt(hi - lo + 1);
      out[field] |= (value & ((1n << width) - 1n)) << BigInt(lo);
      value >>= width;
    }
  }
  return { config: out.config, config1: out.config1, config2: out.config2 };
}

/** Every counter this kernel names, generic ones first. */
export function counterCatalog(devices = "/sys/bus/event_source/devices"): CounterSpec[] {
  const generic = (kind: "software" | "hardware", type: number, table: [string[], number][]) =>
    table.map(([[name, ...aliases], config]): CounterSpec => ({
      name,
      aliases,
      kind,
      type,
      config: BigInt(config),
      config1: 0n,
      config2: 0n,
      scale: 1,
    }));
  const out = [
    ...generic("software", PERF_TYPE_SOFTWARE, SOFTWARE),
    ...generic("hardware", PERF_TYPE_HARDWARE, HARDWARE),
  ];
  for (const pmu of list(devices)) {
    if (NOT_COUNTERS.has(pmu)) continue;
    const dir = `${devices}/${pmu}`;
    const type = Number(readSmall(`${dir}/type`));
    if (!Number.isInteger(type) || type < 0) continue;
    const formats = new Map<string, string>();
    for (const f of list(`${dir}/format`)) {
      const text = readSmall(`${dir}/format/${f}`);
      if (text !== undefined) formats.set(f, text);
    }
    const mask = readSmall(`${dir}/cpumask`);
    let cpus: number[] | undefined;
    try {
      cpus = mask ? parseCpuList(mask) : undefined;
    } catch {
      continue;
    }
    for (const event of list(`${dir}/events`)) {
      if (event.includes(".")) continue; // EVENT.scale, .unit, .per-pkg, .snapshot
      const spec = readSmall(`${dir}/events/${event}`);
      if (spec === undefined) continue;
      let encoded;
      try {
        encoded = encodeEvent(spec, formats);
      } catch {
        continue; // a term this PMU's formats do not explain: not ours to guess
      }
      const scale = Number(readSmall(`${dir}/events/${event}.scale`) ?? "1");
      out.push({
        name: `${pmu}/${event}`,
        aliases: [`${pmu}/${event}/`],
        kind: "pmu",
        type,
        ...encoded,
        scale: Number.isFinite(scale) && scale > 0 ? scale : 1,
        unit: readSmall(`${dir}/events/${event}.unit`) || undefined,
        cpus,
      });
    }
  }
  return out;
}

/** Whether the kernel can count SPEC here: undefined, or why not. */
export function counterProblem(spec: CounterSpec, cpu = 0): string | undefined {
  try {
    const fd = perfEventOpen(
      {
        type: spec.type,
        config: spec.config,
        config1: spec.config1,
        config2: spec.config2,
        bits: ["disabled"],
        timestamps: false,
      },
      spec.cpus?.[0] ?? cpu,
      spec.name,
    );
    loadLibc().close(fd);
    return undefined;
  } catch (e) {
    if (!(e instanceof LibbpfError)) throw e;
    // Without privileges nothing can be told; the recording's own checks say what is needed.
    if (e.errno === 1 || e.errno === 13) return undefined;
    if (spec.kind === "hardware" && [2, 19, 95].includes(e.errno)) {
      return `this machine has no hardware PMU (perf_event_open(${spec.name}) failed with ` +
        `${errnoName(e.errno)})`;
    }
    return `perf_event_open(${spec.name}) failed with ${errnoName(e.errno)}`;
  }
}

function globRegex(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`);
}

/** Levenshtein distance, for suggestions (names are short). */
function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length];
}

/** Up to three names close to WANT, best first. */
export function closestNames(want: string, names: readonly string[]): string[] {
  return names
    .map((n) => ({ n, d: n.includes(want) || want.includes(n) ? 0 : distance(want, n) }))
    .filter(({ d }) => d <= Math.max(2, Math.floor(want.length / 3)))
    .sort((a, b) => a.d - b.d || a.n.localeCompare(b.n))
    .slice(0, 3)
    .map(({ n }) => n);
}

/**
 * The counters PATTERNS (names or globs) ask for, each once, in order. A glob
 * keeps only what this machine can count; a plain name must be countable.
 */
export function resolveCounters(
  patterns: readonly string[],
  catalog: readonly CounterSpec[],
  problem: (spec: CounterSpec) => string | undefined = counterProblem,
): CounterSpec[] {
  const chosen: CounterSpec[] = [];
  const names = catalog.map((c) => c.name);
  const usable = (c: CounterSpec) => problem(c) === undefined;
  for (const pattern of patterns) {
    if (pattern === "") {
      throw new CounterError("empty --perf-counter: give a counter name or a glob");
    }
    let matched: CounterSpec[];
    if (/[*?]/.test(pattern)) {
      const re = globRegex(pattern);
      const all = catalog.filter((c) => re.test(c.name) || c.aliases.some((a) => re.test(a)));
      matched = all.filter(usable);
      if (matched.length === 0) {
        const why = all.length ? `: ${problem(all[0])}` : "";
        throw new CounterError(
          `--perf-counter ${JSON.stringify(pattern)} matches no counter this machine can count` +
            `${why} (see --list-perf-counters)`,
        );
      }
    } else {
      const spec = catalog.find((c) => c.name === pattern || c.aliases.includes(pattern));
      if (!spec) {
        const close = closestNames(pattern, names);
        throw new CounterError(
          `unknown perf counter ${JSON.stringify(pattern)}` +
            (close.length ? `; closest: ${close.join(", ")}` : "") + " (see --list-perf-counters)",
        );
      }
      const why = problem(spec);
      if (why) {
        const software = catalog.filter((c) => c.kind === "software").map((c) => c.name);
        throw new CounterError(
          `cannot count ${spec.name}: ${why}` +
            (spec.kind === "hardware" ? `; software counters work: ${software.join(", ")}` : ""),
        );
      }
      matched = [spec];
    }
    for (const m of matched) if (!chosen.includes(m)) chosen.push(m);
  }
  if (chosen.length > MAX_COUNTERS) {
    throw new CounterError(
      `${chosen.length} perf counters asked for (${chosen.map((c) => c.name).join(", ")}); ` +
        `at most ${MAX_COUNTERS} can be read at once`,
    );
  }
  return chosen;
}

/**
 * probes: the events users name with --trace-event (uprobes, uretprobes, USDT probes,
 * tracepoints, kernel functions through fentry/fexit), each firing an instant named after the
 * event on a track of its own under the firing thread, its arguments as debug annotations (a
 * tracepoint's by the names and types of its format). The specs are resolved before the
 * recording starts (src/probes/); this is the BPF side's setup and the decoding.
 */
import type { BpfObject } from "../ffi/bpf_object.ts";
import { TimestampBase } from "../perfetto/ftrace_bundle_builder.ts";
import { TrackEventWriter } from "../perfetto/track_event_writer.ts";
import type { ProbeArgument } from "../probes/probe_args.ts";
import type { ProbeTarget } from "../probes/probe_target.ts";
import { decodeFields, type TracepointFormat } from "../probes/tracepoint_format.ts";
import type { DecoderTable } from "../records/record_decoder.ts";
import {
  Layout as L,
  PROBE_ARGS,
  PROBE_DATA_LEN,
  PROBE_SLOTS,
  PROBE_STRING_LEN,
  ProbeArg,
  ProbeScope,
  RangeFlag,
  RecordKind,
} from "../records/records.ts";
import type { DecoderScope, Recorder } from "./recorder.ts";
import { STACK_MAPS, stackDecoders, stackSession } from "./stack_session.ts";

/** One event to record, resolved. */
export interface ProbeEvent {
  /** The instants' name and their track's. */
  name: string;
  target: ProbeTarget;
  args: ProbeArgument[];
  /** Where its ranges pair and its instants go: per thread, process or CPU. */
  scope: "thread" | "process" | "cpu";
  /** Whether each firing is an instant (an event only starting or ending ranges is not). */
  instant: boolean;
  /** The config track its instants go on (index into ProbeOptions.tracks); else its own. */
  track?: number;
  /** The range it starts, and the one it ends (indices into ProbeOptions.ranges). */
  rangeStart?: number;
  rangeEnd?: number;
  /** A stop trigger: its first firing ends the recording. */
  stop: boolean;
  /** Its stack is recorded each time it fires, into a stack stream of its own. */
  stack?: boolean;
}

/** A range of a config track: a slice from its start event to its end event. */
export interface ProbeRange {
  name: string;
  /** Its start and end events (indices into ProbeOptions.events): their arguments go on it. */
  start: number;
  end: number;
  track: number;
  scope: ProbeEvent["scope"];
  /** A range longer than this stops the recording (0: never). */
  stopNs: number;
}

/** The probes recorder's part of RecorderOptions. */
export interface ProbeOptions {
  events: ProbeEvent[];
  ranges: ProbeRange[];
  /** The config tracks' names. */
  tracks: string[];
  /** --trace-event-pid: user probes only in these processes (empty: every process). */
  pids: number[];
}

/** Events one recording can have: each a track tag of its own (see probeTrack). */
export const MAX_PROBE_EVENTS = 128;

/** The programs, one per kind of probe, and the fentry/fexit slots (bpf/recorders/probes.bpf.c). */
const SLOT_PROGRAMS = Array.from({ length: PROBE_SLOTS }, (_, i) => [
  `probe_fentry${i}`,
  `probe_fexit${i}`,
]).flat();

/**
 * A thread's track for event E, keyed by process and thread as syscalls' are (tids are at most
 * 2^22), under tag 0x100 + E: below the syscalls recorder's 0x1a5 for every E.
 */
export function probeTrack(event: number, tgid: number, tid: number): number {
  return (0x100 + event) * 2 ** 44 + (tgid % 2 ** 22) * 2 ** 22 + (tid % 2 ** 22);
}

/**
 * Config track T of a scope (thread: tgid and tid; process: tgid and 0; CPU: 2^22 - 1 and the
 * CPU; the CPUs' group: 2^22 - 1 twice), under tag 0x1c0 + T: above the syscalls recorder's.
 */
export function configTrack(track: number, a: number, b: number): number {
  return (0x1c0 + track) * 2 ** 44 + (a % 2 ** 22) * 2 ** 22 + (b % 2 ** 22);
}

/** Process P's own track, the parent of its process-scope config tracks (tag 0x1bf). */
function processRoot(pid: number): number {
  return 0x1bf * 2 ** 44 + (pid % 2 ** 22);
}

const ALL = 2 ** 22 - 1;

/**
 * The track config track T's events of scope WHERE go on, for thread tid of tgid on cpu,
 * described the first time (DESCRIBED remembers; bounded like the syscalls recorder's): a child
 * track of the thread, one under the process's own track, or one per CPU under a group.
 */
function placeOnTrack(
  w: TrackEventWriter,
  described: Set<number>,
  name: string,
  track: number,
  where: ProbeEvent["scope"],
  tgid: number,
  tid: number,
  cpu: number,
): number {
  const uuid = where === "thread"
    ? configTrack(track, tgid, tid)
    : where === "process"
    ? configTrack(track, tgid, 0)
    : configTrack(track, ALL, cpu);
  if (described.has(uuid)) return uuid;
  if (described.size >= 1 << 16) described.clear();
  described.add(uuid);
  if (where === "thread") {
    w.threadTrack(uuid, tgid, tid, name);
  } else if (where === "process") {
    const root = processRoot(tgid);
    if (!described.has(root)) {
      described.add(root);
      w.processTrack(root, tgid);
    }
    w.childTrack(uuid, root, name);
  } else {
    const group = configTrack(track, ALL, ALL);
    if (!described.has(group)) {
      described.add(group);
      w.groupTrack(group, `${name} (per CPU)`);
    }
    w.childTrack(uuid, group, `${name} cpu${cpu}`);
  }
  return uuid;
}

/** Config tracks one recording can have (tags 0x1c0 to 0x1ff). */
export const MAX_CONFIG_TRACKS = 64;

/** What the drain workers need to decode (structured-clonable). */
interface WorkerEvent {
  name: string;
  args: ProbeArgument[];
  format?: TracepointFormat;
  scope: ProbeEvent["scope"];
  track?: number;
  stop: boolean;
}

interface WorkerConfig {
  events: WorkerEvent[];
  ranges: ProbeRange[];
  tracks: string[];
}

const DECODER = new TextDecoder("utf-8", { fatal: false });
const EMPTY = new Uint8Array(0);

const ARG_TYPES = { long: ProbeArg.Long, string: ProbeArg.String, retval: ProbeArg.Retval };

function decoders(scope: DecoderScope, config: unknown): DecoderTable {
  // No config (a harness decoding without a session): no events to decode.
  const { events, ranges, tracks } =
    (config ?? { events: [], ranges: [], tracks: [] }) as WorkerConfig;
  const t = scope.tracks;
  const rangeNames = ranges.map((r) => t.nameIid(r.name));
  const names = events.map((e) => t.nameIid(e.name));
  // Interned before any event: a name is sent in the packet of the event that first uses it,
  // ahead of the event, so it must be known when the event begins.
  const argNames = events.map((e) =>
    Array.from({ length: PROBE_ARGS }, (_, i) => t.annotationIid(e.args[i]?.name ?? `arg${i}`))
  );
  const fieldNames = events.map((e) =>
    new Map((e.format?.fields ?? []).map((f) => [f.name, t.annotationIid(f.name)]))
  );
  const described = new Set<number>();
  let words: Uint32Array = new Uint32Array(0), swords: Int32Array = new Int32Array(0);
  /** EVENT's numeric arguments (strings: only on its instants), from the u64s at word W. */
  // A plain loop: this runs for every range, and must not allocate.
  const rangeArgs = (event: number, w: number) => {
    const args = events[event]?.args ?? [];
    for (let i = 0; i < args.length && i < PROBE_ARGS; i++) {
      if (args[i].type === "string") continue;
      t.intArg(argNames[event][i], swords[w + 2 * i + 1] * 4294967296 + words[w + 2 * i]);
    }
  };
  return {
    [RecordKind.Range]: (mem, off, size, ts, b) => {
      words = mem.u32;
      swords = mem.i32;
      const R = L.rec_range;
      const w = off >> 2;
      const range = mem.u32[w + 6];
      if (size !== R.size || range >= ranges.length) return false;
      const r = ranges[range];
      const tid = mem.u32[w + 4], tgid = mem.u32[w + 5];
      const uuid = placeOnTrack(t, described, tracks[r.track], r.track, r.scope, tgid, tid, b.cpu);
      t.begin(
        scope.base.relative(mem.u32[w + 8], mem.u32[w + 9]),
        1, /* begin */
        uuid,
        rangeNames[range],
      );
      rangeArgs(r.start, w + (R.start_args >> 2));
      t.end();
      t.begin(ts, 2, /* end */ uuid);
      rangeArgs(r.end, w + (R.end_args >> 2));
      t.end();
      if (mem.u32[w + 11] & RangeFlag.Stop) scope.forward(mem, off, size);
      return true;
    },
    [RecordKind.Probe]: (mem, off, size, ts, b) => {
      const R = L.rec_probe;
      const w = off >> 2;
      const event = mem.u32[w + 6];
      const dataLen = mem.bytes[off + R.data_len] | (mem.bytes[off + R.data_len + 1] << 8);
      const nargs = mem.bytes[off + R.nargs];
      if (size !== R.size + (dataLen ? PROBE_DATA_LEN : 0) || event >= events.length) {
        return false;
      }
      const tid = mem.u32[w + 4], tgid = mem.u32[w + 5];
      const ev = events[event];
      let track: number;
      if (ev.track !== undefined) {
        track = placeOnTrack(t, described, tracks[ev.track], ev.track, ev.scope, tgid, tid, b.cpu);
      } else {
        track = probeTrack(event, tgid, tid);
        if (!described.has(track)) {
          // Bounded like the syscalls recorder's: past it, descriptors are written again.
          if (described.size >= 1 << 16) described.clear();
          described.add(track);
          t.threadTrack(track, tgid, tid, ev.name);
        }
      }
      t.begin(ts, 3, /* instant */ track, names[event]);
      // A view only for records that carry data: most do not, and this is the per-event path.
      const data = dataLen ? mem.bytes.subarray(off + R.size, off + R.size + dataLen) : EMPTY;
      if (ev.format) {
        for (const [name, value] of decodeFields(ev.format, data)) {
          const iid = fieldNames[event].get(name)!;
          if (typeof value === "string") t.stringArg(iid, value);
          else t.intArg(iid, Number(value));
        }
      } else {
        const count = Math.min(PROBE_ARGS, Math.max(nargs, ev.args.length));
        for (let i = 0; i < count; i++) {
          const a = ev.args[i];
          if (a?.type === "string" && dataLen) {
            const from = i * PROBE_STRING_LEN;
            let end = from;
            while (end < from + PROBE_STRING_LEN && data[end] !== 0) end++;
            t.stringArg(argNames[event][i], DECODER.decode(data.subarray(from, end)));
            continue;
          }
          if (i >= nargs) continue;
          const lo = mem.u32[w + 8 + 2 * i], hi = mem.i32[w + 9 + 2 * i];
          t.intArg(argNames[event][i], hi * 4294967296 + lo);
        }
      }
      t.end();
      if (ev.stop) scope.forward(mem, off, size);
      return true;
    },
  };
}

/** struct probe_spec for EVENT. */
function specBytes(e: ProbeEvent): Uint8Array {
  const S = L.probe_spec;
  const b = new Uint8Array(S.size);
  const dv = new DataView(b.buffer);
  e.args.slice(0, PROBE_ARGS).forEach((a, i) => {
    b[S.arg_type + i] = ARG_TYPES[a.type];
    b[S.arg_index + i] = a.index;
  });
  const strings = e.args.some((a) => a.type === "string");
  const t = e.target;
  const dataLen = t.kind === "tracepoint"
    ? Math.min(PROBE_DATA_LEN, Math.max(1, t.format.size))
    : strings
    ? PROBE_DATA_LEN
    : 0;
  dv.setUint32(S.data_len, dataLen, true);
  dv.setUint32(S.kernel, t.kind === "fentry" || t.kind === "fexit" ? 1 : 0, true);
  dv.setUint16(S.range_start, e.rangeStart === undefined ? 0 : e.rangeStart + 1, true);
  dv.setUint16(S.range_end, e.rangeEnd === undefined ? 0 : e.rangeEnd + 1, true);
  b[S.scope] = ProbeScope[e.scope];
  b[S.instant] = e.instant || e.stop ? 1 : 0;
  b[S.stack] = e.stack ? 1 : 0;
  return b;
}

export const probes: Recorder = {
  name: "probes",
  description: "the events --trace-event names: uprobes, USDT, tracepoints, kernel functions",
  defaultOn: false,
  bpf: {
    programs: [],
    ownPrograms: ["probe_uprobe", "probe_usdt", "probe_tracepoint", ...SLOT_PROGRAMS],
    maps: [
      "probe_specs",
      "probe_slots",
      "probe_ranges",
      "open_ranges",
      "range_fresh",
      "range_misses",
      "__bpf_usdt_specs",
      "__bpf_usdt_ip_to_spec_id",
      // An event's "stack": true (bpf/stack_emit.bpf.h).
      ...STACK_MAPS,
    ],
  },
  kinds: [RecordKind.Probe, RecordKind.Range, RecordKind.Stack, RecordKind.PyCode],
  unsupported: () => undefined,
  decoders: (scope, config) => ({ ...stackDecoders(scope), ...decoders(scope, config) }),
  start(ctx) {
    const { events, ranges, tracks, pids } = ctx.options.probes;
    // Stacks go through the stack recorders' session: one symbolizer, one view of the mappings.
    events.forEach((e, i) => {
      if (e.stack) stackSession(ctx).addProbeStream(i, e.name);
    });
    const slots = new Map<number, string>();
    let stoppedBy: string | undefined;
    const misses: { unmatched: number; overflow: number }[] = [];
    let unfinished = 0;
    return {
      forwarded: [RecordKind.Probe, RecordKind.Range],
      records(batch) {
        if (stoppedBy) return;
        const dv = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
        const kind = dv.getUint16(0, true);
        if (kind === RecordKind.Range) {
          const r = ranges[dv.getUint32(L.rec_range.range, true)];
          const ns = Number(dv.getBigUint64(8, true) - dv.getBigUint64(L.rec_range.start_ts, true));
          stoppedBy = `range ${r?.name} lasted ${(ns / 1e3).toFixed(0)} µs, over its ` +
            `${((r?.stopNs ?? 0) / 1e3).toFixed(0)} µs stop threshold`;
        } else {
          stoppedBy = `stop trigger ${events[dv.getUint32(L.rec_probe.event, true)]?.name} fired`;
        }
        ctx.requestStop(stoppedBy);
      },
      configure({ obj }) {
        obj.setMaxEntries("probe_specs", Math.max(1, events.length));
        let entries = 0, exits = 0;
        events.forEach((e, i) => {
          const t = e.target;
          if (t.kind !== "fentry" && t.kind !== "fexit") return;
          const n = t.kind === "fentry" ? entries++ : exits++;
          if (n >= PROBE_SLOTS) return;
          const prog = `probe_${t.kind}${n}`;
          obj.setAttachTarget(prog, t.func);
          slots.set(i, prog);
        });
        // The slots without a function stay unloaded: fentry needs a target to load.
        for (const p of SLOT_PROGRAMS) if (![...slots.values()].includes(p)) obj.disable(p);
        const used = new Set(events.map((e) => e.target.kind));
        if (!used.has("uprobe")) obj.disable("probe_uprobe");
        if (!used.has("usdt")) obj.disable("probe_usdt");
        if (!used.has("tracepoint")) obj.disable("probe_tracepoint");
      },
      explainLoadFailure(detail) {
        for (const [i, prog] of slots) {
          if (!detail.includes(`'${prog}'`)) continue;
          const denied = /Operation not permitted|Permission denied/.test(detail);
          return `--trace-event ${events[i].name}: this kernel has no kprobes, and ` +
            (denied
              ? "refused the fentry/fexit program that stands in for one (the BPF loader said " +
                "it is not permitted): kernel functions cannot be traced here; a tracepoint: " +
                "event may cover the same point"
              : `the fentry/fexit program on ${
                (events[i].target as { func: string }).func
              } did not load (${detail.slice(-200)})`);
        }
        return undefined;
      },
      workerConfig: (): WorkerConfig => ({
        events: events.map((e) => ({
          name: e.name,
          args: e.args,
          scope: e.scope,
          stop: e.stop,
          ...e.track !== undefined ? { track: e.track } : {},
          ...e.target.kind === "tracepoint" ? { format: e.target.format } : {},
        })),
        ranges,
        tracks,
      }),
      attach(obj: BpfObject) {
        const said: string[] = [];
        events.forEach((e, i) => obj.updateArray("probe_specs", i, specBytes(e)));
        ranges.forEach((r, i) => {
          const v = new Uint8Array(L.probe_range.size);
          new DataView(v.buffer).setBigUint64(L.probe_range.stop_ns, BigInt(r.stopNs), true);
          obj.updateArray("probe_ranges", i, v);
        });
        events.forEach((e, i) => {
          const t = e.target;
          const where = pids.length ? pids : [-1];
          switch (t.kind) {
            case "uprobe":
              for (const pid of where) {
                obj.attachUprobe("probe_uprobe", { ...t, pid }, i);
              }
              said.push(`${e.name} (${pids.length ? `pids ${pids.join(",")}` : "every process"})`);
              break;
            case "usdt":
              for (const pid of where) obj.attachUsdt("probe_usdt", { ...t, pid }, i);
              said.push(`${e.name} (${pids.length ? `pids ${pids.join(",")}` : "every process"})`);
              break;
            case "tracepoint":
              obj.attachTracepoint("probe_tracepoint", t.category, t.name, i);
              said.push(e.name);
              break;
            default: {
              const prog = slots.get(i)!;
              const slot = Number(prog.replace(/\D/g, "")) + (t.kind === "fexit" ? PROBE_SLOTS : 0);
              obj.updateArray("probe_slots", slot, new Uint8Array(new Uint32Array([i]).buffer));
              obj.attach(prog);
              said.push(`${e.name} (through ${t.kind}: this kernel has no kprobes)`);
            }
          }
        });
        return said;
      },
      finish(end, out, obj) {
        const K = L.range_key, V = L.range_open;
        for (let i = 0; i < ranges.length; i++) {
          const m = obj.readArrayU64("range_misses", 2 * i, 2);
          misses.push({ unmatched: Number(m[0]), overflow: Number(m[1]) });
        }
        // Ranges still open: closed at the end of the trace, and marked.
        const w = new TrackEventWriter(ctx.sequence(), new TimestampBase(ctx.base));
        const open = w.annotationIid("unfinished");
        const argIids = events.map((e) => e.args.map((a) => w.annotationIid(a.name)));
        const described = new Set<number>();
        const endRel = Number(end - ctx.base);
        for (const [k, v] of obj.entries("open_ranges", K.size, V.size, 16384)) {
          const kv = new DataView(k.buffer), vv = new DataView(v.buffer);
          const range = kv.getUint32(K.range, true), key = Number(kv.getBigUint64(K.scope, true));
          const r = ranges[range];
          const depth = vv.getUint32(V.depth, true), tgid = vv.getUint32(V.tgid, true);
          if (!r) continue;
          const uuid = placeOnTrack(
            w,
            described,
            tracks[r.track],
            r.track,
            r.scope,
            r.scope === "process" ? key : tgid,
            key,
            key,
          );
          const name = w.nameIid(r.name);
          const startEvent = events[r.start];
          for (let d = 0; d < Math.min(depth, 8); d++) {
            const start = vv.getBigUint64(V.start_ts + 8 * d, true);
            w.begin(Number(start - ctx.base), 1, uuid, name);
            w.intArg(open, 1);
            startEvent.args.slice(0, PROBE_ARGS).forEach((a, i) => {
              if (a.type === "string") return;
              const v = vv.getBigInt64(V.start_args + 8 * (d * PROBE_ARGS + i), true);
              w.intArg(argIids[r.start][i], Number(v));
            });
            w.end();
            unfinished++;
          }
          for (let d = 0; d < Math.min(depth, 8); d++) w.sliceEnd(endRel, uuid);
        }
        out(w.take());
      },
      summary: () => {
        const lines = [
          `probes: ${events.length} events (${events.map((e) => e.name).join(", ")})`,
        ];
        if (ranges.length) {
          lines.push(
            `ranges: ${unfinished} still open at the end (closed there, marked unfinished)` +
              misses.map((m, i) =>
                m.unmatched || m.overflow
                  ? `; ${ranges[i].name}: ${m.unmatched} ends without a start dropped, ` +
                    `${m.overflow} starts too deep or without room dropped`
                  : ""
              ).join(""),
          );
        }
        if (stoppedBy) lines.push(`stopped by a trigger: ${stoppedBy}`);
        return lines;
      },
    };
  },
};

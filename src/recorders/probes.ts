/**
 * probes: the events users name with --trace-event (uprobes, uretprobes, USDT probes,
 * tracepoints, kernel functions through fentry/fexit), each firing an instant named after the
 * event on a track of its own under the firing thread, its arguments as debug annotations (a
 * tracepoint's by the names and types of its format). The specs are resolved before the
 * recording starts (src/probes/); this is the BPF side's setup and the decoding.
 */
import type { BpfObject } from "../ffi/bpf_object.ts";
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
  RecordKind,
} from "../records/records.ts";
import type { DecoderScope, Recorder } from "./recorder.ts";

export interface ProbeArgument {
  type: "long" | "string" | "retval";
  /** Which argument of the function or probe (not for retval). */
  index: number;
  /** Its debug annotation's name. */
  name: string;
}

/** One event to record, resolved. */
export interface ProbeEvent {
  /** The instants' name and their track's. */
  name: string;
  target: ProbeTarget;
  args: ProbeArgument[];
}

/** The probes recorder's part of RecorderOptions. */
export interface ProbeOptions {
  events: ProbeEvent[];
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

/** What the drain workers need to decode (structured-clonable). */
interface WorkerEvent {
  name: string;
  args: ProbeArgument[];
  format?: TracepointFormat;
}

const DECODER = new TextDecoder("utf-8", { fatal: false });

const ARG_TYPES = { long: ProbeArg.Long, string: ProbeArg.String, retval: ProbeArg.Retval };

function decoders(scope: DecoderScope, config: unknown): DecoderTable {
  const events = config as WorkerEvent[];
  const t = scope.tracks;
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
  return {
    [RecordKind.Probe]: (mem, off, size, ts) => {
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
      const track = probeTrack(event, tgid, tid);
      if (!described.has(track)) {
        // Bounded like the syscalls recorder's: past it, descriptors are written again.
        if (described.size >= 1 << 16) described.clear();
        described.add(track);
        t.threadTrack(track, tgid, tid, ev.name);
      }
      t.begin(ts, 3, /* instant */ track, names[event]);
      const data = mem.bytes.subarray(off + R.size, off + R.size + dataLen);
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
  return b;
}

export const probes: Recorder = {
  name: "probes",
  description: "the events --trace-event names: uprobes, USDT, tracepoints, kernel functions",
  defaultOn: false,
  bpf: {
    programs: [],
    ownPrograms: ["probe_uprobe", "probe_usdt", "probe_tracepoint", ...SLOT_PROGRAMS],
    maps: ["probe_specs", "probe_slots", "__bpf_usdt_specs", "__bpf_usdt_ip_to_spec_id"],
  },
  kinds: [RecordKind.Probe],
  unsupported: () => undefined,
  decoders,
  start(ctx) {
    const { events, pids } = ctx.options.probes;
    const slots = new Map<number, string>();
    return {
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
      workerConfig: (): WorkerEvent[] =>
        events.map((e) => ({
          name: e.name,
          args: e.args,
          ...e.target.kind === "tracepoint" ? { format: e.target.format } : {},
        })),
      attach(obj: BpfObject) {
        const said: string[] = [];
        events.forEach((e, i) => obj.updateArray("probe_specs", i, specBytes(e)));
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
      summary: () => [`probes: ${events.length} events (${events.map((e) => e.name).join(", ")})`],
    };
  },
};

/**
 * One recording's probe events: the --trace-event specs and the --trace-event-config files, each
 * parsed, resolved on this machine and given what it records (a USDT probe's own arguments up to
 * four, a return probe's value, a config event's named ones), its ranges and its tracks, within
 * what the BPF side holds.
 */
import type { ProbeEvent, ProbeOptions, ProbeRange } from "../recorders/probes.ts";
import { MAX_CONFIG_TRACKS, MAX_PROBE_EVENTS } from "../recorders/probes.ts";
import { PROBE_ARGS, PROBE_RANGES, PROBE_SLOTS } from "../records/records.ts";
import { type EventConfig, parseEventConfig } from "./event_config.ts";
import { ProbeError } from "./probe_error.ts";
import { parseTraceEvent } from "./probe_args.ts";
import { describeSpec, type ProbeSpec } from "./probe_spec.ts";
import { hostProbes, type ProbeHost, type ProbeTarget, resolveProbe } from "./probe_target.ts";

/** The arguments a kind records without being asked. */
function defaultArgs(target: ProbeTarget): ProbeEvent["args"] {
  if (target.kind === "usdt") {
    return Array.from({ length: PROBE_ARGS }, (_, i) => ({
      type: "long" as const,
      index: i,
      name: `arg${i}`,
    }));
  }
  if ((target.kind === "uprobe" && target.ret) || target.kind === "fexit") {
    return [{ type: "retval", index: 0, name: "ret" }];
  }
  return [];
}

export interface ConfigFile {
  path: string;
  text: string;
}

export function resolveProbeEvents(
  specs: readonly string[],
  configs: readonly ConfigFile[] = [],
  host: ProbeHost = hostProbes,
): Omit<ProbeOptions, "pids"> {
  const events: ProbeEvent[] = [];
  const ranges: ProbeRange[] = [];
  const tracks: string[] = [];
  const names = new Set<string>();
  const resolved = new Map<string, ProbeTarget>();
  const target = (spec: ProbeSpec) => {
    const key = describeSpec(spec);
    let t = resolved.get(key);
    if (!t) resolved.set(key, t = resolveProbe(spec, host));
    return t;
  };
  for (const text of specs) {
    const { spec, args: listed } = parseTraceEvent(text);
    const name = describeSpec(spec);
    if (names.has(name)) throw new ProbeError(`--trace-event ${text}: given twice`);
    names.add(name);
    const t = target(spec);
    events.push({
      name,
      target: t,
      args: listed ?? defaultArgs(t),
      scope: "thread",
      instant: true,
      stop: false,
    });
  }
  for (const file of configs) {
    const config: EventConfig = parseEventConfig(file.text, file.path);
    const first = events.length;
    const index = new Map<string, number>();
    for (const e of config.events) {
      if (names.has(e.name)) {
        throw new ProbeError(
          `${file.path}: event "${e.name}" is named already (another config or --trace-event)`,
        );
      }
      names.add(e.name);
      index.set(e.name, events.length);
      let t: ProbeTarget;
      try {
        t = target(e.spec);
      } catch (err) {
        throw new ProbeError(
          `${file.path}: event "${e.name}": ${
            (err as Error).message.replace(/^--trace-event /, "")
          }`,
        );
      }
      events.push({
        name: e.name,
        target: t,
        args: e.args.length ? e.args : defaultArgs(t),
        scope: e.scope,
        instant: false,
        stop: config.stopInstants.includes(e.name),
        stack: e.stack,
      });
    }
    const trackIndex = (name: string) => {
      const full = `${name}`;
      let i = tracks.indexOf(full);
      if (i < 0) i = tracks.push(full) - 1;
      return i;
    };
    for (const r of config.ranges) {
      const start = events[index.get(r.start)!], end = events[index.get(r.end)!];
      const stop = config.thresholds.find((t) => t.start === r.start && t.end === r.end);
      start.rangeStart = ranges.length;
      end.rangeEnd = ranges.length;
      ranges.push({
        name: r.name,
        start: index.get(r.start)!,
        end: index.get(r.end)!,
        track: trackIndex(r.track),
        scope: start.scope,
        stopNs: stop?.ns ?? 0,
      });
    }
    for (const i of config.instants) {
      const e = events[index.get(i.event)!];
      e.instant = true;
      e.track = trackIndex(i.track);
    }
    // An event no track mentions is an instant on a track of its own, as from --trace-event.
    for (let i = first; i < events.length; i++) {
      const e = events[i];
      if (!e.instant && e.rangeStart === undefined && e.rangeEnd === undefined) e.instant = true;
    }
  }
  if (events.length > MAX_PROBE_EVENTS) {
    throw new ProbeError(`${events.length} probe events: at most ${MAX_PROBE_EVENTS}`);
  }
  if (ranges.length > PROBE_RANGES) {
    throw new ProbeError(`${ranges.length} ranges: at most ${PROBE_RANGES}`);
  }
  if (tracks.length > MAX_CONFIG_TRACKS) {
    throw new ProbeError(`${tracks.length} tracks: at most ${MAX_CONFIG_TRACKS}`);
  }
  for (const kind of ["fentry", "fexit"] as const) {
    const n = events.filter((e) => e.target.kind === kind).length;
    if (n > PROBE_SLOTS) {
      throw new ProbeError(
        `${n} ${kind === "fentry" ? "kprobe:" : "kretprobe:"} events: at most ${PROBE_SLOTS} each`,
      );
    }
  }
  return { events, ranges, tracks };
}

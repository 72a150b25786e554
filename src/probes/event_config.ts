/**
 * `--trace-event-config FILE.json`, in the format users of the original know: named events (a
 * spec, a scope, up to four named arguments), tracks of ranges (a start and an end event make a
 * slice) and instants, and stop triggers (a range longer than a threshold, or an instant). The
 * check is strict, since a typo would otherwise record nothing and say nothing: an unknown key, a
 * duplicate name, a reference to no event, `retval` on a probe that does not return, more than
 * four arguments or a range whose events differ in scope is an error naming its JSON path.
 */
import { ProbeError } from "./probe_error.ts";
import {
  argProblem,
  MAX_EVENT_ARGS,
  maxArgIndex,
  type ProbeArgument,
  splitArgList,
} from "./probe_args.ts";
import { parseProbeSpec, type ProbeSpec } from "./probe_spec.ts";

export type Scope = "thread" | "process" | "cpu";

export type ConfigArg = ProbeArgument;

export interface ConfigEvent {
  name: string;
  spec: ProbeSpec;
  scope: Scope;
  stack: boolean;
  args: ConfigArg[];
}

export interface ConfigRange {
  track: string;
  name: string;
  start: string;
  end: string;
}

export interface ConfigInstant {
  track: string;
  event: string;
}

export interface EventConfig {
  events: ConfigEvent[];
  ranges: ConfigRange[];
  instants: ConfigInstant[];
  /** Stop when a range of these events lasts longer than ns. */
  thresholds: { start: string; end: string; ns: number }[];
  /** Stop when one of these fires. */
  stopInstants: string[];
}

const MAX_CONFIG_BYTES = 1 << 20;
const MAX_ITEMS = 128;
const NAME = /^[\x21-\x7e]([\x20-\x7e]{0,62}[\x21-\x7e])?$/;

type Json = unknown;

class Checker {
  constructor(readonly file: string) {}

  fail(path: string, why: string): never {
    throw new ProbeError(`${this.file}: ${path}: ${why}`);
  }

  object(v: Json, path: string, keys: Record<string, boolean>): Record<string, Json> {
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      this.fail(path, "must be an object");
    }
    const o = v as Record<string, Json>;
    for (const k of Object.keys(o)) {
      if (!(k in keys)) {
        this.fail(`${path}.${k}`, `unknown key; allowed: ${Object.keys(keys).join(", ")}`);
      }
    }
    for (const [k, required] of Object.entries(keys)) {
      if (required && !(k in o)) this.fail(path, `missing "${k}"`);
    }
    return o;
  }

  array(v: Json, path: string): Json[] {
    if (!Array.isArray(v)) this.fail(path, "must be an array");
    if (v.length > MAX_ITEMS) this.fail(path, `more than ${MAX_ITEMS} entries`);
    return v;
  }

  name(v: Json, path: string): string {
    if (typeof v !== "string" || !NAME.test(v)) {
      this.fail(path, "must be a name of 1 to 64 printable characters");
    }
    return v;
  }

  string(v: Json, path: string): string {
    if (typeof v !== "string") this.fail(path, "must be a string");
    return v;
  }

  boolean(v: Json, path: string): boolean {
    if (typeof v !== "boolean") this.fail(path, "must be true or false");
    return v;
  }

  integer(v: Json, path: string, min: number, max: number): number {
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      this.fail(path, `must be a whole number from ${min} to ${max}`);
    }
    return v;
  }
}

export function parseEventConfig(text: string, file: string): EventConfig {
  const c = new Checker(file);
  if (text.length > MAX_CONFIG_BYTES) c.fail("$", `larger than ${MAX_CONFIG_BYTES} bytes`);
  let json: Json;
  try {
    json = JSON.parse(text);
  } catch (e) {
    c.fail("$", `not JSON: ${(e as Error).message}`);
  }
  const root = c.object(json, "$", { events: true, tracks: false, stop_triggers: false });
  const events: ConfigEvent[] = [];
  const byName = new Map<string, ConfigEvent>();
  c.array(root.events, "$.events").forEach((v, i) => {
    const path = `$.events[${i}]`;
    const o = c.object(v, path, {
      name: true,
      event: true,
      scope: false,
      stack: false,
      args: false,
    });
    const name = c.name(o.name, `${path}.name`);
    if (byName.has(name)) c.fail(`${path}.name`, `duplicate event name "${name}"`);
    let spec: ProbeSpec | undefined;
    const specText = c.string(o.event, `${path}.event`);
    if (splitArgList(specText).list !== undefined) {
      c.fail(`${path}.event`, "name its arguments in args, not in a list after the spec");
    }
    try {
      spec = parseProbeSpec(specText);
    } catch (e) {
      c.fail(`${path}.event`, (e as Error).message.replace(/^--trace-event /, ""));
    }
    const scopeText = o.scope === undefined ? "thread" : c.string(o.scope, `${path}.scope`);
    if (scopeText !== "thread" && scopeText !== "process" && scopeText !== "cpu") {
      c.fail(`${path}.scope`, "must be thread, process or cpu");
    }
    const scope = scopeText as Scope;
    const args = o.args === undefined ? [] : c.array(o.args, `${path}.args`);
    if (args.length > MAX_EVENT_ARGS) {
      c.fail(`${path}.args`, `${args.length} arguments: at most ${MAX_EVENT_ARGS}`);
    }
    const parsed = args.map((a, j) => {
      const ap = `${path}.args[${j}]`;
      const ao = c.object(a, ap, { arg_index: false, arg_type: true, arg_name: true });
      const type = c.string(ao.arg_type, `${ap}.arg_type`);
      if (type !== "long" && type !== "string" && type !== "retval") {
        c.fail(`${ap}.arg_type`, "must be long, string or retval");
      }
      const problem = argProblem(spec!.kind, type as ConfigArg["type"], 0);
      if (problem) c.fail(type === "retval" ? `${ap}.arg_type` : ap, problem);
      const index = type === "retval"
        ? 0
        : c.integer(ao.arg_index, `${ap}.arg_index`, 0, maxArgIndex(spec!.kind));
      return { type, index, name: c.name(ao.arg_name, `${ap}.arg_name`) } as ConfigArg;
    });
    const names = new Set<string>();
    parsed.forEach((a, j) => {
      if (names.has(a.name)) {
        c.fail(`${path}.args[${j}].arg_name`, `duplicate argument "${a.name}"`);
      }
      names.add(a.name);
    });
    const e: ConfigEvent = {
      name,
      spec: spec!,
      scope,
      stack: o.stack === undefined ? false : c.boolean(o.stack, `${path}.stack`),
      args: parsed,
    };
    events.push(e);
    byName.set(name, e);
  });
  const ref = (v: Json, path: string): ConfigEvent => {
    const name = c.string(v, path);
    const e = byName.get(name);
    if (!e) c.fail(path, `no event named "${name}"`);
    return e!;
  };
  const ranges: ConfigRange[] = [];
  const instants: ConfigInstant[] = [];
  const tracks = root.tracks === undefined ? [] : c.array(root.tracks, "$.tracks");
  const trackNames = new Set<string>();
  const rangeRoles = new Map<string, string>();
  tracks.forEach((v, i) => {
    const path = `$.tracks[${i}]`;
    const o = c.object(v, path, { track_name: true, ranges: false, instants: false });
    const track = c.name(o.track_name, `${path}.track_name`);
    if (trackNames.has(track)) c.fail(`${path}.track_name`, `duplicate track "${track}"`);
    trackNames.add(track);
    const rs = o.ranges === undefined ? [] : c.array(o.ranges, `${path}.ranges`);
    rs.forEach((r, j) => {
      const rp = `${path}.ranges[${j}]`;
      const ro = c.object(r, rp, { name: true, start: true, end: true });
      const start = ref(ro.start, `${rp}.start`), end = ref(ro.end, `${rp}.end`);
      if (start === end) c.fail(`${rp}.end`, "a range needs two different events");
      if (start.scope !== end.scope) {
        c.fail(
          rp,
          `"${start.name}" is ${start.scope}-scoped and "${end.name}" ${end.scope}-scoped`,
        );
      }
      for (const [role, e] of [["start", start], ["end", end]] as const) {
        const key = `${role}:${e.name}`;
        if (rangeRoles.has(key)) {
          c.fail(`${rp}.${role}`, `"${e.name}" is already the ${role} of ${rangeRoles.get(key)}`);
        }
        rangeRoles.set(key, rp);
      }
      ranges.push({ track, name: c.name(ro.name, `${rp}.name`), start: start.name, end: end.name });
    });
    const is = o.instants === undefined ? [] : c.array(o.instants, `${path}.instants`);
    is.forEach((x, j) => {
      const ip = `${path}.instants[${j}]`;
      const xo = c.object(x, ip, { event: true });
      instants.push({ track, event: ref(xo.event, `${ip}.event`).name });
    });
  });
  const thresholds: EventConfig["thresholds"] = [];
  const stopInstants: string[] = [];
  if (root.stop_triggers !== undefined) {
    const o = c.object(root.stop_triggers, "$.stop_triggers", {
      thresholds: false,
      instants: false,
    });
    const ts = o.thresholds === undefined
      ? []
      : c.array(o.thresholds, "$.stop_triggers.thresholds");
    ts.forEach((t, i) => {
      const p = `$.stop_triggers.thresholds[${i}]`;
      const to = c.object(t, p, { start: true, end: true, duration_us: true });
      const start = ref(to.start, `${p}.start`).name, end = ref(to.end, `${p}.end`).name;
      if (!ranges.some((r) => r.start === start && r.end === end)) {
        c.fail(p, `no range goes from "${start}" to "${end}": declare it under a track`);
      }
      thresholds.push({
        start,
        end,
        ns: c.integer(to.duration_us, `${p}.duration_us`, 1, 3_600_000_000) * 1000,
      });
    });
    const is = o.instants === undefined ? [] : c.array(o.instants, "$.stop_triggers.instants");
    is.forEach((x, i) => {
      const p = `$.stop_triggers.instants[${i}]`;
      const xo = c.object(x, p, { event: true });
      stopInstants.push(ref(xo.event, `${p}.event`).name);
    });
  }
  return { events, ranges, instants, thresholds, stopInstants };
}

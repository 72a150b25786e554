/**
 * The --trace-event specs of one recording made into its events: each parsed, resolved on this
 * machine, and given the arguments its kind has without being asked (a USDT probe's own, up to
 * four; a return probe's value), within what the BPF side holds.
 */
import type { ProbeEvent } from "../recorders/probes.ts";
import { MAX_PROBE_EVENTS } from "../recorders/probes.ts";
import { PROBE_ARGS, PROBE_SLOTS } from "../records/records.ts";
import { ProbeError } from "./probe_error.ts";
import { describeSpec, parseProbeSpec } from "./probe_spec.ts";
import { hostProbes, type ProbeHost, resolveProbe } from "./probe_target.ts";

export function resolveProbeEvents(
  specs: readonly string[],
  host: ProbeHost = hostProbes,
): ProbeEvent[] {
  if (specs.length > MAX_PROBE_EVENTS) {
    throw new ProbeError(`${specs.length} --trace-event specs: at most ${MAX_PROBE_EVENTS}`);
  }
  const events: ProbeEvent[] = [];
  const seen = new Set<string>();
  for (const text of specs) {
    const spec = parseProbeSpec(text);
    const name = describeSpec(spec);
    if (seen.has(name)) throw new ProbeError(`--trace-event ${text}: given twice`);
    seen.add(name);
    const target = resolveProbe(spec, host);
    const args = target.kind === "usdt"
      ? Array.from(
        { length: PROBE_ARGS },
        (_, i) => ({ type: "long" as const, index: i, name: `arg${i}` }),
      )
      : (target.kind === "uprobe" && target.ret) || target.kind === "fexit"
      ? [{ type: "retval" as const, index: 0, name: "ret" }]
      : [];
    events.push({ name, target, args });
  }
  for (const kind of ["fentry", "fexit"] as const) {
    const n = events.filter((e) => e.target.kind === kind).length;
    if (n > PROBE_SLOTS) {
      throw new ProbeError(
        `${n} ${kind === "fentry" ? "kprobe:" : "kretprobe:"} events: at most ${PROBE_SLOTS} each`,
      );
    }
  }
  return events;
}

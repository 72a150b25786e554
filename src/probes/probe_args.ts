/**
 * The arguments a probe event records, and the rules both front ends share: a config event's
 * `args` and the argument list a `--trace-event` spec may end with, written like a C parameter
 * list — `uprobe:libc.so.6:openat(_, string path, long flags)`. Each item is `TYPE NAME`, `TYPE`
 * (named argN) or `_` (skipped); its position is the argument it reads.
 */
import { ProbeError } from "./probe_error.ts";
import { parseProbeSpec, type ProbeSpec } from "./probe_spec.ts";

export interface ProbeArgument {
  type: "long" | "string" | "retval";
  /** Which argument of the function or probe (0 for retval). */
  index: number;
  /** Its debug annotation's name. */
  name: string;
}

/** Arguments one event records (the BPF side's SYSTING_PROBE_ARGS). */
export const MAX_EVENT_ARGS = 4;
const TYPES = new Set(["long", "string", "retval"]);
const RETURNS = new Set(["uretprobe", "kretprobe"]);
const C_IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The highest argument index a kind can read: 6 registers, or a USDT probe's 12 arguments. */
export function maxArgIndex(kind: ProbeSpec["kind"]): number {
  return kind === "usdt" ? 11 : 5;
}

/** Why argument TYPE at INDEX cannot be read from a KIND event; undefined when it can. */
export function argProblem(
  kind: ProbeSpec["kind"],
  type: ProbeArgument["type"],
  index: number,
): string | undefined {
  if (type === "retval") {
    return RETURNS.has(kind)
      ? undefined
      : `retval needs a return probe (uretprobe:, kretprobe:), not ${kind}:`;
  }
  if (kind === "tracepoint") return "a tracepoint carries its own fields, by name: drop its args";
  if (index > maxArgIndex(kind)) return `${kind}: reads arguments 0 to ${maxArgIndex(kind)}`;
  return undefined;
}

/**
 * TEXT split into its spec and, when it ends with one, its argument list (`SPEC(…)`). A path
 * holding parentheses is still a path: only a list closing the text is one.
 */
export function splitArgList(text: string): { spec: string; list?: string } {
  if (!text.endsWith(")")) return { spec: text };
  const open = text.lastIndexOf("(");
  if (open <= 0) return { spec: text };
  return { spec: text.slice(0, open), list: text.slice(open + 1, -1) };
}

/** LIST (the text between the parentheses) as KIND's arguments; FAIL says what is wrong. */
export function parseArgList(
  list: string,
  kind: ProbeSpec["kind"],
  fail: (why: string) => never,
): ProbeArgument[] {
  const items = list.split(",").map((s) => s.trim());
  if (items.length === 1 && items[0] === "") fail("the argument list () is empty: drop it");
  if (items.length > maxArgIndex(kind) + 1) {
    fail(`${items.length} arguments listed: ${kind}: reads arguments 0 to ${maxArgIndex(kind)}`);
  }
  const args: ProbeArgument[] = [];
  const names = new Set<string>();
  items.forEach((item, index) => {
    if (item === "_") return;
    const words = item.split(/\s+/);
    const [type, name = type === "retval" ? "ret" : `arg${index}`] = words;
    if (words.length > 2 || !TYPES.has(type)) {
      fail(
        `argument ${index + 1} ${JSON.stringify(item)}: give TYPE NAME, TYPE or _ ` +
          "(TYPE is long, string or retval)",
      );
    }
    if (!C_IDENT.test(name)) fail(`argument name ${JSON.stringify(name)} is not a C name`);
    if (names.has(name)) fail(`argument name "${name}" given twice`);
    names.add(name);
    const t = type as ProbeArgument["type"];
    const problem = argProblem(kind, t, index);
    if (problem) fail(problem);
    args.push({ type: t, index: t === "retval" ? 0 : index, name });
  });
  if (args.length === 0) fail("every argument is skipped (_): drop the list");
  if (args.length > MAX_EVENT_ARGS) {
    fail(`${args.length} arguments: an event records at most ${MAX_EVENT_ARGS}`);
  }
  return args;
}

/** A spec as `--trace-event` takes it: the spec, then the arguments it lists, if any. */
export function parseTraceEvent(text: string): { spec: ProbeSpec; args?: ProbeArgument[] } {
  const { spec: specText, list } = splitArgList(text);
  const spec = parseProbeSpec(specText);
  if (list === undefined) return { spec };
  return {
    spec,
    args: parseArgList(list, spec.kind, (why) => {
      throw new ProbeError(`--trace-event ${JSON.stringify(text)}: ${why}`);
    }),
  };
}

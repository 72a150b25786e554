/**
 * The probe specs users write (`--trace-event SPEC`), in the syntax they know from the original
 * and bpftrace: `usdt:PATH:PROVIDER:NAME`, `uprobe:PATH:FUNC[+OFF]`, `uprobe:PATH:OFFSET`,
 * `uretprobe:PATH:FUNC`, `tracepoint:CATEGORY:NAME`, `kprobe:FUNC`, `kretprobe:FUNC`. Parsing is
 * pure: whether the binary, function or tracepoint exists is for resolve (probe_target.ts).
 */
import { ProbeError } from "./probe_error.ts";

export type ProbeSpec =
  | { kind: "uprobe" | "uretprobe"; path: string; func: string; offset: number }
  | { kind: "usdt"; path: string; provider: string; name: string }
  | { kind: "tracepoint"; category: string; name: string }
  | { kind: "kprobe" | "kretprobe"; func: string };

export const PROBE_KINDS = ["usdt", "uprobe", "uretprobe", "tracepoint", "kprobe", "kretprobe"];

const IDENT = /^[A-Za-z_][A-Za-z0-9_.$@]*$/;
const C_IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Kernel function names: C identifiers, and the compiler's .isra.0/.constprop.0 clones. */
const KERNEL_FUNC = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$/;
const MAX_SPEC = 4096;

function number(text: string): number | undefined {
  if (!/^(0x[0-9a-fA-F]+|\d+)$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** SPEC as a ProbeSpec; a ProbeError names what is wrong and the form that was expected. */
export function parseProbeSpec(spec: string): ProbeSpec {
  const fail = (why: string): never => {
    throw new ProbeError(`--trace-event ${JSON.stringify(spec)}: ${why}`);
  };
  if (spec.length > MAX_SPEC) fail(`longer than ${MAX_SPEC} characters`);
  if ([...spec].some((c) => c.charCodeAt(0) < 0x20)) fail("control characters are not allowed");
  const colon = spec.indexOf(":");
  const kind = colon < 0 ? "" : spec.slice(0, colon);
  const rest = colon < 0 ? "" : spec.slice(colon + 1);
  switch (kind) {
    case "usdt": {
      // The path may hold colons; provider and name are the last two parts.
      const parts = rest.split(":");
      if (parts.length < 3 || parts.slice(0, -2).join(":") === "") {
        fail("give usdt:PATH:PROVIDER:NAME");
      }
      const name = parts.pop()!, provider = parts.pop()!, path = parts.join(":");
      if (!C_IDENT.test(provider)) fail(`provider ${JSON.stringify(provider)} is not a name`);
      if (!C_IDENT.test(name)) fail(`probe name ${JSON.stringify(name)} is not a name`);
      return { kind, path, provider, name };
    }
    case "uprobe":
    case "uretprobe": {
      const at = rest.lastIndexOf(":");
      const path = at < 0 ? "" : rest.slice(0, at), target = at < 0 ? "" : rest.slice(at + 1);
      if (!path || !target) {
        fail(`give ${kind}:PATH:FUNCTION${kind === "uprobe" ? "[+OFFSET]" : ""}`);
      }
      const offset = number(target);
      if (offset !== undefined) {
        if (kind === "uretprobe") fail("a uretprobe needs a function name, not an offset");
        return { kind, path, func: "", offset };
      }
      const plus = target.lastIndexOf("+");
      const func = plus < 0 ? target : target.slice(0, plus);
      const off = plus < 0 ? 0 : number(target.slice(plus + 1));
      if (off === undefined) {
        fail(`offset ${JSON.stringify(target.slice(plus + 1))} is not a number`);
      }
      if (off !== 0 && kind === "uretprobe") fail("a uretprobe attaches to a function, not inside");
      if (!IDENT.test(func)) fail(`function ${JSON.stringify(func)} is not a symbol name`);
      return { kind, path, func, offset: off! };
    }
    case "tracepoint": {
      const parts = rest.split(":");
      if (parts.length !== 2) {
        fail("give tracepoint:CATEGORY:NAME (as in /sys/kernel/tracing/events)");
      }
      const [category, name] = parts;
      if (!C_IDENT.test(category) || !C_IDENT.test(name)) {
        fail("category and name are names as in /sys/kernel/tracing/events/CATEGORY/NAME");
      }
      return { kind, category, name };
    }
    case "kprobe":
    case "kretprobe": {
      const plus = rest.indexOf("+");
      const func = plus < 0 ? rest : rest.slice(0, plus);
      if (plus >= 0 && number(rest.slice(plus + 1)) !== 0) {
        fail(
          "this kernel has no kprobes, and its fentry/fexit attach only at a function's entry and " +
            "exit: drop the +OFFSET",
        );
      }
      if (!KERNEL_FUNC.test(func)) fail(`give ${kind}:FUNCTION (a kernel function's name)`);
      return { kind, func };
    }
    default:
      return fail(
        `unknown probe kind ${JSON.stringify(kind)}: give one of ${PROBE_KINDS.join(", ")}`,
      );
  }
}

/** What a spec says, for names and messages. */
export function describeSpec(s: ProbeSpec): string {
  switch (s.kind) {
    case "usdt":
      return `usdt:${s.path}:${s.provider}:${s.name}`;
    case "uprobe":
    case "uretprobe":
      return `${s.kind}:${s.path}:${
        s.func
          ? s.func + (s.offset ? `+0x${s.offset.toString(16)}` : "")
          : `0x${s.offset.toString(16)}`
      }`;
    case "tracepoint":
      return `tracepoint:${s.category}:${s.name}`;
    default:
      return `${s.kind}:${s.func}`;
  }
}

/**
 * The command line of a subcommand that reads one trace (`report`, `check`): its options, the one
 * TRACE path, and the mistakes worth a one-line message. Each command adds its own options.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

export class InspectUsageError extends Error {
  override name = "InspectUsageError";
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** The parsed option values and the trace path, or "help" for -h/--help. */
export function parseTraceArguments<O extends Options>(
  args: string[],
  options: O,
): { path: string; values: ReturnType<typeof parseArgs<{ options: O }>>["values"] } | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: { ...options, help: { type: "boolean", short: "h" } },
    });
  } catch (e) {
    // node's messages go on with advice about '--' that fits no one here: the first sentence.
    throw new InspectUsageError((e as Error).message.split(/\.( |$)/)[0]);
  }
  const { values, positionals } = parsed;
  if ((values as { help?: boolean }).help) return "help";
  if (positionals.length !== 1) {
    throw new InspectUsageError(
      positionals.length === 0
        ? "which trace? give its path"
        : `one trace at a time, not ${positionals.length} (${positionals.join(" ")})`,
    );
  }
  return { path: positionals[0], values: values as never };
}

/** A whole number option value, or a one-line error naming the option. */
export function wholeNumber(flag: string, v: string, what: string): number {
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) {
    throw new InspectUsageError(`${flag} takes ${what}, not '${v}'`);
  }
  return Number(v);
}

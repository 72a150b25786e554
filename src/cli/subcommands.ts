/**
 * The commands that do something other than record: each reads its own arguments and returns
 * the exit status. `main.ts` dispatches on the first argument; `--help` lists them.
 */
import { checkCommand } from "../inspect/check_command.ts";
import { reportCommand } from "../inspect/report_command.ts";

export interface Subcommand {
  name: string;
  usage: string;
  summary: string;
  run: (args: string[]) => Promise<number>;
}

export const SUBCOMMANDS: readonly Subcommand[] = [
  {
    name: "report",
    usage: "report TRACE [--json] [--pid PID] [--comm NAME] [--top N]",
    summary: "summarize a trace in the terminal: CPU time, states, latency, IRQs, stacks",
    run: reportCommand,
  },
  {
    name: "check",
    usage: "check TRACE [--max N] [--json]",
    summary: "validate a trace and say what a cut-off one still holds",
    run: checkCommand,
  },
];

export function findSubcommand(name: string | undefined): Subcommand | undefined {
  return SUBCOMMANDS.find((s) => s.name === name);
}

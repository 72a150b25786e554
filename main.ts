/**
 * systing: records what this machine is doing into a Perfetto trace.
 * This file only parses arguments, wires the modules, prints errors and
 * picks exit codes.
 */
import { guardInspectorSignal } from "./src/cli/inspector_guard.ts";
import { counterList, recorderList } from "./src/cli/listings.ts";
import { HELP, parseOptions, type Request } from "./src/cli/options.ts";
import { completionScript, SHELLS } from "./src/cli/completions.ts";
import { findSubcommand, SUBCOMMANDS } from "./src/cli/subcommands.ts";
import { CommandError, TracedCommand } from "./src/cli/traced_command.ts";
import { details, summary } from "./src/cli/summary.ts";
import { forgetLauncherEnvironment } from "./src/dist/launched.ts";
import { FilterError } from "./src/filter/filter_error.ts";
import { hostProcesses, TaskFilter } from "./src/filter/task_filter.ts";
import { ProbeError } from "./src/probes/probe_error.ts";
import { type ConfigFile, resolveProbeEvents } from "./src/probes/probe_events.ts";
import { KernelFeatures } from "./src/machine/kernel_features.ts";
import { record, type RecordingControl } from "./src/pipeline/record.ts";
import { counterCatalog, counterProblem } from "./src/recorders/counter_catalog.ts";
import { RECORDERS } from "./src/recorders/registry.ts";
import { VERSION } from "./src/version.ts";

/**
 * A closed terminal (HUP), Ctrl-C (INT), Ctrl-\\ (QUIT) and kill (TERM) all end the recording with
 * a complete trace. A second one while finishing means "now": the unfinished file is removed.
 */
const STOP_SIGNALS: Deno.Signal[] = ["SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM"];

/** Signals sent to systing alone (a kill), passed on to `-- CMD`; a terminal's reach both. */
const FORWARDED: Deno.Signal[] = ["SIGHUP", "SIGTERM"];

function stopOnSignals(
  control: RecordingControl,
  forward: (s: Deno.Signal) => void = () => {},
): () => void {
  let signals = 0;
  const handler = (signal: Deno.Signal) => {
    if (FORWARDED.includes(signal)) forward(signal);
    if (++signals === 1) {
      control.stop();
      return;
    }
    const removed = control.discard();
    console.error(
      removed
        ? "\nsysting: stopped by a second signal; the unfinished trace was removed"
        : "\nsysting: stopped by a second signal",
    );
    Deno.exit(130);
  };
  const handlers = STOP_SIGNALS.map((s) => [s, () => handler(s)] as const);
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);
  return () => {
    for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  };
}

async function main(args: string[]): Promise<number> {
  forgetLauncherEnvironment();
  const sub = findSubcommand(args[0]);
  if (sub) return await sub.run(args.slice(1));
  let request: Request;
  try {
    request = parseOptions(args);
  } catch (e) {
    console.error(`systing: ${(e as Error).message}`);
    return 2;
  }
  switch (request.kind) {
    case "help":
      console.log(HELP);
      return 0;
    case "version":
      console.log(`systing ${VERSION}`);
      return 0;
    case "list-recorders": {
      const features = new KernelFeatures();
      console.log(recorderList(RECORDERS, features));
      features.close();
      return 0;
    }
    case "completions":
      console.log(
        completionScript(request.shell, HELP, SUBCOMMANDS, {
          completions: SHELLS,
          "add-recorder": RECORDERS.map((r) => r.name),
          "only-recorder": RECORDERS.map((r) => r.name),
          "user-stacks": ["auto", "fp", "dwarf"],
        }),
      );
      return 0;
    case "list-perf-counters":
      console.log(counterList(counterCatalog(), counterProblem));
      return 0;
  }
  const opts = request.options;
  let command: TracedCommand | undefined;
  let filter: TaskFilter | undefined;
  try {
    if (opts.command) command = new TracedCommand(opts.command);
    filter = TaskFilter.resolve({ pids: opts.pids, cgroups: opts.cgroups, command: !!command });
    Object.assign(
      opts.recorderOptions.probes,
      resolveProbeEvents(opts.traceEvents, opts.traceEventConfigs.map(readConfig)),
    );
    for (const pid of opts.recorderOptions.probes.pids) {
      if (!hostProcesses.tgid(pid)) {
        throw new ProbeError(`--trace-event-pid ${pid}: no such process`);
      }
    }
  } catch (e) {
    if (e instanceof CommandError) {
      console.error(`systing: ${e.message}`);
      return e.status;
    }
    if (!(e instanceof FilterError) && !(e instanceof ProbeError)) throw e;
    console.error(`systing: ${e.message}`);
    return 2;
  }

  // Before anything else: as root, an open inspector is a root shell for any local user.
  guardInspectorSignal();
  const tty = Deno.stderr.isTerminal();
  let statusShown = false;
  const encoder = new TextEncoder();
  const clearStatus = () => {
    if (statusShown) Deno.stderr.writeSync(encoder.encode("\r\x1b[K"));
    statusShown = false;
  };
  let control: RecordingControl | undefined;
  try {
    const result = await record({
      ...opts,
      filter,
      attached: command && (() => command.start(() => control?.stop())),
      log: (line) => {
        clearStatus();
        console.error(line);
      },
      // A command's own output would be overwritten by the status line.
      status: tty && !command
        ? (line) => {
          Deno.stderr.writeSync(encoder.encode(`\r\x1b[K${line}`));
          statusShown = true;
        }
        : undefined,
    }, (c) => {
      control = c;
      return stopOnSignals(c, (signal) => command?.forward(signal));
    });
    clearStatus();
    console.error(summary(result, opts.output));
    if (opts.verbosity > 0) console.error(details(result));
    return command ? await commandExit(command) : 0;
  } catch (e) {
    clearStatus();
    const err = e as Error;
    console.error(`systing: ${err.message.split("\n")[0]}`);
    if (opts.verbosity > 1 && err.stack) console.error(err.stack);
    // The command is the user's: it goes on, and systing returns only once it has ended.
    if (command?.running) await commandExit(command);
    return 1;
  }
}

/** A --trace-event-config file's text; a one-line ProbeError when it cannot be read. */
function readConfig(path: string): ConfigFile {
  try {
    const info = Deno.statSync(path);
    if (!info.isFile) throw new ProbeError(`--trace-event-config ${path}: not a file`);
    if (info.size > 1 << 20) {
      throw new ProbeError(`--trace-event-config ${path}: larger than 1 MiB`);
    }
    return { path, text: Deno.readTextFileSync(path) };
  } catch (e) {
    if (e instanceof ProbeError) throw e;
    throw new ProbeError(`--trace-event-config ${path}: ${(e as Error).message.split(":")[0]}`);
  }
}

/** `-- CMD`'s status becomes systing's, once the trace is complete. */
async function commandExit(command: TracedCommand): Promise<number> {
  const name = command.argv[0];
  if (!command.started) {
    console.error(`systing: ${name} was not started: the recording stopped before it could`);
    return 1;
  }
  if (command.running) console.error(`systing: waiting for ${name} (pid ${command.pid}) to exit`);
  const status = await command.status();
  if (status?.signal) console.error(`systing: ${name} was killed by ${status.signal}`);
  else if (status && status.code !== 0) {
    console.error(`systing: ${name} exited with ${status.code}`);
  }
  return status?.code ?? 1;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

/**
 * `systing [options] -- CMD ARGS…`: the command a recording is about. It is looked up like a
 * shell would (PATH, or a path with a slash) before anything is recorded, so that a typo costs no
 * trace; it starts once every program is attached, its end ends the recording, and its status
 * becomes systing's (128+N when a signal killed it, as a shell reports it).
 */

/** The command cannot be run: `status` is the shell's (127 not found, 126 not executable). */
export class CommandError extends Error {
  override name = "CommandError";
  readonly status: number;

  constructor(message: string, status: number) {
    super(message);
    this.status = status;
  }
}

function executableFile(path: string): "ok" | "missing" | "not executable" | "a directory" {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch {
    return "missing";
  }
  if (info.isDirectory) return "a directory";
  // As root, execute permission needs an x bit anywhere.
  if (!info.isFile || ((info.mode ?? 0) & 0o111) === 0) return "not executable";
  return "ok";
}

/** The file CMD names, found as the shell finds it; throws CommandError as the shell fails. */
export function resolveCommand(
  cmd: string,
  path: string = Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin",
): string {
  if (cmd === "") throw new CommandError("'': command not found", 127);
  if (cmd.includes("/")) {
    const state = executableFile(cmd);
    if (state === "missing") throw new CommandError(`${cmd}: No such file or directory`, 127);
    if (state === "a directory") throw new CommandError(`${cmd}: Is a directory`, 126);
    if (state === "not executable") throw new CommandError(`${cmd}: Permission denied`, 126);
    return cmd;
  }
  let denied: string | undefined;
  for (const dir of path.split(":")) {
    const candidate = `${dir === "" ? "." : dir}/${cmd}`;
    const state = executableFile(candidate);
    if (state === "ok") return candidate;
    if (state === "not executable") denied ??= candidate;
  }
  if (denied) throw new CommandError(`${denied}: Permission denied`, 126);
  throw new CommandError(`${cmd}: command not found`, 127);
}

export class TracedCommand {
  readonly argv: readonly string[];
  readonly file: string;
  #child: Deno.ChildProcess | undefined;
  #status: Promise<Deno.CommandStatus> | undefined;
  #ended = false;

  /** Resolves the command at once (CommandError when it cannot run); starts nothing. */
  constructor(argv: readonly string[]) {
    this.argv = argv;
    this.file = resolveCommand(argv[0]);
  }

  /** Starts it with systing's terminal and environment; `exited` runs when it ends. */
  start(exited: () => void): void {
    if (this.#child) return;
    this.#child = new Deno.Command(this.file, {
      args: this.argv.slice(1),
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    this.#status = this.#child.status;
    const end = () => {
      this.#ended = true;
      exited();
    };
    this.#status.then(end, end);
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get started(): boolean {
    return this.#child !== undefined;
  }

  get running(): boolean {
    return this.started && !this.#ended;
  }

  /** Passes a signal on (one that was sent to systing alone, such as a kill's SIGTERM). */
  forward(signal: Deno.Signal): void {
    try {
      this.#child?.kill(signal);
    } catch { /* already gone */ }
  }

  /** Its exit status as a shell reports it; undefined when it never started. */
  async status(): Promise<{ code: number; signal: Deno.Signal | null } | undefined> {
    if (!this.#status) return undefined;
    const s = await this.#status;
    return { code: s.code, signal: s.signal };
  }
}

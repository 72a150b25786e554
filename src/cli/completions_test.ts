import assert from "node:assert/strict";
import { completionScript, optionsFromHelp } from "./completions.ts";
import { HELP } from "./options.ts";
import { SUBCOMMANDS } from "./subcommands.ts";

const VALUES = { "user-stacks": ["auto", "fp", "dwarf"], completions: ["bash", "zsh", "fish"] };

Deno.test("completions: every option of the help text is found, with its short form and value", () => {
  const opts = optionsFromHelp(HELP);
  const byName = new Map(opts.map((o) => [o.long, o]));
  for (const long of ["duration", "output", "no-sleep-stack-traces", "completions", "syscalls"]) {
    assert.ok(byName.has(long), `--${long} missing`);
  }
  assert.equal(byName.get("duration")?.short, "d");
  assert.equal(byName.get("duration")?.value, "SECS");
  assert.equal(byName.get("syscalls")?.value, undefined);
  // The help's own option list names each option once; examples (`sudo systing -d 5`) are not options.
  const listed = HELP.match(/^ {2}(?:-\w, )? *--[a-z][\w-]*/gm)!.length;
  assert.equal(opts.length, listed);
});

async function bashComplete(line: string): Promise<string[]> {
  const script = completionScript("bash", HELP, SUBCOMMANDS, VALUES);
  const words = line.split(" ");
  const program = `${script}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}
_systing; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const out = await new Deno.Command("bash", { args: ["-c", program], stdout: "piped" }).output();
  assert.ok(out.success);
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l);
}

Deno.test("completions: bash completes options, closed value sets and subcommands", async () => {
  assert.deepEqual(await bashComplete("systing --dur"), ["--duration"]);
  assert.deepEqual(await bashComplete("systing --user-stacks d"), ["dwarf"]);
  assert.deepEqual(await bashComplete("systing rep"), ["report"]);
  assert.deepEqual(await bashComplete("systing report --js"), ["--json"]);
});

Deno.test("completions: zsh and fish scripts name every option and subcommand", () => {
  for (const shell of ["zsh", "fish"] as const) {
    const script = completionScript(shell, HELP, SUBCOMMANDS, VALUES);
    for (const o of optionsFromHelp(HELP)) {
      assert.ok(script.includes(o.long), `${shell}: ${o.long}`);
    }
    for (const s of SUBCOMMANDS) assert.ok(script.includes(s.name), `${shell}: ${s.name}`);
  }
  assert.match(
    completionScript("fish", HELP, SUBCOMMANDS, VALUES),
    /-l user-stacks -x -a 'auto fp dwarf'/,
  );
});

/**
 * `--completions bash|zsh|fish`: a completion script for the shell. The options come from the
 * help text itself, so a new option completes as soon as it is documented; values that are a
 * closed set (recorder names, shells, stack modes) complete too.
 */
import type { Subcommand } from "./subcommands.ts";

export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = typeof SHELLS[number];

export interface OptionSpec {
  long: string;
  short?: string;
  /** The placeholder of its value (e.g. "SECS"); undefined for a flag. */
  value?: string;
  summary: string;
}

/** Every option the help text lists, as `  -d, --duration SECS   text`. */
export function optionsFromHelp(help: string): OptionSpec[] {
  const out: OptionSpec[] = [];
  const re = /^ {2}(?:-(\w), )? *--([a-z][\w-]*)(?: ([A-Z][A-Z|a-z]*))?(?: +(.*))?$/gm;
  for (const m of help.matchAll(re)) {
    if (out.some((o) => o.long === m[2])) continue;
    out.push({ short: m[1], long: m[2], value: m[3], summary: (m[4] ?? "").trim() });
  }
  return out;
}

/** Closed sets of values by option. */
export type ValueSets = Record<string, readonly string[]>;

function quoteFish(s: string): string {
  return `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

function bash(opts: OptionSpec[], subs: readonly Subcommand[], values: ValueSets): string {
  const words = opts.flatMap((o) => [`--${o.long}`, ...o.short ? [`-${o.short}`] : []]);
  const cases = Object.entries(values).map(([opt, vals]) =>
    `    --${opt}) COMPREPLY=($(compgen -W "${vals.join(" ")}" -- "$cur")); return ;;`
  );
  const fileOpts = opts.filter((o) => o.value === "PATH").flatMap((o) => [
    `--${o.long}`,
    ...o.short ? [`-${o.short}`] : [],
  ]);
  const valueOpts = opts.filter((o) => o.value && !(o.long in values) && o.value !== "PATH")
    .flatMap((o) => [`--${o.long}`, ...o.short ? [`-${o.short}`] : []]);
  return `# bash completion for systing: eval "$(systing --completions bash)"
_systing() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  if [ "$COMP_CWORD" -eq 1 ] && [[ "$cur" != -* ]]; then
    COMPREPLY=($(compgen -W "${subs.map((s) => s.name).join(" ")}" -- "$cur")); return
  fi
  case "\${COMP_WORDS[1]}" in
    ${subs.map((s) => s.name).join("|")})
      if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "--json --pid --comm --top --max --help" -- "$cur"))
      else COMPREPLY=($(compgen -f -- "$cur")); fi
      return ;;
  esac
  case "$prev" in
${cases.join("\n")}
    ${fileOpts.join("|") || "--output"}) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    ${valueOpts.join("|") || "--duration"}) return ;;
  esac
  COMPREPLY=($(compgen -W "${words.join(" ")}" -- "$cur"))
}
complete -o filenames -F _systing systing
`;
}

function zsh(opts: OptionSpec[], subs: readonly Subcommand[], values: ValueSets): string {
  const esc = (s: string) => s.replace(/([\[\]:'\\])/g, "\\$1");
  const specs = opts.map((o) => {
    const action = o.value === undefined
      ? ""
      : `:${o.value.toLowerCase()}:${
        o.long in values ? `(${values[o.long].join(" ")})` : o.value === "PATH" ? "_files" : " "
      }`;
    const names = o.short ? `{-${o.short},--${o.long}}` : `--${o.long}`;
    return `    ${o.short ? `'(-${o.short} --${o.long})'${names}` : names}'[${
      esc(o.summary)
    }]${action}'`;
  });
  return `#compdef systing
# zsh completion for systing: systing --completions zsh > "\${fpath[1]}/_systing"
_systing() {
  if (( CURRENT == 2 )) && [[ $words[2] != -* ]]; then
    local -a subs=(${subs.map((s) => `'${s.name}:${esc(s.summary)}'`).join(" ")})
    _describe 'command' subs && return
  fi
  case $words[2] in
    ${subs.map((s) => s.name).join("|")})
      _arguments '--json[machine-readable output]' '*--pid[focus on a process]:pid: ' \\
        '*--comm[focus on a name]:name: ' '--top[rows per table]:n: ' '--max[violations shown]:n: ' \\
        '1:trace:_files'
      return ;;
  esac
  _arguments -s \\
${specs.join(" \\\n")}
}
_systing "$@"
`;
}

function fish(opts: OptionSpec[], subs: readonly Subcommand[], values: ValueSets): string {
  const lines = [
    "# fish completion for systing: systing --completions fish > ~/.config/fish/completions/systing.fish",
    "complete -c systing -f",
    ...subs.map((s) =>
      `complete -c systing -n __fish_use_subcommand -a ${s.name} -d ${quoteFish(s.summary)}`
    ),
    ...subs.map((s) => `complete -c systing -n '__fish_seen_subcommand_from ${s.name}' -F`),
  ];
  for (const o of opts) {
    let line = `complete -c systing -l ${o.long}`;
    if (o.short) line += ` -s ${o.short}`;
    if (o.value !== undefined) {
      line += o.long in values ? ` -x -a ${quoteFish(values[o.long].join(" "))}` : " -r";
      if (o.value === "PATH") line += " -F";
    }
    lines.push(`${line} -d ${quoteFish(o.summary)}`);
  }
  return lines.join("\n") + "\n";
}

export function completionScript(
  shell: Shell,
  help: string,
  subs: readonly Subcommand[],
  values: ValueSets,
): string {
  const opts = optionsFromHelp(help);
  switch (shell) {
    case "bash":
      return bash(opts, subs, values);
    case "zsh":
      return zsh(opts, subs, values);
    case "fish":
      return fish(opts, subs, values);
  }
}

/**
 * Demangling cost: our bounded demanglers against GNU c++filt on the same names (every exported
 * C++ name of libstdc++ and LLVM on this machine), in the same run; plus how much of the output
 * agrees, and what the bombs cost. Ratios are what to read: the machine is noisy.
 *
 *   .tools/node_modules/.bin/deno run -A bench/demangle_bench.ts
 */
import { demangleItanium } from "../src/symbolize/itanium_demangler.ts";
import { demanglingBomb } from "../test/crafted_elf.ts";

async function exportedNames(): Promise<string[]> {
  const dir = "/usr/lib/x86_64-linux-gnu";
  const libs = [
    `${dir}/libstdc++.so.6`,
    ...[...Deno.readDirSync(dir)].filter((e) => /^libLLVM-\d+\.so\.1$/.test(e.name))
      .map((e) => `${dir}/${e.name}`),
  ];
  const names = new Set<string>();
  for (const lib of libs) {
    const out = await new Deno.Command("nm", {
      args: ["-D", "--defined-only", "--without-symbol-versions", lib],
      stdout: "piped",
    }).output();
    for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
      const name = line.split(" ").pop()!;
      if (name.startsWith("_Z")) names.add(name);
    }
  }
  return [...names];
}

async function cxxfilt(names: string[]): Promise<{ out: string[]; ms: number }> {
  const t0 = performance.now();
  const child = new Deno.Command("c++filt", { stdin: "piped", stdout: "piped" }).spawn();
  const output = child.output();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(names.join("\n") + "\n"));
  await w.close();
  const out = new TextDecoder().decode((await output).stdout).split("\n");
  return { out, ms: performance.now() - t0 };
}

const names = await exportedNames();
// Warm up, then time a pass over every name.
for (const n of names.slice(0, 2000)) demangleItanium(n);
const t0 = performance.now();
const ours = names.map((n) => demangleItanium(n) ?? n);
const oursMs = performance.now() - t0;
const filt = await cxxfilt(names);
let same = 0;
for (let i = 0; i < names.length; i++) if (ours[i] === filt.out[i]) same++;

const bomb = demanglingBomb();
const stats = { steps: 0, nodes: 0 };
const tb = performance.now();
for (let i = 0; i < 100; i++) demangleItanium(bomb, undefined, stats);
const bombUs = (performance.now() - tb) * 10;

console.log(
  `${names.length} names: identical to c++filt ${(100 * same / names.length).toFixed(3)}%`,
);
console.log(
  `ours ${(oursMs * 1000 / names.length).toFixed(2)} µs/name, c++filt (one process, piped) ` +
    `${(filt.ms * 1000 / names.length).toFixed(2)} µs/name: ratio ${(oursMs / filt.ms).toFixed(2)}`,
);
console.log(
  `a ${bomb.length}-byte bomb (2^40 expansion): refused after ${stats.steps} steps, ` +
    `${bombUs.toFixed(0)} µs`,
);

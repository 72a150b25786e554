/**
 * What a hostile user's files cost a recording: the same 1000 Hz recording while the attacker
 * (test/c/hostile.c, as nobody) runs ordinary code, and while it runs the crafted files of
 * test/crafted_elf.ts (sparse files claiming 256 MiB tables, lying symbol tables, unwind-table
 * and unwind-expression bombs, a demangling bomb). Reports, per run, the recorder's peak RSS, its
 * time from SIGINT to a complete file, and its user+system CPU; the ratio attacked/plain is what
 * to read (this VM is noisy).
 *
 *   .tools/node_modules/.bin/deno run -A bench/hostile_bench.ts
 */
import { demanglingBomb, expressionBomb, plant, registerBomb } from "../test/crafted_elf.ts";
import { compile, Recorder, runJson } from "../test/workload.ts";

const CPU_MS_EACH = "1500";

function status(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(
    Deno.readTextFileSync(`/proc/${pid}/status`),
  );
  return m ? Number(m[1]) : 0;
}

function cpuSeconds(pid: number): number {
  const f = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in USER_HZ ticks
}

async function run(files: string[], hostile: string, dir: string, label: string) {
  const trace = `${dir}/${label}.pb`;
  const rec = await Recorder.start(["-o", trace]);
  try {
    await Promise.all(files.map((f) => runJson(hostile, ["exec", f, CPU_MS_EACH, "40"])));
    const peakMiB = status(rec.pid, "VmHWM") / 1024;
    const cpu = cpuSeconds(rec.pid);
    const t0 = performance.now();
    const exit = await rec.stop("SIGINT");
    const stopMs = performance.now() - t0;
    if (exit.code !== 0) throw new Error(`${label}: exit ${exit.code}\n${exit.stderr}`);
    const size = Deno.statSync(trace).size / 2 ** 20;
    console.log(
      `${label.padEnd(9)} peak RSS ${peakMiB.toFixed(0)} MiB, CPU ${cpu.toFixed(2)} s, ` +
        `SIGINT → file ${stopMs.toFixed(0)} ms, trace ${size.toFixed(1)} MiB`,
    );
    return { peakMiB, cpu, stopMs };
  } finally {
    await rec.close();
  }
}

const hostile = await compile("hostile.c");
const dir = Deno.makeTempDirSync({ prefix: "systing-hostile-bench-" });
Deno.chmodSync(dir, 0o1777);
try {
  const bomb = demanglingBomb();
  const crafted = [
    ...[0, 1, 2].map((i) => plant(dir, `strtab${i}.so`, { strtabClaim: 256 << 20 })),
    ...[0, 1, 2].map((i) =>
      plant(dir, `eh${i}.so`, { fdeInstructions: new Uint8Array(0), ehFrameClaim: 256 << 20 })
    ),
    plant(dir, "entsize.so", { symtabEntsize: 16 }),
    plant(dir, "beyond.so", { strtabClaim: 2 ** 40 }, true),
    plant(dir, "regs.so", { fdeInstructions: registerBomb(1500) }),
    plant(dir, "exprs.so", { fdeInstructions: expressionBomb(800) }),
    plant(dir, "names.so", { strtab: new TextEncoder().encode(`\0${bomb}\0`) }),
  ];
  // As many ordinary files, run as long: the difference is what the crafted ones cost.
  const plain = crafted.map((_, i) => plant(dir, `plain${i}.so`, {}));
  const a = await run(plain, hostile, dir, "plain");
  const b = await run(crafted, hostile, dir, "attacked");
  console.log(
    `attacked/plain: peak RSS ${(b.peakMiB / a.peakMiB).toFixed(2)}, CPU ${
      (b.cpu / a.cpu).toFixed(2)
    }, stop ${(b.stopMs / a.stopMs).toFixed(2)}`,
  );
} finally {
  Deno.removeSync(dir, { recursive: true });
}

import assert from "node:assert/strict";
import {
  closestNames,
  counterCatalog,
  CounterError,
  counterProblem,
  type CounterSpec,
  encodeEvent,
  parseFormat,
  resolveCounters,
} from "./counter_catalog.ts";

Deno.test("counter catalog: sysfs formats spread a term's value over its bit ranges", () => {
  assert.deepEqual(parseFormat("config:0-7,21"), { field: "config", bits: [[0, 7], [21, 21]] });
  assert.deepEqual(parseFormat("config1:0-63"), { field: "config1", bits: [[0, 63]] });
  assert.throws(() => parseFormat("config3:0-7"), CounterError);
  assert.throws(() => parseFormat("config:7-0"), CounterError);
  assert.throws(() => parseFormat("config:0-64"), CounterError);
  const formats = new Map([
    ["event", "config:0-7,32-35"],
    ["umask", "config:8-15"],
    ["any", "config:21"],
    ["ldlat", "config1:0-15"],
  ]);
  const e = encodeEvent("event=0x1d3,umask=0x01,any,ldlat=3", formats);
  // 0x1d3: low 8 bits 0xd3 at 0-7, the rest (0x1) at 32-35.
  assert.equal(e.config, 0xd3n | (0x01n << 8n) | (1n << 21n) | (0x1n << 32n));
  assert.equal(e.config1, 3n);
  assert.equal(e.config2, 0n);
  assert.throws(() => encodeEvent("bogus=1", formats), CounterError);
  assert.throws(() => encodeEvent("event=zz", formats), CounterError);
});

/** A sysfs tree of PMUs in a temp dir. */
function fakeSysfs(files: Record<string, string>): string {
  const dir = Deno.makeTempDirSync({ prefix: "systing-pmu-" });
  for (const [path, text] of Object.entries(files)) {
    Deno.mkdirSync(`${dir}/${path.slice(0, path.lastIndexOf("/"))}`, { recursive: true });
    Deno.writeTextFileSync(`${dir}/${path}`, `${text}\n`);
  }
  return dir;
}

Deno.test("counter catalog: generic names, then every PMU's sysfs events with scale and unit", () => {
  const dir = fakeSysfs({
    "msr/type": "9",
    "msr/format/event": "config:0-63",
    "msr/events/tsc": "event=0x00",
    "power/type": "23",
    "power/cpumask": "0",
    "power/format/event": "config:0-7",
    "power/events/energy-pkg": "event=0x02",
    "power/events/energy-pkg.scale": "2.3283064365386962890625e-10",
    "power/events/energy-pkg.unit": "Joules",
    "odd/type": "30",
    "odd/format/event": "config:0-7",
    "odd/events/weird": "nosuchterm=1",
    "tracepoint/type": "2",
    "tracepoint/events/x": "event=1",
  });
  try {
    const c = counterCatalog(dir);
    const byName = new Map(c.map((s) => [s.name, s]));
    assert.equal(byName.get("context-switches")?.aliases[0], "cs");
    assert.equal(byName.get("cycles")?.kind, "hardware");
    assert.deepEqual(byName.get("msr/tsc"), {
      name: "msr/tsc",
      aliases: ["msr/tsc/"],
      kind: "pmu",
      type: 9,
      config: 0n,
      config1: 0n,
      config2: 0n,
      scale: 1,
      unit: undefined,
      cpus: undefined,
    });
    const energy = byName.get("power/energy-pkg")!;
    assert.equal(energy.config, 2n);
    assert.equal(energy.unit, "Joules");
    assert.ok(Math.abs(energy.scale - 2.3283064365386963e-10) < 1e-24);
    assert.deepEqual(energy.cpus, [0]);
    // Unknown terms and probe PMUs are not offered.
    assert.ok(!byName.has("odd/weird"));
    assert.ok(!byName.has("tracepoint/x"));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

const catalog = counterCatalog("/nonexistent");
const softwareOnly = (s: CounterSpec) =>
  s.kind === "hardware" ? "this machine has no hardware PMU (test)" : undefined;

Deno.test("counter catalog: names, aliases and globs resolve, each counter once", () => {
  const names = (p: string[]) => resolveCounters(p, catalog, softwareOnly).map((s) => s.name);
  assert.deepEqual(names(["cs"]), ["context-switches"]);
  assert.deepEqual(names(["context-switches", "cs"]), ["context-switches"]);
  assert.deepEqual(names(["*faults"]), [
    "page-faults",
    "minor-faults",
    "major-faults",
    "alignment-faults",
    "emulation-faults",
  ]);
  // A glob keeps what this machine can count: the hardware *cycles are left out.
  assert.deepEqual(names(["cpu-*"]), ["cpu-clock", "cpu-migrations"]);
});

Deno.test("counter catalog: every bad name is one error naming it and what is close", () => {
  const bad = (p: string[], ...parts: string[]) => {
    let m = "";
    assert.throws(() => resolveCounters(p, catalog, softwareOnly), (e) => {
      m = (e as Error).message;
      return e instanceof CounterError;
    });
    assert.ok(!m.includes("\n"), m);
    for (const part of parts) assert.ok(m.includes(part), `"${m}" lacks "${part}"`);
  };
  bad(["contxt-switches"], '"contxt-switches"', "closest: context-switches");
  bad(["cycles"], "cannot count cycles", "no hardware PMU", "software counters work");
  bad(["zzz*"], '"zzz*" matches no counter');
  bad(["*cycles*"], "matches no counter this machine can count", "no hardware PMU");
  bad([""], "empty --perf-counter");
  bad(["*"], "at most 8");
  assert.deepEqual(closestNames("migrations", ["cpu-migrations", "cs"]), ["cpu-migrations"]);
});

Deno.test("counter catalog: this machine counts software events; hardware ones say why not", () => {
  const c = counterCatalog();
  const cs = c.find((s) => s.name === "context-switches")!;
  assert.equal(counterProblem(cs), undefined);
  const cycles = c.find((s) => s.name === "cycles")!;
  const problem = counterProblem(cycles);
  // Machines of this kind have no PMU; on one with a PMU cycles simply works.
  if (problem !== undefined) assert.match(problem, /no hardware PMU/);
});

// The recorders' claims on the real BPF object: every program and map in it belongs to the core
// or to a recorder, and loading only some recorders puts only their programs and maps in the
// kernel (root: the object is really loaded, through libbpf and the verifier).
import assert from "node:assert/strict";
import { BpfObject } from "../ffi/bpf_object.ts";
import { bpfObjectBytes } from "../gen/systing_bpf.ts";
import { PROCESS_PROGRAMS } from "../processes/process_records.ts";
import { FILTER_PROGRAMS } from "../filter/task_filter.ts";
import { ConfigWriter, type Recorder } from "../recorders/recorder.ts";
import { FilterBit, Layout, MAX_FILTER_CGROUPS, Part } from "../records/records.ts";
import { RECORDERS } from "../recorders/registry.ts";
import { bpfSelection, CORE_MAPS, CORE_PROGRAMS, selectBpf } from "./bpf_selection.ts";

/** The probes recorder's fentry/fexit slots (see loadOnly). */
const isSlot = (p: string) => /^probe_f(entry|exit)\d+$/.test(p);

/** Global data sections: libbpf names them "<object>.<section>". */
const isSection = (map: string) => map.includes(".");

function withObject<T>(f: (obj: BpfObject) => T): T {
  const obj = BpfObject.open(bpfObjectBytes, "systing");
  try {
    return f(obj);
  } finally {
    obj.close();
  }
}

Deno.test("bpf selection: every program and map of the object is claimed", () => {
  withObject((obj) => {
    const claimed = new Set<string>([
      ...PROCESS_PROGRAMS,
      ...CORE_PROGRAMS,
      ...FILTER_PROGRAMS,
      ...RECORDERS.flatMap((r) => [...r.bpf.programs, ...r.bpf.ownPrograms ?? []]),
    ]);
    const programs = obj.programNames();
    assert.ok(programs.length > PROCESS_PROGRAMS.length + RECORDERS.length, `${programs.length}`);
    assert.deepEqual(programs.filter((p) => !claimed.has(p)), [], "programs no recorder claims");
    assert.deepEqual([...claimed].filter((p) => !programs.includes(p)), [], "claimed, not there");
    const maps = obj.mapNames().filter((m) => !isSection(m));
    const claimedMaps = new Set<string>([...CORE_MAPS, ...RECORDERS.flatMap((r) => r.bpf.maps)]);
    assert.deepEqual(maps.filter((m) => !claimedMaps.has(m)), [], "maps no recorder claims");
    assert.deepEqual([...claimedMaps].filter((m) => !maps.includes(m)), [], "claimed, not there");
  });
});

/** Loads the object with only ON (and EXTRA programs) selected; returns what is in the kernel. */
function loadOnly(
  on: readonly Recorder[],
  config = new ConfigWriter(),
  extra: readonly string[] = [],
) {
  return withObject((obj) => {
    selectBpf(obj, on, RECORDERS, extra);
    // fentry/fexit slots load only with a kernel function to attach to, which a probes session
    // sets (and leaves the others unloaded).
    for (const p of [...bpfSelection(on, RECORDERS, extra).programs].filter(isSlot)) {
      obj.disable(p);
    }
    obj.setMaxEntries("stack_scratch", 2 * obj.possibleCpus);
    obj.setReadOnlyData(config.bytes);
    obj.createRings("rings", [0], 1 << 16);
    obj.load();
    return obj.loaded();
  });
}

for (const r of RECORDERS) {
  Deno.test(`bpf selection: ${r.name} alone loads its programs and maps, nothing else`, () => {
    const { programs, maps } = loadOnly([r]);
    const expected = bpfSelection([r], RECORDERS);
    assert.deepEqual(programs.sort(), [...expected.programs].filter((p) => !isSlot(p)).sort());
    const own = maps.filter((m) => !isSection(m)).sort();
    assert.deepEqual(own, [...new Set([...CORE_MAPS, ...r.bpf.maps])].sort());
    for (const other of RECORDERS) {
      for (const m of other.bpf.maps) {
        if (!r.bpf.maps.includes(m)) assert.ok(!maps.includes(m), `${m} created for ${r.name}`);
      }
    }
  });
}

/** Every recorder's part of the shared programs on (bpf/dispatch.bpf.c), as their sessions set. */
function allParts(): ConfigWriter {
  const config = new ConfigWriter();
  config.set("parts", Object.values(Part).reduce((a, b) => a | b, 0));
  return config;
}

Deno.test("bpf selection: every recorder together loads every program", () => {
  const { programs } = loadOnly(RECORDERS, allParts(), FILTER_PROGRAMS);
  withObject((obj) =>
    assert.deepEqual(programs.sort(), obj.programNames().filter((p) => !isSlot(p)).sort())
  );
});

// With a filter the verifier walks other code (cgroup walks, task marks) in every program.
Deno.test("bpf selection: every program loads with every filter on", () => {
  const config = allParts();
  config.set("filter_bits", FilterBit.Tasks | FilterBit.Cgroups);
  config.set("cgroup_count", MAX_FILTER_CGROUPS);
  for (let i = 0; i < MAX_FILTER_CGROUPS; i++) {
    const at = Layout.systing_config.cgroups + i * Layout.filter_cgroup.size;
    config.view.setInt32(at + Layout.filter_cgroup.ssid, i % 2 ? i : -1, true);
    config.view.setUint32(at + Layout.filter_cgroup.level, i, true);
  }
  const { programs } = loadOnly(RECORDERS, config, FILTER_PROGRAMS);
  withObject((obj) =>
    assert.deepEqual(programs.sort(), obj.programNames().filter((p) => !isSlot(p)).sort())
  );
});

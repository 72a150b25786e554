import assert from "node:assert/strict";
import { ConfigWriter } from "../recorders/recorder.ts";
import { FilterBit, Layout } from "../records/records.ts";
import type { CgroupHost } from "./cgroup_target.ts";
import { FilterError } from "./filter_error.ts";
import { type ProcessHost, TaskFilter } from "./task_filter.ts";

// Thread 101 belongs to process 100; 300 is a process of its own.
const processes: ProcessHost = {
  tgid: (pid) => ({ 100: 100, 101: 100, 300: 300 } as Record<number, number>)[pid],
  threads: (tgid) => tgid === 100 ? [100, 101] : [tgid],
};
const cgroups = (): CgroupHost => ({
  mounts: [{ mountPoint: "/cg", root: "/", version: 2, controllers: [] }],
  subsystems: new Map(),
  realPath: (p) => p.startsWith("/cg") ? p : undefined,
  stat: (p) => p.startsWith("/cg") ? { isDirectory: !p.endsWith(".procs"), ino: 42n } : undefined,
});
const resolve = (pids: number[], cg: string[] = [], command = false) =>
  TaskFilter.resolve({ pids, cgroups: cg, command }, cgroups, processes);

Deno.test("task filter: none asked for is the whole machine", () => {
  assert.equal(resolve([]), undefined);
});

Deno.test("task filter: -p of a thread is its process, each process once", () => {
  const f = resolve([101, 100, 300])!;
  assert.deepEqual(f.tgids, [100, 300]);
  assert.equal(f.bits, FilterBit.Tasks);
  assert.deepEqual(f.programs, ["on_task_newtask"]);
  assert.equal(f.describe(), "processes 100, 300 and what they start");
});

Deno.test("task filter: a pid that does not exist is an error naming it", () => {
  assert.throws(
    () => resolve([100, 555]),
    (e) =>
      e instanceof FilterError &&
      e.message === "-p 555: no such process; give the pid of a running process",
  );
});

Deno.test("task filter: cgroups and the command go into the BPF config", () => {
  const f = resolve([], ["/cg/a", "/cg/a/b"], true)!;
  // Same id twice (the fake host's inode): one entry.
  assert.equal(f.cgroups.length, 1);
  assert.equal(f.bits, FilterBit.Tasks | FilterBit.Cgroups);
  const c = new ConfigWriter();
  f.configure(c);
  assert.equal(c.get("filter_bits"), 3);
  assert.equal(c.get("cgroup_count"), 1);
  const at = Layout.systing_config.cgroups;
  assert.equal(c.view.getInt32(at + Layout.filter_cgroup.ssid, true), -1);
  assert.equal(c.view.getUint32(at + Layout.filter_cgroup.level, true), 1);
  assert.equal(c.view.getBigUint64(at + Layout.filter_cgroup.id, true), 42n);
  assert.equal(f.describe(), "cgroup /cg/a and those below it; the command and what it starts");
  // Cgroups alone need no marks.
  assert.deepEqual(resolve([], ["/cg/x"])!.programs, []);
});

Deno.test("task filter: more cgroups than BPF holds is an error", () => {
  const many = Array.from({ length: 9 }, (_, i) => `/cg/${i}`);
  assert.throws(() => resolve([], many), /9 -c cgroups: at most 8/);
});

import assert from "node:assert/strict";
import { onlineCpus } from "../machine/cpu_list.ts";
import { LibbpfError } from "./libbpf_error.ts";
import { loadLibc } from "./library.ts";
import {
  encodeAttr,
  openSamplingEvents,
  PERF_COUNT_SW_DUMMY,
  PERF_SAMPLE_TID,
  PERF_SAMPLE_TIME,
  PERF_TYPE_SOFTWARE,
  PerfEventError,
} from "./perf_event.ts";

function fdTarget(fd: number): string | undefined {
  try {
    return Deno.readLinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

/** The machine has a CPU PMU driver when sysfs lists one. */
function hasCpuPmu(): boolean {
  for (const name of ["cpu", "cpu_core", "armv8_pmuv3_0"]) {
    try {
      Deno.statSync(`/sys/bus/event_source/devices/${name}`);
      return true;
    } catch { /* not this one */ }
  }
  return false;
}

Deno.test("openSamplingEvents: one disabled-open event per online CPU, cycles or a named fallback", () => {
  const cpus = onlineCpus();
  const set = openSamplingEvents(cpus, 99, {});
  try {
    assert.deepEqual(set.events.map((e) => e.cpu), cpus);
    for (const e of set.events) assert.equal(fdTarget(e.fd), "anon_inode:[perf_event]");
    if (hasCpuPmu()) {
      assert.equal(set.source, "cycles");
      assert.equal(set.fallback, undefined);
    } else {
      assert.equal(set.source, "cpu-clock");
      assert.match(
        set.fallback ?? "",
        /^no hardware PMU: perf_event_open\(cycles\) failed with E[A-Z]+$/,
      );
    }
  } finally {
    set.close();
  }
});

Deno.test("openSamplingEvents: forceSoftware uses cpu-clock; close() is idempotent", () => {
  const set = openSamplingEvents(onlineCpus(), 1000, { forceSoftware: true });
  const fds = set.events.map((e) => e.fd);
  assert.equal(set.source, "cpu-clock");
  assert.equal(set.fallback, "software events forced");
  set.close();
  set.close();
  assert.equal(set.events.length, 0);
  for (const fd of fds) assert.notEqual(fdTarget(fd), "anon_inode:[perf_event]");
});

Deno.test("openSamplingEvents: release() leaves the fd to its new owner", () => {
  const set = openSamplingEvents(onlineCpus(), 49, { forceSoftware: true });
  const [first, ...rest] = set.events.map((e) => e.fd);
  set.release(first);
  set.close();
  assert.equal(fdTarget(first), "anon_inode:[perf_event]");
  for (const fd of rest) assert.notEqual(fdTarget(fd), "anon_inode:[perf_event]");
  loadLibc().close(first);
});

Deno.test("openSamplingEvents: rejects frequencies outside 1..100000 Hz", () => {
  for (const hz of [0, -1, 1.5, 100_001, NaN]) {
    assert.throws(() => openSamplingEvents([0], hz, {}), PerfEventError);
  }
});

/** This process's perf event fds (other tests' pipes and files may come and go meanwhile). */
function perfFds(): number {
  let n = 0;
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (Deno.readLinkSync(`/proc/self/fd/${e.name}`) === "anon_inode:[perf_event]") n++;
    } catch { /* closed meanwhile */ }
  }
  return n;
}

Deno.test("openSamplingEvents: a CPU that does not exist fails with errno and closes the rest", () => {
  const cpus = onlineCpus();
  const before = perfFds();
  assert.throws(
    () => openSamplingEvents([...cpus, 4095], 99, { forceSoftware: true }),
    (e: unknown) => e instanceof LibbpfError && e.errno > 0 && /cpu 4095/.test(e.message),
  );
  assert.equal(perfFds(), before);
});

/** The same attrs built by the C compiler from <linux/perf_event.h>. */
const C_ATTRS = `
#include <stdio.h>
#include <string.h>
#include <linux/perf_event.h>
static void dump(struct perf_event_attr *a) {
  a->size = 96;
  for (int i = 0; i < 96; i++) printf("%02x", ((unsigned char *)a)[i]);
  printf("\\n");
}
int main(void) {
  struct perf_event_attr a;
  memset(&a, 0, sizeof a);
  a.type = PERF_TYPE_HARDWARE; a.config = PERF_COUNT_HW_CPU_CYCLES; a.sample_freq = 99;
  a.disabled = 1; a.freq = 1; a.use_clockid = 1; a.clockid = 7;
  dump(&a);
  memset(&a, 0, sizeof a);
  a.type = PERF_TYPE_SOFTWARE; a.config = PERF_COUNT_SW_DUMMY;
  a.sample_type = PERF_SAMPLE_TID | PERF_SAMPLE_TIME;
  a.disabled = 1; a.mmap = 1; a.mmap2 = 1; a.comm = 1; a.comm_exec = 1; a.task = 1;
  a.sample_id_all = 1; a.watermark = 1; a.wakeup_watermark = 16384;
  a.use_clockid = 1; a.clockid = 7;
  dump(&a);
  return 0;
}
`;

Deno.test("encodeAttr: byte-identical to the C struct from the installed header", () => {
  const dir = Deno.makeTempDirSync({ prefix: "systing-attr-" });
  try {
    Deno.writeTextFileSync(`${dir}/attr.c`, C_ATTRS);
    const cc = new Deno.Command("cc", { args: ["-o", `${dir}/attr`, `${dir}/attr.c`] })
      .outputSync();
    assert.ok(cc.success, new TextDecoder().decode(cc.stderr));
    const out = new TextDecoder().decode(new Deno.Command(`${dir}/attr`).outputSync().stdout);
    const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    assert.deepEqual(out.trim().split("\n"), [
      hex(encodeAttr({ type: 0, config: 0, period: 99, bits: ["disabled", "freq"] })),
      hex(encodeAttr({
        type: PERF_TYPE_SOFTWARE,
        config: PERF_COUNT_SW_DUMMY,
        sampleType: PERF_SAMPLE_TID | PERF_SAMPLE_TIME,
        bits: ["disabled", "mmap", "mmap2", "comm", "commExec", "task", "sampleIdAll", "watermark"],
        wakeup: 16384,
      })),
    ]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

import assert from "node:assert/strict";
import { onlineCpus } from "../machine/cpu_list.ts";
import { ClockId, clockNs } from "./clock.ts";
import { PerfEventError } from "./perf_event.ts";
import { PerfSideband, type SidebandRecord } from "./perf_sideband.ts";

const PROT_EXEC = 4;
const PAGE = 4096;

type Tagged = SidebandRecord & { cpu: number };

function drainAll(sb: PerfSideband, into: Tagged[] = []): Tagged[] {
  sb.drain((r, cpu) => into.push({ ...r, cpu }));
  return into;
}

function bootNs(): number {
  return Number(clockNs(ClockId.BOOTTIME));
}

/** The PT_LOAD segment with the execute flag, from readelf. */
function execSegment(path: string): { offset: number; vaddr: number; filesz: number } {
  const out = new TextDecoder().decode(
    new Deno.Command("readelf", { args: ["-lW", path] }).outputSync().stdout,
  );
  for (const line of out.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[0] === "LOAD" && f.slice(6, -1).join("").includes("E")) {
      return { offset: parseInt(f[1], 16), vaddr: parseInt(f[2], 16), filesz: parseInt(f[4], 16) };
    }
  }
  throw new Error(`no executable PT_LOAD in ${path}:\n${out}`);
}

/** Linux's encoding of dev_t (major/minor split across high and low bits). */
function devMajor(dev: number): number {
  const d = BigInt(dev);
  return Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
}
function devMinor(dev: number): number {
  const d = BigInt(dev);
  return Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
}

Deno.test("PerfSideband: fork, exec comm, exec mapping and exit of a fresh program", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "systing-sideband-" });
  const exe = `${dir}/sbprobe`;
  const sb = PerfSideband.open(onlineCpus());
  try {
    Deno.writeTextFileSync(`${dir}/sbprobe.c`, "int main(void) { return 0; }\n");
    const cc = new Deno.Command("cc", { args: ["-O0", "-o", exe, `${dir}/sbprobe.c`] })
      .outputSync();
    assert.ok(cc.success, new TextDecoder().decode(cc.stderr));
    for (const fd of sb.fds()) {
      assert.equal(Deno.readLinkSync(`/proc/self/fd/${fd}`), "anon_inode:[perf_event]");
    }
    drainAll(sb);

    const t0 = bootNs();
    const child = new Deno.Command(exe, { stdout: "null", stderr: "null" }).spawn();
    const pid = child.pid;
    assert.ok((await child.status).success);
    const t1 = bootNs();
    const uptimeNs = Number(Deno.readTextFileSync("/proc/uptime").split(" ")[0]) * 1e9;
    const mine = drainAll(sb).filter((r) => "pid" in r && r.pid === pid);

    const fork = mine.find((r) => r.type === "fork");
    assert.ok(fork, `no fork record for ${pid}: ${JSON.stringify(mine)}`);
    assert.equal(fork.ppid, Deno.pid);
    assert.equal(fork.tid, pid);

    const comm = mine.find((r) => r.type === "comm" && r.exec);
    assert.ok(comm && comm.type === "comm", `no exec comm for ${pid}`);
    assert.equal(comm.comm, "sbprobe");
    assert.equal(comm.tid, pid);

    const st = Deno.statSync(exe);
    const map = mine.find((r) => r.type === "mmap2" && r.filename === exe);
    assert.ok(map && map.type === "mmap2", `no mmap2 of ${exe}: ${JSON.stringify(mine)}`);
    assert.notEqual(map.ino, 0);
    assert.equal(map.ino, st.ino);
    assert.equal(map.maj, devMajor(st.dev));
    assert.equal(map.min, devMinor(st.dev));
    assert.ok(map.prot & PROT_EXEC);
    const seg = execSegment(exe);
    assert.equal(map.pgoff, seg.offset - (seg.offset % PAGE));
    assert.equal(map.addr % PAGE, 0);
    const pageOff = seg.vaddr % PAGE;
    assert.equal(map.len, Math.ceil((seg.filesz + pageOff) / PAGE) * PAGE);

    const exit = mine.find((r) => r.type === "exit");
    assert.ok(exit && exit.type === "exit", `no exit record for ${pid}`);
    assert.equal(exit.ppid, Deno.pid);
    assert.equal(exit.tid, pid);

    // Ordered as they happened, and on the BOOTTIME clock BPF uses.
    assert.ok(fork.time <= comm.time && comm.time <= map.time && map.time <= exit.time);
    for (const r of [fork, comm, map, exit]) {
      assert.ok(r.time >= t0 && r.time <= t1, `${r.type} at ${r.time} not in [${t0}, ${t1}]`);
      assert.ok(Math.abs(r.time - uptimeNs) < 1e9, `${r.type} at ${r.time}, uptime ${uptimeNs}`);
    }
    assert.equal(sb.lost, 0);
  } finally {
    sb.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

function assertWellFormed(r: Tagged, t0: number, t1: number): void {
  const what = JSON.stringify(r);
  assert.ok(Number.isInteger(r.time) && r.time >= t0 && r.time <= t1, what);
  switch (r.type) {
    case "mmap2":
      // Files by absolute path; anonymous executable memory (JITs) and
      // special mappings ([vdso], [uprobes]) by name.
      assert.match(r.filename, /^(\/[^\0\uFFFD]*|\/\/anon|\[[a-z_]+\])$/, what);
      assert.ok(r.pid > 0 && r.tid > 0 && r.len > 0 && r.addr % PAGE === 0, what);
      assert.ok(r.prot & PROT_EXEC, what);
      break;
    case "comm":
      assert.ok(r.comm.length > 0 && r.comm.length <= 15 && r.pid > 0, what);
      break;
    case "fork":
    case "exit":
      assert.ok(r.pid > 0 && r.tid > 0 && r.ppid >= 0, what);
      break;
    case "lost":
      assert.ok(r.lost > 0, what);
      break;
  }
}

Deno.test("PerfSideband: records that wrap around a 2-page ring decode intact", () => {
  // Before opening: other processes' records may come the moment it is open.
  const t0 = bootNs();
  const sb = PerfSideband.open(onlineCpus(), 2);
  try {
    const records: Tagged[] = [];
    // Each record that straddles the end is one more trip round a ring.
    for (let i = 0; i < 400 && sb.wrapped < 6; i++) {
      new Deno.Command("/bin/true").outputSync();
      sb.drain((r, cpu) => records.push({ ...r, cpu }));
    }
    const t1 = bootNs();
    assert.ok(sb.wrapped >= 6, `only ${sb.wrapped} records straddled the ring end`);
    assert.equal(sb.lost, 0);
    for (const r of records) assertWellFormed(r, t0, t1);
    assert.ok(records.some((r) => r.type === "mmap2" && r.filename === "/usr/bin/true"));
  } finally {
    sb.close();
  }
});

Deno.test("PerfSideband: a ring left undrained reports what it dropped", () => {
  const sb = PerfSideband.open(onlineCpus(), 2);
  try {
    const records: Tagged[] = [];
    for (let i = 0; i < 60; i++) new Deno.Command("/bin/true").outputSync();
    drainAll(sb, records);
    // The kernel writes the LOST record with the next record that fits.
    for (let i = 0; i < 20 && sb.lost === 0; i++) {
      new Deno.Command("/bin/true").outputSync();
      drainAll(sb, records);
    }
    assert.ok(sb.lost > 0);
    const lostRecords = records.filter((r) => r.type === "lost");
    assert.ok(lostRecords.length > 0);
    assert.equal(lostRecords.reduce((n, r) => n + (r.type === "lost" ? r.lost : 0), 0), sb.lost);
  } finally {
    sb.close();
  }
});

Deno.test("PerfSideband: close() is idempotent and releases the fds", () => {
  const sb = PerfSideband.open(onlineCpus(), 1);
  const fds = sb.fds();
  sb.close();
  sb.close();
  assert.equal(sb.drain(() => {}), 0);
  assert.deepEqual(sb.fds(), []);
  for (const fd of fds) {
    let target: string | undefined;
    try {
      target = Deno.readLinkSync(`/proc/self/fd/${fd}`);
    } catch { /* closed */ }
    assert.notEqual(target, "anon_inode:[perf_event]");
  }
});

Deno.test("PerfSideband: ring size must be a power of two", () => {
  for (const pages of [0, 3, 1.5, -2]) {
    assert.throws(() => PerfSideband.open([0], pages), PerfEventError);
  }
});

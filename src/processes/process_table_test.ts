import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ProcessTreeSchema } from "../gen/perfetto_trace_pb.ts";
import type { ProcessSnapshot } from "./proc_scan.ts";
import { ProcessTable } from "./process_table.ts";

function snapshot(): ProcessSnapshot[] {
  return [
    {
      pid: 1,
      ppid: 0,
      uid: 0,
      comm: "systemd",
      cmdline: ["/sbin/init", "splash"],
      isKthread: false,
      startFromBootNs: 10_000_000n,
      threads: [{ tid: 1, comm: "systemd" }],
    },
    {
      pid: 2,
      ppid: 0,
      uid: 0,
      comm: "kthreadd",
      cmdline: [],
      isKthread: true,
      startFromBootNs: 10_000_000n,
      threads: [{ tid: 2, comm: "kthreadd" }],
    },
    {
      pid: 40,
      ppid: 2,
      uid: 0,
      comm: "kworker/0:1-events",
      cmdline: [],
      isKthread: true,
      startFromBootNs: 20_000_000n,
      threads: [{ tid: 40, comm: "kworker/0:1-events" }],
    },
    {
      pid: 100,
      ppid: 1,
      uid: 1000,
      comm: "bash",
      cmdline: ["-bash"],
      isKthread: false,
      startFromBootNs: 5_000_000_000n,
      threads: [{ tid: 100, comm: "bash" }],
    },
    {
      pid: 200,
      ppid: 100,
      uid: 1000,
      comm: "app",
      cmdline: ["./app", "--x"],
      isKthread: false,
      startFromBootNs: 6_000_000_000n,
      threads: [{ tid: 200, comm: "app" }, { tid: 201, comm: "worker" }, {
        tid: 202,
        comm: "io",
      }],
    },
    {
      pid: 300,
      ppid: 100,
      uid: 1000,
      comm: "defunct",
      cmdline: [],
      isKthread: false,
      startFromBootNs: 7_000_000_000n,
      threads: [{ tid: 300, comm: "defunct" }],
    },
  ];
}

Deno.test("initialTree: every process and thread, kthreads and zombies named by comm", () => {
  const tree = new ProcessTable(snapshot()).initialTree();
  assert.deepEqual(tree.processes, [
    {
      pid: 1,
      ppid: 0,
      uid: 0,
      cmdline: ["/sbin/init", "splash"],
      processStartFromBoot: 10_000_000n,
    },
    {
      pid: 2,
      ppid: 0,
      uid: 0,
      cmdline: ["kthreadd"],
      cmdlineIsComm: true,
      isKthread: true,
      processStartFromBoot: 10_000_000n,
    },
    {
      pid: 40,
      ppid: 2,
      uid: 0,
      cmdline: ["kworker/0:1-events"],
      cmdlineIsComm: true,
      isKthread: true,
      processStartFromBoot: 20_000_000n,
    },
    { pid: 100, ppid: 1, uid: 1000, cmdline: ["-bash"], processStartFromBoot: 5_000_000_000n },
    {
      pid: 200,
      ppid: 100,
      uid: 1000,
      cmdline: ["./app", "--x"],
      processStartFromBoot: 6_000_000_000n,
    },
    {
      pid: 300,
      ppid: 100,
      uid: 1000,
      cmdline: ["defunct"],
      cmdlineIsComm: true,
      processStartFromBoot: 7_000_000_000n,
    },
  ]);
  assert.deepEqual(tree.threads, [
    { tid: 1, tgid: 1, name: "systemd" },
    { tid: 2, tgid: 2, name: "kthreadd" },
    { tid: 40, tgid: 40, name: "kworker/0:1-events" },
    { tid: 100, tgid: 100, name: "bash" },
    { tid: 200, tgid: 200, name: "app" },
    { tid: 201, tgid: 200, name: "worker" },
    { tid: 202, tgid: 200, name: "io" },
    { tid: 300, tgid: 300, name: "defunct" },
  ]);
});

Deno.test("initialTree: the plain object encodes as a ProcessTree", () => {
  const tree = new ProcessTable(snapshot()).initialTree();
  const decoded = fromBinary(
    ProcessTreeSchema,
    toBinary(ProcessTreeSchema, create(ProcessTreeSchema, tree)),
  );
  assert.equal(decoded.processes.length, 6);
  assert.equal(decoded.processes[1].cmdlineIsComm, true);
  assert.equal(decoded.processes[1].isKthread, true);
  assert.equal(decoded.processes[4].processStartFromBoot, 6_000_000_000n);
  assert.deepEqual(decoded.processes[4].cmdline, ["./app", "--x"]);
  assert.equal(decoded.threads[5].name, "worker");
  assert.equal(decoded.threads[5].tgid, 200);
});

Deno.test("apply fork: a new process inherits the parent's cmdline and uid", () => {
  const table = new ProcessTable(snapshot());
  const out = table.apply({
    kind: "fork",
    ts: 9_000_000_123,
    parentPid: 201,
    parentTgid: 200,
    childPid: 500,
    childTgid: 500,
    childComm: "worker",
  });
  assert.deepEqual(out, {
    processes: [{
      pid: 500,
      ppid: 200,
      uid: 1000,
      cmdline: ["./app", "--x"],
      processStartFromBoot: 9_000_000_123n,
    }],
    threads: [{ tid: 500, tgid: 500, name: "worker" }],
  });
  assert.equal(table.lookupComm(500), "worker");
  assert.equal(table.lookupProcess(500)?.ppid, 200);
});

Deno.test("apply fork: kthreadd's children are kernel threads named by comm", () => {
  const table = new ProcessTable(snapshot());
  const out = table.apply({
    kind: "fork",
    ts: 1,
    parentPid: 2,
    parentTgid: 2,
    childPid: 41,
    childTgid: 41,
    childComm: "kthreadd",
  });
  assert.deepEqual(out?.processes, [{
    pid: 41,
    ppid: 2,
    uid: 0,
    cmdline: ["kthreadd"],
    cmdlineIsComm: true,
    isKthread: true,
    processStartFromBoot: 1n,
  }]);
  // The new kthread then gets its real name; the process name must follow.
  const renamed = table.apply({
    kind: "rename",
    ts: 2,
    pid: 41,
    tgid: 41,
    oldComm: "kthreadd",
    newComm: "kworker/u8:3",
  });
  assert.deepEqual(renamed?.threads, [{ tid: 41, tgid: 41, name: "kworker/u8:3" }]);
  assert.deepEqual(renamed?.processes.map((p) => [p.pid, p.cmdline, p.cmdlineIsComm]), [
    [41, ["kworker/u8:3"], true],
  ]);
});

Deno.test("apply fork: a new thread emits only a Thread", () => {
  const table = new ProcessTable(snapshot());
  const out = table.apply({
    kind: "fork",
    ts: 1,
    parentPid: 200,
    parentTgid: 200,
    childPid: 203,
    childTgid: 200,
    childComm: "app",
  });
  assert.deepEqual(out, { processes: [], threads: [{ tid: 203, tgid: 200, name: "app" }] });
  assert.deepEqual([...table.lookupProcess(200)!.tids], [200, 201, 202, 203]);
});

Deno.test("apply exec: argv becomes the cmdline, ppid and uid are kept", () => {
  const table = new ProcessTable(snapshot());
  const out = table.apply({
    kind: "exec",
    ts: 1,
    pid: 100,
    tgid: 100,
    oldPid: 100,
    comm: "ls",
    filename: "/usr/bin/ls",
    argv: ["ls", "-l", "/tmp"],
  });
  assert.deepEqual(out, {
    processes: [{
      pid: 100,
      ppid: 1,
      uid: 1000,
      cmdline: ["ls", "-l", "/tmp"],
      processStartFromBoot: 5_000_000_000n,
    }],
    threads: [{ tid: 100, tgid: 100, name: "ls" }],
  });
  assert.equal(table.lookupComm(100), "ls");
});

Deno.test("apply exec: empty argv falls back to the filename", () => {
  const table = new ProcessTable(snapshot());
  const out = table.apply({
    kind: "exec",
    ts: 1,
    pid: 300,
    tgid: 300,
    oldPid: 300,
    comm: "true",
    filename: "/usr/bin/true",
    argv: [],
  });
  // The zombie-style comm naming is replaced by a real cmdline.
  assert.deepEqual(out?.processes, [{
    pid: 300,
    ppid: 100,
    uid: 1000,
    cmdline: ["/usr/bin/true"],
    processStartFromBoot: 7_000_000_000n,
  }]);
});

Deno.test("apply exec: a non-leader exec takes over the tgid and drops its old tid", () => {
  const table = new ProcessTable(snapshot());
  // de_thread: the leader and the other thread exit first.
  assert.equal(table.apply({ kind: "exit", ts: 1, pid: 200, tgid: 200, comm: "app" }), null);
  assert.equal(table.apply({ kind: "exit", ts: 2, pid: 201, tgid: 200, comm: "worker" }), null);
  const out = table.apply({
    kind: "exec",
    ts: 3,
    pid: 200,
    tgid: 200,
    oldPid: 202,
    comm: "sh",
    filename: "/bin/sh",
    argv: ["sh", "-c", "x"],
  });
  assert.deepEqual(out, {
    processes: [{
      pid: 200,
      ppid: 100,
      uid: 1000,
      cmdline: ["sh", "-c", "x"],
      processStartFromBoot: 6_000_000_000n,
    }],
    threads: [{ tid: 200, tgid: 200, name: "sh" }],
  });
  assert.equal(table.lookupComm(202), undefined);
  assert.equal(table.lookupComm(200), "sh");
  assert.deepEqual([...table.lookupProcess(200)!.tids], [200]);
});

Deno.test("apply rename: a thread gets its new name", () => {
  const table = new ProcessTable(snapshot());
  const out = table.apply({
    kind: "rename",
    ts: 1,
    pid: 201,
    tgid: 200,
    oldComm: "worker",
    newComm: "pool-1",
  });
  assert.deepEqual(out, { processes: [], threads: [{ tid: 201, tgid: 200, name: "pool-1" }] });
  assert.equal(table.lookupComm(201), "pool-1");
});

Deno.test("apply exit: threads go first, the process with its last thread", () => {
  const table = new ProcessTable(snapshot());
  const processes = table.processCount;
  const threads = table.threadCount;
  // The leader leaving first (pthread_exit) keeps the process for its threads.
  assert.equal(table.apply({ kind: "exit", ts: 1, pid: 200, tgid: 200, comm: "app" }), null);
  assert.equal(table.lookupComm(200), undefined);
  assert.deepEqual([...table.lookupProcess(200)!.tids], [201, 202]);
  assert.equal(table.apply({ kind: "exit", ts: 2, pid: 201, tgid: 200, comm: "worker" }), null);
  assert.ok(table.lookupProcess(200));
  assert.equal(table.apply({ kind: "exit", ts: 3, pid: 202, tgid: 200, comm: "io" }), null);
  assert.equal(table.lookupProcess(200), undefined);
  assert.equal(table.processCount, processes - 1);
  assert.equal(table.threadCount, threads - 3);
  assert.equal(table.initialTree().processes.some((p) => p.pid === 200), false);
});

Deno.test("apply: memory stays bounded over 10k fork+exit pairs", () => {
  const table = new ProcessTable(snapshot());
  const processes = table.processCount;
  const threads = table.threadCount;
  for (let i = 0; i < 10_000; i++) {
    const pid = 1000 + i;
    table.apply({
      kind: "fork",
      ts: i,
      parentPid: 100,
      parentTgid: 100,
      childPid: pid,
      childTgid: pid,
      childComm: "bash",
    });
    table.apply({
      kind: "fork",
      ts: i,
      parentPid: pid,
      parentTgid: pid,
      childPid: pid + 20_000,
      childTgid: pid,
      childComm: "bash",
    });
    table.apply({ kind: "exit", ts: i, pid: pid + 20_000, tgid: pid, comm: "bash" });
    table.apply({ kind: "exit", ts: i, pid, tgid: pid, comm: "bash" });
  }
  assert.equal(table.processCount, processes);
  assert.equal(table.threadCount, threads);
});

Deno.test("apply fork: a reused pid replaces a stale entry whose exit was lost", () => {
  const table = new ProcessTable(snapshot());
  const threads = table.threadCount;
  table.apply({
    kind: "fork",
    ts: 1,
    parentPid: 100,
    parentTgid: 100,
    childPid: 200,
    childTgid: 200,
    childComm: "bash",
  });
  assert.deepEqual([...table.lookupProcess(200)!.tids], [200]);
  assert.equal(table.lookupComm(201), undefined);
  assert.equal(table.threadCount, threads - 2);
});

Deno.test("apply: unknown parents and processes still produce entries", () => {
  const table = new ProcessTable([]);
  const forked = table.apply({
    kind: "fork",
    ts: 5,
    parentPid: 7000,
    parentTgid: 7000,
    childPid: 7001,
    childTgid: 7001,
    childComm: "cron",
  });
  // Nothing is known about the parent, so the child is named by its comm.
  assert.deepEqual(forked, {
    processes: [{
      pid: 7001,
      ppid: 7000,
      cmdline: ["cron"],
      cmdlineIsComm: true,
      processStartFromBoot: 5n,
    }],
    threads: [{ tid: 7001, tgid: 7001, name: "cron" }],
  });

  const thread = table.apply({
    kind: "fork",
    ts: 6,
    parentPid: 8000,
    parentTgid: 8000,
    childPid: 8001,
    childTgid: 8000,
    childComm: "grpc",
  });
  assert.deepEqual(thread, { processes: [], threads: [{ tid: 8001, tgid: 8000, name: "grpc" }] });
  assert.equal(table.lookupComm(8001), "grpc");

  const exec = table.apply({
    kind: "exec",
    ts: 7,
    pid: 9000,
    tgid: 9000,
    oldPid: 9000,
    comm: "env",
    filename: "/usr/bin/env",
    argv: ["env"],
  });
  assert.deepEqual(exec, {
    processes: [{ pid: 9000, ppid: 0, cmdline: ["env"] }],
    threads: [{ tid: 9000, tgid: 9000, name: "env" }],
  });

  const rename = table.apply({
    kind: "rename",
    ts: 8,
    pid: 9100,
    tgid: 9100,
    oldComm: "a",
    newComm: "b",
  });
  assert.deepEqual(rename, { processes: [], threads: [{ tid: 9100, tgid: 9100, name: "b" }] });

  assert.equal(table.apply({ kind: "exit", ts: 9, pid: 9999, tgid: 9999, comm: "x" }), null);
  for (const pid of [7001, 8001, 9000, 9100]) {
    const tgid = pid === 8001 ? 8000 : pid;
    table.apply({ kind: "exit", ts: 10, pid, tgid, comm: "x" });
  }
  assert.equal(table.processCount, 0);
  assert.equal(table.threadCount, 0);
});

import assert from "node:assert/strict";
import {
  CMDLINE_CUT,
  MAX_CMDLINE_BYTES,
  parseCmdline,
  parseStat,
  parseStatusUid,
  ProcScanError,
  scanProcesses,
} from "./proc_scan.ts";

/** A real-looking stat line: ppid 77, flags 0x400140 (no PF_KTHREAD), starttime 12345. */
function statLine(pid: number, comm: string): string {
  return `${pid} (${comm}) S 77 4321 4321 34816 4321 4194624 1500 0 3 0 12 5 0 0 20 0 1 0 ` +
    `12345 8736768 890 18446744073709551615 1 1 0 0 0 0 65536 4 65538 0 0 0 17 1 0 0 0 0 0 ` +
    `0 0 0 0 0 0 0 0\n`;
}

Deno.test("parseStat: plain comm and the numeric fields", () => {
  assert.deepEqual(parseStat(statLine(4321, "bash")), {
    pid: 4321,
    comm: "bash",
    state: "S",
    ppid: 77,
    flags: 4194624,
    startTimeTicks: 12345n,
  });
});

Deno.test("parseStat: comm with spaces, parentheses, ') (' and a newline", () => {
  for (const comm of ["Web Content", "(sd-pam)", "a) (b", "x)", "((", "two\nlines", ") S 1 2 ("]) {
    const s = parseStat(statLine(99, comm));
    assert.equal(s.comm, comm);
    assert.equal(s.pid, 99);
    assert.equal(s.state, "S");
    assert.equal(s.ppid, 77);
    assert.equal(s.startTimeTicks, 12345n);
  }
});

Deno.test("parseStat: kthreadd's real stat line", () => {
  const s = parseStat(
    "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 22 0 0 18446744073709551615 " +
      "0 0 0 0 0 0 0 2147483647 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
  );
  assert.equal(s.ppid, 0);
  assert.equal(s.startTimeTicks, 22n);
  assert.equal(s.flags & 0x00200000, 0x00200000);
});

Deno.test("parseStat: malformed text throws ProcScanError", () => {
  const bad = [
    "",
    "garbage",
    "12 bash S 1 2 3",
    "12 (bash S 1",
    "12 )bash( S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
    "x (bash) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21",
    "12 (bash) S 1 2 3", // truncated before starttime
    "12 (bash) S -1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21",
    statLine(1, "ok").replace(" 12345 ", " 12z45 "),
  ];
  for (const text of bad) {
    assert.throws(() => parseStat(text), ProcScanError, JSON.stringify(text));
  }
});

const enc = new TextEncoder();

Deno.test("parseCmdline: NUL separation and the trailing NUL", () => {
  assert.deepEqual(parseCmdline(enc.encode("/bin/sleep\x0010\x00")), ["/bin/sleep", "10"]);
  assert.deepEqual(parseCmdline(enc.encode("nginx: worker process")), ["nginx: worker process"]);
  assert.deepEqual(parseCmdline(enc.encode("a\x00\x00b\x00")), ["a", "", "b"]);
  assert.deepEqual(parseCmdline(new Uint8Array()), []);
  assert.deepEqual(parseCmdline(new Uint8Array([0])), [""]);
});

Deno.test("parseCmdline: more than MAX_CMDLINE_BYTES is cut and marked", () => {
  const arg = "x".repeat(1000);
  const bytes = enc.encode(Array(10).fill(arg).join("\0") + "\0");
  const args = parseCmdline(bytes);
  assert.equal(args.length, 5);
  assert.deepEqual(args.slice(0, 4), Array(4).fill(arg));
  assert.equal(args[4], "x".repeat(MAX_CMDLINE_BYTES - 4004) + CMDLINE_CUT);
  // Exactly the cap, and its trailing NUL, is whole.
  const whole = new Uint8Array(MAX_CMDLINE_BYTES + 1).fill(0x61);
  whole[MAX_CMDLINE_BYTES] = 0;
  assert.deepEqual(parseCmdline(whole), ["a".repeat(MAX_CMDLINE_BYTES)]);
  assert.deepEqual(parseCmdline(whole.subarray(0, MAX_CMDLINE_BYTES)), [
    "a".repeat(MAX_CMDLINE_BYTES),
  ]);
});

Deno.test("parseCmdline: invalid UTF-8 is replaced, not fatal", () => {
  const bytes = new Uint8Array([0x61, 0xff, 0x62, 0, 0xc3, 0xa9, 0]);
  assert.deepEqual(parseCmdline(bytes), ["a\uFFFDb", "é"]);
});

Deno.test("parseStatusUid: real uid from the Uid line", () => {
  const status = "Name:\tsudo\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t10\n" +
    "Uid:\t1000\t0\t0\t0\nGid:\t100\t100\t100\t100\n";
  assert.equal(parseStatusUid(status), 1000);
  assert.equal(parseStatusUid("Name:\tx\nGid:\t0\t0\t0\t0\n"), undefined);
  assert.equal(parseStatusUid("XUid:\t5\t5\t5\t5\n"), undefined);
});

Deno.test("scanProcesses: a missing procRoot is a ProcScanError", () => {
  assert.throws(() => scanProcesses("/nonexistent-proc-root"), ProcScanError);
});

Deno.test("scanProcesses: this machine's /proc", () => {
  const snap = scanProcesses();

  const byPid = new Map(snap.map((p) => [p.pid, p]));
  assert.equal(byPid.size, snap.length, "pids are unique");

  const init = byPid.get(1);
  assert.ok(init, "pid 1 present");
  assert.equal(init.ppid, 0);
  assert.equal(init.isKthread, false);
  assert.ok(init.threads.some((t) => t.tid === 1));

  const self = byPid.get(Deno.pid);
  assert.ok(self, "own pid present");
  const ownCmdline = new TextDecoder().decode(Deno.readFileSync("/proc/self/cmdline"))
    .replace(/\0$/, "").split("\0");
  assert.deepEqual(self.cmdline, ownCmdline);
  assert.ok(self.cmdline.includes("test"), `own cmdline ${self.cmdline.join(" ")}`);
  assert.equal(self.uid, Deno.uid());
  assert.equal(self.isKthread, false);
  assert.ok(self.threads.some((t) => t.tid === Deno.pid && t.comm === self.comm));
  // Deno runs worker threads, so more than the main thread should show up.
  assert.ok(self.threads.length > 1, `threads: ${self.threads.length}`);
  const uptimeNs = BigInt(
    Math.floor(Number(Deno.readTextFileSync("/proc/uptime").split(" ")[0]) * 1e9),
  );
  assert.ok(self.startFromBootNs > 0n && self.startFromBootNs <= uptimeNs);
  assert.equal(self.startFromBootNs % 10_000_000n, 0n, "tick granularity");

  const kthreadd = byPid.get(2);
  assert.ok(kthreadd, "kthreadd present");
  assert.equal(kthreadd.comm, "kthreadd");
  assert.equal(kthreadd.isKthread, true);
  assert.deepEqual(kthreadd.cmdline, []);
  assert.deepEqual(kthreadd.threads, [{ tid: 2, comm: "kthreadd" }]);

  for (const p of snap) {
    if (p.ppid === 2) assert.equal(p.isKthread, true, `child of kthreadd ${p.pid} ${p.comm}`);
  }
});

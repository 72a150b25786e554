import assert from "node:assert/strict";
import { parseMaps, ProcMapsError, readMaps } from "./proc_maps.ts";

const MAPS = [
  "55a34dd25000-55a34dd27000 r--p 00000000 fe:00 260131                     /usr/bin/cat",
  "55a34dd27000-55a34dd2c000 r-xp 00002000 fe:00 260131                     /usr/bin/cat",
  "55a351df1000-55a351e12000 rw-p 00000000 00:00 0                          [heap]",
  "7f4dfbd6d000-7f4dfbd8f000 rw-p 00000000 00:00 0 ",
  "7f4dfbd8f000-7f4dfbd90000 rw-p 00000000 00:00 0",
  "7f4dfbe16000-7f4dfbf6c000 r-xp 00026000 fe:00 339380                     /tmp/my lib (v2).so",
  "7f4dfbf6c000-7f4dfbfbf000 r-xp 0017c000 fe:00 339381                     /tmp/old lib.so (deleted)",
  "7f4dfbfd5000-7f4dfbfdc000 r--s 00000000 00:05 4096                       /memfd:jit (deleted)",
  "7f4dfc000000-7f4dfc001000 rw-p 00000000 00:00 0                          [anon:v8 heap]",
  "7ffc1c5b8000-7ffc1c5d9000 rw-p 00000000 00:00 0                          [stack]",
  "7ffc1c5fb000-7ffc1c5fd000 r-xp 00000000 00:00 0                          [vdso]",
  "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]",
  "",
].join("\n");

Deno.test("parseMaps handles files, spaces, deleted files, special and anonymous mappings", () => {
  const m = parseMaps(MAPS);
  assert.equal(m.length, 12);
  assert.deepEqual(m[1], {
    start: 0x55a34dd27000,
    end: 0x55a34dd2c000,
    perms: "r-xp",
    offset: 0x2000,
    dev: "fe:00",
    inode: 260131,
    path: "/usr/bin/cat",
    deleted: false,
  });
  assert.equal(m[2].path, "[heap]");
  assert.equal(m[3].path, "");
  assert.equal(m[3].inode, 0);
  assert.equal(m[4].path, "");
  assert.equal(m[5].path, "/tmp/my lib (v2).so");
  assert.equal(m[5].offset, 0x26000);
  assert.deepEqual([m[6].path, m[6].deleted], ["/tmp/old lib.so", true]);
  assert.deepEqual([m[7].path, m[7].deleted, m[7].perms], ["/memfd:jit", true, "r--s"]);
  assert.equal(m[8].path, "[anon:v8 heap]");
  assert.equal(m[9].path, "[stack]");
  assert.equal(m[10].path, "[vdso]");
  // Page-aligned, so exact as a number even above 2^53.
  assert.equal(m[11].start, Number(0xffffffffff600000n));
  assert.equal(BigInt(m[11].start), 0xffffffffff600000n);
  assert.equal(m[11].end - m[11].start, 0x1000);
});

Deno.test("malformed lines throw ProcMapsError naming the line", () => {
  assert.throws(() => parseMaps("00400000-00401000 r-xp 00000000 fe:00\n"), {
    name: "ProcMapsError",
    message: /line 1: "00400000-00401000 r-xp 00000000 fe:00"/,
  });
  assert.throws(() => parseMaps(MAPS + "garbage\n"), { message: /line 13: "garbage"/ });
  assert.throws(() => parseMaps("00400000-00401000 rwzp 00000000 fe:00 1 /x\n"), ProcMapsError);
  assert.throws(() => parseMaps("00402000-00401000 r-xp 00000000 fe:00 1 /x\n"), ProcMapsError);
});

Deno.test("this process's /proc/self/maps", () => {
  const { entries: maps, truncated } = readMaps("self");
  assert.equal(truncated, false);
  assert.ok(maps.length > 10);
  const exe = Deno.execPath();
  const mine = maps.filter((e) => e.path === exe);
  assert.ok(mine.length >= 2, `no mapping of ${exe}`);
  assert.ok(mine.some((e) => e.perms.includes("x")));
  assert.equal(maps.find((e) => e.path === "[stack]")?.perms, "rw-p");
  assert.ok(maps.some((e) => e.path === "[vdso]"));
  for (const e of maps) {
    assert.ok(e.start < e.end);
    assert.equal(e.start % 4096, 0);
  }
  // Sorted by address, as the kernel prints them.
  for (let i = 1; i < maps.length; i++) assert.ok(maps[i - 1].end <= maps[i].start);
});

Deno.test("readMaps stops at its byte cap and drops the line it cut", async () => {
  // A process that maps nothing while we read it twice (our own maps change as we run).
  const sleeper = new Deno.Command("sleep", { args: ["30"] }).spawn();
  try {
    // Once it has exec'd: on a loaded machine the first read can still see the forked runtime.
    for (let i = 0; i < 500; i++) {
      if (readMaps(sleeper.pid).entries.some((e) => e.path.endsWith("/sleep"))) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const whole = readMaps(sleeper.pid).entries;
    const cut = readMaps(sleeper.pid, 200);
    assert.equal(cut.truncated, true);
    assert.ok(cut.entries.length > 0 && cut.entries.length < whole.length);
    assert.deepEqual(cut.entries, whole.slice(0, cut.entries.length));
  } finally {
    sleeper.kill("SIGKILL");
    await sleeper.status;
  }
});

import assert from "node:assert/strict";
import { ProbeError } from "./probe_error.ts";
import { describeSpec, parseProbeSpec } from "./probe_spec.ts";
import { closeMatches, parseLdCache, type ProbeHost, resolveProbe } from "./probe_target.ts";
import { decodeFields, parseTracepointFormat } from "./tracepoint_format.ts";

Deno.test("probe spec: every form users know", () => {
  assert.deepEqual(parseProbeSpec("usdt:/usr/bin/python3:python:function__entry"), {
    kind: "usdt",
    path: "/usr/bin/python3",
    provider: "python",
    name: "function__entry",
  });
  // A path with colons keeps them: provider and name are the last two parts.
  assert.equal((parseProbeSpec("usdt:/a:b/x:p:n") as { path: string }).path, "/a:b/x");
  assert.deepEqual(parseProbeSpec("uprobe:libc.so.6:malloc"), {
    kind: "uprobe",
    path: "libc.so.6",
    func: "malloc",
    offset: 0,
  });
  assert.deepEqual(parseProbeSpec("uprobe:/bin/x:main+0x10"), {
    kind: "uprobe",
    path: "/bin/x",
    func: "main",
    offset: 16,
  });
  assert.deepEqual(parseProbeSpec("uprobe:/bin/x:4096"), {
    kind: "uprobe",
    path: "/bin/x",
    func: "",
    offset: 4096,
  });
  assert.equal(parseProbeSpec("uretprobe:/bin/x:_ZN3foo3barEv").kind, "uretprobe");
  assert.deepEqual(parseProbeSpec("tracepoint:sched:sched_switch"), {
    kind: "tracepoint",
    category: "sched",
    name: "sched_switch",
  });
  assert.deepEqual(parseProbeSpec("kprobe:vfs_read"), { kind: "kprobe", func: "vfs_read" });
  assert.deepEqual(parseProbeSpec("kprobe:vfs_read+0"), { kind: "kprobe", func: "vfs_read" });
  assert.deepEqual(parseProbeSpec("kretprobe:do_sys_openat2.isra.0"), {
    kind: "kretprobe",
    func: "do_sys_openat2.isra.0",
  });
  assert.equal(describeSpec(parseProbeSpec("uprobe:/bin/x:main+16")), "uprobe:/bin/x:main+0x10");
  assert.equal(describeSpec(parseProbeSpec("uprobe:/bin/x:0x20")), "uprobe:/bin/x:0x20");
});

Deno.test("probe spec: what is wrong is said once, with the form expected", () => {
  const bad: [string, RegExp][] = [
    ["", /unknown probe kind ""/],
    ["uprobe:/x", /give uprobe:PATH:FUNCTION/],
    ["usdt:/x:p", /give usdt:PATH:PROVIDER:NAME/],
    ["tracepoint:a:b:c", /give tracepoint:CATEGORY:NAME/],
    ["tracepoint:a-b:c", /category and name are names/],
    ["kprobe:", /give kprobe:FUNCTION/],
    ["kprobe:f+1", /drop the \+OFFSET/],
    ["uprobe:/x:f\n", /control characters/],
    ["uprobe:/x:" + "f".repeat(5000), /longer than 4096/],
    ["uprobe:/x:99999999999999999999", /is not a symbol name/],
  ];
  for (const [spec, why] of bad) {
    assert.throws(
      () => parseProbeSpec(spec),
      (e) => e instanceof ProbeError && why.test(e.message),
      spec,
    );
  }
});

const FORMAT = `name: sched_process_exec
ID: 365
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;

	field:__data_loc char[] filename;	offset:8;	size:4;	signed:0;
	field:pid_t pid;	offset:12;	size:4;	signed:1;
	field:char comm[16];	offset:16;	size:16;	signed:0;
	field:long delta;	offset:32;	size:8;	signed:1;

print fmt: "filename=%s"`;

Deno.test("tracepoint format: fields by name and kind, decoded from a raw record", () => {
  const f = parseTracepointFormat(FORMAT, "t");
  assert.equal(f.id, 365);
  assert.equal(f.size, 40);
  assert.deepEqual(f.fields.map((x) => [x.name, x.kind]), [
    ["filename", "dataloc"],
    ["pid", "int"],
    ["comm", "chars"],
    ["delta", "int"],
  ]);
  const rec = new Uint8Array(64);
  const dv = new DataView(rec.buffer);
  dv.setUint32(8, (6 << 16) | 40, true); // "/bin/x" at 40, 6 bytes
  dv.setInt32(12, -7, true);
  rec.set(new TextEncoder().encode("worker"), 16);
  dv.setBigInt64(32, -5n, true);
  rec.set(new TextEncoder().encode("/bin/x"), 40);
  assert.deepEqual(decodeFields(f, rec), [
    ["filename", "/bin/x"],
    ["pid", -7],
    ["comm", "worker"],
    ["delta", -5],
  ]);
  assert.throws(() => parseTracepointFormat("format:\n", "t"), /no ID/);
});

Deno.test("probe targets: libraries as the loader finds them; kernel functions with close matches", () => {
  const host: ProbeHost = {
    regularFile: (p) =>
      ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/libz.so.1"].includes(p) ? p : undefined,
    librarySearch: () => ({
      cache: new Map([["libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"]]),
      dirs: ["/usr/lib"],
    }),
    tracefs: () => undefined,
    kernelFunction: (n) => n === "__do_sys_getppid",
    kernelFunctions: () => ["__do_sys_getppid", "__do_sys_getpid", "vfs_read"],
  };
  assert.deepEqual(resolveProbe(parseProbeSpec("uprobe:libc.so.6:malloc"), host), {
    kind: "uprobe",
    binary: "/lib/x86_64-linux-gnu/libc.so.6",
    func: "malloc",
    offset: 0,
    ret: false,
  });
  assert.equal(
    (resolveProbe(parseProbeSpec("uprobe:libz.so.1:inflate"), host) as { binary: string }).binary,
    "/usr/lib/libz.so.1",
  );
  assert.throws(
    () => resolveProbe(parseProbeSpec("uprobe:libq.so:f"), host),
    /no library libq\.so/,
  );
  assert.deepEqual(resolveProbe(parseProbeSpec("kretprobe:__do_sys_getppid"), host), {
    kind: "fexit",
    func: "__do_sys_getppid",
  });
  assert.throws(
    () => resolveProbe(parseProbeSpec("kprobe:getppid"), host),
    /close matches: __do_sys_getppid$/,
  );
  assert.throws(() => resolveProbe(parseProbeSpec("tracepoint:a:b"), host), /no tracepoint a:b/);
  assert.deepEqual(closeMatches("sys_getpid", ["__do_sys_getpid", "x"]), ["__do_sys_getpid"]);
});

Deno.test("ld.so.cache: x86-64 entries by name, others and damage left out", () => {
  const strings = "libc.so.6\0/lib/libc.so.6\0libx.so\0/lib32/libx.so\0";
  const bytes = new Uint8Array(48 + 2 * 24 + strings.length);
  bytes.set(new TextEncoder().encode("glibc-ld.so.cache1.1"));
  const dv = new DataView(bytes.buffer);
  dv.setUint32(20, 3, true); // claims three: the third runs past the end
  const base = 48 + 2 * 24;
  bytes.set(new TextEncoder().encode(strings), base);
  const entry = (i: number, flags: number, key: number, value: number) => {
    dv.setInt32(48 + i * 24, flags, true);
    dv.setUint32(48 + i * 24 + 4, base + key, true);
    dv.setUint32(48 + i * 24 + 8, base + value, true);
  };
  entry(0, 0x0303, 0, 10);
  entry(1, 0x0003, 25, 33); // i386
  assert.deepEqual([...parseLdCache(bytes)], [["libc.so.6", "/lib/libc.so.6"]]);
  assert.equal(parseLdCache(new Uint8Array(10)).size, 0);
});

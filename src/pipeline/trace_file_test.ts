import assert from "node:assert/strict";
import { inflateSync } from "node:zlib";
import { fromBinary } from "@bufbuild/protobuf";
import { type TracePacket, TraceSchema } from "../gen/perfetto_trace_pb.ts";
import { TraceFile, TraceFileError } from "./trace_file.ts";
import { encodePacket, ftraceStatsPacket } from "../perfetto/trace_packets.ts";

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function withDir(fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "systing-trace-file-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function samplePackets(): Uint8Array[] {
  return [
    encodePacket({ timestamp: 10n, data: { case: "systemInfo", value: { numCpus: 4 } } }),
    ftraceStatsPacket("start", [{ cpu: 0, events: 0 }, { cpu: 1, events: 3 }, {
      cpu: 2,
      events: 5,
    }], 11n),
    encodePacket({ timestamp: 12n, data: { case: "systemInfo", value: { pageSize: 4096 } } }),
  ];
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function checkSample(packets: TracePacket[]): void {
  assert.equal(packets.length, 3);
  assert.deepEqual(packets.map((p) => p.timestamp), [10n, 11n, 12n]);
  assert.deepEqual(packets.map((p) => p.data.case), ["systemInfo", "ftraceStats", "systemInfo"]);
  const stats = packets[1].data;
  assert.ok(stats.case === "ftraceStats");
  assert.deepEqual(stats.value.cpuStats.map((c) => c.cpu), [0n, 1n, 2n]);
  assert.deepEqual(stats.value.cpuStats.map((c) => c.droppedEvents), [0n, 3n, 5n]);
  const info = packets[2].data;
  assert.ok(info.case === "systemInfo");
  assert.equal(info.value.pageSize, 4096);
}

Deno.test("finish: the file decodes as a Trace with the packets; temp file gone", async () => {
  await withDir((dir) => {
    const path = `${dir}/out.pftrace`;
    const f = TraceFile.create(path);
    assert.equal(f.path, path);
    assert.match(f.tempPath, new RegExp(`^${dir}/\\.out\\.pftrace\\.tmp-[0-9a-f]{16}$`));
    assert.ok(exists(f.tempPath));
    assert.ok(!exists(path));
    const packets = samplePackets();
    for (const p of packets) f.write(p);
    f.finish();
    assert.ok(!exists(f.tempPath));
    const bytes = Deno.readFileSync(path);
    assert.deepEqual(bytes, concat(packets));
    assert.equal(f.bytesWritten, bytes.length);
    assert.equal(f.rawBytes, bytes.length);
    checkSample(fromBinary(TraceSchema, bytes).packet);
    // finish is idempotent.
    f.finish();
    assert.deepEqual(Deno.readFileSync(path), bytes);
  });
});

Deno.test("finish replaces an existing trace", async () => {
  await withDir((dir) => {
    const path = `${dir}/t.pftrace`;
    Deno.writeTextFileSync(path, "old trace");
    const f = TraceFile.create(path);
    for (const p of samplePackets()) f.write(p);
    f.finish();
    checkSample(fromBinary(TraceSchema, Deno.readFileSync(path)).packet);
  });
});

Deno.test("discard: neither the file nor the temp file exists", async () => {
  await withDir((dir) => {
    const path = `${dir}/out.pftrace`;
    const f = TraceFile.create(path);
    for (const p of samplePackets()) f.write(p);
    assert.equal(f.discard(), true);
    assert.ok(!exists(path));
    assert.ok(!exists(f.tempPath));
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    // Idempotent, and writing afterwards is an error.
    assert.equal(f.discard(), false);
    assert.throws(() => f.write(samplePackets()[0]), TraceFileError);
  });
});

Deno.test("discard leaves an existing target untouched", async () => {
  await withDir((dir) => {
    const path = `${dir}/keep.pftrace`;
    const old = new Uint8Array([1, 2, 3, 4, 5]);
    Deno.writeFileSync(path, old);
    const f = TraceFile.create(path);
    f.write(samplePackets()[0]);
    f.discard();
    assert.deepEqual(Deno.readFileSync(path), old);
    assert.ok(!exists(f.tempPath));
  });
});

Deno.test("temp names are unpredictable and never follow a planted link", async () => {
  await withDir((dir) => {
    const victim = `${dir}/victim`;
    Deno.writeTextFileSync(victim, "root's file");
    // The names an attacker could have guessed before: the pid and the next few hundred.
    for (let pid = Deno.pid; pid < Deno.pid + 300; pid++) {
      Deno.symlinkSync(victim, `${dir}/.t.pb.tmp-${pid}`);
    }
    const a = TraceFile.create(`${dir}/t.pb`);
    const b = TraceFile.create(`${dir}/t.pb`);
    assert.notEqual(a.tempPath, b.tempPath);
    for (const f of [a, b]) {
      assert.ok(!Deno.lstatSync(f.tempPath).isSymlink);
      f.write(samplePackets()[0]);
    }
    a.finish();
    b.discard();
    assert.equal(Deno.readTextFileSync(victim), "root's file");
    assert.deepEqual(Deno.readFileSync(`${dir}/t.pb`), samplePackets()[0]);
  });
});

Deno.test("special files are refused as output, directly or through a link", async () => {
  await withDir(async (dir) => {
    const fifo = `${dir}/fifo`;
    assert.ok((await new Deno.Command("mkfifo", { args: [fifo] }).output()).success);
    Deno.symlinkSync("/dev/null", `${dir}/null-link`);
    for (
      const [path, what] of [
        ["/dev/null", "a character device"],
        [fifo, "a FIFO"],
        [`${dir}/null-link`, "a character device"],
      ]
    ) {
      assert.throws(() => TraceFile.create(path), (e: unknown) => {
        assert.ok(e instanceof TraceFileError);
        assert.match(e.message, new RegExp(`^output ${path} is ${what}, not a regular file`));
        return true;
      });
    }
    assert.ok(Deno.lstatSync("/dev/null").isCharDevice);
    assert.deepEqual([...Deno.readDirSync(dir)].map((d) => d.name).sort(), ["fifo", "null-link"]);
    // A link to a regular file, or a dangling one, is replaced by the trace (not followed).
    Deno.writeTextFileSync(`${dir}/real`, "kept");
    Deno.symlinkSync(`${dir}/real`, `${dir}/link`);
    const f = TraceFile.create(`${dir}/link`);
    f.write(samplePackets()[0]);
    f.finish();
    assert.equal(Deno.readTextFileSync(`${dir}/real`), "kept");
    assert.ok(Deno.lstatSync(`${dir}/link`).isFile);
  });
});

Deno.test("a directory planted at the final name: the complete trace is kept and named", async () => {
  await withDir((dir) => {
    const path = `${dir}/t.pb`;
    const f = TraceFile.create(path);
    for (const p of samplePackets()) f.write(p);
    Deno.mkdirSync(path);
    assert.throws(() => f.finish(), (e: unknown) => {
      assert.ok(e instanceof TraceFileError);
      assert.match(e.message, /^the trace is complete but renaming it to .* failed/);
      assert.ok(e.message.endsWith(`it is kept as ${f.tempPath}`), e.message);
      return true;
    });
    assert.equal(f.discard(), false);
    checkSample(fromBinary(TraceSchema, Deno.readFileSync(f.tempPath)).packet);
  });
});

Deno.test("a temp file swapped for a link is not renamed into place", async () => {
  await withDir((dir) => {
    const f = TraceFile.create(`${dir}/t.pb`);
    f.write(samplePackets()[0]);
    Deno.removeSync(f.tempPath);
    Deno.symlinkSync("/etc/passwd", f.tempPath);
    assert.throws(() => f.finish(), /was replaced by another file/);
    assert.ok(!exists(`${dir}/t.pb`));
  });
});

Deno.test({
  name: "a full disk: writing fails with TraceFileError and discard removes the temp file",
  ignore: Deno.uid() !== 0,
  fn: () =>
    withDir(async (dir) => {
      const mount = await new Deno.Command("mount", {
        args: ["-t", "tmpfs", "-o", "size=64k", "systing-test", dir],
      }).output();
      assert.ok(mount.success);
      try {
        const f = TraceFile.create(`${dir}/t.pb`);
        const chunk = new Uint8Array(16384);
        assert.throws(() => {
          for (let i = 0; i < 100; i++) f.write(chunk);
        }, (e: unknown) => {
          assert.ok(e instanceof TraceFileError);
          assert.match(e.message, /No space left on device/);
          return true;
        });
        assert.equal(f.discard(), true);
        assert.deepEqual([...Deno.readDirSync(dir)], []);
      } finally {
        await new Deno.Command("umount", { args: [dir] }).output();
      }
    }),
});

Deno.test("write after finish throws TraceFileError", async () => {
  await withDir((dir) => {
    const f = TraceFile.create(`${dir}/a.pftrace`);
    f.finish();
    assert.throws(() => f.write(samplePackets()[0]), (e: unknown) => {
      assert.ok(e instanceof TraceFileError);
      assert.match(e.message, /after it was closed/);
      return true;
    });
  });
});

Deno.test("create in a nonexistent directory throws a TraceFileError naming the path", async () => {
  await withDir((dir) => {
    const path = `${dir}/missing/sub/out.pftrace`;
    assert.throws(() => TraceFile.create(path), (e: unknown) => {
      assert.ok(e instanceof TraceFileError);
      assert.equal(e.name, "TraceFileError");
      assert.ok(e.message.includes(path), e.message);
      assert.ok(e.message.includes(`directory ${dir}/missing/sub does not exist`), e.message);
      return true;
    });
    assert.ok(!exists(`${dir}/missing`));
  });
});

Deno.test("create on a directory path throws a TraceFileError naming the path", async () => {
  await withDir((dir) => {
    const path = `${dir}/adir`;
    Deno.mkdirSync(path);
    assert.throws(() => TraceFile.create(path), (e: unknown) => {
      assert.ok(e instanceof TraceFileError);
      assert.ok(e.message.includes(path), e.message);
      assert.match(e.message, /is a directory/);
      return true;
    });
    // No temp file was left behind.
    assert.deepEqual([...Deno.readDirSync(dir)].map((d) => d.name), ["adir"]);
  });
});

/** Splits a file into its packets, inflating each compressedPackets one. */
function inflatePackets(file: Uint8Array): { chunks: Uint8Array[]; outer: TracePacket[] } {
  const outer = fromBinary(TraceSchema, file).packet;
  const chunks = outer.map((p) => {
    assert.equal(p.data.case, "compressedPackets");
    return new Uint8Array(inflateSync(p.data.value as Uint8Array));
  });
  return { chunks, outer };
}

Deno.test("compressed: compressedPackets packets that inflate to the original packets", async () => {
  await withDir((dir) => {
    const path = `${dir}/c.pftrace`;
    const f = TraceFile.create(path, { compress: true });
    const packets = samplePackets();
    for (const p of packets) f.write(p);
    // Nothing reaches the disk before the chunk fills or the trace finishes.
    assert.equal(f.bytesWritten, 0);
    f.finish();
    const file = Deno.readFileSync(path);
    assert.equal(f.bytesWritten, file.length);
    assert.equal(f.rawBytes, concat(packets).length);
    const { chunks, outer } = inflatePackets(file);
    assert.equal(outer.length, 1);
    assert.deepEqual(chunks[0], concat(packets));
    checkSample(fromBinary(TraceSchema, chunks[0]).packet);
  });
});

Deno.test("compressed: a repetitive 5 MB input compresses at least 2x, in several chunks", async () => {
  await withDir((dir) => {
    const path = `${dir}/big.pftrace`;
    const f = TraceFile.create(path, { compress: true });
    const written: Uint8Array[] = [];
    let raw = 0;
    for (let i = 0; raw < 5 * 1024 * 1024; i++) {
      const p = encodePacket({
        timestamp: BigInt(i),
        data: {
          case: "systemInfo",
          value: { numCpus: i % 64, machineName: `host-${i % 10}-${"x".repeat(200)}` },
        },
      });
      f.write(p);
      written.push(p);
      raw += p.length;
    }
    f.finish();
    const file = Deno.readFileSync(path);
    assert.equal(f.rawBytes, raw);
    assert.ok(file.length * 2 <= raw, `${file.length} bytes for ${raw}`);
    const { chunks } = inflatePackets(file);
    assert.ok(chunks.length >= 5, `${chunks.length} chunks`);
    const all = concat(chunks);
    assert.deepEqual(all, concat(written));
    const packets = fromBinary(TraceSchema, all).packet;
    assert.equal(packets.length, written.length);
    assert.equal(packets[packets.length - 1].timestamp, BigInt(written.length - 1));
    // Each chunk holds whole packets.
    for (const c of chunks) assert.ok(fromBinary(TraceSchema, c).packet.length > 0);
  });
});

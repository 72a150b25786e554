/**
 * Userspace cost per event without the kernel: synthetic sched_switch and
 * sched_waking records laid out as in a ring, decoded and encoded into
 * bundles exactly as the drain worker does. Prints ns per event.
 *
 *   deno run -A bench/decode_bench.ts [--events N]
 */
import { parseArgs } from "node:util";
import { FtraceBundleBuilder, TimestampBase } from "../src/perfetto/ftrace_bundle_builder.ts";
import { ProtoWriter } from "../src/perfetto/proto_writer.ts";
import { Decoding } from "../src/pipeline/decoding.ts";
import { RECORDERS } from "../src/recorders/registry.ts";
import { Layout, RecordKind } from "../src/records/records.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { events: { type: "string", default: "2000000" } },
});
const N = Number(values.events);
const SW = Layout.rec_sched_switch, WK = Layout.rec_sched_waking;
const recSize = 8 + SW.size; // ring header + record (both kinds fit)
const buf = new ArrayBuffer(N * recSize);
const dv = new DataView(buf);
const bytes = new Uint8Array(buf);
const enc = new TextEncoder();
const base = 1_000_000_000_000n;
let ts = Number(base);
for (let i = 0; i < N; i++) {
  const o = i * recSize + 8;
  const isSwitch = i % 3 !== 2;
  const size = isSwitch ? SW.size : WK.size;
  dv.setUint32(o - 8, size, true);
  dv.setUint16(o, isSwitch ? RecordKind.SchedSwitch : RecordKind.SchedWaking, true);
  dv.setUint16(o + 2, size, true);
  ts += 1000 + (i % 7) * 300;
  dv.setBigUint64(o + 8, BigInt(ts), true);
  const pid = 1000 + (i % 4);
  if (isSwitch) {
    dv.setUint32(o + SW.prev_pid, pid + 1, true);
    dv.setUint32(o + SW.next_pid, pid, true);
    dv.setInt32(o + SW.prev_state, i % 2, true);
    dv.setInt32(o + SW.next_prio, 120, true);
    enc.encodeInto(`worker-${pid}`, bytes.subarray(o + SW.next_comm, o + SW.next_comm + 15));
  } else {
    dv.setUint32(o + WK.pid, pid, true);
    dv.setInt32(o + WK.target_cpu, 1, true);
    dv.setInt32(o + WK.prio, 120, true);
    enc.encodeInto(`worker-${pid}`, bytes.subarray(o + WK.comm, o + WK.comm + 15));
  }
}
const mem = { bytes, u32: new Uint32Array(buf), i32: new Int32Array(buf) };

function pass(): number {
  // The default recorders, as a drain worker has them.
  const scope = new Decoding(RECORDERS.filter((r) => r.defaultOn), {}, base, 1, 1000);
  const decoder = scope.decoder;
  const builder = new FtraceBundleBuilder(0, scope.comms, new TimestampBase(base));
  const out = new ProtoWriter(1 << 20);
  let written = 0;
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    decoder.decode(mem, i * recSize + 8, SW.size, builder);
    if (builder.pending >= 32768) {
      builder.flush(out, builder.maxTs - 5e6, 2);
      written += out.take().length;
    }
  }
  builder.flush(out, Infinity, 2);
  written += out.take().length;
  const ns = (performance.now() - t0) * 1e6 / N;
  if (written === 0) throw new Error("nothing written");
  return ns;
}
pass(); // warm-up: let the JIT settle
const runs = [pass(), pass(), pass()].sort((a, b) => a - b);
console.log(
  `decode + encode: ${runs[1].toFixed(1)} ns/event (median of 3, ${N} events, 2/3 switches)`,
);

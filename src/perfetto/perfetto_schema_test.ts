// Smoke test for the generated Perfetto schema subset (src/gen/perfetto_trace_pb.ts).
import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  FtraceEventBundle_CompactSchedSchema,
  FtraceEventBundleSchema,
  FtraceEventSchema,
  TracePacketSchema,
  TraceSchema,
} from "../gen/perfetto_trace_pb.ts";

Deno.test("perfetto schema: TracePacket with compact_sched round-trips", () => {
  const packet = create(TracePacketSchema, {
    timestamp: 123_456_789n,
    timestampClockId: 6,
    optionalTrustedPacketSequenceId: { case: "trustedPacketSequenceId", value: 1 },
    data: {
      case: "ftraceEvents",
      value: create(FtraceEventBundleSchema, {
        cpu: 3,
        compactSched: create(FtraceEventBundle_CompactSchedSchema, {
          internTable: ["swapper/3", "bash"],
          switchTimestamp: [100n, 50n],
          switchPrevState: [0n, 1n],
          switchNextPid: [0, 42],
          switchNextPrio: [120, 120],
          switchNextCommIndex: [0, 1],
        }),
        event: [
          create(FtraceEventSchema, {
            timestamp: 1000n,
            pid: 42,
            event: {
              case: "taskRename",
              value: { pid: 42, oldcomm: "bash", newcomm: "ls", oomScoreAdj: 0 },
            },
          }),
        ],
      }),
    },
  });
  const bytes = toBinary(TraceSchema, create(TraceSchema, { packet: [packet] }));
  assert.equal(bytes[0], 0x0a); // field 1 (packet), wire type 2

  const trace = fromBinary(TraceSchema, bytes);
  assert.equal(trace.packet.length, 1);
  const p = trace.packet[0];
  assert.equal(p.timestamp, 123_456_789n);
  assert.equal(p.timestampClockId, 6);
  assert.deepEqual(p.optionalTrustedPacketSequenceId, {
    case: "trustedPacketSequenceId",
    value: 1,
  });
  assert.equal(p.data.case, "ftraceEvents");
  if (p.data.case !== "ftraceEvents") throw new Error("unreachable");
  const bundle = p.data.value;
  assert.equal(bundle.cpu, 3);
  assert.deepEqual(bundle.compactSched?.switchNextPid, [0, 42]);
  assert.deepEqual(bundle.compactSched?.internTable, ["swapper/3", "bash"]);
  assert.equal(bundle.event[0].event.case, "taskRename");
  assert.equal(bundle.event[0].event.value?.$typeName, "perfetto.protos.TaskRenameFtraceEvent");

  // Spot-check field numbers against upstream.
  assert.equal(TracePacketSchema.field.timestampClockId.number, 58);
  assert.ok(
    TracePacketSchema.fields.some((f) => f.number === 58 && f.localName === "timestampClockId"),
  );
  assert.equal(TracePacketSchema.field.trustedPacketSequenceId.number, 10);
  assert.equal(TracePacketSchema.field.ftraceEvents.number, 1);
  assert.equal(FtraceEventSchema.field.schedSwitch.number, 4);
  assert.equal(FtraceEventSchema.field.taskRename.number, 236);
  assert.equal(FtraceEventBundle_CompactSchedSchema.field.internTable.number, 5);
  const switchTs = FtraceEventBundle_CompactSchedSchema.field.switchTimestamp;
  assert.ok(switchTs.fieldKind === "list" && switchTs.packed);
});

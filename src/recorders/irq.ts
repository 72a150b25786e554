/**
 * irq: hard interrupt handlers (with the handler's name and return value)
 * and softirqs, entry and exit, as ftrace events on the CPU that ran them.
 */
import type { DecoderScope, Recorder } from "./recorder.ts";
import type { DecoderTable } from "../records/record_decoder.ts";
import { cString, IRQ_NAME_LEN, Layout as L, Part, RecordKind } from "../records/records.ts";

/** FtraceEvent oneof field numbers and their messages' fields (Perfetto protos). */
const Ev = {
  irqHandlerEntry: 36, // irq=1 name=2 handler=3
  irqHandlerExit: 37, // irq=1 ret=2
  softirqEntry: 24, // vec=1
  softirqExit: 25, // vec=1
} as const;

function decoders({ current }: DecoderScope): DecoderTable {
  return {
    [RecordKind.IrqHandlerEntry]: (mem, off, size, ts, b) => {
      if (size !== L.rec_irq.size) return false;
      const e = b.beginEvent(ts, current[b.cpu], Ev.irqHandlerEntry);
      e.fieldInt(1, mem.i32[(off >> 2) + 4]);
      e.fieldString(2, cString(mem.bytes, off + L.rec_irq.name, IRQ_NAME_LEN));
      b.endEvent();
      return true;
    },
    [RecordKind.IrqHandlerExit]: (mem, off, size, ts, b) => {
      if (size !== L.rec_irq.size) return false;
      const e = b.beginEvent(ts, current[b.cpu], Ev.irqHandlerExit);
      e.fieldInt(1, mem.i32[(off >> 2) + 4]);
      e.fieldInt(2, mem.i32[(off >> 2) + 5]);
      b.endEvent();
      return true;
    },
    [RecordKind.SoftirqEntry]: (mem, off, size, ts, b) => {
      if (size !== L.rec_softirq.size) return false;
      b.beginEvent(ts, current[b.cpu], Ev.softirqEntry).fieldVarint(1, mem.u32[(off >> 2) + 4]);
      b.endEvent();
      return true;
    },
    [RecordKind.SoftirqExit]: (mem, off, size, ts, b) => {
      if (size !== L.rec_softirq.size) return false;
      b.beginEvent(ts, current[b.cpu], Ev.softirqExit).fieldVarint(1, mem.u32[(off >> 2) + 4]);
      b.endEvent();
      return true;
    },
  };
}

export const irq: Recorder = {
  name: "irq",
  description: "hard interrupt handlers (name, return value) and softirqs, entry and exit",
  defaultOn: true,
  bpf: {
    // Shared with sched (bpf/dispatch.bpf.c), in its order.
    programs: [
      "on_irq_handler_exit",
      "on_softirq_exit",
      "on_irq_handler_entry",
      "on_softirq_entry",
    ],
    maps: ["irq_kept"],
  },
  kinds: [
    RecordKind.IrqHandlerEntry,
    RecordKind.IrqHandlerExit,
    RecordKind.SoftirqEntry,
    RecordKind.SoftirqExit,
  ],
  unsupported: (m) =>
    m.hasTracepoint("irq_handler_entry") && m.hasTracepoint("softirq_entry")
      ? undefined
      : "this kernel has no irq_handler_entry/softirq_entry tracepoints",
  decoders,
  start: () => ({ configure: ({ config }) => config.or("parts", Part.Irq) }),
};

/**
 * Worker entry: drains a group of per-CPU ring buffers and turns their
 * records into encoded FtraceEventBundle packets for the main thread to
 * write. It blocks in epoll_wait (FFI) rather than awaiting, so the main
 * thread's event loop stays free and the hot loop never yields to timers.
 *
 * Memory is bounded: when the main thread falls behind by more than
 * maxPendingBytes the worker stops draining, the rings fill up, and BPF
 * counts what it cannot reserve. Nothing queues without limit here.
 */
/// <reference lib="deno.worker" />
import { ClockId, clockNs } from "../ffi/clock.ts";
import { Epoll } from "../ffi/epoll.ts";
import { RINGBUF_BUSY_BIT, RINGBUF_DISCARD_BIT, RingBuffer } from "../ffi/ring_buffer.ts";
import { FtraceBundleBuilder, TimestampBase } from "../perfetto/ftrace_bundle_builder.ts";
import { ProtoWriter } from "../perfetto/proto_writer.ts";
import type { RecordDecoder } from "../records/record_decoder.ts";
import { recorderNamed } from "../recorders/registry.ts";
import { Decoding } from "./decoding.ts";
import {
  type DrainStats,
  type FromWorker,
  PENDING_KIB,
  STOP,
  type ToWorker,
} from "./drain_protocol.ts";

/** Track events (syscalls, counters) written early once this many bytes wait. */
const MAX_PENDING_TRACK_BYTES = 4 << 20;

function run(init: Extract<ToWorker, { type: "start" }>): void {
  const control = new Int32Array(init.control);
  const base = new TimestampBase(init.base);
  const maxCpu = Math.max(...init.rings.map((r) => r.cpu)) + 1;
  const recorders = init.recorders.map((name) => {
    const r = recorderNamed(name);
    if (!r) throw new Error(`no recorder named ${name}`);
    return r;
  });
  const scope = new Decoding(
    recorders,
    init.recorderConfigs,
    init.base,
    maxCpu,
    init.trackSequenceBase + init.index,
    init.forwardRing,
  );
  const { decoder, comms } = scope;
  const rings = init.rings.map((r) => new RingBuffer(r.fd, r.size));
  const builders = init.rings.map((r) => new FtraceBundleBuilder(r.cpu, comms, base));
  const epoll = new Epoll(rings.length + 1);
  init.rings.forEach((r, i) => epoll.add(r.fd, i));
  epoll.add(init.wakeFd, rings.length);
  const out = new ProtoWriter(1 << 20);
  const maxPendingKiB = init.maxPendingBytes / 1024;
  let lastFlush = performance.now();
  const cpuStart = clockNs(ClockId.THREAD_CPUTIME);
  let stalls = 0;
  const read = { records: 0, bytes: 0 };
  post({ type: "ready" });

  const drainAll = (): void => {
    for (let i = 0; i < rings.length; i++) drainRing(rings[i], builders[i], decoder, read);
  };

  const flush = (final: boolean): void => {
    // A record is stamped just before it is written: none still to come is older than now less
    // the holdback, so a quiet CPU (idle, or running only untraced tasks in a filtered
    // recording) writes its events as soon as a busy one does instead of at the end.
    const now = final ? Infinity : Number(clockNs(ClockId.BOOTTIME) - init.base);
    for (const b of builders) {
      b.flush(out, final ? Infinity : Math.max(b.maxTs, now) - init.holdbackNs, init.sequenceId);
    }
    const events = scope.processEvents.splice(0);
    if (scope.tracks.pending) {
      const tracks = scope.tracks.take();
      out.ensure(tracks.length);
      out.buf.set(tracks, out.pos);
      out.pos += tracks.length;
    }
    if (out.pos === 0 && events.length === 0 && scope.forwarded.length === 0) return;
    const bytes = out.take();
    const forwarded = scope.forwarded.take();
    Atomics.add(control, PENDING_KIB, Math.ceil((bytes.length + forwarded.length) / 1024));
    post({ type: "packets", bytes, forwarded, processEvents: events }, [
      bytes.buffer,
      forwarded.overflow.buffer,
    ]);
  };

  try {
    for (;;) {
      const stopping = Atomics.load(control, STOP) === 1;
      if (!stopping) {
        epoll.wait(Math.max(1, Math.ceil(lastFlush + init.flushMs - performance.now())));
      }
      const pending = Atomics.load(control, PENDING_KIB);
      if (!stopping && pending > maxPendingKiB) {
        // Back-pressure: leave the data in the rings (BPF counts what overflows) and sleep
        // until the main thread has written some (the rings stay readable: epoll would spin).
        stalls++;
        Atomics.wait(control, PENDING_KIB, pending, init.flushMs);
        continue;
      }
      drainAll();
      if (stopping) {
        drainAll();
        flush(true);
        break;
      }
      const now = performance.now();
      let big = scope.tracks.pending > MAX_PENDING_TRACK_BYTES;
      for (const b of builders) if (b.pending > init.maxBundleEvents) big = true;
      if (big || now - lastFlush >= init.flushMs) {
        flush(false);
        lastFlush = now;
        post({ type: "progress", stats: stats() });
      }
    }
  } finally {
    epoll.close();
    for (const r of rings) r.close();
  }
  post({ type: "done", stats: stats() });

  function stats(): DrainStats {
    return {
      counts: Array.from(decoder.counts),
      lostByCpu: Array.from(decoder.lostByCpu),
      malformed: decoder.malformed,
      reordered: builders.reduce((n, b) => n + b.reordered, 0),
      cpuNs: Number(clockNs(ClockId.THREAD_CPUTIME) - cpuStart),
      ringRecords: read.records,
      ringBytes: read.bytes,
      stalls,
      comms: comms.size,
      problems: Object.fromEntries(scope.problems),
    };
  }
}

function drainRing(
  ring: RingBuffer,
  builder: FtraceBundleBuilder,
  decoder: RecordDecoder,
  read: { records: number; bytes: number },
): void {
  const size = ring.size;
  const u32 = ring.u32;
  const start = ring.consumerPos();
  let cons = start;
  const prod = ring.producerPos();
  let n = 0;
  while (cons < prod) {
    const off = cons % size;
    const head = u32[off >>> 2];
    if (head & RINGBUF_BUSY_BIT) break;
    const len = head & 0x3fffffff;
    if (!(head & RINGBUF_DISCARD_BIT)) {
      const at = (off + 8) % size;
      if (at + len <= size) decoder.decode(ring, at, len, builder);
      else decoder.decode(ring.wrapped(at, len), 0, len, builder);
    }
    cons += (len + 15) & ~7;
    // Hand space back regularly so that a long drain does not starve BPF.
    if ((++n & 1023) === 0) ring.publish(cons);
  }
  ring.publish(cons);
  read.records += n;
  read.bytes += cons - start;
}

function post(msg: FromWorker, transfer: Transferable[] = []): void {
  self.postMessage(msg, transfer);
}

self.onmessage = (e: MessageEvent<ToWorker>) => {
  if (e.data.type !== "start") return;
  try {
    run(e.data);
  } catch (err) {
    post({ type: "error", message: (err as Error).message });
  }
  self.close();
};

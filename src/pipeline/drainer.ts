/**
 * Owns the drain workers: splits the per-CPU rings among them, hands their
 * output to the caller, and stops them so that every record already in the
 * rings is written.
 */
import { workerUrl } from "../dist/worker_url.ts";
import type { RingHandle } from "../ffi/bpf_object.ts";
import {
  CONTROL_SLOTS,
  type DrainSettings,
  type DrainStats,
  type FromWorker,
  PENDING_KIB,
  STOP,
  type ToWorker,
} from "./drain_protocol.ts";
import type { ProcessEvent } from "../records/records.ts";
import { WakeFd } from "../ffi/wake_fd.ts";
import { ForwardReader, forwardRing } from "./forward_ring.ts";

export class DrainError extends Error {
  override name = "DrainError";
}

/** CPUs per worker: one JS thread keeps up with several busy CPUs. */
const CPUS_PER_WORKER = 16;

export interface DrainSink {
  /** FORWARDED is valid during the call only (its memory is reused): what is kept is copied. */
  packets(bytes: Uint8Array, forwarded: Uint8Array, processEvents: ProcessEvent[]): void;
  /** A worker died, or `packets` threw: the recording cannot go on. Called once. */
  failed(error: Error): void;
}

export class Drainer {
  #workers: Worker[] = [];
  #control = new SharedArrayBuffer(4 * CONTROL_SLOTS);
  #ctl = new Int32Array(this.#control);
  #latest: (DrainStats | undefined)[] = [];
  #done: Promise<void>[] = [];
  #failed: Error | undefined;
  /** Wakes the workers out of their wait when they are to stop. */
  #wake = new WakeFd();

  #fail(error: Error, sink: DrainSink): void {
    if (this.#failed) return;
    this.#failed = error;
    sink.failed(error);
  }

  /** Starts the workers; resolves once every one has mapped its rings. */
  static async start(
    rings: RingHandle[],
    settings: DrainSettings,
    sink: DrainSink,
  ): Promise<Drainer> {
    const d = new Drainer();
    const groups: RingHandle[][] = [];
    const nWorkers = Math.max(1, Math.ceil(rings.length / CPUS_PER_WORKER));
    for (let i = 0; i < nWorkers; i++) groups.push([]);
    rings.forEach((r, i) => groups[i % nWorkers].push(r));
    const ready: Promise<void>[] = [];
    groups.forEach((group, i) => {
      const worker = new Worker(
        workerUrl("drain_worker", new URL("./drain_worker.ts", import.meta.url)),
        { type: "module" },
      );
      d.#workers.push(worker);
      const ring = forwardRing();
      const forwarded = new ForwardReader(ring);
      d.#latest.push(undefined);
      let onReady!: () => void;
      let onFail!: (e: Error) => void;
      ready.push(
        new Promise<void>((res, rej) => {
          onReady = res;
          onFail = rej;
        }),
      );
      d.#done.push(
        new Promise<void>((resolve) => {
          worker.onmessage = (e: MessageEvent<FromWorker>) => {
            const m = e.data;
            switch (m.type) {
              case "ready":
                onReady();
                break;
              case "packets":
                try {
                  sink.packets(m.bytes, forwarded.read(m.forwarded), m.processEvents);
                } catch (e) {
                  // Thrown out of a message handler it would end the process, trace unwritten.
                  d.#fail(e instanceof Error ? e : new Error(String(e)), sink);
                } finally {
                  Atomics.sub(
                    d.#ctl,
                    PENDING_KIB,
                    Math.ceil((m.bytes.length + m.forwarded.length) / 1024),
                  );
                  Atomics.notify(d.#ctl, PENDING_KIB); // a worker held back may go on
                }
                break;
              case "progress":
                d.#latest[i] = m.stats;
                break;
              case "done":
                d.#latest[i] = m.stats;
                resolve();
                break;
              case "error": {
                const err = new DrainError(`draining the ring buffers failed: ${m.message}`);
                d.#fail(err, sink);
                onFail(err);
                resolve();
                break;
              }
            }
          };
          worker.onerror = (e) => {
            e.preventDefault();
            const err = new DrainError(`draining the ring buffers failed: ${e.message}`);
            d.#fail(err, sink);
            onFail(err);
            resolve();
          };
        }),
      );
      const msg: ToWorker = {
        type: "start",
        rings: group,
        control: d.#control,
        forwardRing: ring,
        index: i,
        wakeFd: d.#wake.fd,
        ...settings,
      };
      worker.postMessage(msg);
    });
    try {
      await Promise.all(ready);
    } catch (e) {
      for (const w of d.#workers) w.terminate();
      d.#wake.close();
      throw e;
    }
    return d;
  }

  /** The sum of the workers' latest statistics. */
  stats(): DrainStats {
    const sum: DrainStats = {
      counts: [],
      lostByCpu: [],
      malformed: 0,
      reordered: 0,
      cpuNs: 0,
      ringRecords: 0,
      ringBytes: 0,
      stalls: 0,
      comms: 0,
      problems: {},
    };
    for (const s of this.#latest) {
      if (!s) continue;
      s.counts.forEach((v, k) => sum.counts[k] = (sum.counts[k] ?? 0) + v);
      s.lostByCpu.forEach((v, c) => sum.lostByCpu[c] = (sum.lostByCpu[c] ?? 0) + v);
      sum.malformed += s.malformed;
      sum.reordered += s.reordered;
      sum.cpuNs += s.cpuNs;
      sum.ringRecords += s.ringRecords;
      sum.ringBytes += s.ringBytes;
      sum.stalls += s.stalls;
      sum.comms = Math.max(sum.comms, s.comms);
      for (const [what, n] of Object.entries(s.problems)) {
        sum.problems[what] = (sum.problems[what] ?? 0) + n;
      }
    }
    return sum;
  }

  /**
   * Tells the workers to drain what is left and write it. Call it after the
   * BPF programs are detached, so that nothing arrives afterwards.
   */
  async stop(): Promise<DrainStats> {
    Atomics.store(this.#ctl, STOP, 1);
    this.#wake.wake();
    Atomics.notify(this.#ctl, PENDING_KIB);
    await Promise.all(this.#done);
    for (const w of this.#workers) w.terminate();
    this.#workers = [];
    this.#wake.close();
    if (this.#failed instanceof DrainError) throw this.#failed;
    return this.stats();
  }

  get failure(): Error | undefined {
    return this.#failed;
  }
}

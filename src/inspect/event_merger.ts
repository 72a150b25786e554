/**
 * Puts the scheduler events of every CPU back into one time order, with bounded memory.
 *
 * Each CPU's events reach the file in time order, but the CPUs' bundles are flushed separately
 * (every 100 ms, or sooner when busy), so a wake-up on one CPU may be written after the switch
 * it caused on another. A thread's states and its scheduling latency need the wake-up first.
 * Events wait in one FIFO per CPU and leave in time order once every CPU seen has something
 * queued (nothing earlier can come for any of them), or once they are HORIZON_NS older than the
 * newest event, or when more than CAP wait: an idle CPU whose bundle is late must not hold the
 * others in memory. An event released after a later one is counted in `late`.
 */
const HORIZON_NS = 1e9;
const CAP = 1 << 20;

export type MergedSink = (ts: number, cpu: number, kind: number, a: number, b: number) => void;

class CpuQueue {
  ts = new Float64Array(1024);
  kind = new Int32Array(1024);
  a = new Float64Array(1024);
  b = new Float64Array(1024);
  head = 0;
  tail = 0;

  get size(): number {
    return this.tail - this.head;
  }

  push(ts: number, kind: number, a: number, b: number): void {
    if (this.tail === this.ts.length) {
      const n = this.size;
      // Compact to the front, growing only when more than half is in use.
      const cap = n * 2 > this.ts.length ? this.ts.length * 2 : this.ts.length;
      const move = <T extends Float64Array | Int32Array>(arr: T): T => {
        const out = cap === arr.length ? arr : new (arr.constructor as new (n: number) => T)(cap);
        out.set(arr.subarray(this.head, this.tail), 0);
        return out;
      };
      this.ts = move(this.ts);
      this.kind = move(this.kind);
      this.a = move(this.a);
      this.b = move(this.b);
      this.head = 0;
      this.tail = n;
    }
    const i = this.tail++;
    this.ts[i] = ts;
    this.kind[i] = kind;
    this.a[i] = a;
    this.b[i] = b;
  }
}

export class EventMerger {
  #queues: CpuQueue[] = [];
  #cpus: number[] = [];
  #sink: MergedSink;
  #buffered = 0;
  #newest = -Infinity;
  #released = -Infinity;
  /** Events released after a later one (a CPU's bundle that came later than the horizon). */
  late = 0;

  constructor(sink: MergedSink) {
    this.#sink = sink;
  }

  /**
   * Declares a CPU before its first event (the trace lists its CPUs up front): until its events
   * come, the others wait for them, up to the horizon.
   */
  expect(cpu: number): CpuQueue {
    let q = this.#queues[cpu];
    if (!q) {
      q = this.#queues[cpu] = new CpuQueue();
      this.#cpus.push(cpu);
    }
    return q;
  }

  push(cpu: number, ts: number, kind: number, a: number, b: number): void {
    const q = this.#queues[cpu] ?? this.expect(cpu);
    q.push(ts, kind, a, b);
    this.#buffered++;
    if (ts > this.#newest) this.#newest = ts;
  }

  /** Releases what can be; with FINAL, everything. */
  drain(final = false): void {
    const queues = this.#queues, cpus = this.#cpus;
    for (;;) {
      let best: CpuQueue | undefined, bestTs = Infinity, secondTs = Infinity;
      let anyEmpty = false;
      for (const c of cpus) {
        const q = queues[c];
        if (q.size === 0) {
          anyEmpty = true;
          continue;
        }
        const t = q.ts[q.head];
        if (t < bestTs) {
          secondTs = bestTs;
          bestTs = t;
          best = q;
        } else if (t < secondTs) secondTs = t;
      }
      if (!best) return;
      const cpu = cpus.find((c) => queues[c] === best)!;
      const limit = this.#newest - HORIZON_NS;
      let n = 0;
      while (best.size > 0) {
        const t = best.ts[best.head];
        if (t > secondTs) break;
        if (!(final || !anyEmpty || t <= limit || this.#buffered > CAP)) break;
        const i = best.head++;
        this.#buffered--;
        if (t < this.#released) this.late++;
        else this.#released = t;
        this.#sink(t, cpu, best.kind[i], best.a[i], best.b[i]);
        n++;
        // Once empty, the others may have to wait for this CPU again.
        if (best.size === 0 && !final) anyEmpty = true;
      }
      if (n === 0) return;
    }
  }
}

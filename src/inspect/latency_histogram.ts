/**
 * Durations in ns, for percentiles with memory bounded by the range of values rather than by how
 * many there are. The first EXACT_LIMIT values are kept as they are (percentiles exact); past
 * that they go into a log-linear histogram: values below 64 ns exactly, every power of two above
 * cut into 64 equal buckets. A percentile is then the middle of its bucket (clamped to the exact
 * minimum and maximum), within 1/128 (0.8%) of the exact nearest-rank value. Count, sum, minimum
 * and maximum are always exact.
 */
const SUB_BITS = 6;
const SUB = 1 << SUB_BITS;
/** As many values as the buckets of a typical histogram weigh: exact costs no more memory. */
export const EXACT_LIMIT = 1024;

/** The relative error bound of percentile(), for the report's header and the tests. */
export const PERCENTILE_RELATIVE_ERROR = 1 / (2 * SUB);

function bucketOf(v: number): number {
  if (v < SUB) return v;
  const e = v < 2 ** 32 ? 31 - Math.clz32(v) : Math.floor(Math.log2(v));
  // Math.log2 may round up just below a power of two.
  const exp = v < 2 ** e ? e - 1 : e;
  const sub = Math.floor(v / 2 ** (exp - SUB_BITS)) - SUB;
  return (exp - SUB_BITS + 1) * SUB + sub;
}

/** [lowest value, width] of bucket b. */
function bucketRange(b: number): [number, number] {
  if (b < SUB) return [b, 1];
  const exp = Math.floor(b / SUB) - 1 + SUB_BITS;
  const width = 2 ** (exp - SUB_BITS);
  return [2 ** exp + (b % SUB) * width, width];
}

export class LatencyHistogram {
  count = 0;
  sum = 0;
  min = Infinity;
  max = 0;
  /** Grown to the highest bucket used: about 8 KiB for values up to a second. */
  #counts = new Float64Array(0);
  /** The values themselves, until there are more than EXACT_LIMIT. */
  #exact: number[] | undefined = [];

  /** Whether percentile() is exact. */
  get exact(): boolean {
    return this.#exact !== undefined;
  }

  add(ns: number): void {
    const v = ns < 0 ? 0 : Math.round(ns);
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    if (this.#exact) {
      if (this.#exact.length < EXACT_LIMIT) {
        this.#exact.push(v);
        return;
      }
      const values = this.#exact;
      this.#exact = undefined;
      for (const x of values) this.#bucket(x);
    }
    this.#bucket(v);
  }

  #bucket(v: number): void {
    const b = bucketOf(v);
    if (b >= this.#counts.length) {
      const grown = new Float64Array(Math.max(b + 1, this.#counts.length * 2, SUB * 4));
      grown.set(this.#counts);
      this.#counts = grown;
    }
    this.#counts[b]++;
  }

  merge(other: LatencyHistogram): void {
    if (other.count === 0) return;
    if (other.#exact) {
      // Value by value: the result stays exact while it can.
      const { sum, min, max } = this;
      for (const v of other.#exact) this.add(v);
      // add() did the sums again; keep them exact (they are the same values).
      this.sum = sum + other.sum;
      this.min = Math.min(min, other.min);
      this.max = Math.max(max, other.max);
      return;
    }
    if (this.#exact) {
      const values = this.#exact;
      this.#exact = undefined;
      for (const x of values) this.#bucket(x);
    }
    if (other.#counts.length > this.#counts.length) {
      const grown = new Float64Array(other.#counts.length);
      grown.set(this.#counts);
      this.#counts = grown;
    }
    for (let i = 0; i < other.#counts.length; i++) this.#counts[i] += other.#counts[i];
    this.count += other.count;
    this.sum += other.sum;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
  }

  /** The nearest-rank P-th percentile (0 < P ≤ 100), within PERCENTILE_RELATIVE_ERROR. */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    if (this.#exact) return this.#exact.toSorted((a, b) => a - b)[rank - 1];
    let seen = 0;
    for (let b = 0; b < this.#counts.length; b++) {
      seen += this.#counts[b];
      if (seen >= rank) {
        const [lo, width] = bucketRange(b);
        const mid = width === 1 ? lo : lo + width / 2;
        return Math.min(this.max, Math.max(this.min, mid));
      }
    }
    return this.max;
  }
}

/**
 * Kernel symbols from /proc/kallsyms, for naming kernel stack frames.
 *
 * kallsyms has no sizes, so a text symbol is taken to run up to the next symbol of its region
 * (the core kernel, or one module), whatever that symbol's type. Section end markers such as
 * `_etext` bound the text before them but never name a frame. The last text symbol of a region
 * has nothing after it; like perf, it is given up to its next page boundary plus one page, and an
 * address beyond that is undefined rather than blamed on it.
 */

/** A /proc/kallsyms line that does not have the "ADDR TYPE NAME [\t[MODULE]]" shape. */
export class KallsymsError extends Error {
  override name = "KallsymsError";
}

export interface KernelSymbol {
  readonly name: string;
  /** Module name without brackets; undefined for the core kernel. */
  readonly module?: string;
  readonly offset: bigint;
}

const END_MARKER = /^(?:_etext|_einittext|__\w*_text_end)$/;
const PAGE = 4096;
const LINE = /([0-9a-fA-F]{1,16}) ([A-Za-z]) (\S+)(?:[\t ]+\[([^\]\n]+)\])?[\t ]*(?:\n|$)/y;

/** One region's symbols, addresses split into 32-bit halves so sorting needs no BigInt. */
interface Region {
  hi: number[];
  lo: number[];
  name: string[];
  /** Lower is the better name for an address; -1 for symbols that only bound others. */
  rank: number[];
}

function textRank(type: string, name: string): number {
  let rank: number;
  switch (type) {
    case "T":
      rank = 0;
      break;
    case "W":
      rank = 1;
      break;
    case "t":
      rank = 2;
      break;
    case "w":
      rank = 3;
      break;
    default:
      return -1;
  }
  return END_MARKER.test(name) ? -1 : rank;
}

/** Indices of (hi, lo) pairs in ascending order. */
function sortedOrder(hi: number[], lo: number[]): number[] {
  const order = Array.from({ length: hi.length }, (_, i) => i);
  // The core kernel is listed in address order; skipping the sort then saves a third of the
  // parse time.
  let sorted = true;
  for (let i = 1; i < hi.length && sorted; i++) {
    sorted = hi[i - 1] < hi[i] || (hi[i - 1] === hi[i] && lo[i - 1] <= lo[i]);
  }
  if (!sorted) order.sort((a, b) => hi[a] - hi[b] || lo[a] - lo[b]);
  return order;
}

/** Global over weak over local, then a name without a leading underscore, then the shorter. */
function betterName(r: Region, a: number, b: number): boolean {
  if (r.rank[a] !== r.rank[b]) return r.rank[a] < r.rank[b];
  const na = r.name[a];
  const nb = r.name[b];
  const ua = na.startsWith("_");
  const ub = nb.startsWith("_");
  if (ua !== ub) return !ua;
  if (na.length !== nb.length) return na.length < nb.length;
  return na < nb;
}
export class Kallsyms {
  /**
   * True when every address in the file reads 0. The kernel does that under kptr_restrict (or for
   * readers without CAP_SYSLOG) to hide its layout; with no addresses nothing can be looked up,
   * and answering with whichever symbol sorts first would put wrong names in the trace, so
   * `lookup` returns undefined and callers label such frames by address.
   */
  readonly restricted: boolean;
  readonly #starts: BigUint64Array;
  readonly #ends: BigUint64Array;
  readonly #names: string[];
  readonly #modules: (string | undefined)[];

  private constructor(
    restricted: boolean,
    starts: BigUint64Array,
    ends: BigUint64Array,
    names: string[],
    modules: (string | undefined)[],
  ) {
    this.restricted = restricted;
    this.#starts = starts;
    this.#ends = ends;
    this.#names = names;
    this.#modules = modules;
  }

  static load(path = "/proc/kallsyms"): Kallsyms {
    return Kallsyms.parse(Deno.readTextFileSync(path));
  }

  static parse(text: string): Kallsyms {
    const regions = new Map<string | undefined, Region>();
    let sawNonZero = false;
    let lines = 0;
    let pos = 0;
    // One sticky regex walks the text line by line: a kernel has 10^5-10^6 lines and this runs at
    // tracer start, so no per-line strings are made before a line is known to be good.
    const line = LINE;
    while (pos < text.length) {
      line.lastIndex = pos;
      const m = line.exec(text);
      if (!m) {
        let nl = text.indexOf("\n", pos);
        if (nl < 0) nl = text.length;
        const bad = text.slice(pos, nl);
        if (bad.trim() !== "") {
          throw new KallsymsError(`malformed kallsyms line ${JSON.stringify(bad)}`);
        }
        pos = nl + 1;
        continue;
      }
      pos = line.lastIndex;
      const hex = m[1];
      const type = m[2];
      const name = m[3];
      const module = m[4];
      lines++;
      const hi = hex.length > 8 ? parseInt(hex.slice(0, hex.length - 8), 16) : 0;
      const lo = parseInt(hex.length > 8 ? hex.slice(hex.length - 8) : hex, 16);
      if (hi !== 0 || lo !== 0) sawNonZero = true;
      let r = regions.get(module);
      if (!r) regions.set(module, r = { hi: [], lo: [], name: [], rank: [] });
      r.hi.push(hi);
      r.lo.push(lo);
      r.name.push(name);
      r.rank.push(textRank(type, name));
    }
    const restricted = lines > 0 && !sawNonZero;

    const spanHi: number[] = [];
    const spanLo: number[] = [];
    const spanEndHi: number[] = [];
    const spanEndLo: number[] = [];
    const spanName: string[] = [];
    const spanModule: (string | undefined)[] = [];
    if (!restricted) {
      for (const [module, r] of regions) {
        const n = r.hi.length;
        const order = sortedOrder(r.hi, r.lo);
        for (let i = 0; i < n;) {
          const hi = r.hi[order[i]];
          const lo = r.lo[order[i]];
          let best = -1;
          let j = i;
          for (; j < n && r.hi[order[j]] === hi && r.lo[order[j]] === lo; j++) {
            const e = order[j];
            if (r.rank[e] >= 0 && (best < 0 || betterName(r, e, best))) best = e;
          }
          if (best >= 0) {
            spanHi.push(hi);
            spanLo.push(lo);
            if (j < n) {
              spanEndHi.push(r.hi[order[j]]);
              spanEndLo.push(r.lo[order[j]]);
            } else {
              // Like perf: up to the next page boundary plus one page. Kernel addresses are
              // page-aligned far above 2^32, so only the low half moves (carry handled below).
              const endLo = Math.ceil(lo / PAGE) * PAGE + PAGE;
              spanEndHi.push(endLo >= 0x1_0000_0000 ? hi + 1 : hi);
              spanEndLo.push(endLo % 0x1_0000_0000);
            }
            spanName.push(r.name[best]);
            spanModule.push(module);
          }
          i = j;
        }
      }
    }
    const n = spanHi.length;
    const order = sortedOrder(spanHi, spanLo);
    // Filled through 32-bit views (little-endian, as on x86-64 and arm64) to avoid a BigInt per
    // symbol.
    const starts = new BigUint64Array(n);
    const ends = new BigUint64Array(n);
    const s32 = new Uint32Array(starts.buffer);
    const e32 = new Uint32Array(ends.buffer);
    for (let k = 0; k < n; k++) {
      const i = order[k];
      s32[2 * k] = spanLo[i];
      s32[2 * k + 1] = spanHi[i];
      e32[2 * k] = spanEndLo[i];
      e32[2 * k + 1] = spanEndHi[i];
    }
    // A guessed page-long end may run into another region (the next module); the symbol that
    // starts there owns those addresses.
    for (let k = 0; k + 1 < n; k++) if (ends[k] > starts[k + 1]) ends[k] = starts[k + 1];
    return new Kallsyms(
      restricted,
      starts,
      ends,
      order.map((i) => spanName[i]),
      order.map((i) => spanModule[i]),
    );
  }

  /** Number of text symbols that can answer a lookup. */
  get size(): number {
    return this.#starts.length;
  }

  lookup(addr: bigint): KernelSymbol | undefined {
    const starts = this.#starts;
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (starts[mid] <= addr) lo = mid + 1;
      else hi = mid;
    }
    const i = lo - 1;
    if (i < 0 || addr >= this.#ends[i]) return undefined;
    const module = this.#modules[i];
    const offset = addr - starts[i];
    return module === undefined
      ? { name: this.#names[i], offset }
      : { name: this.#names[i], module, offset };
  }
}

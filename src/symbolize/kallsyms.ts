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
const SPACE = 0x20, TAB = 0x09, NL = 0x0a, CR = 0x0d, OPEN = 0x5b, CLOSE = 0x5d, UNDERSCORE = 0x5f;

/**
 * Every line's symbol as columns of numbers: addresses split into 32-bit halves so sorting needs no
 * BigInt, names as byte ranges of the file, each column one typed array sized by the line count.
 * A kernel lists 10^5-10^6 symbols and this runs while the tracer starts, so no string and no
 * growing array is made per line: the file's bytes are the only copy of the names.
 */
interface Columns {
  hi: Uint32Array;
  lo: Uint32Array;
  nameAt: Uint32Array;
  nameEnd: Uint32Array;
  /** Lower is the better name for an address; -1 for symbols that only bound others. */
  rank: Int8Array;
  /** Index into the module list; 0 for the core kernel. */
  module: Uint32Array;
}

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder();

function textRank(type: number, buf: Uint8Array, at: number, end: number): number {
  let rank: number;
  switch (type) {
    case 0x54: // T
      rank = 0;
      break;
    case 0x57: // W
      rank = 1;
      break;
    case 0x74: // t
      rank = 2;
      break;
    case 0x77: // w
      rank = 3;
      break;
    default:
      return -1;
  }
  // Only names starting with "_" can be end markers: decode just those.
  if (buf[at] === UNDERSCORE && END_MARKER.test(latin1.decode(buf.subarray(at, end)))) return -1;
  return rank;
}

/** Indices 0..n-1 ordered by (key, hi, lo); sorted only when the input is not (the usual case). */
function sortedOrder(n: number, key: Uint32Array, hi: Uint32Array, lo: Uint32Array): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const before = (a: number, b: number) => key[a] - key[b] || hi[a] - hi[b] || lo[a] - lo[b];
  let sorted = true;
  for (let i = 1; i < n && sorted; i++) sorted = before(i - 1, i) <= 0;
  if (!sorted) order.sort(before);
  return order;
}

/** Byte order of two names (the same as code point order for UTF-8). */
function compareNames(buf: Uint8Array, c: Columns, a: number, b: number): number {
  const la = c.nameEnd[a] - c.nameAt[a];
  const lb = c.nameEnd[b] - c.nameAt[b];
  for (let i = 0; i < la && i < lb; i++) {
    const d = buf[c.nameAt[a] + i] - buf[c.nameAt[b] + i];
    if (d !== 0) return d;
  }
  return la - lb;
}

/** Global over weak over local, then a name without a leading underscore, then the shorter. */
function betterName(buf: Uint8Array, c: Columns, a: number, b: number): boolean {
  if (c.rank[a] !== c.rank[b]) return c.rank[a] < c.rank[b];
  const ua = buf[c.nameAt[a]] === UNDERSCORE;
  const ub = buf[c.nameAt[b]] === UNDERSCORE;
  if (ua !== ub) return !ua;
  const la = c.nameEnd[a] - c.nameAt[a];
  const lb = c.nameEnd[b] - c.nameAt[b];
  if (la !== lb) return la < lb;
  return compareNames(buf, c, a, b) < 0;
}

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

function isBlank(c: number): boolean {
  return c === SPACE || c === TAB;
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
  /** Symbol k's name is names[nameAt[k], nameAt[k + 1]), decoded when looked up. */
  readonly #names: Uint8Array;
  readonly #nameAt: Uint32Array;
  /** Index into #moduleNames; 0 for the core kernel. */
  readonly #module: Uint32Array;
  readonly #moduleNames: (string | undefined)[];

  private constructor(
    restricted: boolean,
    starts: BigUint64Array,
    ends: BigUint64Array,
    names: Uint8Array,
    nameAt: Uint32Array,
    module: Uint32Array,
    moduleNames: (string | undefined)[],
  ) {
    this.restricted = restricted;
    this.#starts = starts;
    this.#ends = ends;
    this.#names = names;
    this.#nameAt = nameAt;
    this.#module = module;
    this.#moduleNames = moduleNames;
  }

  static load(path = "/proc/kallsyms"): Kallsyms {
    return Kallsyms.parse(Deno.readFileSync(path));
  }

  static parse(input: string | Uint8Array): Kallsyms {
    const buf = typeof input === "string" ? new TextEncoder().encode(input) : input;
    let lineCount = 1;
    for (let at = buf.indexOf(NL); at >= 0; at = buf.indexOf(NL, at + 1)) lineCount++;
    const c: Columns = {
      hi: new Uint32Array(lineCount),
      lo: new Uint32Array(lineCount),
      nameAt: new Uint32Array(lineCount),
      nameEnd: new Uint32Array(lineCount),
      rank: new Int8Array(lineCount),
      module: new Uint32Array(lineCount),
    };
    const moduleNames: (string | undefined)[] = [undefined];
    const moduleIndex = new Map<string, number>();
    let sawNonZero = false;
    let lines = 0;
    // Lines come grouped by module: the last module's bytes are compared, not decoded, per line.
    let lastModAt = -1, lastModEnd = -1, lastModule = 0;
    const n = buf.length;
    let pos = 0;
    while (pos < n) {
      let nl = buf.indexOf(NL, pos);
      if (nl < 0) nl = n;
      const lineStart = pos;
      pos = nl + 1;
      const bad = (): never => {
        throw new KallsymsError(
          `malformed kallsyms line ${JSON.stringify(utf8.decode(buf.subarray(lineStart, nl)))}`,
        );
      };
      let end = nl;
      if (end > lineStart && buf[end - 1] === CR) end--;
      // "ADDR TYPE NAME[ \t+[MODULE]][ \t*]"
      let at = lineStart;
      let hi = 0, lo = 0, digits = 0;
      for (let d; at < end && (d = hexDigit(buf[at])) >= 0; at++, digits++) {
        hi = hi * 16 + (lo >>> 28);
        lo = ((lo << 4) | d) >>> 0;
      }
      if (digits === 0) {
        let blank = true;
        for (let i = lineStart; i < end && blank; i++) blank = isBlank(buf[i]);
        if (blank) continue;
        bad();
      }
      if (digits > 16 || buf[at] !== SPACE) bad();
      const type = buf[at + 1];
      if (!((type | 0x20) >= 0x61 && (type | 0x20) <= 0x7a) || buf[at + 2] !== SPACE) bad();
      const nameAt = at + 3;
      at = nameAt;
      while (at < end && buf[at] > SPACE) at++;
      const nameEnd = at;
      if (nameEnd === nameAt) bad();
      while (at < end && isBlank(buf[at])) at++;
      let module = 0;
      if (at < end && buf[at] === OPEN && at > nameEnd) {
        const modAt = at + 1;
        const close = buf.indexOf(CLOSE, modAt);
        if (close < 0 || close >= end || close === modAt) bad();
        if (
          lastModAt >= 0 && close - modAt === lastModEnd - lastModAt &&
          buf.subarray(modAt, close).every((ch, i) => ch === buf[lastModAt + i])
        ) {
          module = lastModule;
        } else {
          const name = utf8.decode(buf.subarray(modAt, close));
          module = moduleIndex.get(name) ?? moduleNames.push(name) - 1;
          moduleIndex.set(name, module);
          lastModAt = modAt;
          lastModEnd = close;
          lastModule = module;
        }
        at = close + 1;
        while (at < end && isBlank(buf[at])) at++;
      }
      if (at !== end) bad();
      if (hi !== 0 || lo !== 0) sawNonZero = true;
      c.hi[lines] = hi;
      c.lo[lines] = lo;
      c.nameAt[lines] = nameAt;
      c.nameEnd[lines] = nameEnd;
      c.rank[lines] = textRank(type, buf, nameAt, nameEnd);
      c.module[lines] = module;
      lines++;
    }
    const restricted = lines > 0 && !sawNonZero;

    // Each module's symbols bound only each other: ordered by module, then address.
    const byModule = sortedOrder(lines, c.module, c.hi, c.lo);
    const spans = restricted ? 0 : lines;
    const span = {
      hi: new Uint32Array(spans),
      lo: new Uint32Array(spans),
      endHi: new Uint32Array(spans),
      endLo: new Uint32Array(spans),
      symbol: new Uint32Array(spans),
      module: new Uint32Array(spans),
    };
    let count = 0;
    for (let i = 0; i < spans;) {
      const first = byModule[i];
      const hi = c.hi[first], lo = c.lo[first], mod = c.module[first];
      let best = -1;
      let j = i;
      for (
        ;
        j < lines && c.hi[byModule[j]] === hi && c.lo[byModule[j]] === lo &&
        c.module[byModule[j]] === mod;
        j++
      ) {
        const e = byModule[j];
        if (c.rank[e] >= 0 && (best < 0 || betterName(buf, c, e, best))) best = e;
      }
      if (best >= 0) {
        span.hi[count] = hi;
        span.lo[count] = lo;
        if (j < lines && c.module[byModule[j]] === mod) {
          span.endHi[count] = c.hi[byModule[j]];
          span.endLo[count] = c.lo[byModule[j]];
        } else {
          // Like perf: up to the next page boundary plus one page. Kernel addresses are
          // page-aligned far above 2^32, so only the low half moves (carry handled below).
          const endLo = Math.ceil(lo / PAGE) * PAGE + PAGE;
          span.endHi[count] = endLo >= 0x1_0000_0000 ? hi + 1 : hi;
          span.endLo[count] = endLo % 0x1_0000_0000;
        }
        span.symbol[count] = best;
        span.module[count] = mod;
        count++;
      }
      i = j;
    }
    const order = sortedOrder(count, new Uint32Array(count), span.hi, span.lo);
    // Filled through 32-bit views (little-endian, as on x86-64 and arm64) to avoid a BigInt per
    // symbol.
    const starts = new BigUint64Array(count);
    const ends = new BigUint64Array(count);
    const s32 = new Uint32Array(starts.buffer);
    const e32 = new Uint32Array(ends.buffer);
    const nameAt = new Uint32Array(count + 1);
    const module = new Uint32Array(count);
    let nameBytes = 0;
    for (let k = 0; k < count; k++) {
      nameBytes += c.nameEnd[span.symbol[k]] - c.nameAt[span.symbol[k]];
    }
    const names = new Uint8Array(nameBytes);
    for (let k = 0, out = 0; k < count; k++) {
      const i = order[k];
      const sym = span.symbol[i];
      s32[2 * k] = span.lo[i];
      s32[2 * k + 1] = span.hi[i];
      e32[2 * k] = span.endLo[i];
      e32[2 * k + 1] = span.endHi[i];
      names.set(buf.subarray(c.nameAt[sym], c.nameEnd[sym]), out);
      nameAt[k] = out;
      out += c.nameEnd[sym] - c.nameAt[sym];
      nameAt[k + 1] = out;
      module[k] = span.module[i];
    }
    // A guessed page-long end may run into another region (the next module); the symbol that
    // starts there owns those addresses.
    for (let k = 0; k + 1 < count; k++) if (ends[k] > starts[k + 1]) ends[k] = starts[k + 1];
    return new Kallsyms(restricted, starts, ends, names, nameAt, module, moduleNames);
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
    const module = this.#moduleNames[this.#module[i]];
    const offset = addr - starts[i];
    const name = utf8.decode(this.#names.subarray(this.#nameAt[i], this.#nameAt[i + 1]));
    return module === undefined ? { name, offset } : { name, module, offset };
  }
}

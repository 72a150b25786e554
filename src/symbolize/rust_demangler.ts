/**
 * Rust symbol names, printed as rustc-demangle's alternate form prints them (no crate hashes):
 * the v0 mangling (`_R…`, what rustc uses for its own libraries and, increasingly, for every
 * crate) and the legacy one (`_ZN…17h<hash>E`).
 *
 * v0 names refer back to earlier parts of themselves (`B<offset>_`), so a short name can expand
 * exponentially. As for C++, the input length, the recursion depth, the print steps and the
 * output length are bounded, and any limit reached returns undefined (the caller keeps the
 * mangled name).
 */
import { DEFAULT_LIMITS, type DemangleLimits } from "./itanium_demangler.ts";

const MAX_DEPTH = 200;

class Bail {
  constructor(readonly why: string) {}
}

function bail(why: string): never {
  throw new Bail(why);
}

const BASIC_TYPES: Record<string, string> = {
  a: "i8",
  b: "bool",
  c: "char",
  d: "f64",
  e: "str",
  f: "f32",
  h: "u8",
  i: "isize",
  j: "usize",
  l: "i32",
  m: "u32",
  n: "i128",
  o: "u128",
  s: "i16",
  t: "u16",
  u: "()",
  v: "...",
  x: "i64",
  y: "u64",
  z: "!",
  p: "_",
};

/**
 * A printer that parses as it goes, as rustc-demangle does: a back-reference is printed by
 * parsing again from where it points, which is what makes expansion cost print steps.
 */
class V0Printer {
  pos: number;
  out = "";
  steps = 0;
  depth = 0;
  /** Lifetimes bound by enclosing `for<…>` binders. */
  boundLifetimes = 0;

  constructor(readonly s: string, readonly limits: DemangleLimits, start: number) {
    this.pos = start;
  }

  add(t: string): void {
    this.out += t;
    if (this.out.length > this.limits.maxOutput) bail("output too long");
  }
  step(): void {
    if (++this.steps > this.limits.maxSteps) bail("too much work");
  }
  peek(): string {
    return this.s[this.pos] ?? "";
  }
  eat(c: string): boolean {
    if (this.s[this.pos] === c) {
      this.pos++;
      return true;
    }
    return false;
  }
  next(): string {
    if (this.pos >= this.s.length) bail("unexpected end");
    return this.s[this.pos++];
  }

  /** <base-62-number>: "_" is 0, else digits then "_", plus one. */
  base62(): number {
    if (this.eat("_")) return 0;
    let v = 0;
    // Crate disambiguators are 64-bit hashes (11 digits): exact below 2^53 is all that matters,
    // since only small numbers (back-references, lifetimes) are used.
    for (let digits = 0;; digits++) {
      const c = this.next();
      if (c === "_") break;
      if (digits >= 12) bail("number too long");
      const d = c >= "0" && c <= "9"
        ? c.charCodeAt(0) - 48
        : c >= "a" && c <= "z"
        ? c.charCodeAt(0) - 87
        : c >= "A" && c <= "Z"
        ? c.charCodeAt(0) - 29
        : bail("bad base-62 digit");
      v = v * 62 + d;
    }
    return v + 1;
  }

  /** [tag <base-62-number>]: 0 when absent, else the number plus one. */
  optBase62(tag: string): number {
    return this.eat(tag) ? this.base62() + 1 : 0;
  }

  decimal(): number {
    const start = this.pos;
    if (this.peek() === "0") {
      this.pos++;
      return 0;
    }
    while (/[0-9]/.test(this.peek())) this.pos++;
    if (this.pos === start || this.pos - start > 9) bail("bad decimal");
    return Number(this.s.slice(start, this.pos));
  }

  /** <undisambiguated-identifier> = ["u"] <decimal> ["_"] <bytes> */
  ident(): string {
    const puny = this.eat("u");
    const len = this.decimal();
    this.eat("_");
    if (this.pos + len > this.s.length) bail("identifier runs past the end");
    const raw = this.s.slice(this.pos, this.pos + len);
    this.pos += len;
    return puny ? decodePunycode(raw) : raw;
  }

  /** Runs `f` at the position a back-reference points to, then returns here. */
  backref(f: () => void): void {
    const start = this.pos - 1; // the "B"
    const target = this.base62() + 2; // offsets count from after "_R"
    if (target >= start) bail("back-reference does not point back");
    const resume = this.pos;
    this.pos = target;
    this.enter();
    try {
      f();
    } finally {
      this.depth--;
    }
    this.pos = resume;
  }

  enter(): void {
    this.step();
    if (++this.depth > MAX_DEPTH) bail("nesting too deep");
  }

  path(inValue: boolean): void {
    this.enter();
    try {
      this.pathInner(inValue);
    } finally {
      this.depth--;
    }
  }

  pathInner(inValue: boolean): void {
    const tag = this.next();
    switch (tag) {
      case "C": {
        this.optBase62("s");
        this.add(this.ident());
        return;
      }
      case "M": {
        this.optBase62("s");
        this.skipPath();
        this.add("<");
        this.type();
        this.add(">");
        return;
      }
      case "X": // <T as Trait> of a trait impl, whose own path is not printed
      case "Y": { // <T as Trait> of a trait definition
        if (tag === "X") {
          this.optBase62("s");
          this.skipPath();
        }
        this.add("<");
        this.type();
        this.add(" as ");
        this.path(false);
        this.add(">");
        return;
      }
      case "N": {
        const ns = this.next();
        this.path(inValue);
        const dis = this.optBase62("s");
        const name = this.ident();
        if (ns >= "A" && ns <= "Z") {
          this.add("::{");
          this.add(ns === "C" ? "closure" : ns === "S" ? "shim" : ns);
          if (name) this.add(`:${name}`);
          this.add(`#${dis}}`);
        } else if (ns >= "a" && ns <= "z") {
          if (name) this.add(`::${name}`);
        } else {
          bail("bad namespace");
        }
        return;
      }
      case "I": {
        this.path(inValue);
        if (inValue) this.add("::");
        this.add("<");
        this.genericArgs();
        this.add(">");
        return;
      }
      case "B":
        this.backref(() => this.path(inValue));
        return;
      default:
        bail(`unknown path tag ${tag}`);
    }
  }

  /** The impl's own path is not printed: parse past it with output suppressed. */
  skipPath(): void {
    const saved = this.out;
    this.path(false);
    this.out = saved;
  }

  genericArgs(): void {
    let first = true;
    while (!this.eat("E")) {
      if (this.pos >= this.s.length) bail("unterminated generic arguments");
      if (!first) this.add(", ");
      first = false;
      this.genericArg();
    }
  }

  genericArg(): void {
    if (this.eat("L")) {
      this.lifetime(this.base62());
    } else if (this.eat("K")) {
      this.constant();
    } else {
      this.type();
    }
  }

  lifetime(index: number): void {
    if (index === 0) {
      this.add("'_");
      return;
    }
    const depth = this.boundLifetimes - index;
    if (depth < 0) bail("unbound lifetime");
    this.add(depth < 26 ? `'${String.fromCharCode(97 + depth)}` : `'_${depth}`);
  }

  /** `for<'a, …>`, printed before what it binds. */
  binder(): number {
    const n = this.optBase62("G");
    if (n === 0) return 0;
    if (n > 64) bail("too many bound lifetimes");
    this.add("for<");
    for (let i = 0; i < n; i++) {
      if (i > 0) this.add(", ");
      this.boundLifetimes++;
      this.lifetime(1);
    }
    this.add("> ");
    return n;
  }

  type(): void {
    this.enter();
    try {
      this.typeInner();
    } finally {
      this.depth--;
    }
  }

  typeInner(): void {
    const c = this.peek();
    if (BASIC_TYPES[c]) {
      this.pos++;
      this.add(BASIC_TYPES[c]);
      return;
    }
    this.pos++;
    switch (c) {
      case "R":
      case "Q": {
        this.add(c === "R" ? "&" : "&mut ");
        if (this.eat("L")) {
          const lt = this.base62();
          if (lt !== 0) {
            // Written before "mut": &'a mut T.
            this.out = this.out.slice(0, this.out.length - (c === "R" ? 1 : 5));
            this.add("&");
            this.lifetime(lt);
            this.add(c === "R" ? " " : " mut ");
          }
        }
        this.type();
        return;
      }
      case "P":
        this.add("*const ");
        this.type();
        return;
      case "O":
        this.add("*mut ");
        this.type();
        return;
      case "A":
        this.add("[");
        this.type();
        this.add("; ");
        this.constant();
        this.add("]");
        return;
      case "S":
        this.add("[");
        this.type();
        this.add("]");
        return;
      case "T": {
        this.add("(");
        let n = 0;
        while (!this.eat("E")) {
          if (this.pos >= this.s.length) bail("unterminated tuple");
          if (n > 0) this.add(", ");
          this.type();
          n++;
        }
        if (n === 1) this.add(",");
        this.add(")");
        return;
      }
      case "F": {
        const bound = this.binder();
        if (this.eat("U")) this.add("unsafe ");
        if (this.eat("K")) {
          const abi = this.eat("C") ? "C" : this.ident().replaceAll("_", "-");
          this.add(`extern "${abi}" `);
        }
        this.add("fn(");
        let n = 0;
        while (!this.eat("E")) {
          if (this.pos >= this.s.length) bail("unterminated fn type");
          if (n++ > 0) this.add(", ");
          this.type();
        }
        this.add(")");
        if (this.eat("u")) {
          // returns ()
        } else {
          this.add(" -> ");
          this.type();
        }
        this.boundLifetimes -= bound;
        return;
      }
      case "D": {
        this.add("dyn ");
        const bound = this.binder();
        let n = 0;
        while (!this.eat("E")) {
          if (this.pos >= this.s.length) bail("unterminated dyn bounds");
          if (n++ > 0) this.add(" + ");
          this.dynTrait();
        }
        this.boundLifetimes -= bound;
        if (!this.eat("L")) bail("dyn without a lifetime");
        const lt = this.base62();
        if (lt !== 0) {
          this.add(" + ");
          this.lifetime(lt);
        }
        return;
      }
      case "B":
        this.backref(() => this.type());
        return;
      default:
        // A path names a type: not in value position, so generic arguments have no "::".
        this.pos--;
        this.path(false);
    }
  }

  dynTrait(): void {
    // A trait path with its associated type bindings inside its generic arguments.
    const start = this.out.length;
    this.path(false);
    let open = false;
    while (this.eat("p")) {
      if (!open) {
        if (this.out.endsWith(">")) {
          this.out = this.out.slice(0, -1);
          this.add(", ");
        } else {
          this.add("<");
        }
        open = true;
      } else {
        this.add(", ");
      }
      this.add(this.ident());
      this.add(" = ");
      this.type();
    }
    if (open) this.add(">");
    void start;
  }

  constant(): void {
    this.enter();
    try {
      if (this.eat("B")) {
        this.backref(() => this.constant());
        return;
      }
      const c = this.next();
      if (c === "p") {
        this.add("_");
        return;
      }
      if (BASIC_TYPES[c] === undefined) bail(`unsupported constant type ${c}`);
      const neg = this.eat("n");
      const start = this.pos;
      while (/[0-9a-f]/.test(this.peek())) this.pos++;
      const hex = this.s.slice(start, this.pos);
      if (!this.eat("_")) bail("unterminated constant");
      if (c === "b") {
        this.add(hex === "0" ? "false" : hex === "1" ? "true" : bail("bad bool"));
        return;
      }
      if (c === "c") {
        const cp = parseInt(hex || "0", 16);
        if (!(cp <= 0x10ffff)) bail("bad char");
        this.add(JSON.stringify(String.fromCodePoint(cp)).replace(/^"|"$/g, "'"));
        return;
      }
      const v = hex.length === 0 ? 0n : BigInt("0x" + hex);
      this.add((neg ? "-" : "") + v.toString());
    } finally {
      this.depth--;
    }
  }
}

/** RFC 3492 Punycode, as Rust's v0 identifiers use it (with "_" for the delimiter). */
function decodePunycode(input: string): string {
  const split = input.lastIndexOf("_");
  const out: number[] = split >= 0 ? [...input.slice(0, split)].map((c) => c.charCodeAt(0)) : [];
  let i = 0;
  let n = 128;
  let bias = 72;
  let pos = split >= 0 ? split + 1 : 0;
  while (pos < input.length) {
    const oldi = i;
    let w = 1;
    for (let k = 36;; k += 36) {
      if (pos >= input.length) bail("bad punycode");
      const c = input.charCodeAt(pos++);
      const digit = c >= 97 && c <= 122 ? c - 97 : c >= 48 && c <= 57 ? c - 22 : bail("punycode");
      i += digit * w;
      const t = k <= bias ? 1 : k >= bias + 26 ? 26 : k - bias;
      if (digit < t) break;
      w *= 36 - t;
      if (i > 0x10ffff * 64) bail("punycode overflow");
    }
    const len = out.length + 1;
    let delta = oldi === 0 ? Math.floor((i - oldi) / 700) : Math.floor((i - oldi) / 2);
    delta += Math.floor(delta / len);
    let k = 0;
    while (delta > 455) {
      delta = Math.floor(delta / 35);
      k += 36;
    }
    bias = k + Math.floor((36 * delta) / (delta + 38));
    n += Math.floor(i / len);
    i %= len;
    if (n > 0x10ffff || out.length > 1024) bail("punycode overflow");
    out.splice(i, 0, n);
    i++;
  }
  return String.fromCodePoint(...out);
}

/** A v0 name (`_R…`), or undefined. */
export function demangleRustV0(
  mangled: string,
  limits: DemangleLimits = DEFAULT_LIMITS,
  stats?: { steps: number },
): string | undefined {
  if (!mangled.startsWith("_R") || mangled.length > limits.maxInput) return undefined;
  // "." and "$" start vendor suffixes (LLVM's .llvm.123); they are not part of the name.
  const end = mangled.search(/[.$]/);
  const s = end < 0 ? mangled : mangled.slice(0, end);
  const p = new V0Printer(s, limits, 2);
  try {
    if (/[0-9]/.test(p.peek())) {
      if (p.decimal() !== 0) return undefined; // an encoding version we do not know
    }
    p.path(true);
    // What remains may be the instantiating crate, which is not printed.
    if (p.pos < s.length) {
      const saved = p.out;
      p.path(false);
      p.out = saved;
    }
    if (p.pos !== s.length) return undefined;
    return p.out;
  } catch (e) {
    if (e instanceof Bail || e instanceof RangeError) return undefined;
    throw e;
  } finally {
    if (stats) stats.steps = p.steps;
  }
}

const LEGACY_ESCAPES: Record<string, string> = {
  SP: "@",
  BP: "*",
  RF: "&",
  LT: "<",
  GT: ">",
  LP: "(",
  RP: ")",
  C: ",",
};

/**
 * A legacy Rust name: an Itanium nested name of plain identifiers whose last one is the hash
 * `h` + 16 hex digits. Returns undefined for anything else (a C++ name, most likely).
 */
export function demangleRustLegacy(mangled: string, maxInput = DEFAULT_LIMITS.maxInput) {
  if (!mangled.startsWith("_ZN") || mangled.length > maxInput) return undefined;
  const parts: string[] = [];
  let pos = 3;
  while (mangled[pos] !== "E") {
    const m = /^[0-9]+/.exec(mangled.slice(pos, pos + 10));
    if (!m) return undefined;
    const len = Number(m[0]);
    pos += m[0].length;
    if (len === 0 || pos + len > mangled.length) return undefined;
    parts.push(mangled.slice(pos, pos + len));
    pos += len;
  }
  const rest = mangled.slice(pos + 1);
  if (rest !== "" && !rest.startsWith(".")) return undefined;
  const hash = parts[parts.length - 1];
  if (parts.length < 2 || !/^h[0-9a-f]{16}$/.test(hash)) return undefined;
  const names: string[] = [];
  for (const part of parts.slice(0, -1)) {
    let p = part.startsWith("_$") ? part.slice(1) : part;
    let out = "";
    while (p.length > 0) {
      if (p.startsWith("..")) {
        out += "::";
        p = p.slice(2);
      } else if (p[0] === "$") {
        const close = p.indexOf("$", 1);
        if (close < 0) return undefined;
        const code = p.slice(1, close);
        let ch = LEGACY_ESCAPES[code];
        if (ch === undefined && /^u[0-9a-f]{1,6}$/.test(code)) {
          const cp = parseInt(code.slice(1), 16);
          if (cp > 0x10ffff) return undefined;
          ch = String.fromCodePoint(cp);
        }
        if (ch === undefined) return undefined;
        out += ch;
        p = p.slice(close + 1);
      } else {
        const next = p.search(/\$|\.\./);
        const chunk = next < 0 ? p : p.slice(0, next);
        out += chunk;
        p = p.slice(chunk.length);
      }
    }
    names.push(out);
  }
  return names.join("::");
}

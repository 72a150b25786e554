/**
 * Itanium C++ ABI demangling (`_Z…` names), printed the way GNU c++filt prints them.
 *
 * Symbol names come from binaries any user can write, and the mangling's back-references make
 * tiny names expand enormously: a 246-byte name can name a 100 MB type. So the demangler bounds
 * everything: the input's length, the parser's recursion and node count, the printer's steps and
 * the output's length. Any limit reached, or anything it does not understand, returns undefined
 * and the caller keeps the mangled name.
 *
 * The parser builds a tree in which substitutions (S_, S0_ …) and template parameters (T_ …) are
 * shared nodes, not copies, so parsing stays linear in the input; only printing expands them,
 * and printing is where the step and length budgets apply.
 */

export interface DemangleLimits {
  /** Longest mangled name attempted. */
  maxInput: number;
  /** Longest output; a longer one is refused, not cut. */
  maxOutput: number;
  /** Print steps (node visits) allowed. */
  maxSteps: number;
}

export const DEFAULT_LIMITS: DemangleLimits = {
  maxInput: 16384,
  maxOutput: 16384,
  maxSteps: 200_000,
};

const MAX_DEPTH = 256;

/** Thrown inside parser or printer to give up; never escapes demangleItanium. */
class Bail {
  constructor(readonly why: string) {}
}

function bail(why: string): never {
  throw new Bail(why);
}

// ---------------------------------------------------------------------------------------------
// Output

class Out {
  s = "";
  /**
   * The last character appended, which c++filt consults before a closing ">" even when what
   * it appended was taken back (the separator of an empty pack): matched for identical output.
   */
  lastAppended = "";
  steps = 0;
  /** Template argument lists in scope, innermost last (T_ refers to the last one). */
  templates: TemplateArgs[] = [];
  /** Function-parameter packs being expanded: the element printed for each Dp. */
  packIndex = -1;
  /** Inside a lambda's signature, where T_ is an `auto` parameter. */
  inLambda = 0;
  packMax = -1;
  constructor(readonly limits: DemangleLimits) {}
  add(t: string): void {
    if (t === "") return;
    this.s += t;
    this.lastAppended = t[t.length - 1];
    if (this.s.length > this.limits.maxOutput) bail("output too long");
  }
  step(): void {
    if (++this.steps > this.limits.maxSteps) bail("too much work");
  }
  last(): string {
    return this.s.length ? this.s[this.s.length - 1] : "";
  }
}

// ---------------------------------------------------------------------------------------------
// Nodes

abstract class Node {
  /** Parts that print after the declarator (function parameters, array bounds). */
  hasRHS(_o: Out): boolean {
    return false;
  }
  isFunction(_o: Out): boolean {
    return false;
  }
  isArray(_o: Out): boolean {
    return false;
  }
  print(o: Out): void {
    o.step();
    this.left(o);
    this.right(o);
  }
  abstract left(o: Out): void;
  right(_o: Out): void {}
  /** The name a constructor or destructor of this scope is called by. */
  baseName(): string {
    return "";
  }
}

class Name extends Node {
  constructor(readonly name: string) {
    super();
  }
  left(o: Out): void {
    o.add(this.name);
  }
  override baseName(): string {
    return this.name;
  }
}

/** A substitution candidate that names a std:: entity in two forms (Ss, Si, …). */
class StdAbbrev extends Node {
  constructor(readonly full: string, readonly base: string) {
    super();
  }
  left(o: Out): void {
    o.add(this.full);
  }
  override baseName(): string {
    return this.base;
  }
}

class Nested extends Node {
  constructor(readonly qual: Node, readonly name: Node) {
    super();
  }
  left(o: Out): void {
    this.qual.print(o);
    o.add("::");
    this.name.print(o);
  }
  override baseName(): string {
    return this.name.baseName();
  }
}

class Std extends Node {
  constructor(readonly child: Node) {
    super();
  }
  left(o: Out): void {
    o.add("std::");
    this.child.print(o);
  }
  override baseName(): string {
    return this.child.baseName();
  }
}

class Local extends Node {
  constructor(readonly encoding: Node, readonly entity: Node) {
    super();
  }
  left(o: Out): void {
    this.encoding.print(o);
    o.add("::");
    this.entity.print(o);
  }
  override baseName(): string {
    return this.entity.baseName();
  }
}

class AbiTag extends Node {
  constructor(readonly base: Node, readonly tag: string) {
    super();
  }
  left(o: Out): void {
    this.base.print(o);
    o.add(`[abi:${this.tag}]`);
  }
  override baseName(): string {
    return this.base.baseName();
  }
}

class TemplateArgs extends Node {
  constructor(readonly args: Node[]) {
    super();
  }
  left(o: Out): void {
    if (o.lastAppended === "<") o.add(" "); // operator<< <T>, not operator<<<T>
    o.add("<");
    printList(o, this.args);
    if (o.lastAppended === ">") o.add(" ");
    o.add(">");
  }
}

class WithTemplateArgs extends Node {
  constructor(readonly name: Node, readonly args: TemplateArgs) {
    super();
  }
  left(o: Out): void {
    this.name.print(o);
    this.args.print(o);
  }
  override baseName(): string {
    return this.name.baseName();
  }
}

class CtorDtor extends Node {
  constructor(readonly scope: Node, readonly dtor: boolean) {
    super();
  }
  left(o: Out): void {
    o.add((this.dtor ? "~" : "") + this.scope.baseName());
  }
}

class Operator extends Node {
  constructor(readonly op: string) {
    super();
  }
  left(o: Out): void {
    o.add("operator");
    if (/^[a-z]/.test(this.op)) o.add(" ");
    o.add(this.op);
  }
}

class Conversion extends Node {
  constructor(readonly type: Node) {
    super();
  }
  left(o: Out): void {
    o.add("operator ");
    this.type.print(o);
  }
}

class Literal extends Node {
  constructor(readonly text: string) {
    super();
  }
  left(o: Out): void {
    o.add(this.text);
  }
}

class Special extends Node {
  constructor(readonly prefix: string, readonly child: Node) {
    super();
  }
  left(o: Out): void {
    o.add(this.prefix);
    this.child.print(o);
  }
}

class CtorVtable extends Node {
  constructor(readonly first: Node, readonly second: Node) {
    super();
  }
  left(o: Out): void {
    o.add("construction vtable for ");
    this.second.print(o);
    o.add("-in-");
    this.first.print(o);
  }
}

class Closure extends Node {
  constructor(readonly params: Node[], readonly count: number) {
    super();
  }
  left(o: Out): void {
    o.add("{lambda(");
    o.inLambda++;
    try {
      printParams(o, this.params);
    } finally {
      o.inLambda--;
    }
    o.add(`)#${this.count}}`);
  }
}

class Unnamed extends Node {
  constructor(readonly count: number) {
    super();
  }
  left(o: Out): void {
    o.add(`{unnamed type#${this.count}}`);
  }
}

class Builtin extends Node {
  constructor(readonly name: string) {
    super();
  }
  left(o: Out): void {
    o.add(this.name);
  }
}

class Qualified extends Node {
  constructor(readonly child: Node, readonly quals: string) {
    super();
  }
  override hasRHS(o: Out): boolean {
    return this.child.hasRHS(o);
  }
  override isFunction(o: Out): boolean {
    return this.child.isFunction(o);
  }
  override isArray(o: Out): boolean {
    return this.child.isArray(o);
  }
  /** Qualifiers a template argument already has are not printed twice (T const, T = int const). */
  #extra(o: Out): string {
    const inner = resolve(o, this.child);
    if (!(inner instanceof Qualified) || inner === this) return this.quals;
    return this.quals.split(" ").filter((q) => q && !inner.quals.includes(` ${q}`))
      .map((q) => ` ${q}`).join("");
  }
  left(o: Out): void {
    this.child.left(o);
    if (!this.child.isFunction(o)) o.add(this.#extra(o));
  }
  override right(o: Out): void {
    this.child.right(o);
    if (this.child.isFunction(o)) o.add(this.#extra(o));
  }
}

class Vendor extends Node {
  constructor(readonly child: Node, readonly qual: string) {
    super();
  }
  left(o: Out): void {
    this.child.print(o);
    o.add(" " + this.qual);
  }
}

class VectorType extends Node {
  constructor(readonly elem: Node, readonly dim: string) {
    super();
  }
  left(o: Out): void {
    this.elem.print(o);
    o.add(` __vector(${this.dim})`);
  }
}

/** A pointer, reference or rvalue reference. */
class PointerLike extends Node {
  constructor(readonly pointee: Node, readonly sigil: "*" | "&" | "&&") {
    super();
  }
  override hasRHS(o: Out): boolean {
    return this.pointee.hasRHS(o);
  }
  /** Reference collapsing: & & is &, & && is &, && && is &&. */
  #collapse(o: Out): [Node, string] {
    let p: Node = this.pointee;
    let sigil: string = this.sigil;
    if (sigil !== "*") {
      for (let i = 0; i < 64; i++) {
        const t = resolve(o, p);
        if (!(t instanceof PointerLike) || t.sigil === "*") break;
        if (t.sigil === "&") sigil = "&";
        p = t.pointee;
      }
    }
    return [p, sigil];
  }
  left(o: Out): void {
    const [p, sigil] = this.#collapse(o);
    p.left(o);
    if (p.isArray(o)) o.add(" ");
    if (p.isArray(o) || p.isFunction(o)) o.add("(");
    o.add(sigil);
  }
  override right(o: Out): void {
    const [p] = this.#collapse(o);
    if (p.isArray(o) || p.isFunction(o)) o.add(")");
    p.right(o);
  }
}

class MemberPointer extends Node {
  constructor(readonly cls: Node, readonly member: Node) {
    super();
  }
  override hasRHS(o: Out): boolean {
    return this.member.hasRHS(o);
  }
  left(o: Out): void {
    this.member.left(o);
    if (this.member.isArray(o) || this.member.isFunction(o)) o.add("(");
    else o.add(" ");
    this.cls.print(o);
    o.add("::*");
  }
  override right(o: Out): void {
    if (this.member.isArray(o) || this.member.isFunction(o)) o.add(")");
    this.member.right(o);
  }
}

class ArrayType extends Node {
  constructor(readonly elem: Node, readonly dim: Node | string) {
    super();
  }
  override hasRHS(): boolean {
    return true;
  }
  override isArray(): boolean {
    return true;
  }
  left(o: Out): void {
    this.elem.left(o);
  }
  override right(o: Out): void {
    if (o.last() !== "]") o.add(" ");
    o.add("[");
    if (typeof this.dim === "string") o.add(this.dim);
    else this.dim.print(o);
    o.add("]");
    this.elem.right(o);
  }
}

class FunctionType extends Node {
  constructor(
    readonly ret: Node,
    readonly params: Node[],
    readonly quals: string,
    readonly ref: string,
    readonly except: string,
  ) {
    super();
  }
  override hasRHS(): boolean {
    return true;
  }
  override isFunction(): boolean {
    return true;
  }
  left(o: Out): void {
    this.ret.left(o);
    if (!this.ret.hasRHS(o)) o.add(" ");
  }
  override right(o: Out): void {
    o.add("(");
    printParams(o, this.params);
    o.add(")");
    this.ret.right(o);
    o.add(this.quals + this.ref + this.except);
  }
}

/** A function's name with its signature: `ret name(params) const`. */
class Encoding extends Node {
  constructor(
    readonly ret: Node | undefined,
    readonly name: Node,
    readonly params: Node[],
    readonly quals: string,
    readonly ref: string,
  ) {
    super();
  }
  left(o: Out): void {
    const args = templateArgsOf(this.name);
    if (args) o.templates.push(args);
    try {
      if (this.ret) {
        this.ret.left(o);
        if (!this.ret.hasRHS(o)) o.add(" ");
      }
      this.name.print(o);
      o.add("(");
      printParams(o, this.params);
      o.add(")");
      this.ret?.right(o);
      o.add(this.quals + this.ref);
    } finally {
      if (args) o.templates.pop();
    }
  }
  override baseName(): string {
    return this.name.baseName();
  }
}

class Clone extends Node {
  constructor(readonly encoding: Node, readonly suffix: string) {
    super();
  }
  left(o: Out): void {
    this.encoding.print(o);
    o.add(` [clone ${this.suffix}]`);
  }
}

class TemplateParam extends Node {
  constructor(readonly index: number) {
    super();
  }
  target(o: Out): Node {
    const args = o.templates[o.templates.length - 1];
    if (!args || this.index >= args.args.length) bail("template parameter out of range");
    let t = args.args[this.index];
    // Inside a pack expansion the pack contributes its current element.
    if (t instanceof ArgPack && o.packIndex >= 0) {
      if (o.packIndex >= t.args.length) bail("pack index out of range");
      t = t.args[o.packIndex];
    }
    return t;
  }
  override hasRHS(o: Out): boolean {
    return o.inLambda === 0 && guard(o, () => this.target(o).hasRHS(o));
  }
  override isFunction(o: Out): boolean {
    return o.inLambda === 0 && guard(o, () => this.target(o).isFunction(o));
  }
  override isArray(o: Out): boolean {
    return o.inLambda === 0 && guard(o, () => this.target(o).isArray(o));
  }
  left(o: Out): void {
    if (o.inLambda > 0) {
      o.add(`auto:${this.index + 1}`);
      return;
    }
    const t = this.target(o);
    // Printing the argument in the scope it was written in: T_ there means its own templates.
    const saved = o.templates;
    o.templates = saved.slice(0, -1);
    try {
      t.left(o);
    } finally {
      o.templates = saved;
    }
  }
  override right(o: Out): void {
    if (o.inLambda > 0) return;
    const t = this.target(o);
    const saved = o.templates;
    o.templates = saved.slice(0, -1);
    try {
      t.right(o);
    } finally {
      o.templates = saved;
    }
  }
}

/** Type queries recurse through template parameters; a cycle must not hang them. */
function guard(o: Out, f: () => boolean): boolean {
  o.step();
  return f();
}

/** A template argument pack (J…E), printed as its elements. */
class ArgPack extends Node {
  constructor(readonly args: Node[]) {
    super();
  }
  left(o: Out): void {
    printList(o, this.args);
  }
}

/** Dp: a pack expansion, printed as one element per element of the pack it refers to. */
class PackExpansion extends Node {
  constructor(readonly child: Node) {
    super();
  }
  left(o: Out): void {
    const n = packSize(o, this.child);
    if (n < 0) {
      this.child.print(o);
      o.add("...");
      return;
    }
    const saved = o.packIndex;
    try {
      for (let i = 0; i < n; i++) {
        if (i > 0) o.add(", ");
        o.packIndex = i;
        this.child.print(o);
      }
    } finally {
      o.packIndex = saved;
    }
  }
}

/** The size of the first argument pack `n` refers to through template parameters; -1 if none. */
function packSize(o: Out, n: Node, depth = 0): number {
  o.step();
  if (depth > 32) return -1;
  if (n instanceof TemplateParam) {
    const args = o.templates[o.templates.length - 1];
    const t = args?.args[n.index];
    return t instanceof ArgPack ? t.args.length : -1;
  }
  for (const c of children(n)) {
    const s = packSize(o, c, depth + 1);
    if (s >= 0) return s;
  }
  return -1;
}

function children(n: Node): Node[] {
  if (n instanceof PointerLike) return [n.pointee];
  if (n instanceof Qualified || n instanceof Vendor) return [n.child];
  if (n instanceof FunctionType) return [n.ret, ...n.params];
  if (n instanceof WithTemplateArgs) return [n.name, ...n.args.args];
  if (n instanceof Nested) return [n.qual, n.name];
  if (n instanceof ArrayType) return [n.elem];
  if (n instanceof MemberPointer) return [n.cls, n.member];
  return [];
}

/** What a template parameter stands for here (itself inside a lambda, where it is `auto`). */
function resolve(o: Out, n: Node): Node {
  let t = n;
  for (let i = 0; i < 32 && t instanceof TemplateParam && o.inLambda === 0; i++) t = t.target(o);
  return t;
}

function templateArgsOf(name: Node): TemplateArgs | undefined {
  let n = name;
  for (;;) {
    if (n instanceof WithTemplateArgs) return n.args;
    if (n instanceof AbiTag) n = n.base;
    else if (n instanceof Nested) n = n.name;
    else if (n instanceof Local) n = n.entity;
    else if (n instanceof Std) n = n.child;
    else return undefined;
  }
}

/**
 * Elements separated by ", ". An empty pack prints nothing; as in c++filt, a separator goes only
 * when nothing at all follows it (so "(a, , b)" stays, "<a, >" becomes "<a>").
 */
function printList(o: Out, nodes: Node[]): void {
  if (nodes.length === 0) return;
  nodes[0].print(o);
  const marks: number[] = [];
  for (let i = 1; i < nodes.length; i++) {
    o.add(", ");
    marks.push(o.s.length);
    nodes[i].print(o);
  }
  for (let i = marks.length - 1; i >= 0 && o.s.length === marks[i]; i--) {
    o.s = o.s.slice(0, marks[i] - 2);
  }
}

function printParams(o: Out, params: Node[]): void {
  if (params.length === 1 && params[0] instanceof Builtin && params[0].name === "void") return;
  printList(o, params);
}

// Expressions --------------------------------------------------------------------------------

/** Printed without parentheses when they are an operand. */
function isSimple(n: Node): boolean {
  return n instanceof Name || n instanceof Nested || n instanceof FunctionParam ||
    n instanceof InitList;
}

function subexpr(o: Out, n: Node): void {
  const simple = isSimple(n);
  if (!simple) o.add("(");
  n.print(o);
  if (!simple) o.add(")");
}

class FunctionParam extends Node {
  constructor(readonly index: number) {
    super();
  }
  left(o: Out): void {
    o.add(`{parm#${this.index + 1}}`);
  }
}

class Binary extends Node {
  constructor(readonly op: string, readonly l: Node, readonly r: Node) {
    super();
  }
  left(o: Out): void {
    const wrap = this.op === ">";
    if (wrap) o.add("(");
    if (this.op === "[]") {
      subexpr(o, this.l);
      o.add("[");
      this.r.print(o);
      o.add("]");
    } else if (this.op === "." || this.op === "->") {
      subexpr(o, this.l);
      o.add(this.op);
      this.r.print(o);
    } else {
      subexpr(o, this.l);
      o.add(this.op);
      subexpr(o, this.r);
    }
    if (wrap) o.add(")");
  }
}

class Prefix extends Node {
  constructor(readonly op: string, readonly child: Node) {
    super();
  }
  left(o: Out): void {
    o.add(this.op);
    let operand = this.child;
    // The address of a qualified function is printed without its parameter list.
    if (
      this.op === "&" && operand instanceof Encoding && operand.quals === "" &&
      operand.ref === "" && (operand.name instanceof Nested || operand.name instanceof Std)
    ) {
      operand = operand.name;
    }
    subexpr(o, operand);
  }
}

class Postfix extends Node {
  constructor(readonly op: string, readonly child: Node) {
    super();
  }
  left(o: Out): void {
    subexpr(o, this.child);
    o.add(this.op);
  }
}

class Ternary extends Node {
  constructor(readonly c: Node, readonly a: Node, readonly b: Node) {
    super();
  }
  left(o: Out): void {
    subexpr(o, this.c);
    o.add("?");
    subexpr(o, this.a);
    o.add(" : ");
    subexpr(o, this.b);
  }
}

class Call extends Node {
  constructor(readonly fn: Node, readonly args: Node[]) {
    super();
  }
  left(o: Out): void {
    subexpr(o, this.fn);
    o.add("(");
    printList(o, this.args);
    o.add(")");
  }
}

/** Text, then a child (in parentheses when asked), then text: sizeof (T), static_cast<T>(e). */
class Wrapped extends Node {
  constructor(readonly before: string, readonly child: Node, readonly after: string) {
    super();
  }
  left(o: Out): void {
    o.add(this.before);
    this.child.print(o);
    o.add(this.after);
  }
}

class Cast extends Node {
  constructor(readonly kind: string, readonly type: Node, readonly expr: Node) {
    super();
  }
  left(o: Out): void {
    o.add(`${this.kind}<`);
    this.type.print(o);
    o.add(">(");
    this.expr.print(o);
    o.add(")");
  }
}

class Conv extends Node {
  constructor(readonly type: Node, readonly args: Node[]) {
    super();
  }
  left(o: Out): void {
    o.add("(");
    this.type.print(o);
    o.add(")");
    if (this.args.length === 1) {
      subexpr(o, this.args[0]);
    } else {
      o.add("(");
      printList(o, this.args);
      o.add(")");
    }
  }
}

class InitList extends Node {
  constructor(readonly type: Node | undefined, readonly items: Node[]) {
    super();
  }
  left(o: Out): void {
    this.type?.print(o);
    o.add("{");
    printList(o, this.items);
    o.add("}");
  }
}

class NewExpr extends Node {
  constructor(
    readonly global: boolean,
    readonly array: boolean,
    readonly placement: Node[],
    readonly type: Node,
    readonly init: Node[] | undefined,
  ) {
    super();
  }
  left(o: Out): void {
    if (this.global) o.add("::");
    o.add(this.array ? "new[]" : "new");
    if (this.placement.length) {
      o.add(" (");
      printList(o, this.placement);
      o.add(")");
    }
    o.add(" ");
    this.type.print(o);
    if (this.init) {
      o.add("(");
      printList(o, this.init);
      o.add(")");
    }
  }
}

class Decltype extends Node {
  constructor(readonly expr: Node) {
    super();
  }
  left(o: Out): void {
    o.add("decltype (");
    this.expr.print(o);
    o.add(")");
  }
}

/** sp: an expression pack expansion; like Dp, printed element by element when it is a pack. */
class PackExpr extends PackExpansion {}

/** sizeof...(pack): the number of elements when the pack is known. */
class SizeofPack extends Node {
  constructor(readonly child: Node) {
    super();
  }
  left(o: Out): void {
    const n = packSize(o, this.child);
    if (n >= 0) {
      o.add(String(n));
      return;
    }
    o.add("sizeof...(");
    this.child.print(o);
    o.add(")");
  }
}

// ---------------------------------------------------------------------------------------------
// Parser

const BUILTINS: Record<string, string> = {
  v: "void",
  w: "wchar_t",
  b: "bool",
  c: "char",
  a: "signed char",
  h: "unsigned char",
  s: "short",
  t: "unsigned short",
  i: "int",
  j: "unsigned int",
  l: "long",
  m: "unsigned long",
  x: "long long",
  y: "unsigned long long",
  n: "__int128",
  o: "unsigned __int128",
  f: "float",
  d: "double",
  e: "long double",
  g: "__float128",
  z: "...",
};

const D_BUILTINS: Record<string, string> = {
  d: "decimal64",
  e: "decimal128",
  f: "decimal32",
  h: "half",
  i: "char32_t",
  s: "char16_t",
  u: "char8_t",
  a: "auto",
  c: "decltype(auto)",
  n: "decltype(nullptr)",
};

/** Operator codes: [printed name, arity] (arity only matters in expressions). */
const OPERATORS: Record<string, [string, number]> = {
  nw: ["new", 3],
  na: ["new[]", 3],
  dl: ["delete", 1],
  da: ["delete[]", 1],
  ps: ["+", 1],
  ng: ["-", 1],
  ad: ["&", 1],
  de: ["*", 1],
  co: ["~", 1],
  pl: ["+", 2],
  mi: ["-", 2],
  ml: ["*", 2],
  dv: ["/", 2],
  rm: ["%", 2],
  an: ["&", 2],
  or: ["|", 2],
  eo: ["^", 2],
  aS: ["=", 2],
  pL: ["+=", 2],
  mI: ["-=", 2],
  mL: ["*=", 2],
  dV: ["/=", 2],
  rM: ["%=", 2],
  aN: ["&=", 2],
  oR: ["|=", 2],
  eO: ["^=", 2],
  ls: ["<<", 2],
  rs: [">>", 2],
  lS: ["<<=", 2],
  rS: [">>=", 2],
  eq: ["==", 2],
  ne: ["!=", 2],
  lt: ["<", 2],
  gt: [">", 2],
  le: ["<=", 2],
  ge: [">=", 2],
  ss: ["<=>", 2],
  nt: ["!", 1],
  aa: ["&&", 2],
  oo: ["||", 2],
  pp: ["++", 1],
  mm: ["--", 1],
  cm: [",", 2],
  pm: ["->*", 2],
  pt: ["->", 2],
  cl: ["()", 2],
  ix: ["[]", 2],
  qu: ["?", 3],
  st: ["sizeof ", 1],
  sz: ["sizeof ", 1],
  at: ["alignof ", 1],
  az: ["alignof ", 1],
  aw: ["co_await", 1],
};

/** Integer literal suffixes by type code; other types print as (type)value. */
const LITERAL_SUFFIX: Record<string, string> = {
  i: "",
  j: "u",
  l: "l",
  m: "ul",
  x: "ll",
  y: "ull",
};

class Parser {
  pos = 0;
  depth = 0;
  nodes = 0;
  subs: Node[] = [];

  constructor(readonly s: string) {}

  peek(k = 0): string {
    return this.s[this.pos + k] ?? "";
  }
  eat(c: string): boolean {
    if (this.s.startsWith(c, this.pos)) {
      this.pos += c.length;
      return true;
    }
    return false;
  }
  expect(c: string): void {
    if (!this.eat(c)) bail(`expected ${c} at ${this.pos}`);
  }
  node<T extends Node>(n: T): T {
    if (++this.nodes > 4 * this.s.length + 256) bail("too many nodes");
    return n;
  }
  enter(): void {
    if (++this.depth > MAX_DEPTH) bail("nesting too deep");
  }
  leave(): void {
    this.depth--;
  }

  number(): number {
    const neg = this.eat("n");
    const start = this.pos;
    while (/[0-9]/.test(this.peek())) this.pos++;
    if (this.pos === start) bail("number expected");
    if (this.pos - start > 15) bail("number too long");
    const v = Number(this.s.slice(start, this.pos));
    return neg ? -v : v;
  }

  /** A <seq-id> up to `_`: empty is 0, else base 36 plus one. */
  seqId(): number {
    if (this.eat("_")) return 0;
    const start = this.pos;
    while (/[0-9A-Z]/.test(this.peek())) this.pos++;
    if (this.pos === start || this.pos - start > 8) bail("bad seq-id");
    const v = parseInt(this.s.slice(start, this.pos), 36) + 1;
    this.expect("_");
    return v;
  }

  /** `_ <digit>` or `__ <number> _` after a local name; not printed. */
  discriminator(): void {
    if (this.peek() !== "_") return;
    if (/[0-9]/.test(this.peek(1))) {
      this.pos += 2;
    } else if (this.peek(1) === "_" && /[0-9]/.test(this.peek(2))) {
      this.pos += 2;
      this.number();
      this.expect("_");
    }
  }

  // <mangled-name> ::= _Z <encoding> [. <clone suffix>]*
  mangled(): Node {
    this.expect("_Z");
    let n = this.encoding(true);
    while (this.peek() === "." && /[a-z_0-9]/.test(this.peek(1))) {
      const start = this.pos;
      this.pos++;
      if (/[a-z_]/.test(this.peek())) {
        while (/[a-z_0-9]/.test(this.peek())) this.pos++;
      } else {
        while (/[0-9]/.test(this.peek())) this.pos++;
      }
      while (this.peek() === "." && /[0-9]/.test(this.peek(1))) {
        this.pos++;
        while (/[0-9]/.test(this.peek())) this.pos++;
      }
      n = this.node(new Clone(n, this.s.slice(start, this.pos)));
    }
    if (this.pos !== this.s.length) bail("trailing characters");
    return n;
  }

  /** `local`: the function a local name is in, printed without its return type. */
  encoding(top: boolean, local = false): Node {
    this.enter();
    try {
      const c = this.peek();
      if (c === "T" || (c === "G" && /[VRTA]/.test(this.peek(1)))) return this.special();
      const state = { cv: "", ref: "" };
      const name = this.name(state);
      if (this.atEncodingEnd(top)) return name;
      // A template function (not a constructor, destructor or conversion) mangles its return
      // type first.
      let ret: Node | undefined;
      if (hasTemplateArgs(name) && !isCtorDtorConv(name)) ret = this.type();
      const params: Node[] = [];
      do params.push(this.type()); while (!this.atEncodingEnd(top));
      return this.node(new Encoding(local ? undefined : ret, name, params, state.cv, state.ref));
    } finally {
      this.leave();
    }
  }

  /** No type starts with E or ".", so either ends a parameter list (. begins a clone suffix). */
  atEncodingEnd(_top: boolean): boolean {
    const c = this.peek();
    return c === "" || c === "E" || c === ".";
  }

  special(): Node {
    if (this.eat("TV")) return this.node(new Special("vtable for ", this.type()));
    if (this.eat("TT")) return this.node(new Special("VTT for ", this.type()));
    if (this.eat("TI")) return this.node(new Special("typeinfo for ", this.type()));
    if (this.eat("TS")) return this.node(new Special("typeinfo name for ", this.type()));
    if (this.eat("TH")) return this.node(new Special("TLS init function for ", this.name({})));
    if (this.eat("TW")) return this.node(new Special("TLS wrapper function for ", this.name({})));
    if (this.eat("Th")) {
      this.callOffset("h");
      return this.node(new Special("non-virtual thunk to ", this.encoding(false)));
    }
    if (this.eat("Tv")) {
      this.callOffset("v");
      return this.node(new Special("virtual thunk to ", this.encoding(false)));
    }
    if (this.eat("Tc")) {
      this.callOffset();
      this.callOffset();
      return this.node(new Special("covariant return thunk to ", this.encoding(false)));
    }
    if (this.eat("TC")) {
      const first = this.type();
      this.number();
      this.expect("_");
      return this.node(new CtorVtable(first, this.type()));
    }
    if (this.eat("GV")) return this.node(new Special("guard variable for ", this.name({})));
    if (this.eat("GR")) {
      const name = this.name({});
      const n = this.peek() === "_" ? (this.pos++, 0) : this.seqId();
      return this.node(new Special(`reference temporary #${n} for `, name));
    }
    if (this.eat("GTt")) {
      return this.node(new Special("transaction clone for ", this.encoding(false)));
    }
    if (this.eat("GTn")) {
      return this.node(new Special("non-transaction clone for ", this.encoding(false)));
    }
    if (this.eat("GA")) return this.node(new Special("hidden alias for ", this.encoding(false)));
    return bail("unknown special name");
  }

  /** <call-offset> ::= h <nv-offset> _ | v <v-offset> _ */
  callOffset(kind?: string): void {
    if (kind === undefined) {
      kind = this.peek();
      this.pos++;
    }
    if (kind === "h") {
      this.number();
      this.expect("_");
    } else if (kind === "v") {
      this.number();
      this.expect("_");
      this.number();
      this.expect("_");
    } else {
      bail("bad call offset");
    }
  }

  /** <name>; fills the member function's qualifiers from a nested name. */
  name(state: { cv?: string; ref?: string }): Node {
    this.enter();
    try {
      const c = this.peek();
      if (c === "N") return this.nestedName(state);
      if (c === "Z") return this.localName(state);
      // <unscoped-template-name> <template-args>, where the template name may be a substitution
      let n: Node;
      let isSub = false;
      if (c === "S" && this.peek(1) !== "t") {
        n = this.substitution();
        isSub = true;
      } else {
        const std = this.eat("St");
        n = this.unqualifiedName(undefined);
        if (std) n = this.node(new Std(n));
      }
      if (this.peek() === "I") {
        if (!isSub) this.subs.push(n);
        n = this.node(new WithTemplateArgs(n, this.templateArgs()));
      } else if (isSub) {
        bail("a substitution as a name needs template arguments");
      }
      return n;
    } finally {
      this.leave();
    }
  }

  /** [r] [V] [K], printed innermost first as c++filt does: " const volatile restrict". */
  cvQualifiers(): string {
    const r = this.eat("r");
    const v = this.eat("V");
    const k = this.eat("K");
    return (k ? " const" : "") + (v ? " volatile" : "") + (r ? " restrict" : "");
  }

  nestedName(state: { cv?: string; ref?: string }): Node {
    this.expect("N");
    state.cv = this.cvQualifiers();
    state.ref = this.eat("R") ? " &" : this.eat("O") ? " &&" : "";
    let soFar: Node | undefined;
    let pushed = 0;
    while (!this.eat("E")) {
      const c = this.peek();
      if (c === "") bail("unterminated nested name");
      if (c === "S" && this.peek(1) !== "t") {
        if (soFar) bail("substitution inside a nested name");
        soFar = this.substitution();
        continue; // a substitution is not a new candidate
      }
      if (c === "I") {
        if (!soFar) bail("template arguments without a name");
        soFar = this.node(new WithTemplateArgs(soFar, this.templateArgs()));
      } else if (c === "T") {
        if (soFar) bail("template parameter inside a nested name");
        soFar = this.templateParam();
      } else if (c === "D" && (this.peek(1) === "t" || this.peek(1) === "T")) {
        if (soFar) bail("decltype inside a nested name");
        soFar = this.decltype();
      } else if (c === "M") {
        this.pos++; // <data-member-prefix>: only a marker
        continue;
      } else {
        const std = !soFar && this.eat("St");
        let n = this.unqualifiedName(soFar);
        if (std) n = this.node(new Std(n));
        soFar = soFar ? this.node(new Nested(soFar, n)) : n;
      }
      this.subs.push(soFar);
      pushed++;
    }
    if (!soFar || pushed === 0) bail("empty nested name");
    this.subs.pop();
    return soFar;
  }

  localName(state: { cv?: string; ref?: string }): Node {
    this.expect("Z");
    const enc = this.encoding(false, true);
    this.expect("E");
    if (this.eat("s")) {
      this.discriminator();
      return this.node(new Local(enc, this.node(new Name("string literal"))));
    }
    let defaultArg: Node | undefined;
    if (this.eat("d")) {
      const n = this.peek() === "_" ? 0 : this.number() + 1;
      this.expect("_");
      defaultArg = this.node(new Name(`{default arg#${n + 1}}`));
    }
    let entity = this.name(state);
    this.discriminator();
    if (defaultArg) entity = this.node(new Nested(defaultArg, entity));
    return this.node(new Local(enc, entity));
  }

  /** <unqualified-name> [<abi-tags>]; `scope` names constructors and destructors. */
  unqualifiedName(scope: Node | undefined): Node {
    const c = this.peek();
    let n: Node;
    if (/[0-9]/.test(c)) {
      n = this.sourceName();
    } else if (/[a-z]/.test(c)) {
      n = this.operatorName();
    } else if (c === "C" || (c === "D" && /[0-5]/.test(this.peek(1)))) {
      if (!scope) bail("constructor without a class");
      const dtor = c === "D";
      this.pos++;
      if (!dtor && this.eat("I")) {
        // Inheriting constructor: C I <digit> <type>
        this.pos++;
        this.type();
      } else {
        this.pos++;
      }
      n = this.node(new CtorDtor(scope, dtor));
    } else if (c === "U") {
      n = this.unnamedType();
    } else if (c === "L") {
      this.pos++; // internal linkage marker (L <source-name>)
      n = this.sourceName();
      this.discriminator();
    } else {
      return bail(`unexpected ${c} in a name`);
    }
    while (this.eat("B")) n = this.node(new AbiTag(n, this.identifier()));
    return n;
  }

  identifier(): string {
    const len = this.number();
    if (len <= 0 || this.pos + len > this.s.length) bail("bad identifier length");
    const id = this.s.slice(this.pos, this.pos + len);
    this.pos += len;
    return id;
  }

  sourceName(): Node {
    const id = this.identifier();
    if (/^_GLOBAL_[._$]N/.test(id)) return this.node(new Name("(anonymous namespace)"));
    return this.node(new Name(id));
  }

  operatorName(): Node {
    const code = this.s.slice(this.pos, this.pos + 2);
    if (code === "cv") {
      this.pos += 2;
      return this.node(new Conversion(this.type()));
    }
    if (code === "li") {
      this.pos += 2;
      return this.node(new Name(`operator"" ${this.identifier()}`));
    }
    if (code[0] === "v" && /[0-9]/.test(code[1] ?? "")) {
      this.pos += 2;
      return this.node(new Operator(this.identifier()));
    }
    const op = OPERATORS[code];
    if (!op || code === "st" || code === "sz" || code === "at" || code === "az") {
      bail(`unknown operator ${code}`);
    }
    this.pos += 2;
    return this.node(new Operator(op[0]));
  }

  unnamedType(): Node {
    if (this.eat("Ut")) {
      const n = this.peek() === "_" ? 0 : this.number() + 1;
      this.expect("_");
      return this.node(new Unnamed(n + 1));
    }
    if (this.eat("Ul")) {
      const params: Node[] = [];
      do params.push(this.type()); while (!this.eat("E"));
      const n = this.peek() === "_" ? 0 : this.number() + 1;
      this.expect("_");
      return this.node(new Closure(params, n + 1));
    }
    return bail("unknown unnamed type");
  }

  templateArgs(): TemplateArgs {
    this.expect("I");
    const args: Node[] = [];
    while (!this.eat("E")) {
      if (this.peek() === "") bail("unterminated template arguments");
      args.push(this.templateArg());
    }
    return this.node(new TemplateArgs(args));
  }

  templateArg(): Node {
    this.enter();
    try {
      const c = this.peek();
      if (c === "X") {
        this.pos++;
        const e = this.expression();
        this.expect("E");
        return e;
      }
      if (c === "L") return this.exprPrimary();
      if (c === "J") {
        this.pos++;
        const args: Node[] = [];
        while (!this.eat("E")) {
          if (this.peek() === "") bail("unterminated argument pack");
          args.push(this.templateArg());
        }
        return this.node(new ArgPack(args));
      }
      return this.type();
    } finally {
      this.leave();
    }
  }

  templateParam(): Node {
    this.expect("T");
    const index = this.peek() === "_" ? 0 : this.number() + 1;
    this.expect("_");
    return this.node(new TemplateParam(index));
  }

  substitution(): Node {
    this.expect("S");
    const c = this.peek();
    const std: Record<string, [string, string]> = {
      a: ["std::allocator", "allocator"],
      b: ["std::basic_string", "basic_string"],
      s: [
        "std::basic_string<char, std::char_traits<char>, std::allocator<char> >",
        "basic_string",
      ],
      i: ["std::basic_istream<char, std::char_traits<char> >", "basic_istream"],
      o: ["std::basic_ostream<char, std::char_traits<char> >", "basic_ostream"],
      d: ["std::basic_iostream<char, std::char_traits<char> >", "basic_iostream"],
    };
    if (std[c]) {
      this.pos++;
      return this.node(new StdAbbrev(std[c][0], std[c][1]));
    }
    const id = this.seqId();
    if (id >= this.subs.length) bail("substitution out of range");
    return this.subs[id];
  }

  decltype(): Node {
    this.expect("D");
    if (!this.eat("t") && !this.eat("T")) bail("decltype expected");
    const e = this.expression();
    this.expect("E");
    return this.node(new Decltype(e));
  }

  type(): Node {
    this.enter();
    try {
      return this.typeInner();
    } finally {
      this.leave();
    }
  }

  typeInner(): Node {
    const c = this.peek();
    if (BUILTINS[c]) {
      this.pos++;
      return this.node(new Builtin(BUILTINS[c]));
    }
    let t: Node;
    switch (c) {
      case "r":
      case "V":
      case "K": {
        const q = this.cvQualifiers();
        // Qualifiers before a function type qualify its `this`: the unqualified function type
        // is not a substitution candidate of its own.
        const inner = this.peek() === "F" ? this.functionType("") : this.type();
        t = this.node(new Qualified(inner, q));
        break;
      }
      case "P":
        this.pos++;
        t = this.node(new PointerLike(this.type(), "*"));
        break;
      case "R":
        this.pos++;
        t = this.node(new PointerLike(this.type(), "&"));
        break;
      case "O":
        this.pos++;
        t = this.node(new PointerLike(this.type(), "&&"));
        break;
      case "C":
        this.pos++;
        t = this.node(new Vendor(this.type(), "_Complex"));
        break;
      case "G":
        this.pos++;
        t = this.node(new Vendor(this.type(), "_Imaginary"));
        break;
      case "F":
        t = this.functionType("");
        break;
      case "A":
        t = this.arrayType();
        break;
      case "M": {
        this.pos++;
        const cls = this.type();
        const member = this.type();
        t = this.node(new MemberPointer(cls, member));
        break;
      }
      case "T": {
        t = this.templateParam();
        if (this.peek() === "I") {
          this.subs.push(t);
          t = this.node(new WithTemplateArgs(t, this.templateArgs()));
        }
        break;
      }
      case "U": {
        this.pos++;
        const q = this.identifier();
        if (this.peek() === "I") this.templateArgs();
        const inner = this.type();
        t = this.node(new Vendor(inner, q));
        break;
      }
      case "u": {
        this.pos++;
        t = this.node(new Name(this.identifier()));
        break;
      }
      case "D": {
        const d = this.peek(1);
        if (D_BUILTINS[d]) {
          this.pos += 2;
          return this.node(new Builtin(D_BUILTINS[d]));
        }
        if (d === "F") {
          // DF <number> _ : _FloatN (and DF <number> x: _FloatNx)
          this.pos += 2;
          const n = this.number();
          const x = this.eat("x");
          if (!x) this.expect("_");
          return this.node(new Builtin(`_Float${n}${x ? "x" : ""}`));
        }
        if (d === "t" || d === "T") {
          t = this.decltype();
          break;
        }
        if (d === "p") {
          this.pos += 2;
          t = this.node(new PackExpansion(this.type()));
          break;
        }
        if (d === "v") {
          this.pos += 2;
          let dim: string;
          if (this.peek() === "_") {
            this.pos++;
            const e = this.expression();
            dim = "";
            this.expect("_");
            t = this.node(new VectorType(this.type(), dim));
            void e;
          } else {
            dim = String(this.number());
            this.expect("_");
            t = this.node(new VectorType(this.type(), dim));
          }
          break;
        }
        if (d === "x" || d === "o" || d === "O" || d === "w") {
          t = this.functionType("");
          break;
        }
        return bail(`unknown type D${d}`);
      }
      case "S": {
        if (this.peek(1) === "t") {
          t = this.name({});
          break;
        }
        t = this.substitution();
        if (this.peek() === "I") {
          t = this.node(new WithTemplateArgs(t, this.templateArgs()));
          break;
        }
        return t; // not a new candidate
      }
      case "N":
      case "Z":
        t = this.name({});
        break;
      default:
        if (/[0-9]/.test(c)) {
          t = this.name({});
          break;
        }
        return bail(`unexpected ${c || "end"} in a type`);
    }
    this.subs.push(t);
    return t;
  }

  functionType(quals: string): Node {
    let except = "";
    if (this.eat("Do")) except = " noexcept";
    else if (this.eat("DO")) {
      const e = this.expression();
      this.expect("E");
      except = " noexcept(";
      void e;
      except = " noexcept";
    } else if (this.eat("Dw")) {
      while (!this.eat("E")) {
        if (this.peek() === "") bail("unterminated throw spec");
        this.type();
      }
      except = " throw()";
    }
    this.eat("Dx");
    this.expect("F");
    this.eat("Y");
    const ret = this.type();
    const params: Node[] = [];
    let ref = "";
    for (;;) {
      if (this.eat("E")) break;
      if (this.peek() === "R" && this.peek(1) === "E") {
        this.pos += 2;
        ref = " &";
        break;
      }
      if (this.peek() === "O" && this.peek(1) === "E") {
        this.pos += 2;
        ref = " &&";
        break;
      }
      if (this.peek() === "") bail("unterminated function type");
      params.push(this.type());
    }
    return this.node(new FunctionType(ret, params, quals, ref, except));
  }

  arrayType(): Node {
    this.expect("A");
    let dim: Node | string = "";
    if (/[0-9]/.test(this.peek())) {
      dim = String(this.number());
    } else if (this.peek() !== "_") {
      dim = this.expression();
    }
    this.expect("_");
    return this.node(new ArrayType(this.type(), dim));
  }

  // Expressions ------------------------------------------------------------------------------

  exprPrimary(): Node {
    this.expect("L");
    if (this.peek() === "_" && this.peek(1) === "Z") {
      this.pos += 2;
      const e = this.encoding(false);
      this.expect("E");
      return e;
    }
    if (this.eat("Z")) {
      bail("local name in a literal");
    }
    const typeStart = this.pos;
    const type = this.type();
    const code = this.s.slice(typeStart, this.pos);
    if (this.eat("E")) {
      // A literal without a value: the type (nullptr's LDnE).
      return type;
    }
    const neg = this.eat("n");
    const start = this.pos;
    while (this.peek() !== "E" && this.peek() !== "") this.pos++;
    const value = this.s.slice(start, this.pos);
    this.expect("E");
    if (code === "b" && (value === "0" || value === "1") && !neg) {
      return this.node(new Literal(value === "1" ? "true" : "false"));
    }
    const text = (neg ? "-" : "") + value;
    if (code in LITERAL_SUFFIX && /^[0-9]+$/.test(value)) {
      return this.node(new Literal(text + LITERAL_SUFFIX[code]));
    }
    if (code === "f" || code === "d" || code === "e") {
      return this.node(new Wrapped("(", type, `)[${text}]`));
    }
    return this.node(new Wrapped("(", type, `)${text}`));
  }

  expressions(end: string): Node[] {
    const out: Node[] = [];
    while (!this.eat(end)) {
      if (this.peek() === "") bail("unterminated expression list");
      out.push(this.expression());
    }
    return out;
  }

  expression(): Node {
    this.enter();
    try {
      return this.expressionInner();
    } finally {
      this.leave();
    }
  }

  expressionInner(): Node {
    const c = this.peek();
    if (c === "L") return this.exprPrimary();
    if (c === "T") return this.templateParam();
    if (c === "f" && this.peek(1) === "p") {
      this.pos += 2;
      this.cvQualifiers();
      const i = this.peek() === "_" ? 0 : this.number() + 1;
      this.expect("_");
      return this.node(new FunctionParam(i));
    }
    if (c === "f" && this.peek(1) === "L") bail("function parameter of an outer scope");
    const global = this.eat("gs");
    const code = this.s.slice(this.pos, this.pos + 2);
    switch (code) {
      case "nw":
      case "na": {
        this.pos += 2;
        const placement = this.expressions("_");
        const type = this.type();
        let init: Node[] | undefined;
        if (this.eat("pi")) init = this.expressions("E");
        else this.expect("E");
        return this.node(new NewExpr(global, code === "na", placement, type, init));
      }
      case "dl":
      case "da": {
        this.pos += 2;
        const e = this.expression();
        return this.node(
          new Wrapped(`${global ? "::" : ""}${code === "dl" ? "delete " : "delete[] "}`, e, ""),
        );
      }
      case "cl": {
        this.pos += 2;
        const fn = this.expression();
        return this.node(new Call(fn, this.expressions("E")));
      }
      case "cv": {
        this.pos += 2;
        const type = this.type();
        if (this.eat("_")) return this.node(new Conv(type, this.expressions("E")));
        return this.node(new Conv(type, [this.expression()]));
      }
      case "tl": {
        this.pos += 2;
        const type = this.type();
        return this.node(new InitList(type, this.expressions("E")));
      }
      case "il":
        this.pos += 2;
        return this.node(new InitList(undefined, this.expressions("E")));
      case "dc":
      case "sc":
      case "cc":
      case "rc": {
        this.pos += 2;
        const kind = {
          dc: "dynamic_cast",
          sc: "static_cast",
          cc: "const_cast",
          rc: "reinterpret_cast",
        }[code];
        const type = this.type();
        return this.node(new Cast(kind, type, this.expression()));
      }
      case "st":
        this.pos += 2;
        return this.node(new Wrapped("sizeof (", this.type(), ")"));
      case "at":
        this.pos += 2;
        return this.node(new Wrapped("alignof (", this.type(), ")"));
      case "sz":
        this.pos += 2;
        return this.node(new Prefix("sizeof ", this.expression()));
      case "az":
        this.pos += 2;
        return this.node(new Prefix("alignof ", this.expression()));
      case "sZ": {
        this.pos += 2;
        const p = this.peek() === "T" ? this.templateParam() : this.expression();
        return this.node(new SizeofPack(p));
      }
      case "sP": {
        this.pos += 2;
        const args: Node[] = [];
        while (!this.eat("E")) {
          if (this.peek() === "") bail("unterminated sizeof...");
          args.push(this.templateArg());
        }
        return this.node(new Literal(String(args.length)));
      }
      case "sp":
        this.pos += 2;
        return this.node(new PackExpr(this.expression()));
      case "tw":
        this.pos += 2;
        return this.node(new Prefix("throw ", this.expression()));
      case "tr":
        this.pos += 2;
        return this.node(new Literal("throw"));
      case "dt":
      case "pt": {
        this.pos += 2;
        const l = this.expression();
        const r = this.unresolvedName();
        return this.node(new Binary(code === "dt" ? "." : "->", l, r));
      }
      case "ds": {
        this.pos += 2;
        const l = this.expression();
        return this.node(new Binary(".*", l, this.expression()));
      }
      case "sr": {
        this.pos += 2;
        if (/[0-9]/.test(this.peek()) || this.peek() === "N") {
          // sr <qualifier-level>+ E <base>, or sr N <unresolved-type> <qualifier-level>* E <base>
          let n: Node = this.eat("N") ? this.unresolvedType() : this.simpleId();
          while (!this.eat("E")) {
            if (this.peek() === "") bail("unterminated unresolved name");
            n = this.node(new Nested(n, this.simpleId()));
          }
          // c++filt attaches the base's template arguments to the whole qualified name.
          const base = this.baseUnresolved();
          n = base instanceof WithTemplateArgs
            ? this.node(new WithTemplateArgs(this.node(new Nested(n, base.name)), base.args))
            : this.node(new Nested(n, base));
          return global ? this.node(new Nested(this.node(new Name("")), n)) : n;
        }
        // As c++filt reads the rest: a type, then an unqualified name with template arguments.
        const type = this.type();
        let name = this.unqualifiedName(undefined);
        if (this.peek() === "I") name = this.node(new WithTemplateArgs(name, this.templateArgs()));
        const n = this.node(new Nested(type, name));
        return global ? this.node(new Nested(this.node(new Name("")), n)) : n;
      }
      case "qu": {
        this.pos += 2;
        const a = this.expression();
        const b = this.expression();
        return this.node(new Ternary(a, b, this.expression()));
      }
      case "pp":
      case "mm": {
        this.pos += 2;
        const op = OPERATORS[code][0];
        if (this.eat("_")) return this.node(new Prefix(op, this.expression()));
        return this.node(new Postfix(op, this.expression()));
      }
    }
    if (/^[0-9]/.test(c) || c === "o" && this.peek(1) === "n") return this.unresolvedName();
    const op = OPERATORS[code];
    if (!op) return bail(`unknown expression ${code}`);
    this.pos += 2;
    if (op[1] === 1) return this.node(new Prefix(op[0], this.expression()));
    if (op[1] === 2) {
      const l = this.expression();
      return this.node(new Binary(op[0], l, this.expression()));
    }
    return bail(`unexpected operator ${code} in an expression`);
  }

  /** <unresolved-name>: [gs] sr … or a plain (possibly templated) name. */
  unresolvedName(): Node {
    this.enter();
    try {
      const global = this.eat("gs");
      let n: Node;
      if (this.eat("sr")) {
        if (this.eat("N")) {
          n = this.unresolvedType();
          while (!this.eat("E")) {
            if (this.peek() === "") bail("unterminated unresolved name");
            n = this.node(new Nested(n, this.simpleId()));
          }
          n = this.node(new Nested(n, this.baseUnresolved()));
        } else if (/[0-9]/.test(this.peek())) {
          n = this.simpleId();
          while (!this.eat("E")) {
            if (this.peek() === "") bail("unterminated unresolved name");
            n = this.node(new Nested(n, this.simpleId()));
          }
          n = this.node(new Nested(n, this.baseUnresolved()));
        } else {
          n = this.unresolvedType();
          n = this.node(new Nested(n, this.baseUnresolved()));
        }
      } else {
        n = this.baseUnresolved();
      }
      return global ? this.node(new Nested(this.node(new Name("")), n)) : n;
    } finally {
      this.leave();
    }
  }

  unresolvedType(): Node {
    const c = this.peek();
    let t: Node;
    if (c === "T") {
      t = this.templateParam();
      if (this.peek() === "I") {
        this.subs.push(t);
        t = this.node(new WithTemplateArgs(t, this.templateArgs()));
      }
      this.subs.push(t);
      return t;
    }
    if (c === "D") {
      t = this.decltype();
      this.subs.push(t);
      return t;
    }
    if (c === "S") return this.substitution();
    return this.simpleId();
  }

  simpleId(): Node {
    let n = this.sourceName();
    if (this.peek() === "I") n = this.node(new WithTemplateArgs(n, this.templateArgs()));
    return n;
  }

  baseUnresolved(): Node {
    if (/[0-9]/.test(this.peek())) return this.simpleId();
    if (this.eat("on")) {
      let n: Node = this.operatorName();
      if (this.peek() === "I") n = this.node(new WithTemplateArgs(n, this.templateArgs()));
      return n;
    }
    if (this.eat("dn")) {
      const t = /[0-9]/.test(this.peek()) ? this.simpleId() : this.unresolvedType();
      return this.node(new Wrapped("~", t, ""));
    }
    return this.operatorName();
  }
}

function hasTemplateArgs(name: Node): boolean {
  return templateArgsOf(name) !== undefined;
}

function isCtorDtorConv(name: Node): boolean {
  let n = name;
  for (;;) {
    if (n instanceof WithTemplateArgs) n = n.name;
    else if (n instanceof AbiTag) n = n.base;
    else if (n instanceof Nested) n = n.name;
    else if (n instanceof Local) n = n.entity;
    else if (n instanceof Std) n = n.child;
    else return n instanceof CtorDtor || n instanceof Conversion;
  }
}

/**
 * The demangled form of an Itanium-mangled name, or undefined when it is not one, is malformed,
 * or would exceed the limits.
 */
export function demangleItanium(
  mangled: string,
  limits: DemangleLimits = DEFAULT_LIMITS,
  stats?: { steps: number; nodes: number },
): string | undefined {
  if (!mangled.startsWith("_Z") || mangled.length > limits.maxInput) return undefined;
  const parser = new Parser(mangled);
  const out = new Out(limits);
  try {
    parser.mangled().print(out);
    return out.s;
  } catch (e) {
    if (e instanceof Bail) return undefined;
    // A deep tree can still exhaust the engine's stack; that is a limit too.
    if (e instanceof RangeError) return undefined;
    throw e;
  } finally {
    if (stats) {
      stats.steps = out.steps;
      stats.nodes = parser.nodes;
    }
  }
}

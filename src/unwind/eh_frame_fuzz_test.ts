import assert from "node:assert/strict";
import { DwarfExprError, evaluateDwarfExpr } from "./dwarf_expr.ts";
import { EhFrame, EhFrameError, type EhFrameSections, MAX_ENTRY } from "./eh_frame.ts";
import { ElfFile } from "../symbolize/elf_file.ts";

// Deterministic mutations of libc's real call frame information: whatever the bytes, parsing
// and lookups either answer or throw EhFrameError, within a bounded amount of work. Anything else
// (a RangeError, a hang) would let one hostile binary break a trace. Work is what the table
// itself counts (bytes read, instructions run, search steps), never time, so a loaded machine
// cannot fail these tests.

const LIBC = "/lib/x86_64-linux-gnu/libc.so.6";

/** Sections held in memory, which the mutations rewrite. */
type MemorySections = EhFrameSections & { ehFrame: Uint8Array };

/** xorshift32: the same cases on every run. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

interface Original {
  sections: MemorySections;
  /** Addresses to look up in every case, and the FDE byte ranges they use. */
  probes: number[];
  targets: { start: number; end: number }[];
}

function original(): Original {
  using elf = ElfFile.open(LIBC);
  const sec = (name: string) => elf.section(name)!;
  const sections: MemorySections = {
    ehFrame: elf.sectionBytes(".eh_frame")!,
    ehFrameAddr: sec(".eh_frame").addr,
    hdr: elf.sectionBytes(".eh_frame_hdr")!,
    hdrAddr: sec(".eh_frame_hdr").addr,
    textAddr: sec(".text").addr,
  };
  const table = new EhFrame(sections);
  const fdes = [...table.fdes()];
  const probes: number[] = [];
  const targets: { start: number; end: number }[] = [];
  // 40 FDEs spread over the section (including the PLT's and the signal trampoline's kinds of
  // CIE), probed at their start, middle and last byte.
  for (let i = 0; i < fdes.length; i += Math.floor(fdes.length / 40)) {
    const f = fdes[i];
    probes.push(f.pcBegin, (f.pcBegin + f.pcEnd) >>> 1, f.pcEnd - 1);
    targets.push({ start: f.offset, end: f.offset + f.instructions.length + 24 });
    targets.push({ start: f.cie.offset, end: f.cie.offset + 32 });
  }
  for (const f of fdes) {
    if (f.cie.signalFrame) {
      probes.push(f.pcBegin + 1);
      targets.push({ start: f.offset, end: f.offset + 128 });
    }
  }
  return { sections, probes, targets };
}

const EXTREMES = [0x00000000, 0xffffffff, 0x7fffffff, 0x80000000, 0xfffffff0, 0x00000001];

/** One mutation of `bytes`, chosen by the generator; returns a new array. */
function mutate(bytes: Uint8Array, next: () => number, focus: { start: number; end: number }) {
  const out = bytes.slice();
  // Most mutations land where the probes will read; the rest anywhere.
  const at = () => {
    if (next() % 4 === 0 || focus.end <= focus.start) return next() % out.length;
    return Math.min(out.length - 1, focus.start + (next() % (focus.end - focus.start)));
  };
  switch (next() % 7) {
    case 0: // bit flips
      for (let k = 1 + (next() % 8); k > 0; k--) out[at()] ^= 1 << (next() % 8);
      return out;
    case 1: // random bytes
      for (let k = 1 + (next() % 4); k > 0; k--) out[at()] = next() & 0xff;
      return out;
    case 2: { // extreme 32-bit values (lengths, CIE pointers, pc_begin, pc_range)
      const p = at() & ~3;
      new DataView(out.buffer).setUint32(
        Math.min(p, out.length - 4),
        EXTREMES[next() % EXTREMES.length],
        true,
      );
      return out;
    }
    case 3: { // a 64-bit length escape followed by an absurd length
      const p = Math.min(at() & ~3, out.length - 12);
      const dv = new DataView(out.buffer);
      dv.setUint32(p, 0xffffffff, true);
      dv.setUint32(p + 4, next(), true);
      dv.setUint32(p + 8, next() % 4 === 0 ? 0xffffffff : next() & 0xff, true);
      return out;
    }
    case 4: { // LEB128 runs: continuation bytes that never end, or end far away
      const p = at();
      const n = 1 + (next() % 24);
      for (let i = 0; i < n && p + i < out.length; i++) out[p + i] = 0x80 | (next() & 0x7f);
      return out;
    }
    case 5: // truncation
      return out.subarray(0, next() % out.length);
    default: { // one instruction byte replaced by every DW_CFA opcode family
      const p = at();
      out[p] = [0x0a, 0x0b, 0x0f, 0x10, 0x16, 0x01, 0x04, 0x2f, 0x2d, 0xc0, 0x3f][next() % 11];
      return out;
    }
  }
}

/**
 * What a case may cost whatever its bytes: the linear scan reads the section once (plus a window
 * past an entry), each probe finds its FDE in at most ~64 search steps, reads one FDE and one CIE
 * (each capped) and runs their instructions (at most one per byte).
 */
function workBound(sections: MemorySections, probes: number): number {
  return 2 * sections.ehFrame.length + (1 << 20) + probes * (2 * 64 + 4 * (MAX_ENTRY + 20));
}

/** Runs the probes; returns the work the table counted. */
function exercise(sections: MemorySections, probes: number[]): number {
  let table: EhFrame;
  try {
    table = new EhFrame(sections);
  } catch (e) {
    if (e instanceof EhFrameError) return 0;
    throw e;
  }
  for (const addr of probes) {
    try {
      table.findFde(addr);
      const row = table.rowAt(addr);
      if (row) assert.ok(row.start <= addr && addr < row.end);
    } catch (e) {
      if (!(e instanceof EhFrameError)) throw e;
    }
  }
  return table.work;
}

Deno.test("mutated .eh_frame / .eh_frame_hdr: EhFrameError or an answer, within bounded work", () => {
  const orig = original();
  const next = rng(0x5eed);
  const cases = 8000;
  let most = 0;
  for (let i = 0; i < cases; i++) {
    const focus = orig.targets[next() % orig.targets.length];
    let s: MemorySections = orig.sections;
    const kind = next() % 10;
    if (kind < 6) {
      s = { ...s, ehFrame: mutate(s.ehFrame, next, focus) };
    } else if (kind < 8) {
      // The hdr's table sits after a 12-byte header; aim at both.
      const hdrFocus = { start: 0, end: next() % 2 === 0 ? 12 : s.hdr!.length };
      s = { ...s, hdr: mutate(s.hdr!, next, hdrFocus) };
    } else if (kind < 9) {
      // No hdr: the linear scan walks (and must survive) the whole mutated section.
      s = { ...s, hdr: undefined, ehFrame: mutate(s.ehFrame, next, focus) };
    } else {
      s = {
        ...s,
        ehFrame: mutate(s.ehFrame, next, focus),
        hdr: mutate(s.hdr!, next, { start: 0, end: s.hdr!.length }),
      };
    }
    let work: number;
    try {
      work = exercise(s, orig.probes);
    } catch (e) {
      throw new Error(`case ${i}: ${e instanceof Error ? e.stack : e}`);
    }
    const bound = workBound(s, orig.probes.length);
    assert.ok(work <= bound, `case ${i}: work ${work} over the bound ${bound}`);
    most = Math.max(most, work);
  }
  // The bound is loose by design (caps, not typical sizes); the real cases stay far below it.
  assert.ok(most < workBound(orig.sections, orig.probes.length) / 4, `most work ${most}`);
});

Deno.test("the unmutated sections answer every probe (the fuzz baseline is meaningful)", () => {
  const orig = original();
  const table = new EhFrame(orig.sections);
  for (const addr of orig.probes) {
    const row = table.rowAt(addr);
    assert.ok(row, `no row at 0x${addr.toString(16)}`);
  }
  assert.ok(orig.probes.length >= 120, `${orig.probes.length} probes`);
});

Deno.test("random DWARF expressions: a value or DwarfExprError, never a hang", () => {
  const next = rng(0xd00d);
  const ctx = {
    reg: (r: number) => (r % 3 === 0 ? undefined : BigInt(r) * 0x1000n),
    read: (
      a: bigint,
      size: number,
    ) => (a % 16n === 0n ? a & ((1n << BigInt(size * 8)) - 1n) : undefined),
  };
  let values = 0;
  for (let i = 0; i < 20000; i++) {
    const len = 1 + (next() % 24);
    const expr = new Uint8Array(len);
    for (let k = 0; k < len; k++) {
      // Mostly pushes and known operators, so that many runs get to the end.
      const r = next() % 8;
      expr[k] = k < 2 || r < 3 ? 0x30 + (next() % 32) : r < 7 ? 0x06 + (next() % 0x2a) : next();
    }
    try {
      evaluateDwarfExpr(expr, ctx, { initial: [0x7ffc0000n] });
      values++;
    } catch (e) {
      if (!(e instanceof DwarfExprError)) throw new Error(`expr ${expr}: ${e}`);
    }
  }
  // No time check: the evaluator's operation budget is what stops a loop (dwarf_expr_test).
  assert.ok(values > 1000, `only ${values} expressions produced a value`);
});

// Checks src/records/records.ts against bpf/systing.h as the C compiler lays it out, so a
// header change cannot silently skew the decoders. The C probe is written from the header's
// own text (every struct, field, kind and constant in it), so a new record needs no line here.
import assert from "node:assert/strict";
import {
  ARGS_LEN,
  COMM_LEN,
  IRQ_NAME_LEN,
  Layout,
  MARKER_LEN,
  MARKER_MAGIC,
  MAX_COUNTERS,
  MAX_FILTER_CGROUPS,
  MAX_FRAMES,
  MAX_STACK_COPY,
  PATH_LEN,
  PROBE_ARGS,
  PROBE_DATA_LEN,
  PROBE_RANGES,
  PROBE_SLOTS,
  PROBE_STRING_LEN,
  PY_FILE_LEN,
  PY_FRAMES,
  PY_INTERPRETERS,
  PY_LINES_LEN,
  PY_NAME_LEN,
  PY_THREADS,
  RANGE_DEPTH,
  RECORD_KIND_COUNT,
  RECORD_KIND_NAMES,
  RecordKind,
  STACK_SLOTS,
  UNTRACED_PID,
} from "../src/records/records.ts";
import { REPO } from "./workload.ts";

interface CLayout {
  constants: Record<string, number>;
  kinds: Record<string, number>;
  structs: Record<
    string,
    { size: number; fields: Record<string, { offset: number; size: number }> }
  >;
}

const HEADER = `${REPO}bpf/systing.h`;

/** The header without comments. */
function headerText(): string {
  return Deno.readTextFileSync(HEADER).replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
}

/** Field names of every struct in the header, in order. */
function headerStructs(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of headerText().matchAll(/struct\s+(\w+)\s*\{([^}]*)\}\s*;/g)) {
    const fields = m[2].split(";").map((d) => d.trim()).filter((d) => d !== "")
      .map((d) => d.match(/(\w+)\s*(\[[^\]]*\])*$/)![1]);
    out.set(m[1], fields);
  }
  return out;
}

function headerKinds(): string[] {
  const body = headerText().match(/enum\s+rec_kind\s*\{([^}]*)\}/)![1];
  return body.split(",").map((e) => e.trim().split(/\s|=/)[0]).filter((n) => n !== "");
}

function headerConstants(): string[] {
  return [...headerText().matchAll(/^#define\s+(SYSTING_[A-Z0-9_]+)\s+\d+\s*$/gm)].map((m) => m[1]);
}

/** A C program that prints every struct, kind and constant of the header as JSON. */
function probeSource(): string {
  const lines = [
    "#include <stddef.h>",
    "#include <stdio.h>",
    `#include "${HEADER}"`,
    "int main(void) {",
    'printf("{\\"constants\\":{");',
  ];
  const list = <T>(items: T[], each: (item: T) => string) =>
    items.forEach((item, i) => lines.push(`${i ? 'printf(",");' : ""}${each(item)}`));
  list(headerConstants(), (c) => `printf("\\"${c}\\":%d", (int)${c});`);
  lines.push('printf("},\\"kinds\\":{");');
  list(headerKinds(), (k) => `printf("\\"${k}\\":%d", (int)${k});`);
  lines.push('printf("},\\"structs\\":{");');
  list([...headerStructs()], ([s, fields]) => {
    const f = fields.map((name, i) =>
      `printf("${i ? "," : ""}\\"${name}\\":{\\"offset\\":%zu,\\"size\\":%zu}", ` +
      `offsetof(struct ${s}, ${name}), sizeof(((struct ${s} *)0)->${name}));`
    ).join("\n");
    return `printf("\\"${s}\\":{\\"size\\":%zu,\\"fields\\":{", sizeof(struct ${s}));\n${f}\n` +
      'printf("}}");';
  });
  lines.push('printf("}}\\n");', "return 0;", "}");
  return lines.join("\n");
}

async function compileProbe(): Promise<CLayout> {
  const dir = await Deno.makeTempDir({ prefix: "systing-layout-" });
  try {
    await Deno.writeTextFile(`${dir}/layout.c`, probeSource());
    const cc = await new Deno.Command("gcc", {
      args: ["-Wall", "-Werror", "-o", `${dir}/layout`, `${dir}/layout.c`],
      stderr: "piped",
    }).output();
    assert.ok(cc.success, new TextDecoder().decode(cc.stderr));
    const out = await new Deno.Command(`${dir}/layout`, { stdout: "piped" }).output();
    return JSON.parse(new TextDecoder().decode(out.stdout));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const layout = await compileProbe();

/** records.ts spells the header field `size` as `size_` (its own `size` is the struct's). */
function tsKey(field: string): string {
  return field === "size" ? "size_" : field;
}

Deno.test("records layout: the probe saw every struct of systing.h", () => {
  assert.deepEqual(
    Object.fromEntries(
      Object.entries(layout.structs).map(([name, s]) => [name, Object.keys(s.fields)]),
    ),
    Object.fromEntries(headerStructs()),
  );
  // Not vacuous: the structs every recording uses are among them.
  for (const s of ["rec_hdr", "rec_sched_switch", "rec_stack", "systing_config"]) {
    assert.ok(s in layout.structs, s);
  }
});

Deno.test("records layout: every struct size and field offset matches Layout", () => {
  assert.deepEqual(Object.keys(Layout).sort(), Object.keys(layout.structs).sort());
  for (const [name, c] of Object.entries(layout.structs)) {
    const ts = Layout[name as keyof typeof Layout] as Record<string, number>;
    assert.equal(ts.size, c.size, `sizeof(struct ${name})`);
    // Layout leaves out explicit padding and the leading header (decoded on
    // its own via Layout.rec_hdr); everything else must be there.
    const expected: Record<string, number> = { size: c.size };
    for (const [field, f] of Object.entries(c.fields)) {
      if (field === "hdr") {
        assert.deepEqual(f, { offset: 0, size: Layout.rec_hdr.size }, `${name}.hdr`);
      } else if (!field.startsWith("__")) {
        expected[tsKey(field)] = f.offset;
      }
    }
    assert.deepEqual(ts, expected, `struct ${name}`);
  }
});

Deno.test("records layout: string field lengths match the TypeScript constants", () => {
  assert.deepEqual(layout.constants, {
    SYSTING_COMM_LEN: COMM_LEN,
    SYSTING_IRQ_NAME_LEN: IRQ_NAME_LEN,
    SYSTING_PATH_LEN: PATH_LEN,
    SYSTING_ARGS_LEN: ARGS_LEN,
    SYSTING_MAX_CPUS: 1024,
    SYSTING_MAX_FRAMES: MAX_FRAMES,
    SYSTING_MAX_STACK_COPY: MAX_STACK_COPY,
    SYSTING_STACK_SLOTS: STACK_SLOTS,
    SYSTING_MAX_COUNTERS: MAX_COUNTERS,
    SYSTING_MAX_FILTER_CGROUPS: MAX_FILTER_CGROUPS,
    SYSTING_PROBE_ARGS: PROBE_ARGS,
    SYSTING_PROBE_STRING_LEN: PROBE_STRING_LEN,
    SYSTING_PROBE_DATA_LEN: PROBE_DATA_LEN,
    SYSTING_PROBE_SLOTS: PROBE_SLOTS,
    SYSTING_PROBE_RANGES: PROBE_RANGES,
    SYSTING_MARKER_LEN: MARKER_LEN,
    SYSTING_PY_FRAMES: PY_FRAMES,
    SYSTING_PY_NAME_LEN: PY_NAME_LEN,
    SYSTING_PY_FILE_LEN: PY_FILE_LEN,
    SYSTING_PY_LINES_LEN: PY_LINES_LEN,
    SYSTING_PY_THREADS: PY_THREADS,
    SYSTING_PY_INTERPRETERS: PY_INTERPRETERS,
    SYSTING_MARKER_MAGIC: MARKER_MAGIC,
    SYSTING_RANGE_DEPTH: RANGE_DEPTH,
    SYSTING_UNTRACED_PID: UNTRACED_PID,
  });
  const sizes = (struct: string, ...fields: string[]) =>
    fields.map((f) => layout.structs[struct].fields[f].size);
  assert.deepEqual(sizes("rec_sched_switch", "next_comm"), [COMM_LEN]);
  assert.deepEqual(sizes("rec_sched_waking", "comm"), [COMM_LEN]);
  assert.deepEqual(sizes("rec_sched_process_fork", "parent_comm", "child_comm"), [
    COMM_LEN,
    COMM_LEN,
  ]);
  assert.deepEqual(sizes("rec_sched_process_exec", "comm", "filename", "args"), [
    COMM_LEN,
    PATH_LEN,
    ARGS_LEN,
  ]);
  assert.deepEqual(sizes("rec_sched_process_exit", "comm"), [COMM_LEN]);
  assert.deepEqual(sizes("rec_task_rename", "oldcomm", "newcomm"), [COMM_LEN, COMM_LEN]);
  assert.deepEqual(sizes("rec_irq", "name"), [IRQ_NAME_LEN]);
  assert.deepEqual(sizes("rec_counters", "values"), [MAX_COUNTERS * Layout.counter_value.size]);
  // The header's own size field is what the decoder uses to skip a record.
  assert.deepEqual(sizes("rec_hdr", "kind", "size", "lost", "ts"), [2, 2, 4, 8]);
});

Deno.test("records layout: record kinds match enum rec_kind", () => {
  const { REC_KIND_COUNT, ...kinds } = layout.kinds;
  assert.equal(RECORD_KIND_COUNT, REC_KIND_COUNT);
  const snake = (camel: string) => camel.replace(/(?<!^)([A-Z])/g, "_$1").toUpperCase();
  assert.deepEqual(
    Object.fromEntries(Object.entries(RecordKind).map(([k, v]) => [`REC_${snake(k)}`, v])),
    kinds,
  );
  assert.equal(RECORD_KIND_NAMES.length, RECORD_KIND_COUNT);
  for (const [k, v] of Object.entries(RecordKind)) {
    assert.equal(RECORD_KIND_NAMES[v], snake(k).toLowerCase(), `RECORD_KIND_NAMES[${v}]`);
  }
});

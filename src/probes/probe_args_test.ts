import assert from "node:assert/strict";
import { ProbeError } from "./probe_error.ts";
import { argProblem, parseTraceEvent, splitArgList } from "./probe_args.ts";

const argsOf = (text: string) => parseTraceEvent(text).args;

Deno.test("probe args: a spec's list reads like C parameters, by position", () => {
  assert.deepEqual(argsOf("uprobe:libc.so.6:openat(_, string path, long)"), [
    { type: "string", index: 1, name: "path" },
    { type: "long", index: 2, name: "arg2" },
  ]);
  assert.deepEqual(argsOf("uretprobe:libc.so.6:malloc(retval)"), [
    { type: "retval", index: 0, name: "ret" },
  ]);
  assert.deepEqual(argsOf("usdt:/x:p:n(_,_,_,_,_,_,_,_,_,_,_,long last)"), [
    { type: "long", index: 11, name: "last" },
  ]);
  assert.deepEqual(
    argsOf("kretprobe:vfs_read( long  file ,retval  n )"),
    [{ type: "long", index: 0, name: "file" }, { type: "retval", index: 0, name: "n" }],
  );
  assert.equal(argsOf("uprobe:/bin/x:main"), undefined);
  // Parentheses inside a path are the path's: only a list that ends the spec is one.
  assert.deepEqual(splitArgList("uprobe:/opt/a(1)/bin:f"), { spec: "uprobe:/opt/a(1)/bin:f" });
  assert.deepEqual(splitArgList("uprobe:/opt/a(1)/bin:f(long x)"), {
    spec: "uprobe:/opt/a(1)/bin:f",
    list: "long x",
  });
});

Deno.test("probe args: a list that cannot be read says what is wrong", () => {
  const cases: [string, RegExp][] = [
    ["uprobe:/x:f()", /the argument list \(\) is empty/],
    ["uprobe:/x:f(_, _)", /every argument is skipped/],
    ["uprobe:/x:f(int a)", /argument 1 "int a": give TYPE NAME, TYPE or _/],
    ["uprobe:/x:f(long a b)", /give TYPE NAME/],
    ["uprobe:/x:f(long 9a)", /"9a" is not a C name/],
    ["uprobe:/x:f(long a, long a)", /"a" given twice/],
    ["uprobe:/x:f(retval r)", /retval needs a return probe/],
    ["tracepoint:a:b(long x)", /carries its own fields/],
    ["uprobe:/x:f(_,_,_,_,_,_,long g)", /7 arguments listed: uprobe: reads arguments 0 to 5/],
    ["uprobe:/x:f(long a, long b, long c, long d, long e)", /at most 4/],
  ];
  for (const [text, message] of cases) {
    assert.throws(
      () => argsOf(text),
      (e: unknown) => e instanceof ProbeError && message.test(e.message),
      text,
    );
  }
  assert.equal(argProblem("usdt", "long", 11), undefined);
  assert.match(argProblem("kprobe", "long", 6)!, /reads arguments 0 to 5/);
});

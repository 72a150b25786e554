import assert from "node:assert/strict";
import { parseEventConfig } from "./event_config.ts";
import { ProbeError } from "./probe_error.ts";

const GOOD = {
  events: [
    {
      name: "lock_start",
      event: "uprobe:/lib/x86_64-linux-gnu/libc.so.6:pthread_mutex_lock",
      args: [{ arg_index: 0, arg_type: "long", arg_name: "mutex" }],
    },
    { name: "lock_end", event: "uretprobe:/lib/x86_64-linux-gnu/libc.so.6:pthread_mutex_lock" },
    {
      name: "unlock",
      event: "uprobe:/lib/x86_64-linux-gnu/libc.so.6:pthread_mutex_unlock",
      stack: true,
    },
  ],
  tracks: [{
    track_name: "pthread",
    ranges: [{ name: "locking", start: "lock_start", end: "lock_end" }],
    instants: [{ event: "unlock" }],
  }],
  stop_triggers: { thresholds: [{ start: "lock_start", end: "lock_end", duration_us: 1000 }] },
};

Deno.test("event config: the format users know", () => {
  const c = parseEventConfig(JSON.stringify(GOOD), "c.json");
  assert.deepEqual(c.events.map((e) => [e.name, e.spec.kind, e.scope, e.stack, e.args.length]), [
    ["lock_start", "uprobe", "thread", false, 1],
    ["lock_end", "uretprobe", "thread", false, 0],
    ["unlock", "uprobe", "thread", true, 0],
  ]);
  assert.deepEqual(c.ranges, [
    { track: "pthread", name: "locking", start: "lock_start", end: "lock_end" },
  ]);
  assert.deepEqual(c.instants, [{ track: "pthread", event: "unlock" }]);
  assert.deepEqual(c.thresholds, [{ start: "lock_start", end: "lock_end", ns: 1_000_000 }]);
});

// deno-lint-ignore no-explicit-any
type Any = any;

/** GOOD with EDIT applied to a deep copy. */
function bad(edit: (c: Any) => void): string {
  const c = structuredClone(GOOD);
  edit(c);
  return JSON.stringify(c);
}

Deno.test("event config: every mistake names its JSON path", () => {
  const cases: [string, RegExp][] = [
    ["{", /\$: not JSON/],
    ["[]", /\$: must be an object/],
    ["{}", /\$: missing "events"/],
    [bad((c) => (c.extra = 1)), /\$\.extra: unknown key; allowed: events, tracks, stop_triggers/],
    [bad((c) => ((c.events as Any) = {})), /\$\.events: must be an array/],
    [bad((c) => ((c.events[0] as Any).nmae = "x")), /\$\.events\[0\]\.nmae: unknown key/],
    [bad((c) => delete (c.events[1] as Any).event), /\$\.events\[1\]: missing "event"/],
    [
      bad((c) => (c.events[1].name = "lock_start")),
      /\$\.events\[1\]\.name: duplicate event name "lock_start"/,
    ],
    [bad((c) => (c.events[1].name = "")), /\$\.events\[1\]\.name: must be a name/],
    [
      bad((c) => (c.events[0].event = "uprobe:/x")),
      /\$\.events\[0\]\.event: "uprobe:\/x": give uprobe:PATH/,
    ],
    [
      bad((c) => ((c.events[0] as Any).scope = "core")),
      /\$\.events\[0\]\.scope: must be thread, process or cpu/,
    ],
    [
      bad((c) => ((c.events[2] as Any).stack = "yes")),
      /\$\.events\[2\]\.stack: must be true or false/,
    ],
    [
      bad((
        c,
      ) => (c.events[0].args = Array.from(
        { length: 5 },
        (_, i) => ({ arg_index: i, arg_type: "long", arg_name: `a${i}` }),
      ))),
      /\$\.events\[0\]\.args: 5 arguments: at most 4/,
    ],
    [
      bad((c) => (c.events[0].args[0].arg_type = "retval")),
      /\$\.events\[0\]\.args\[0\]\.arg_type: retval needs a return probe/,
    ],
    [
      bad((c) => (c.events[0].args[0].arg_type = "double")),
      /\.arg_type: must be long, string or retval/,
    ],
    [
      bad((c) => (c.events[0].args[0].arg_index = 9)),
      /\$\.events\[0\]\.args\[0\]\.arg_index: must be a whole number from 0 to 5/,
    ],
    [
      bad((c) => ((c.events[0].args[0] as Any).arg_idx = 1)),
      /\$\.events\[0\]\.args\[0\]\.arg_idx: unknown key/,
    ],
    [
      bad((c) => c.events[0].args.push({ arg_index: 1, arg_type: "long", arg_name: "mutex" })),
      /\$\.events\[0\]\.args\[1\]\.arg_name: duplicate argument "mutex"/,
    ],
    [
      bad((
        c,
      ) => (c.events[1] = {
        name: "lock_end",
        event: "tracepoint:sched:sched_switch",
        args: [{ arg_index: 0, arg_type: "long", arg_name: "x" }],
      } as Any)),
      /\$\.events\[1\]\.args\[0\]: a tracepoint carries its own fields/,
    ],
    [
      bad((c) => (c.tracks[0].ranges[0].end = "lock_ended")),
      /\$\.tracks\[0\]\.ranges\[0\]\.end: no event named "lock_ended"/,
    ],
    [
      bad((c) => (c.tracks[0].ranges[0].end = "lock_start")),
      /\.ranges\[0\]\.end: a range needs two different events/,
    ],
    [
      bad((c) => ((c.events[1] as Any).scope = "process")),
      /\$\.tracks\[0\]\.ranges\[0\]: "lock_start" is thread-scoped and "lock_end" process-scoped/,
    ],
    [
      bad((c) => (c.tracks[0].instants[0].event = "nope")),
      /\$\.tracks\[0\]\.instants\[0\]\.event: no event named "nope"/,
    ],
    [
      bad((c) => c.tracks.push({ ...c.tracks[0], ranges: [], instants: [] })),
      /\$\.tracks\[1\]\.track_name: duplicate track "pthread"/,
    ],
    [
      bad((c) => c.tracks[0].ranges.push({ name: "again", start: "lock_start", end: "unlock" })),
      /\.ranges\[1\]\.start: "lock_start" is already the start of \$\.tracks\[0\]\.ranges\[0\]/,
    ],
    [
      bad((c) => (c.stop_triggers.thresholds[0].duration_us = 0)),
      /\$\.stop_triggers\.thresholds\[0\]\.duration_us: must be a whole number from 1/,
    ],
    [
      bad((c) => (c.stop_triggers.thresholds[0].end = "unlock")),
      /\$\.stop_triggers\.thresholds\[0\]: no range goes from "lock_start" to "unlock"/,
    ],
    [
      bad((c) => ((c.stop_triggers as Any).instant = [])),
      /\$\.stop_triggers\.instant: unknown key; allowed: thresholds, instants/,
    ],
    [
      bad((c) => ((c.stop_triggers as Any).instants = [{ event: "gone" }])),
      /\$\.stop_triggers\.instants\[0\]\.event: no event named "gone"/,
    ],
  ];
  assert.ok(cases.length >= 20);
  for (const [text, why] of cases) {
    assert.throws(
      () => parseEventConfig(text, "c.json"),
      (e) => {
        assert.ok(e instanceof ProbeError, `${text}: ${e}`);
        assert.match(e.message, /^c\.json: /);
        assert.match(e.message, why, text);
        assert.ok(!e.message.includes("\n"));
        return true;
      },
    );
  }
});

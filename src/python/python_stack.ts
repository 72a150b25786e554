/**
 * A Python thread's stack as one: its Python frames put where the interpreter ran them. Each
 * run of the interpreter's C loop (`_PyEval_EvalFrameDefault`) executes a run of Python frames,
 * the outermost of which the BPF walk flags as an entry; so, walking both stacks from the leaf,
 * the n-th eval-loop frame is replaced by the n-th run. Python → C → Python comes out in order,
 * with the C frames between kept. Runs left over (the native walk stopped early, or its frames
 * could not be named) go to the root side behind a marker frame, never silently dropped.
 */
import type { FrameRef, ModuleRef } from "../perfetto/profile_writer.ts";

/** The interpreter's C loop: one frame per run of Python frames. */
const EVAL_LOOP = /^_PyEval_EvalFrameDefault(\.[a-z0-9_.]+)?$/;

export interface PyFrameRef {
  frame: FrameRef;
  /** The outermost frame of its run of the C loop. */
  entry: boolean;
}

const MARKERS: ModuleRef = { key: "[python]", path: "[python]" };

export function markerFrame(name: string): FrameRef {
  return { module: MARKERS, relPc: 0n, name };
}

/** NATIVE (root first) with PY (leaf first) put in place; NOTE, if any, marks the Python part. */
export function interleavePython(
  native: readonly FrameRef[],
  py: readonly PyFrameRef[],
  note?: string,
): FrameRef[] {
  // The runs, innermost first, each root first.
  const runs: FrameRef[][] = [];
  let run: FrameRef[] = [];
  for (const p of py) {
    run.unshift(p.frame);
    if (p.entry) {
      runs.push(run);
      run = [];
    }
  }
  if (run.length) runs.push(run); // the walk ended (or was cut) inside a run
  const out: FrameRef[] = [];
  let next = 0;
  for (let i = native.length - 1; i >= 0; i--) {
    const f = native[i];
    if (next < runs.length && EVAL_LOOP.test(f.name)) {
      out.push(...runs[next++].slice().reverse());
    } else {
      out.push(f);
    }
  }
  out.reverse();
  if (next < runs.length) {
    const rest = runs.slice(next).reverse().flat();
    return [markerFrame("[python frames whose C frames were not found]"), ...rest, ...out];
  }
  if (note) out.unshift(markerFrame(note));
  return out;
}

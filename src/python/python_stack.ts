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

/** Marks a stack whose Python frames may stand a frame or so off (see interleavePython). */
export const APPROXIMATE = "[python frames placed approximately]";

export function markerFrame(name: string): FrameRef {
  return { module: MARKERS, relPc: 0n, name };
}

/**
 * NATIVE (root first) with PY (leaf first) put in place; NOTE, if any, marks the Python part.
 * When the eval-loop frames and the runs do not pair up one to one (a sample taken as a run
 * begins or ends, or a native walk cut short), they are paired from the end that is whole —
 * the root, unless the native walk was cut there — and the runs left over go to the other end
 * behind a marker frame: `exact` says whether that happened.
 */
export function interleavePython(
  native: readonly FrameRef[],
  py: readonly PyFrameRef[],
  note?: string,
  /** How many of NATIVE's leaf-end frames are the kernel's: Python frames go above them. */
  kernelFrames = 0,
): { frames: FrameRef[]; exact: boolean } {
  // The runs, outermost first, each root first.
  const runs: FrameRef[][] = [];
  let run: FrameRef[] = [];
  for (const p of py) {
    run.unshift(p.frame);
    if (p.entry) {
      runs.unshift(run);
      run = [];
    }
  }
  if (run.length) runs.unshift(run); // the walk ended (or was cut) inside a run
  const evals: number[] = [];
  native.forEach((f, i) => {
    if (EVAL_LOOP.test(f.name)) evals.push(i);
  });
  const exact = evals.length === runs.length;
  const cutAtRoot = native.length > 0 && native[0].module.key === "[truncated]";
  // Which run replaces which eval-loop frame (by index into native).
  const replace = new Map<number, FrameRef[]>();
  const pairs = Math.min(evals.length, runs.length);
  const fromLeaf = !exact && cutAtRoot;
  for (let j = 0; j < pairs; j++) {
    if (fromLeaf) replace.set(evals[evals.length - 1 - j], runs[runs.length - 1 - j]);
    else replace.set(evals[j], runs[j]);
  }
  const out: FrameRef[] = [];
  native.forEach((f, i) => {
    const r = replace.get(i);
    if (r) out.push(...r);
    else out.push(f);
  });
  // Markers and left-over runs go at the root (after a truncation marker, which stays first)
  // or at the leaf end of the user frames (before the kernel's).
  const root = cutAtRoot ? 1 : 0;
  if (runs.length > pairs) {
    const marker = markerFrame("[python frames whose C frames were not found]");
    if (fromLeaf) out.splice(root, 0, marker, ...runs.slice(0, runs.length - pairs).flat());
    else {
      const userEnd = Math.max(root, out.length - Math.min(kernelFrames, native.length));
      out.splice(userEnd, 0, marker, ...runs.slice(pairs).flat());
    }
  }
  if (!exact) out.splice(root, 0, markerFrame(APPROXIMATE));
  if (note) out.splice(root, 0, markerFrame(note));
  return { frames: out, exact };
}

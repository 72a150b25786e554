/**
 * One recording per argument list, shared by the tests of a file that check
 * it, with its temp dir removed when the test process ends (kept with
 * SYSTING_KEEP_TRACES=1 for a look at the trace).
 */
import assert from "node:assert/strict";
import { type ReadOptions, readTrace, type TraceView } from "./trace_reader.ts";
import { record, type Recording } from "./workload.ts";

export interface Recorded<T> {
  rec: Recording<T>;
  view: TraceView;
}

export class RecordingCache {
  #recordings = new Map<string, Promise<Recorded<unknown>>>();
  #dirs: string[] = [];
  #prepare: () => Promise<unknown>;

  /** `prepare` runs before each recording starts (e.g. compiling its workloads). */
  constructor(prepare: () => Promise<unknown>) {
    this.#prepare = prepare;
    globalThis.addEventListener("unload", () => {
      if (Deno.env.get("SYSTING_KEEP_TRACES")) return;
      for (const d of this.#dirs) Deno.removeSync(d, { recursive: true });
    });
  }

  /** READ says how to read the trace, given what the workload returned. */
  get<T>(
    extra: string[],
    workload: () => Promise<T>,
    read: (result: T) => ReadOptions = () => ({}),
  ): Promise<Recorded<T>> {
    const key = extra.join(" ");
    let r = this.#recordings.get(key);
    if (!r) {
      r = (async () => {
        await this.#prepare();
        const rec = await record(workload, extra);
        this.#dirs.push(rec.dir);
        // record() has run `systing check` on it: every trace here already keeps its promises.
        assert.equal(rec.exit.code, 0, `recorder exit code; stderr:\n${rec.exit.stderr}`);
        return { rec, view: await readTrace(rec.tracePath, read(rec.result)) };
      })();
      this.#recordings.set(key, r);
    }
    return r as Promise<Recorded<T>>;
  }
}

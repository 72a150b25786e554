/**
 * The tasks a recording focuses on: the processes of -p (all their threads, and every process
 * they fork from the moment the filter is attached), the cgroups of -c (and every cgroup below
 * them, present or created later), and `-- CMD` with all it starts. Resolved before anything is
 * opened, so that a mistake is one line and no file; applied in BPF (bpf/filter.bpf.h) through
 * the .rodata knobs, the task marks and task_newtask's filter part (bpf/dispatch.bpf.c).
 */
import type { BpfObject } from "../ffi/bpf_object.ts";
import type { ConfigWriter } from "../recorders/recorder.ts";
import { FilterBit, Layout, MAX_FILTER_CGROUPS } from "../records/records.ts";
import { type CgroupHost, type CgroupTarget, hostCgroups, resolveCgroup } from "./cgroup_target.ts";
import { FilterError } from "./filter_error.ts";

export interface FilterRequest {
  pids: readonly number[];
  cgroups: readonly string[];
  /** `-- CMD`: the process the tracer starts is traced, with what it starts. */
  command: boolean;
}

/** Where a -p pid's process is found; tests give their own. */
export interface ProcessHost {
  /** The thread group of a pid or tid, or undefined when there is none. */
  tgid(pid: number): number | undefined;
  /** Its threads now (empty once it has gone). */
  threads(tgid: number): number[];
}

/** The map the marks live in and the program that passes them on (bpf/filter.bpf.h). */
const MARKS = "traced_tasks";
/**
 * The programs the filter needs, loaded only when it marks tasks: task_newtask's, whose filter
 * part passes a mark on (bpf/dispatch.bpf.c).
 */
export const FILTER_PROGRAMS = ["on_task_newtask"] as const;
/** Rounds of listing a process's threads while marking them: each round marks what it finds. */
const MARK_ROUNDS = 64;

export class TaskFilter {
  /** What the kernel was told, per -p process: threads marked, or 0 if it had gone. */
  #marked = new Map<number, number>();

  private constructor(
    /** The -p processes by thread group id, each once. */
    readonly tgids: readonly number[],
    readonly cgroups: readonly CgroupTarget[],
    readonly command: boolean,
    readonly processes: ProcessHost,
  ) {}

  /** The filter REQ asks for, or undefined when it asks for none (the whole machine). */
  static resolve(
    req: FilterRequest,
    cgroupHost: () => CgroupHost = hostCgroups,
    processes: ProcessHost = hostProcesses,
  ): TaskFilter | undefined {
    if (!req.pids.length && !req.cgroups.length && !req.command) return undefined;
    const tgids: number[] = [];
    for (const pid of req.pids) {
      const tgid = processes.tgid(pid);
      if (tgid === undefined) {
        throw new FilterError(`-p ${pid}: no such process; give the pid of a running process`);
      }
      if (!tgids.includes(tgid)) tgids.push(tgid);
    }
    if (req.cgroups.length > MAX_FILTER_CGROUPS) {
      throw new FilterError(
        `${req.cgroups.length} -c cgroups: at most ${MAX_FILTER_CGROUPS}; give a common parent`,
      );
    }
    const host = req.cgroups.length ? cgroupHost() : undefined;
    const cgroups: CgroupTarget[] = [];
    for (const given of req.cgroups) {
      const t = resolveCgroup(given, host!);
      if (!cgroups.some((c) => c.ssid === t.ssid && c.id === t.id)) cgroups.push(t);
    }
    return new TaskFilter(tgids, cgroups, req.command, processes);
  }

  get bits(): number {
    return (this.tgids.length || this.command ? FilterBit.Tasks : 0) |
      (this.cgroups.length ? FilterBit.Cgroups : 0);
  }

  /** The programs to load and attach first, before anything records. */
  get programs(): string[] {
    return this.bits & FilterBit.Tasks ? [...FILTER_PROGRAMS] : [];
  }

  /** Before load: the knobs in .rodata. */
  configure(config: ConfigWriter): void {
    config.set("filter_bits", this.bits);
    config.set("cgroup_count", this.cgroups.length);
    const C = Layout.filter_cgroup;
    this.cgroups.forEach((c, i) => {
      const at = Layout.systing_config.cgroups + i * C.size;
      config.view.setInt32(at + C.ssid, c.ssid, true);
      config.view.setUint32(at + C.level, c.level, true);
      config.view.setBigUint64(at + C.id, c.id, true);
    });
  }

  /**
   * Once on_task_newtask is attached (so that what a marked thread creates is marked by the
   * kernel from then on): marks every thread of the -p processes, listing each one's threads
   * until a listing finds none unmarked. Returns warnings for processes that have gone.
   */
  mark(obj: BpfObject): string[] {
    const warnings: string[] = [];
    for (const tgid of this.tgids) {
      const done = new Set<number>();
      for (let round = 0; round < MARK_ROUNDS; round++) {
        let added = 0;
        for (const tid of this.processes.threads(tgid)) {
          if (done.has(tid)) continue;
          if (obj.markTask(MARKS, tid)) added++;
          done.add(tid);
        }
        if (!added) break;
      }
      const marked = [...done].length;
      this.#marked.set(tgid, marked);
      if (!marked) warnings.push(`-p ${tgid}: the process exited before recording began`);
    }
    if (
      this.tgids.length && !this.cgroups.length && !this.command &&
      [...this.#marked.values()].every((n) => n === 0)
    ) {
      throw new FilterError(
        `every -p process exited before recording began (${this.tgids.join(", ")}); ` +
          "nothing would be traced",
      );
    }
    return warnings;
  }

  /** One line for the summary: what is traced. */
  describe(): string {
    const parts: string[] = [];
    const n = this.tgids.length;
    if (n) {
      parts.push(
        `${n === 1 ? "process" : "processes"} ${this.tgids.join(", ")} and what ` +
          `${n === 1 ? "it starts" : "they start"}`,
      );
    }
    for (const c of this.cgroups) parts.push(`cgroup ${c.path} and those below it`);
    if (this.command) parts.push("the command and what it starts");
    return parts.join("; ");
  }

  /** -v: what was resolved. */
  details(): string[] {
    return [
      ...this.tgids.map((t) => `filter: pid ${t}: ${this.#marked.get(t) ?? 0} threads marked`),
      ...this.cgroups.map((c) =>
        `filter: cgroup ${c.path}: ${c.hierarchy} hierarchy` +
        `${c.ssid >= 0 ? ` (subsystem ${c.ssid})` : ""}, level ${c.level}, id ${c.id}`
      ),
      ...this.command ? ["filter: the command, from its fork"] : [],
    ];
  }
}

/** /proc: a pid's thread group (its status file's Tgid) and a thread group's threads. */
export const hostProcesses: ProcessHost = {
  tgid(pid) {
    try {
      const status = Deno.readTextFileSync(`/proc/${pid}/status`);
      const m = status.match(/^Tgid:\s*(\d+)$/m);
      return m ? Number(m[1]) : undefined;
    } catch {
      return undefined;
    }
  },
  threads(tgid) {
    try {
      return [...Deno.readDirSync(`/proc/${tgid}/task`)].map((e) => Number(e.name))
        .filter((n) => Number.isInteger(n) && n > 0);
    } catch {
      return [];
    }
  },
};

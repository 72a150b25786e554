/**
 * The live view of processes and threads during a trace: seeded from the
 * /proc scan, then kept current by fork/exec/exit/rename events so that each
 * change can be written to the trace as a ProcessTree at the event's time.
 */

import type { ProcessEvent } from "../records/records.ts";
import type { ProcessSnapshot } from "./proc_scan.ts";

/** Plain init object for ProcessTree.Process; see ProcessTreeInit. */
export interface ProcessInit {
  pid: number;
  ppid: number;
  uid?: number;
  cmdline: string[];
  cmdlineIsComm?: boolean;
  isKthread?: boolean;
  processStartFromBoot?: bigint;
}

/** Plain init object for ProcessTree.Thread. */
export interface ThreadInit {
  tid: number;
  tgid: number;
  name: string;
}

/**
 * Assignable to MessageInitShape<typeof ProcessTreeSchema>: hand it to
 * create(ProcessTreeSchema, ...). Kept as a plain type so that callers and
 * tests can read fields without narrowing protobuf unions.
 */
export interface ProcessTreeInit {
  processes: ProcessInit[];
  threads: ThreadInit[];
}

/** What the table knows about one process. */
export interface ProcessInfo {
  readonly pid: number;
  /** undefined when the process was first seen through one of its threads. */
  readonly ppid: number | undefined;
  readonly uid: number | undefined;
  /** undefined until known: a process first seen through a thread fork. */
  readonly cmdline: readonly string[] | undefined;
  readonly cmdlineIsComm: boolean;
  readonly isKthread: boolean;
  readonly startFromBootNs: bigint | undefined;
  /** Live thread ids, main thread included while it lives. */
  readonly tids: ReadonlySet<number>;
}

interface ProcEntry {
  pid: number;
  ppid: number | undefined;
  uid: number | undefined;
  cmdline: string[] | undefined;
  cmdlineIsComm: boolean;
  isKthread: boolean;
  startFromBootNs: bigint | undefined;
  tids: Set<number>;
}

interface ThreadEntry {
  tgid: number;
  comm: string;
}

export class ProcessTable {
  #processes = new Map<number, ProcEntry>();
  #threads = new Map<number, ThreadEntry>();

  /** Event timestamps are relative to this boot-time base (ns). */
  readonly #tsBase: bigint;

  constructor(snapshot: ProcessSnapshot[], tsBase = 0n) {
    this.#tsBase = tsBase;
    for (const p of snapshot) {
      // A zombie has no cmdline left; its comm is the best name there is.
      const useComm = p.isKthread || p.cmdline.length === 0;
      this.#processes.set(p.pid, {
        pid: p.pid,
        ppid: p.ppid,
        uid: p.uid,
        cmdline: useComm ? [p.comm] : [...p.cmdline],
        cmdlineIsComm: useComm,
        isKthread: p.isKthread,
        startFromBootNs: p.startFromBootNs,
        tids: new Set(),
      });
      for (const t of p.threads) this.#addThread(t.tid, p.pid, t.comm);
    }
  }

  /**
   * Every known process and thread as one ProcessTree. Right after
   * construction that is exactly the scan; later it reflects applied events.
   */
  initialTree(): ProcessTreeInit {
    const processes: ProcessInit[] = [];
    for (const p of this.#processes.values()) {
      // The importer drops processes without a cmdline; such a process still
      // gets its threads below, which is all we know about it.
      if (p.cmdline !== undefined) processes.push(processMessage(p));
    }
    const threads: ThreadInit[] = [];
    for (const [tid, t] of this.#threads) threads.push({ tid, tgid: t.tgid, name: t.comm });
    return { processes, threads };
  }

  /** Updates the table; returns what to emit at ev.ts, or null if nothing. */
  apply(ev: ProcessEvent): ProcessTreeInit | null {
    switch (ev.kind) {
      case "fork":
        return this.#fork(ev);
      case "exec":
        return this.#exec(ev);
      case "rename":
        return this.#rename(ev);
      case "exit":
        this.#exit(ev.pid, ev.tgid);
        return null;
    }
  }

  lookupComm(tid: number): string | undefined {
    return this.#threads.get(tid)?.comm;
  }

  lookupProcess(pid: number): ProcessInfo | undefined {
    return this.#processes.get(pid);
  }

  get processCount(): number {
    return this.#processes.size;
  }

  get threadCount(): number {
    return this.#threads.size;
  }

  #fork(ev: Extract<ProcessEvent, { kind: "fork" }>): ProcessTreeInit {
    const thread = { tid: ev.childPid, tgid: ev.childTgid, name: ev.childComm };
    if (ev.childPid !== ev.childTgid) {
      this.#processOrStub(ev.childTgid);
      this.#addThread(ev.childPid, ev.childTgid, ev.childComm);
      return { processes: [], threads: [thread] };
    }
    const parent = this.#processes.get(ev.parentTgid);
    // Until it execs, the child runs its parent's image. A parent named by its
    // comm (kthread, zombie, or unknown) passes on nothing useful, so the
    // child is then named by its own comm.
    const inherited = parent?.cmdlineIsComm === false ? parent.cmdline : undefined;
    // A process entry under this pid is a leftover whose exit we missed.
    this.#removeProcess(ev.childPid);
    const child: ProcEntry = {
      pid: ev.childPid,
      ppid: ev.parentTgid,
      uid: parent?.uid,
      cmdline: inherited !== undefined ? [...inherited] : [ev.childComm],
      cmdlineIsComm: inherited === undefined,
      isKthread: parent?.isKthread ?? false,
      // Event timestamps are CLOCK_BOOTTIME ns (bpf_ktime_get_boot_ns).
      startFromBootNs: this.#tsBase + BigInt(Math.trunc(ev.ts)),
      tids: new Set(),
    };
    this.#processes.set(child.pid, child);
    this.#addThread(ev.childPid, ev.childPid, ev.childComm);
    return { processes: [processMessage(child)], threads: [thread] };
  }

  #exec(ev: Extract<ProcessEvent, { kind: "exec" }>): ProcessTreeInit {
    // A non-leader that execs takes over the leader's pid; its own tid is gone.
    if (ev.oldPid !== ev.tgid) this.#forgetThread(ev.oldPid);
    const p = this.#processOrStub(ev.tgid);
    p.cmdline = ev.argv.length > 0 ? [...ev.argv] : [ev.filename];
    p.cmdlineIsComm = false;
    p.isKthread = false;
    this.#addThread(ev.tgid, ev.tgid, ev.comm);
    return {
      processes: [processMessage(p)],
      threads: [{ tid: ev.tgid, tgid: ev.tgid, name: ev.comm }],
    };
  }

  #rename(ev: Extract<ProcessEvent, { kind: "rename" }>): ProcessTreeInit {
    this.#addThread(ev.pid, ev.tgid, ev.newComm);
    const out: ProcessTreeInit = {
      processes: [],
      threads: [{ tid: ev.pid, tgid: ev.tgid, name: ev.newComm }],
    };
    const p = this.#processOrStub(ev.tgid);
    if (ev.pid === ev.tgid && p.cmdlineIsComm) {
      // A process named by its comm must follow it: every new kthread is
      // forked as "kthreadd" and only then renamed, and without this the
      // process would keep the name it had at fork.
      p.cmdline = [ev.newComm];
      out.processes.push(processMessage(p));
    }
    return out;
  }

  #exit(tid: number, tgid: number): void {
    // The table's own record wins: the event's tgid can only disagree if we
    // missed events, and then the table is what needs cleaning.
    const owner = this.#threads.get(tid)?.tgid ?? tgid;
    this.#forgetThread(tid);
    // The process stays while any thread lives: a leader may exit before its
    // threads (pthread_exit), and before a non-leader's exec takes its pid.
    const p = this.#processes.get(owner);
    if (p !== undefined && p.tids.size === 0) this.#processes.delete(owner);
  }

  #processOrStub(pid: number): ProcEntry {
    let p = this.#processes.get(pid);
    if (p === undefined) {
      p = {
        pid,
        ppid: undefined,
        uid: undefined,
        cmdline: undefined,
        cmdlineIsComm: false,
        isKthread: false,
        startFromBootNs: undefined,
        tids: new Set(),
      };
      this.#processes.set(pid, p);
    }
    return p;
  }

  #addThread(tid: number, tgid: number, comm: string): void {
    const old = this.#threads.get(tid);
    if (old !== undefined && old.tgid !== tgid) {
      // tid reused after an exit we never saw: detach it from the stale owner.
      const stale = this.#processes.get(old.tgid);
      stale?.tids.delete(tid);
      if (stale !== undefined && stale.tids.size === 0) this.#processes.delete(old.tgid);
    }
    this.#threads.set(tid, { tgid, comm });
    this.#processOrStub(tgid).tids.add(tid);
  }

  #forgetThread(tid: number): void {
    const t = this.#threads.get(tid);
    if (t === undefined) return;
    this.#threads.delete(tid);
    this.#processes.get(t.tgid)?.tids.delete(tid);
  }

  #removeProcess(pid: number): void {
    const p = this.#processes.get(pid);
    if (p === undefined) return;
    for (const tid of p.tids) {
      if (this.#threads.get(tid)?.tgid === pid) this.#threads.delete(tid);
    }
    this.#processes.delete(pid);
  }
}

function processMessage(p: ProcEntry): ProcessInit {
  const out: ProcessInit = { pid: p.pid, ppid: p.ppid ?? 0, cmdline: [...(p.cmdline ?? [])] };
  if (p.uid !== undefined) out.uid = p.uid;
  if (p.cmdlineIsComm) out.cmdlineIsComm = true;
  if (p.isKthread) out.isKthread = true;
  if (p.startFromBootNs !== undefined) out.processStartFromBoot = p.startFromBootNs;
  return out;
}

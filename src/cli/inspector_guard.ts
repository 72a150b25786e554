/**
 * Keeps Deno's SIGUSR1 inspector closed. Since Deno 2.9.2 a SIGUSR1 starts an unauthenticated
 * debugger on 127.0.0.1:9229, and in a root process that is root code execution for any local
 * user who connects. Deno installs that handler about half a second after start-up, over any
 * disposition set before, so ignoring the signal once is not enough: a worker thread sets SIGUSR1
 * to "ignore" at once and again whenever it finds a handler installed, polling often while the
 * runtime may still install it and slowly afterwards. A thread of its own keeps watching while
 * the main thread is busy (loading BPF, unwinding), when timers would not run.
 *
 * dist/systing's launcher blocks SIGUSR1 before the runtime starts. Every thread inherits the
 * mask of the thread that creates it, so with the signal blocked in all threads it can never be
 * delivered, whatever handler is installed, and the watching thread (a whole isolate, ~8 MB) is
 * not needed.
 */
import { workerUrl } from "../dist/worker_url.ts";
import { ignoreSignal, SIGUSR1 } from "../ffi/signal_disposition.ts";

let worker: Worker | undefined;
let blocked = false;

/** True when every thread of this process has SIGUSR1 blocked. */
function blockedEverywhere(): boolean {
  const bit = 1n << BigInt(SIGUSR1 - 1);
  try {
    for (const t of Deno.readDirSync("/proc/self/task")) {
      const status = Deno.readTextFileSync(`/proc/self/task/${t.name}/status`);
      const m = /^SigBlk:\s*([0-9a-f]+)$/m.exec(status);
      if (!m || (BigInt(`0x${m[1]}`) & bit) === 0n) return false;
    }
    return true;
  } catch {
    return false; // a thread that ended while we looked: check the safe way
  }
}

/** Idempotent; the watch lasts as long as the process. */
export function guardInspectorSignal(): void {
  if (worker || blocked) return;
  ignoreSignal(SIGUSR1);
  blocked = blockedEverywhere();
  if (blocked) return;
  worker = new Worker(
    workerUrl("inspector_guard_worker", new URL("./inspector_guard_worker.ts", import.meta.url)),
    { type: "module" },
  );
}

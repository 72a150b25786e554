/**
 * Keeps Deno's SIGUSR1 inspector closed. Since Deno 2.9.2 a SIGUSR1 starts an unauthenticated
 * debugger on 127.0.0.1:9229, and in a root process that is root code execution for any local
 * user who connects. Deno installs that handler about half a second after start-up, over any
 * disposition set before, so ignoring the signal once is not enough: a worker thread sets SIGUSR1
 * to "ignore" at once and again whenever it finds a handler installed, polling often while the
 * runtime may still install it and slowly afterwards. A thread of its own keeps watching while
 * the main thread is busy (loading BPF, unwinding), when timers would not run.
 */
import { workerUrl } from "../dist/worker_url.ts";
import { ignoreSignal, SIGUSR1 } from "../ffi/signal_disposition.ts";

let worker: Worker | undefined;

/** Idempotent; the watch lasts as long as the process. */
export function guardInspectorSignal(): void {
  if (worker) return;
  ignoreSignal(SIGUSR1);
  worker = new Worker(
    workerUrl("inspector_guard_worker", new URL("./inspector_guard_worker.ts", import.meta.url)),
    { type: "module" },
  );
}

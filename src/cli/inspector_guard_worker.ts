/**
 * Worker entry of inspector_guard.ts: re-ignores SIGUSR1 whenever a handler replaced "ignore".
 * It watches closely until the runtime's handler has been seen and replaced once (Deno installs
 * it once, 500 ms after start, later on a loaded machine), then only in case of a second install.
 * Between checks it blocks in Atomics.wait: one sigaction call per period, no busy loop.
 */
/// <reference lib="deno.worker" />
import { ignoreSignal, signalDisposition, SIGUSR1 } from "../ffi/signal_disposition.ts";

const CLOSE_PERIOD_MS = 2;
const LATER_PERIOD_MS = 100;
/** Checks at the close period before giving up on seeing the install (60 s). */
const CLOSE_CHECKS = 30_000;

const sleeper = new Int32Array(new SharedArrayBuffer(4));
let closeChecks = CLOSE_CHECKS;
for (;;) {
  if (signalDisposition(SIGUSR1) !== "ignore") {
    ignoreSignal(SIGUSR1);
    closeChecks = 0;
  }
  if (closeChecks > 0) closeChecks--;
  Atomics.wait(sleeper, 0, 0, closeChecks > 0 ? CLOSE_PERIOD_MS : LATER_PERIOD_MS);
}

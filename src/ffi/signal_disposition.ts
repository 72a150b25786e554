/**
 * Process-wide signal dispositions, set with libc's sigaction: what Deno's own signal API cannot
 * express, such as ignoring a signal outright instead of adding a listener beside the runtime's.
 */
import { LibbpfError } from "./libbpf_error.ts";
import { describeSyscallError, lastErrno, loadLibc } from "./library.ts";

export const SIGUSR1 = 10;
/** glibc's struct sigaction: sa_handler @0, sa_mask (128 bytes), sa_flags, sa_restorer. */
const SIGACTION_SIZE = 152;
const SIG_DFL = 0n;
const SIG_IGN = 1n;

/** The handler currently installed for `signal`: "default", "ignore" or "handled". */
export function signalDisposition(signal: number): "default" | "ignore" | "handled" {
  const old = new Uint8Array(SIGACTION_SIZE);
  if (loadLibc().sigaction(signal, null, old) !== 0) {
    const errno = lastErrno();
    throw new LibbpfError(
      `reading the action of signal ${signal}`,
      errno,
      describeSyscallError(errno),
    );
  }
  const handler = new DataView(old.buffer).getBigUint64(0, true);
  return handler === SIG_DFL ? "default" : handler === SIG_IGN ? "ignore" : "handled";
}

/** Makes the kernel discard `signal` (pending instances included) whatever handler was set. */
export function ignoreSignal(signal: number): void {
  const act = new Uint8Array(SIGACTION_SIZE);
  new DataView(act.buffer).setBigUint64(0, SIG_IGN, true);
  if (loadLibc().sigaction(signal, act, null) !== 0) {
    const errno = lastErrno();
    throw new LibbpfError(`ignoring signal ${signal}`, errno, describeSyscallError(errno));
  }
}

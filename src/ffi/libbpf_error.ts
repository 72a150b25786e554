/** A failed libbpf or libc call, with the errno it reported. */
export class LibbpfError extends Error {
  override name = "LibbpfError";
  constructor(
    /** What was being done, e.g. "attaching on_sched_switch". */
    readonly operation: string,
    /** Positive errno (0 when unknown). */
    readonly errno: number,
    reason: string,
  ) {
    super(`${operation} failed: ${reason}${errno ? ` (errno ${errno})` : ""}`);
  }
}

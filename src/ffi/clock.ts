/** The kernel clocks Perfetto correlates, read the way BPF reads them. */
import { loadLibc } from "./library.ts";

export const ClockId = {
  REALTIME: 0,
  MONOTONIC: 1,
  THREAD_CPUTIME: 3,
  MONOTONIC_RAW: 4,
  REALTIME_COARSE: 5,
  MONOTONIC_COARSE: 6,
  BOOTTIME: 7,
} as const;

const ts = new BigInt64Array(2);
const tsBytes = new Uint8Array(ts.buffer);

export function clockNs(id: number): bigint {
  if (loadLibc().clock_gettime(id, tsBytes) !== 0) throw new Error(`clock_gettime(${id}) failed`);
  return ts[0] * 1_000_000_000n + ts[1];
}

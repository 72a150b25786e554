/** A probe spec or event config that cannot be applied: the message names the value and the fix. */
export class ProbeError extends Error {
  override name = "ProbeError";
}

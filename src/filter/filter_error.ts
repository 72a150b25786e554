/** A -p/-c filter that cannot be applied: the message names the value and the fix. */
export class FilterError extends Error {
  override name = "FilterError";
}

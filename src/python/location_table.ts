/**
 * CPython's location table (`co_linetable`, 3.11 and later: Objects/locations.md in CPython),
 * read the way the interpreter reads it to answer "which line is instruction I on". Each entry
 * starts with a byte whose top bit is set: four bits of kind, three of length (code units - 1),
 * then varints. The table comes from another process's memory, possibly cut short: the walk is
 * bounded by the bytes given, and a table that ends before I answers undefined.
 */

/** An entry without a line (code 15): the instructions the compiler made up. */
const NO_LOCATION = 15;
const NO_COLUMNS = 13;
const LONG = 14;
const ONE_LINE_0 = 10;

/** The line of code unit INDEX (instruction index, not bytes), or undefined if unknown. */
export function lineOf(table: Uint8Array, firstLine: number, index: number): number | undefined {
  let line = firstLine;
  let start = 0;
  let i = 0;
  while (i < table.length) {
    const head = table[i];
    if ((head & 0x80) === 0) return undefined; // not at an entry: a malformed table
    const code = (head >> 3) & 15;
    const end = start + (head & 7) + 1;
    let delta = 0;
    if (code === NO_COLUMNS || code === LONG) {
      // A signed varint in 6-bit chunks, low first; bit 6 says another follows.
      let v = 0, shift = 0, j = i + 1, ended = false;
      for (; j < table.length && shift <= 30; j++, shift += 6) {
        v += (table[j] & 63) * 2 ** shift;
        if ((table[j] & 64) === 0) {
          ended = true;
          break;
        }
      }
      if (!ended) return undefined; // cut off, or longer than any real line number
      delta = v % 2 ? -Math.floor(v / 2) : v / 2;
    } else if (code >= ONE_LINE_0 && code < NO_COLUMNS) {
      delta = code - ONE_LINE_0;
    }
    if (code !== NO_LOCATION) line += delta;
    if (index < end) return code === NO_LOCATION ? undefined : line;
    start = end;
    // The next entry starts at the next byte with its top bit set.
    for (i++; i < table.length && (table[i] & 0x80) === 0; i++);
  }
  return undefined;
}

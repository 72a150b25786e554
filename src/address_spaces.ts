/**
 * What was mapped where in every process, over time: seeded from
 * /proc/PID/maps at start, then kept current from perf's side-band records
 * (MMAP2, exec, fork, exit). Lookups take the sample's timestamp, so a
 * sample resolves against the mappings of its moment — after its process
 * exec'd again or exited, and after the process is long gone.
 *
 * Mappings are never unmapped here (perf reports no munmap); a newer mapping
 * over the same range wins. Exited processes keep their mappings until the
 * end of the trace, which is what lets their samples resolve; memory is one
 * entry per executable mapping seen.
 */

export interface Mapping {
  start: number;
  end: number;
  /** File offset of `start`. */
  pgoff: number;
  path: string;
  /** Device and inode identify the file even if the path changes or disappears. */
  dev: string;
  inode: number;
  executable: boolean;
  /** Boot-time ns (relative to the trace base) from which the mapping is valid. */
  since: number;
}

/** One exec image of a process: its mappings, newest last. */
interface Image {
  id: number;
  since: number;
  mappings: Mapping[];
  /** Sorted by start, rebuilt lazily after additions. */
  sorted: Mapping[] | null;
}

export class AddressSpaces {
  #images = new Map<number, Image[]>();
  /** Exit time of processes that are gone, oldest first (insertion order). */
  #exited = new Map<number, number>();
  #nextId = 1;
  /** Mappings recorded so far (the memory this costs grows with it). */
  mappingsSeen = 0;

  /** Mappings read from /proc at start (valid from the beginning of time). */
  seed(tgid: number, mappings: Omit<Mapping, "since">[]): void {
    const image: Image = { id: this.#nextId++, since: -Infinity, mappings: [], sorted: null };
    for (const m of mappings) image.mappings.push({ ...m, since: -Infinity });
    this.mappingsSeen += mappings.length;
    this.#images.set(tgid, [image]);
  }

  #current(tgid: number, ts: number): Image {
    let images = this.#images.get(tgid);
    if (!images) {
      images = [{ id: this.#nextId++, since: -Infinity, mappings: [], sorted: null }];
      this.#images.set(tgid, images);
    }
    const last = images[images.length - 1];
    if (last.since <= ts) return last;
    return imageAt(images, ts) ?? last;
  }

  map(tgid: number, m: Mapping): void {
    const image = this.#current(tgid, m.since);
    image.mappings.push(m);
    image.sorted = null;
    this.mappingsSeen++;
  }

  /**
   * A new image: the old mappings stay for samples taken before `ts`.
   * Side-band records of different CPUs can arrive out of order, so
   * mappings already filed under an older image but made after `ts` move over.
   */
  exec(tgid: number, ts: number): void {
    const images = this.#images.get(tgid) ?? [];
    const image: Image = { id: this.#nextId++, since: ts, mappings: [], sorted: null };
    let at = images.length;
    while (at > 0 && images[at - 1].since > ts) at--;
    const before = images[at - 1];
    if (before) {
      image.mappings = before.mappings.filter((m) => m.since >= ts);
      before.mappings = before.mappings.filter((m) => m.since < ts);
      before.sorted = null;
    }
    images.splice(at, 0, image);
    this.#images.set(tgid, images);
  }

  /** A new process starts with a copy of its parent's address space. */
  fork(parentTgid: number, childTgid: number, ts: number): void {
    if (parentTgid === childTgid) return; // a thread: same address space
    this.#exited.delete(childTgid); // a reused pid
    const parent = this.#images.get(parentTgid);
    const from = parent ? imageAt(parent, ts) : undefined;
    const inherited = (from?.mappings ?? []).filter((m) => m.since <= ts);
    // Records of the child that arrived before this one (another CPU's ring)
    // are newer: keep them, after the inherited state.
    const existing = this.#images.get(childTgid);
    if (existing && existing.length > 0) {
      const first = existing[0];
      if (first.since > ts) {
        // The child already exec'd: the inherited image is an older one of its own.
        existing.unshift({ id: this.#nextId++, since: ts, mappings: inherited, sorted: null });
        return;
      }
      first.mappings = [...inherited, ...first.mappings];
      first.since = ts;
      first.sorted = null;
      return;
    }
    this.#images.set(childTgid, [{
      id: this.#nextId++,
      since: ts,
      mappings: inherited,
      sorted: null,
    }]);
  }

  /** The process is gone; its mappings stay until prune() passes `ts`. */
  exit(tgid: number, ts: number): void {
    this.#exited.delete(tgid);
    this.#exited.set(tgid, ts);
  }

  /**
   * Forgets processes that exited before `ts`: no sample still to be
   * resolved is that old. This is what bounds memory on fork-heavy hosts.
   */
  prune(ts: number): number {
    let n = 0;
    for (const [tgid, exitTs] of this.#exited) {
      if (exitTs >= ts) break;
      this.#exited.delete(tgid);
      const images = this.#images.get(tgid);
      // A reused pid whose new process started after the exit stays.
      if (images && images[images.length - 1].since <= exitTs) {
        this.#images.delete(tgid);
        n++;
      }
    }
    return n;
  }

  /** Which exec image (a unique number) process `tgid` ran at time `ts`; 0 if unknown. */
  imageId(tgid: number, ts: number): number {
    const images = this.#images.get(tgid);
    return (images && imageAt(images, ts)?.id) ?? 0;
  }

  /** The mapping that held `ip` in process `tgid` at time `ts`. */
  lookup(tgid: number, ip: number, ts: number): Mapping | undefined {
    const images = this.#images.get(tgid);
    if (!images) return undefined;
    const image = imageAt(images, ts);
    if (!image) return undefined;
    const sorted = image.sorted ??= [...image.mappings].sort((a, b) => a.start - b.start);
    // Newest mapping containing ip that already existed at ts.
    let best: Mapping | undefined;
    let lo = 0, hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid].start <= ip) lo = mid + 1;
      else hi = mid;
    }
    // Overlaps are rare (remaps); scan back over candidates that start before ip.
    for (let i = lo - 1, seen = 0; i >= 0 && seen < 64; i--, seen++) {
      const m = sorted[i];
      if (ip < m.end && m.since <= ts && (!best || m.since > best.since)) best = m;
    }
    return best;
  }

  get processes(): number {
    return this.#images.size;
  }
}

function imageAt(images: Image[], ts: number): Image | undefined {
  for (let i = images.length - 1; i >= 0; i--) {
    if (images[i].since <= ts) return images[i];
  }
  return undefined;
}

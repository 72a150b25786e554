/**
 * What was mapped where in every process, over time: seeded from
 * /proc/PID/maps at start, then kept current from perf's side-band records
 * (MMAP2, exec, fork, exit). Lookups take the sample's timestamp, so a
 * sample resolves against the mappings of its moment — after its process
 * exec'd again or exited, and after the process is long gone.
 *
 * Mappings are never unmapped here (perf reports no munmap); a newer mapping
 * over the same range wins. Exited processes keep their mappings until
 * prune() passes their exit, which is what lets their samples resolve.
 *
 * A process that maps code again and again (a JIT, or someone trying to make
 * us hold millions of entries) grows its image: once an image doubles past
 * its last size, prune() drops the mappings that a newer mapping of the same
 * range replaced before the horizon (no sample still to come can need them),
 * and beyond MAX_MAPPINGS_PER_IMAGE the oldest such mappings whatever their
 * range. Memory is bounded by the live mappings, not by the history.
 */

/** Mappings one exec image may keep (the kernel allows 65530 live ones by default). */
export const MAX_MAPPINGS_PER_IMAGE = 1 << 17;

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
  /** Sorted by start then time, rebuilt lazily after additions. */
  sorted: Mapping[] | null;
  /** reach[i]: the highest end among sorted[0..i] (no mapping before i+1 reaches past it). */
  reach: Float64Array | null;
  /** Mapping count at which prune() compacts it next. */
  compactAt: number;
}

const COMPACT_FROM = 1024;

export class AddressSpaces {
  #images = new Map<number, Image[]>();
  /** Exit time of processes that are gone, oldest first (insertion order). */
  #exited = new Map<number, number>();
  #nextId = 1;
  /** Mappings recorded so far. */
  mappingsSeen = 0;
  /** Mappings dropped by compaction: replaced ones, and beyond the cap the oldest. */
  mappingsDropped = 0;
  /** Images grown past their compaction mark since the last prune(). */
  #grown = new Set<Image>();

  /** Mappings read from /proc at start (valid from the beginning of time). */
  seed(tgid: number, mappings: Omit<Mapping, "since">[]): void {
    const image = newImage(this.#nextId++, -Infinity);
    for (const m of mappings) image.mappings.push({ ...m, since: -Infinity });
    this.mappingsSeen += mappings.length;
    this.#images.set(tgid, [image]);
  }

  #current(tgid: number, ts: number): Image {
    let images = this.#images.get(tgid);
    if (!images) {
      images = [newImage(this.#nextId++, -Infinity)];
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
    image.reach = null;
    this.mappingsSeen++;
    if (image.mappings.length >= image.compactAt) this.#grown.add(image);
  }

  /**
   * A new image: the old mappings stay for samples taken before `ts`.
   * Side-band records of different CPUs can arrive out of order, so
   * mappings already filed under an older image but made after `ts` move over.
   */
  exec(tgid: number, ts: number): void {
    const images = this.#images.get(tgid) ?? [];
    const image = newImage(this.#nextId++, ts);
    let at = images.length;
    while (at > 0 && images[at - 1].since > ts) at--;
    const before = images[at - 1];
    if (before) {
      image.mappings = before.mappings.filter((m) => m.since >= ts);
      before.mappings = before.mappings.filter((m) => m.since < ts);
      before.sorted = null;
      before.reach = null;
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
        existing.unshift({ ...newImage(this.#nextId++, ts), mappings: inherited });
        return;
      }
      first.mappings = [...inherited, ...first.mappings];
      first.since = ts;
      first.sorted = null;
      first.reach = null;
      return;
    }
    this.#images.set(childTgid, [{ ...newImage(this.#nextId++, ts), mappings: inherited }]);
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
    for (const image of this.#grown) this.#compact(image, ts);
    this.#grown.clear();
    return n;
  }

  /** Drops what no sample at or after `ts` can resolve to (see the file's comment). */
  #compact(image: Image, ts: number): void {
    const before = image.mappings.length;
    // Per range, the newest mapping made before the horizon hides all older ones.
    const newestSettled = new Map<string, Mapping>();
    for (const m of image.mappings) {
      if (m.since >= ts) continue;
      const key = `${m.start}:${m.end}`;
      const held = newestSettled.get(key);
      if (!held || m.since >= held.since) newestSettled.set(key, m);
    }
    let kept = image.mappings.filter((m) =>
      m.since >= ts || newestSettled.get(`${m.start}:${m.end}`) === m
    );
    if (kept.length > MAX_MAPPINGS_PER_IMAGE) {
      // Still too many distinct ranges: the oldest settled ones go (mappings from the /proc
      // scan last, since every long-lived library is among them).
      const settled = kept.filter((m) => m.since < ts)
        .sort((a, b) =>
          (a.since === -Infinity ? 1 : 0) - (b.since === -Infinity ? 1 : 0) ||
          a.since - b.since
        );
      const drop = new Set(settled.slice(0, kept.length - MAX_MAPPINGS_PER_IMAGE));
      kept = kept.filter((m) => !drop.has(m));
    }
    this.mappingsDropped += before - kept.length;
    image.mappings = kept;
    image.sorted = null;
    image.reach = null;
    image.compactAt = Math.max(COMPACT_FROM, 2 * kept.length);
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
    let sorted = image.sorted;
    let reach = image.reach;
    if (!sorted || !reach) {
      sorted = image.sorted = [...image.mappings].sort((a, b) =>
        a.start - b.start || a.since - b.since
      );
      reach = image.reach = new Float64Array(sorted.length);
      let most = -Infinity;
      for (let i = 0; i < sorted.length; i++) reach[i] = most = Math.max(most, sorted[i].end);
    }
    // Newest mapping containing ip that already existed at ts.
    let best: Mapping | undefined;
    let lo = 0;
    let end = sorted.length;
    while (lo < end) {
      const mid = (lo + end) >>> 1;
      if (sorted[mid].start <= ip) lo = mid + 1;
      else end = mid;
    }
    // Overlaps are rare (remaps), but one range may be remapped thousands of times: walk back
    // over the distinct starts before ip, within each start find by time, and stop where no
    // earlier mapping reaches ip.
    for (let runs = 0; end > 0 && runs < 64 && reach[end - 1] > ip; runs++) {
      const start = sorted[end - 1].start;
      let runStart = end - 1;
      if (runStart > 0 && sorted[runStart - 1].start === start) {
        let a = 0;
        let b = runStart;
        while (a < b) {
          const mid = (a + b) >>> 1;
          if (sorted[mid].start < start) a = mid + 1;
          else b = mid;
        }
        runStart = a;
      }
      let a = runStart;
      let b = end;
      while (a < b) {
        const mid = (a + b) >>> 1;
        if (sorted[mid].since <= ts) a = mid + 1;
        else b = mid;
      }
      if (a > runStart) {
        const m = sorted[a - 1];
        if (ip < m.end && (!best || m.since > best.since)) best = m;
      }
      end = runStart;
    }
    return best;
  }

  get processes(): number {
    return this.#images.size;
  }

  /** Mappings held right now, in every image of every process. */
  get mappingCount(): number {
    let n = 0;
    for (const images of this.#images.values()) for (const i of images) n += i.mappings.length;
    return n;
  }
}

function newImage(id: number, since: number): Image {
  return { id, since, mappings: [], sorted: null, reach: null, compactAt: COMPACT_FROM };
}

function imageAt(images: Image[], ts: number): Image | undefined {
  for (let i = images.length - 1; i >= 0; i--) {
    if (images[i].since <= ts) return images[i];
  }
  return undefined;
}

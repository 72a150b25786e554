// Unit tests of AddressSpaces: which mapping held an address in a process at a
// given time, across seeds, mmaps, execs and forks, including side-band
// records that arrive out of order (another CPU's ring drained later).
import assert from "node:assert/strict";
import { AddressSpaces, type Mapping, MAX_MAPPINGS_PER_IMAGE } from "./address_spaces.ts";

function mapping(path: string, start: number, end: number, since: number, extra = {}): Mapping {
  return {
    start,
    end,
    pgoff: 0x1000,
    path,
    dev: "fe:01",
    inode: path.length * 1000 + start,
    executable: true,
    since,
    ...extra,
  };
}

function seeded(tgid: number, ...ms: Mapping[]): AddressSpaces {
  const spaces = new AddressSpaces();
  spaces.seed(tgid, ms.map(({ since: _, ...m }) => m));
  return spaces;
}

/** The path of the mapping holding IP at TS, or undefined. */
function pathAt(spaces: AddressSpaces, tgid: number, ip: number, ts: number): string | undefined {
  return spaces.lookup(tgid, ip, ts)?.path;
}

Deno.test("address spaces: a seeded mapping is valid from the beginning of time", () => {
  const spaces = seeded(10, mapping("/bin/a", 0x1000, 0x3000, 0));
  const m = spaces.lookup(10, 0x2fff, -5e12);
  assert.equal(m?.path, "/bin/a");
  assert.equal(m?.since, -Infinity);
  assert.equal(m?.pgoff, 0x1000);
  assert.equal(m?.dev, "fe:01");
  assert.equal(pathAt(spaces, 10, 0x1000, 0), "/bin/a");
  // End exclusive, start inclusive.
  assert.equal(pathAt(spaces, 10, 0x3000, 0), undefined);
  assert.equal(pathAt(spaces, 10, 0xfff, 0), undefined);
  // Another process, or one never heard of.
  assert.equal(pathAt(spaces, 11, 0x2000, 0), undefined);
  assert.equal(spaces.imageId(11, 0), 0);
  assert.notEqual(spaces.imageId(10, 0), 0);
  assert.equal(spaces.mappingsSeen, 1);
  assert.equal(spaces.processes, 1);
});

Deno.test("address spaces: an mmap is visible from its time on, not before", () => {
  const spaces = seeded(10, mapping("/bin/a", 0x1000, 0x2000, 0));
  spaces.map(10, mapping("/lib/b.so", 0x7000, 0x9000, 500));
  assert.equal(pathAt(spaces, 10, 0x8000, 499), undefined);
  assert.equal(pathAt(spaces, 10, 0x8000, 500), "/lib/b.so");
  assert.equal(pathAt(spaces, 10, 0x8000, 10_000), "/lib/b.so");
  // The seeded mapping is untouched by it.
  assert.equal(pathAt(spaces, 10, 0x1800, 10_000), "/bin/a");
  assert.equal(spaces.mappingsSeen, 2);
});

Deno.test("address spaces: mappings of a process never seeded start a space of their own", () => {
  const spaces = new AddressSpaces();
  spaces.map(20, mapping("/bin/new", 0x1000, 0x2000, 100));
  assert.equal(pathAt(spaces, 20, 0x1000, 100), "/bin/new");
  assert.equal(pathAt(spaces, 20, 0x1000, 99), undefined);
  assert.notEqual(spaces.imageId(20, 100), 0);
});

Deno.test("address spaces: a sample before an exec resolves to the old image, after it to the new", () => {
  const spaces = seeded(10, mapping("/bin/old", 0x1000, 0x5000, 0));
  spaces.exec(10, 1000);
  spaces.map(10, mapping("/bin/new", 0x2000, 0x4000, 1001));
  spaces.map(10, mapping("/lib/ld.so", 0x9000, 0xa000, 1002));
  assert.equal(pathAt(spaces, 10, 0x3000, 999), "/bin/old");
  assert.equal(pathAt(spaces, 10, 0x3000, 1001), "/bin/new");
  assert.equal(pathAt(spaces, 10, 0x9800, 5000), "/lib/ld.so");
  // The old image's mappings are gone after the exec, even where nothing replaced them ...
  assert.equal(pathAt(spaces, 10, 0x1800, 1000), undefined);
  assert.equal(pathAt(spaces, 10, 0x4800, 5000), undefined);
  // ... and the new image's were never there before it.
  assert.equal(pathAt(spaces, 10, 0x9800, 999), undefined);
  // Between the exec and the first mmap the new image is empty.
  assert.equal(pathAt(spaces, 10, 0x3000, 1000), undefined);
});

Deno.test("address spaces: imageId changes at exec and stays put between execs", () => {
  const spaces = seeded(10, mapping("/bin/old", 0x1000, 0x5000, 0));
  const seed = spaces.imageId(10, 0);
  spaces.exec(10, 1000);
  spaces.exec(10, 2000);
  const first = spaces.imageId(10, 1000);
  const second = spaces.imageId(10, 2000);
  assert.notEqual(seed, 0);
  assert.notEqual(first, 0);
  assert.notEqual(second, 0);
  assert.equal(new Set([seed, first, second]).size, 3);
  assert.equal(spaces.imageId(10, -1e15), seed);
  assert.equal(spaces.imageId(10, 999), seed);
  assert.equal(spaces.imageId(10, 1999), first);
  assert.equal(spaces.imageId(10, 1e15), second);
  // Mapping in the middle image does not change its id.
  spaces.map(10, mapping("/bin/mid", 0x1000, 0x2000, 1500));
  assert.equal(spaces.imageId(10, 1500), first);
  assert.equal(pathAt(spaces, 10, 0x1000, 1600), "/bin/mid");
  assert.equal(pathAt(spaces, 10, 0x1000, 2100), undefined);
});

Deno.test("address spaces: an exec applied after the mmaps that followed it moves them over", () => {
  // Another CPU's ring delivered the new image's mmaps first.
  const spaces = seeded(10, mapping("/bin/old", 0x1000, 0x5000, 0));
  spaces.map(10, mapping("/bin/new", 0x1000, 0x5000, 1001));
  spaces.map(10, mapping("/lib/libc.so", 0x8000, 0x9000, 1003));
  spaces.exec(10, 1000);
  assert.equal(pathAt(spaces, 10, 0x2000, 999), "/bin/old");
  assert.equal(pathAt(spaces, 10, 0x2000, 1001), "/bin/new");
  assert.equal(pathAt(spaces, 10, 0x8800, 1003), "/lib/libc.so");
  assert.equal(pathAt(spaces, 10, 0x8800, 999), undefined);
  assert.notEqual(spaces.imageId(10, 999), spaces.imageId(10, 1001));
});

Deno.test("address spaces: an mmap from before an exec, applied after it, files under the old image", () => {
  const spaces = seeded(10, mapping("/bin/old", 0x1000, 0x2000, 0));
  spaces.exec(10, 1000);
  spaces.map(10, mapping("/bin/new", 0x1000, 0x2000, 1001));
  spaces.map(10, mapping("/lib/late.so", 0x6000, 0x7000, 900)); // late from another ring
  assert.equal(pathAt(spaces, 10, 0x6800, 950), "/lib/late.so");
  assert.equal(pathAt(spaces, 10, 0x6800, 1500), undefined);
  assert.equal(pathAt(spaces, 10, 0x1800, 950), "/bin/old");
  assert.equal(pathAt(spaces, 10, 0x1800, 1500), "/bin/new");
});

Deno.test("address spaces: execs applied out of order still split the images at their times", () => {
  const spaces = seeded(10, mapping("/bin/zero", 0x1000, 0x2000, 0));
  spaces.map(10, mapping("/bin/one", 0x1000, 0x2000, 1001));
  spaces.map(10, mapping("/bin/two", 0x1000, 0x2000, 2001));
  spaces.exec(10, 2000);
  spaces.exec(10, 1000);
  assert.equal(pathAt(spaces, 10, 0x1800, 999), "/bin/zero");
  assert.equal(pathAt(spaces, 10, 0x1800, 1500), "/bin/one");
  assert.equal(pathAt(spaces, 10, 0x1800, 2500), "/bin/two");
  assert.equal(
    new Set([spaces.imageId(10, 999), spaces.imageId(10, 1500), spaces.imageId(10, 2500)]).size,
    3,
  );
});

Deno.test("address spaces: fork copies the parent's mappings as of the fork", () => {
  const spaces = seeded(10, mapping("/bin/a", 0x1000, 0x2000, 0));
  spaces.map(10, mapping("/lib/b.so", 0x4000, 0x5000, 200));
  spaces.fork(10, 11, 300);
  spaces.map(10, mapping("/lib/c.so", 0x6000, 0x7000, 400)); // the parent's, after the fork
  spaces.map(11, mapping("/lib/d.so", 0x8000, 0x9000, 500)); // the child's own
  assert.equal(pathAt(spaces, 11, 0x1800, 350), "/bin/a");
  assert.equal(pathAt(spaces, 11, 0x4800, 350), "/lib/b.so");
  assert.equal(pathAt(spaces, 11, 0x6800, 1000), undefined);
  assert.equal(pathAt(spaces, 11, 0x8800, 1000), "/lib/d.so");
  assert.equal(pathAt(spaces, 10, 0x6800, 1000), "/lib/c.so");
  assert.equal(pathAt(spaces, 10, 0x8800, 1000), undefined);
  // The child's image is its own.
  assert.notEqual(spaces.imageId(11, 350), 0);
  assert.notEqual(spaces.imageId(11, 350), spaces.imageId(10, 350));
});

Deno.test("address spaces: a fork applied after the parent's later mmaps copies only older ones", () => {
  const spaces = seeded(10, mapping("/bin/a", 0x1000, 0x2000, 0));
  spaces.map(10, mapping("/lib/c.so", 0x6000, 0x7000, 400));
  spaces.fork(10, 11, 300);
  assert.equal(pathAt(spaces, 11, 0x1800, 1000), "/bin/a");
  assert.equal(pathAt(spaces, 11, 0x6800, 1000), undefined);
});

Deno.test("address spaces: a fork takes the parent's image of its time, not a later exec's", () => {
  const spaces = seeded(10, mapping("/bin/a", 0x1000, 0x2000, 0));
  spaces.exec(10, 500);
  spaces.map(10, mapping("/bin/b", 0x1000, 0x2000, 501));
  spaces.fork(10, 11, 300); // applied after the parent's exec
  assert.equal(pathAt(spaces, 11, 0x1800, 1000), "/bin/a");
  assert.equal(pathAt(spaces, 10, 0x1800, 1000), "/bin/b");
});

Deno.test("address spaces: a thread (same tgid) shares the address space", () => {
  const spaces = seeded(10, mapping("/bin/a", 0x1000, 0x2000, 0));
  const before = spaces.imageId(10, 100);
  spaces.fork(10, 10, 100);
  assert.equal(spaces.imageId(10, 100), before);
  assert.equal(pathAt(spaces, 10, 0x1800, 200), "/bin/a");
  assert.equal(spaces.processes, 1);
});

Deno.test("address spaces: child mmaps applied before its fork record keep the inherited ones", () => {
  const spaces = seeded(10, mapping("/bin/a", 0x1000, 0x2000, 0));
  spaces.map(11, mapping("/lib/d.so", 0x8000, 0x9000, 310));
  spaces.fork(10, 11, 300);
  assert.equal(pathAt(spaces, 11, 0x1800, 400), "/bin/a");
  assert.equal(pathAt(spaces, 11, 0x8800, 400), "/lib/d.so");
  assert.equal(pathAt(spaces, 11, 0x8800, 305), undefined);
});

Deno.test("address spaces: a fork applied after the child's exec", () => {
  // fork → exec in the child (the vfork+exec of every shell), the fork record
  // on a ring drained after the child's exec and mmaps were applied.
  const spaces = seeded(10, mapping("/bin/sh", 0x1000, 0x2000, 0));
  spaces.exec(11, 500);
  spaces.map(11, mapping("/bin/ls", 0x5000, 0x6000, 510));
  spaces.fork(10, 11, 300);
  // Between fork and exec the child runs the parent's code ...
  assert.equal(pathAt(spaces, 11, 0x1800, 400), "/bin/sh");
  // ... after the exec only its new image.
  assert.equal(pathAt(spaces, 11, 0x5800, 600), "/bin/ls");
  assert.equal(pathAt(spaces, 11, 0x1800, 600), undefined, "the pre-exec mapping survived exec");
  assert.notEqual(spaces.imageId(11, 400), spaces.imageId(11, 600), "one image across the exec");
});

Deno.test("address spaces: overlapping remaps: the newest mapping wins from its time on", () => {
  const spaces = new AddressSpaces();
  spaces.map(10, mapping("/x", 0x1000, 0x3000, 100));
  spaces.map(10, mapping("/y", 0x2000, 0x2800, 200)); // inside x
  spaces.map(10, mapping("/w", 0x0800, 0x2200, 400)); // starts before both
  assert.equal(pathAt(spaces, 10, 0x2400, 150), "/x");
  assert.equal(pathAt(spaces, 10, 0x2400, 250), "/y");
  assert.equal(pathAt(spaces, 10, 0x2900, 250), "/x"); // y does not cover it
  assert.equal(pathAt(spaces, 10, 0x2100, 350), "/y");
  assert.equal(pathAt(spaces, 10, 0x2100, 450), "/w");
  assert.equal(pathAt(spaces, 10, 0x2400, 450), "/y"); // w ends at 0x2200
  assert.equal(pathAt(spaces, 10, 0x0900, 450), "/w");
  assert.equal(pathAt(spaces, 10, 0x0900, 350), undefined);
});

Deno.test("address spaces: overlapping remaps applied out of order: still the newest wins", () => {
  const spaces = new AddressSpaces();
  spaces.map(10, mapping("/new", 0x1000, 0x2000, 300));
  spaces.map(10, mapping("/old", 0x1000, 0x2000, 100));
  assert.equal(pathAt(spaces, 10, 0x1800, 200), "/old");
  assert.equal(pathAt(spaces, 10, 0x1800, 300), "/new");
  assert.equal(pathAt(spaces, 10, 0x1800, 10_000), "/new");
});

Deno.test("address spaces: a remap to non-executable memory hides the old code", () => {
  const spaces = new AddressSpaces();
  spaces.map(10, mapping("/code", 0x1000, 0x2000, 100));
  spaces.map(10, mapping("", 0x1000, 0x2000, 200, { executable: false, inode: 0 }));
  assert.equal(spaces.lookup(10, 0x1800, 150)?.executable, true);
  assert.equal(spaces.lookup(10, 0x1800, 250)?.executable, false);
});

Deno.test("address spaces: lookups find the mapping among many", () => {
  const spaces = new AddressSpaces();
  // 500 libraries, mapped in shuffled order.
  const order = Array.from({ length: 500 }, (_, i) => (i * 197) % 500);
  for (const i of order) {
    spaces.map(10, mapping(`/lib/l${i}.so`, 0x100000 + i * 0x10000, 0x108000 + i * 0x10000, i));
  }
  for (const i of [0, 1, 250, 498, 499]) {
    assert.equal(pathAt(spaces, 10, 0x100000 + i * 0x10000 + 0x7fff, 1000), `/lib/l${i}.so`);
    assert.equal(pathAt(spaces, 10, 0x108000 + i * 0x10000, 1000), undefined); // the gap
  }
  assert.equal(spaces.mappingsSeen, 500);
});

Deno.test("address spaces: a million remaps of one range keep only what samples can still need", () => {
  const spaces = seeded(1, mapping("/lib/libc.so", 0x7000, 0x8000, 0));
  // As the recorder does: prune every so often with a horizon 5000 ticks behind.
  const window = 5000;
  let most = 0;
  for (let i = 1; i <= 1_000_000; i++) {
    spaces.map(1, mapping(`/tmp/jit${i % 2}`, 0x1000, 0x2000, i));
    if (i % 1000 === 0) {
      spaces.prune(i - window);
      most = Math.max(most, spaces.mappingCount);
      // Every sample not yet resolved (newer than the horizon) finds its own mapping.
      for (const t of [Math.max(1, i - window), i - 1, i]) {
        assert.equal(pathAt(spaces, 1, 0x1800, t), `/tmp/jit${t % 2}`, `t=${t}`);
      }
    }
  }
  assert.ok(most < 4 * window, `held up to ${most} mappings`);
  assert.ok(spaces.mappingsDropped > 980_000, `${spaces.mappingsDropped} dropped`);
  assert.equal(pathAt(spaces, 1, 0x7800, 1_000_000), "/lib/libc.so");
});

Deno.test("address spaces: endless distinct mappings are capped, the /proc ones kept", () => {
  const spaces = seeded(1, mapping("/lib/libc.so", 0x7000_0000, 0x7000_1000, 0));
  const n = MAX_MAPPINGS_PER_IMAGE + 50_000;
  for (let i = 0; i < n; i++) spaces.map(1, mapping("/tmp/x", i * 0x1000, i * 0x1000 + 0x800, i));
  spaces.prune(n);
  assert.equal(spaces.mappingsDropped, n + 1 - MAX_MAPPINGS_PER_IMAGE);
  assert.equal(pathAt(spaces, 1, 0x7000_0800, n), "/lib/libc.so");
  // The oldest went, the newest stayed.
  assert.equal(pathAt(spaces, 1, 0x400, n), undefined);
  assert.equal(pathAt(spaces, 1, (n - 1) * 0x1000 + 0x400, n), "/tmp/x");
});

// The symbolizer over files a hostile user crafted: whatever a file does wrong costs its own
// names only (frames labelled module+offset, the file listed as unreadable), nothing blocks, and
// what the open files keep stays within the cache's bounds.
import assert from "node:assert/strict";
import { AddressSpaces } from "../stacks/address_spaces.ts";
import { ElfFile } from "./elf_file.ts";
import { EhFrame } from "../unwind/eh_frame.ts";
import { Kallsyms } from "./kallsyms.ts";
import { MAX_OPEN_FILES, Symbolizer } from "./symbolizer.ts";
import {
  CODE_AT,
  craftElf,
  type CraftOptions,
  demanglingBomb,
  writeCrafted,
} from "../../test/crafted_elf.ts";

const TGID = 4_000_000; // no such process: map_files cannot help, the path must do
const START = 0x5555_0000_0000;

/** "maj:min" in hex, as /proc/PID/maps spells the device of a file. */
function devOf(path: string): string {
  const out = new Deno.Command("stat", { args: ["-c", "%D", path], stdout: "piped" }).outputSync();
  const raw = parseInt(new TextDecoder().decode(out.stdout).trim(), 16);
  const major = ((raw >> 8) & 0xfff) | Math.floor(raw / 2 ** 32) & ~0xfff;
  const minor = (raw & 0xff) | ((raw >> 12) & ~0xff);
  return `${major.toString(16).padStart(2, "0")}:${minor.toString(16).padStart(2, "0")}`;
}

interface Mapped {
  sym: Symbolizer;
  spaces: AddressSpaces;
}

function mapped(files: string[]): Mapped {
  const spaces = new AddressSpaces();
  spaces.seed(
    TGID,
    files.map((path, i) => ({
      start: START + i * 0x100000,
      end: START + i * 0x100000 + 0x10000,
      pgoff: 0,
      path,
      dev: devOf(path),
      inode: Deno.statSync(path).ino!,
      executable: true,
    })),
  );
  return { sym: new Symbolizer(Kallsyms.parse(""), spaces), spaces };
}

function frameAt(m: Mapped, file: number): string {
  const r = m.sym.userFrame(TGID, START + file * 0x100000 + CODE_AT + 2, 0, false);
  assert.equal(r.invalid, false);
  return r.frame!.name;
}

async function withDir(fn: (dir: string) => void | Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "systing-symbolizer-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("crafted symbol tables: the file's frames are labelled and it is listed, nothing thrown", () =>
  withDir((dir) => {
    const variants: [string, CraftOptions][] = [
      ["entsize16", { symtabEntsize: 16 }],
      ["link-to-text", { symtabLink: 1 }],
      ["strtab-2e40", { strtabClaim: 2 ** 40 }],
      ["link-out-of-range", { symtabLink: 999 }],
    ];
    const paths = variants.map(([name, opts]) => {
      const path = `${dir}/${name}.so`;
      // The 2^40 claim is refused before anything is read: nothing to extend the file for.
      Deno.writeFileSync(path, craftElf(opts).bytes);
      return path;
    });
    const good = `${dir}/good.so`;
    writeCrafted(good, craftElf());
    const m = mapped([...paths, good]);
    for (let i = 0; i < paths.length; i++) {
      const name = frameAt(m, i);
      assert.equal(name, `${variants[i][0]}.so+0x${(CODE_AT + 2).toString(16)}`);
      assert.ok(m.sym.failures.has(paths[i]), `${paths[i]} not listed`);
      // Asked again: the same label, from the cache, without reading the file again.
      assert.equal(frameAt(m, i), name);
    }
    assert.equal(frameAt(m, paths.length), "hostile_code");
    assert.equal(m.sym.failures.has(good), false);
    m.sym.close();
  }));

Deno.test("sparse files claiming 256 MiB tables cost the blocks that exist, not the claim", () =>
  withDir((dir) => {
    const strtab = `${dir}/sparse-strtab.so`;
    writeCrafted(strtab, craftElf({ strtabClaim: 256 << 20 }));
    const eh = `${dir}/sparse-eh.so`;
    writeCrafted(eh, craftElf({ fdeInstructions: new Uint8Array(0), ehFrameClaim: 256 << 20 }));
    for (const path of [strtab, eh]) {
      assert.ok(Deno.statSync(path).size > 256 << 20);
      assert.ok(Deno.statSync(path).blocks! * 512 < 1 << 20, "the test file is sparse");
    }
    const before = Deno.memoryUsage().rss;
    using a = ElfFile.open(strtab);
    assert.equal(a.symbolize(CODE_AT + 2)?.name, "hostile_code");
    using b = ElfFile.open(eh);
    const table = EhFrame.fromElf(b)!;
    assert.ok(table.rowAt(CODE_AT + 2));
    // Headers, the symbol table and a few 4-16 KiB blocks of names.
    assert.ok(a.work < 256 << 10, `string table file: read ${a.work} bytes`);
    assert.ok(b.work + table.work < 256 << 10, `eh_frame file: ${b.work + table.work}`);
    assert.ok(Deno.memoryUsage().rss - before < 64 << 20, "memory grew by the claim");
  }));

Deno.test("a FIFO with the mapping's device and inode is refused without opening it", () =>
  withDir(async (dir) => {
    const fifo = `${dir}/lib.so`;
    assert.ok((await new Deno.Command("mkfifo", { args: [fifo] }).output()).success);
    // A writer waits in open() until someone opens the FIFO for reading.
    const writer = new Deno.Command("sh", { args: ["-c", `exec 3>"${fifo}"`] }).spawn();
    try {
      await new Promise((r) => setTimeout(r, 100));
      const m = mapped([fifo]); // the mapping claims exactly the FIFO's device and inode
      assert.equal(frameAt(m, 0), `lib.so+0x${(CODE_AT + 2).toString(16)}`);
      assert.match(m.sym.failures.get(fifo) ?? "", /a FIFO/);
      const state = Deno.readTextFileSync(`/proc/${writer.pid}/stat`).split(") ")[1][0];
      assert.notEqual(state, "Z", "the FIFO was opened for reading");
      m.sym.close();
    } finally {
      writer.kill("SIGKILL");
      await writer.status;
    }
  }));

Deno.test("a path that now leads through a symlink is not followed", () =>
  withDir((dir) => {
    Deno.mkdirSync(`${dir}/real`);
    const path = `${dir}/real/lib.so`;
    writeCrafted(path, craftElf());
    const m = mapped([path]);
    // Same file, same inode, but its directory is now reached through a link.
    Deno.renameSync(`${dir}/real`, `${dir}/moved`);
    Deno.symlinkSync(`${dir}/moved`, `${dir}/real`);
    assert.equal(frameAt(m, 0), `lib.so+0x${(CODE_AT + 2).toString(16)}`);
    assert.match(m.sym.failures.get(path) ?? "", /errno 40/);
    m.sym.close();
  }));

Deno.test("thousands of distinct files keep at most MAX_OPEN_FILES open", () =>
  withDir((dir) => {
    const n = MAX_OPEN_FILES * 3;
    const paths: string[] = [];
    const elf = craftElf();
    for (let i = 0; i < n; i++) {
      paths.push(`${dir}/f${i}.so`);
      writeCrafted(paths[i], elf);
    }
    // Descriptors on this test's files (other tests may hold descriptors of their own).
    const fds = () =>
      [...Deno.readDirSync("/proc/self/fd")].filter((e) => {
        try {
          return Deno.readLinkSync(`/proc/self/fd/${e.name}`).startsWith(dir);
        } catch {
          return false; // closed meanwhile
        }
      }).length;
    const m = mapped(paths);
    for (let i = 0; i < n; i++) assert.equal(frameAt(m, i), "hostile_code");
    assert.ok(m.sym.openFiles <= MAX_OPEN_FILES, `${m.sym.openFiles} open`);
    assert.equal(m.sym.evicted, n - m.sym.openFiles);
    const held = fds();
    assert.ok(held > 0 && held <= MAX_OPEN_FILES, `${held} descriptors on the files`);
    // An evicted file is opened again when its frames come back.
    assert.equal(frameAt(m, 0), "hostile_code");
    m.sym.close();
    assert.equal(fds(), 0);
  }));

Deno.test("a demangling bomb among the symbol names stays mangled", () =>
  withDir((dir) => {
    const bomb = demanglingBomb();
    const strtab = new TextEncoder().encode(`\0${bomb}\0`);
    const path = `${dir}/bomb.so`;
    writeCrafted(path, craftElf({ strtab }));
    const m = mapped([path]);
    assert.equal(frameAt(m, 0), bomb);
    m.sym.close();
  }));

import assert from "node:assert/strict";
import { LibbpfError } from "./libbpf_error.ts";
import { RegularFile } from "./regular_file.ts";

async function withDir(fn: (dir: string) => Promise<void> | void) {
  const dir = await Deno.makeTempDir({ prefix: "systing-regular-file-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function refused(path: string, opts: Parameters<typeof RegularFile.open>[1], why: RegExp) {
  assert.throws(() => RegularFile.open(path, opts), (e) => {
    assert.ok(e instanceof LibbpfError, String(e));
    assert.match(e.message, why);
    return true;
  });
}

Deno.test("RegularFile: reads exactly what is asked, counts it, and refuses reads past the end", () =>
  withDir((dir) => {
    const path = `${dir}/data`;
    Deno.writeFileSync(path, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    using f = RegularFile.open(path);
    const st = Deno.statSync(path);
    assert.equal(f.identity.ino, st.ino);
    assert.equal(f.identity.size, 8);
    assert.deepEqual([...f.read(2, 3)], [3, 4, 5]);
    assert.equal(f.bytesRead, 3);
    assert.throws(() => f.read(6, 4), /ends at 8/);
    f.close();
    f.close();
    assert.throws(() => f.read(0, 1), /closed/);
  }));

Deno.test("RegularFile: a FIFO is refused without opening it (a waiting writer stays waiting)", () =>
  withDir(async (dir) => {
    const fifo = `${dir}/fifo`;
    const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.ok(mk.success);
    // The writer blocks in open() until a reader opens the FIFO. Had we opened it for reading
    // (and waited), the writer would have been released and exited.
    const writer = new Deno.Command("sh", {
      args: ["-c", `exec 3>"${fifo}"; echo opened`],
      stdout: "piped",
    }).spawn();
    try {
      // Give the writer time to block in open(); it cannot finish on its own.
      await new Promise((r) => setTimeout(r, 100));
      refused(fifo, {}, /a FIFO/);
      refused(fifo, { links: "follow" }, /a FIFO/);
      const state = Deno.readTextFileSync(`/proc/${writer.pid}/stat`).split(") ")[1][0];
      assert.notEqual(state, "Z", "the FIFO's writer was released: someone opened it for reading");
    } finally {
      writer.kill("SIGKILL");
      await writer.status;
      await writer.stdout.cancel();
    }
  }));

Deno.test("RegularFile: symlinks are refused anywhere in the path unless asked to follow", () =>
  withDir((dir) => {
    Deno.mkdirSync(`${dir}/real`);
    Deno.writeFileSync(`${dir}/real/file`, new Uint8Array([9]));
    Deno.symlinkSync(`${dir}/real/file`, `${dir}/link`);
    Deno.symlinkSync(`${dir}/real`, `${dir}/dirlink`);
    refused(`${dir}/link`, {}, /a symbolic link/);
    refused(`${dir}/dirlink/file`, {}, /errno 40/);
    using f = RegularFile.open(`${dir}/link`, { links: "follow" });
    assert.deepEqual([...f.read(0, 1)], [9]);
  }));

Deno.test("RegularFile: directories, devices and /proc files are refused", () => {
  refused("/tmp", {}, /a directory/);
  refused("/dev/null", {}, /a character device/);
  refused("/proc/self/status", { links: "follow" }, /proc filesystem/);
});

Deno.test("RegularFile: the caller's check sees the identity before anything is read", () =>
  withDir((dir) => {
    Deno.writeFileSync(`${dir}/f`, new Uint8Array(4096));
    const ino = Deno.statSync(`${dir}/f`).ino!;
    refused(
      `${dir}/f`,
      { accept: (id) => id.ino === ino + 1 ? undefined : "another inode" },
      /another inode/,
    );
    using f = RegularFile.open(`${dir}/f`, { accept: (id) => id.ino === ino ? undefined : "no" });
    assert.equal(f.bytesRead, 0);
  }));

Deno.test("RegularFile: a root directory scopes absolute paths and '..' to itself", () =>
  withDir((dir) => {
    Deno.mkdirSync(`${dir}/root/lib`, { recursive: true });
    Deno.writeFileSync(`${dir}/root/lib/x`, new Uint8Array([7]));
    Deno.writeFileSync(`${dir}/outside`, new Uint8Array([8]));
    using f = RegularFile.open("/lib/x", { root: `${dir}/root` });
    assert.deepEqual([...f.read(0, 1)], [7]);
    // "/../outside" inside the root is "/outside" of the root, which does not exist.
    refused("/../outside", { root: `${dir}/root` }, /errno 2/);
    Deno.symlinkSync("/etc/passwd", `${dir}/root/lib/passwd`);
    refused("/lib/passwd", { root: `${dir}/root` }, /a symbolic link/);
  }));

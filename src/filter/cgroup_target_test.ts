import assert from "node:assert/strict";
import {
  type CgroupHost,
  type CgroupMount,
  parseMountinfo,
  parseSubsystems,
  resolveCgroup,
} from "./cgroup_target.ts";
import { FilterError } from "./filter_error.ts";

// This machine's kind: v1 controllers, a named hierarchy, v2 at unified.
const HYBRID = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 23 0:40 /sub\\040dir /mnt/nested rw - cgroup2 cgroup2 rw`;

const SUBSYS = `#subsys_name\thierarchy\tnum_cgroups\tenabled
cpuset\t3\t1\t1
cpu\t1\t1\t1
cpuacct\t2\t1\t1
blkio\t7\t1\t1
memory\t4\t49\t1
`;

function host(
  mounts: CgroupMount[],
  dirs: Record<string, number>,
  links: Record<string, string> = {},
): CgroupHost {
  const isDir = (p: string) => p in dirs;
  return {
    mounts,
    subsystems: parseSubsystems(SUBSYS),
    realPath: (p) =>
      links[p] ?? (isDir(p) || p === "/etc/passwd" || p.endsWith("/cgroup.procs") ? p : undefined),
    stat: (p) =>
      isDir(p)
        ? { isDirectory: true, ino: BigInt(dirs[p]) }
        : p.endsWith("/cgroup.procs") && isDir(p.slice(0, -13))
        ? { isDirectory: false, ino: 1n }
        : p === "/etc/passwd"
        ? { isDirectory: false, ino: 7n }
        : undefined,
  };
}

Deno.test("cgroup target: mountinfo gives every cgroup hierarchy with its controllers", () => {
  const m = parseMountinfo(HYBRID);
  assert.deepEqual(m.map((x) => [x.mountPoint, x.version, x.controllers, x.name]), [
    ["/sys/fs/cgroup/cpu,cpuacct", 1, ["cpu", "cpuacct"], undefined],
    ["/sys/fs/cgroup/memory", 1, ["memory"], undefined],
    ["/sys/fs/cgroup/systemd", 1, [], "systemd"],
    ["/sys/fs/cgroup/unified", 2, [], undefined],
    ["/mnt/nested", 2, [], undefined],
  ]);
  assert.equal(m[4].root, "/sub dir");
  assert.deepEqual([...parseSubsystems(SUBSYS)], [
    ["cpuset", 0],
    ["cpu", 1],
    ["cpuacct", 2],
    ["blkio", 3],
    ["memory", 4],
  ]);
});

Deno.test("cgroup target: v2 and v1 paths, depth below the hierarchy's root, id by inode", () => {
  const h = host(parseMountinfo(HYBRID), {
    "/sys/fs/cgroup/unified": 1,
    "/sys/fs/cgroup/unified/a": 100,
    "/sys/fs/cgroup/unified/a/b": 101,
    "/sys/fs/cgroup/cpu,cpuacct/x/y": 55,
    "/mnt/nested/z": 9,
  }, { "/sys/fs/cgroup/cpu/x/y": "/sys/fs/cgroup/cpu,cpuacct/x/y" });
  assert.deepEqual(resolveCgroup("/sys/fs/cgroup/unified/a/b", h), {
    path: "/sys/fs/cgroup/unified/a/b",
    hierarchy: "v2",
    ssid: -1,
    level: 2,
    id: 101n,
  });
  assert.equal(resolveCgroup("/sys/fs/cgroup/unified", h).level, 0);
  // As /proc/PID/cgroup shows it: under the v2 mount.
  assert.equal(resolveCgroup("/a", h).id, 100n);
  // A v1 path by a link (cpu → cpu,cpuacct): the first controller's subsystem.
  assert.deepEqual(resolveCgroup("/sys/fs/cgroup/cpu/x/y", h), {
    path: "/sys/fs/cgroup/cpu,cpuacct/x/y",
    hierarchy: "v1 cpu,cpuacct",
    ssid: 1,
    level: 2,
    id: 55n,
  });
  // A mount of a sub-tree: its root's depth counts.
  assert.equal(resolveCgroup("/mnt/nested/z", h).level, 2);
});

Deno.test("cgroup target: what cannot be a cgroup is one error naming the hierarchies", () => {
  const h = host(parseMountinfo(HYBRID), {
    "/sys/fs/cgroup/systemd/user.slice": 3,
    "/tmp": 4,
  });
  const fails = (path: string, what: RegExp) =>
    assert.throws(() => resolveCgroup(path, h), (e) => {
      assert.ok(e instanceof FilterError);
      assert.match(e.message, what);
      assert.match(e.message, /\/sys\/fs\/cgroup\/unified \(v2\)/);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  fails("/nonexistent/x", /-c \/nonexistent\/x: no such cgroup directory/);
  fails("/etc/passwd", /is not a cgroup directory/);
  fails("/tmp", /\/tmp is not a cgroup directory/);
  fails("/sys/fs/cgroup/systemd/user.slice", /no controller \(name=systemd\)/);
  assert.throws(() => resolveCgroup("/x", host([], {})), /none \(no cgroup file system/);
});

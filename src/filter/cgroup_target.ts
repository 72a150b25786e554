/**
 * A `-c/--cgroup PATH` made into what the BPF filter compares (struct filter_cgroup): which
 * hierarchy (the default one, or a v1 controller's), how deep the cgroup is, and its kernfs id
 * (the directory's inode number). Hosts differ: cgroup v2 alone, or hybrid (v1 controllers under
 * /sys/fs/cgroup/<controller>, v2 at /sys/fs/cgroup/unified); a path on either is accepted, and a
 * path as /proc/PID/cgroup shows it ("/system.slice/x.service") is taken under the v2 mount.
 */
import { FilterError } from "./filter_error.ts";

/** One mounted cgroup hierarchy, from /proc/self/mountinfo. */
export interface CgroupMount {
  /** Where it is mounted. */
  mountPoint: string;
  /** The cgroup of the hierarchy mounted there ("/" for its root). */
  root: string;
  version: 1 | 2;
  /** v1: the controllers bound to it (none for a named hierarchy such as name=systemd). */
  controllers: string[];
  /** v1: its name= option, if any. */
  name?: string;
}

export interface CgroupTarget {
  /** The cgroup directory, as resolved. */
  path: string;
  /** "v2", or "v1 cpu,cpuacct". */
  hierarchy: string;
  /** -1: the default (v2) hierarchy; else the subsystem id of a controller bound to it. */
  ssid: number;
  /** Its depth below the hierarchy's root (the root is 0). */
  level: number;
  /** Its kernfs node id: the directory's inode number. */
  id: bigint;
}

/** What resolving needs to know of the host; tests give their own. */
export interface CgroupHost {
  mounts: CgroupMount[];
  /** Subsystem name → ssid, the line order of /proc/cgroups. */
  subsystems: Map<string, number>;
  /** Follows links; undefined when nothing is there. */
  realPath(path: string): string | undefined;
  stat(path: string): { isDirectory: boolean; ino: bigint } | undefined;
}

/** Unescapes mountinfo's octal escapes (\040 for a space). */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountinfo(text: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of text.split("\n")) {
    const dash = line.indexOf(" - ");
    if (dash < 0) continue;
    const before = line.slice(0, dash).split(" ");
    const after = line.slice(dash + 3).split(" ");
    const fstype = after[0];
    if (fstype !== "cgroup" && fstype !== "cgroup2") continue;
    const options = (after[2] ?? "").split(",");
    const name = options.find((o) => o.startsWith("name="))?.slice(5);
    out.push({
      mountPoint: unescape(before[4] ?? ""),
      root: unescape(before[3] ?? "/"),
      version: fstype === "cgroup2" ? 2 : 1,
      controllers: fstype === "cgroup2"
        ? []
        : options.filter((o) =>
          o !== "rw" && o !== "ro" && !o.includes("=") &&
          !/^(noprefix|clone_children|xattr|nsdelegate|memory_|favordynmods|cpuset_v2_mode)/.test(o)
        ),
      ...name ? { name } : {},
    });
  }
  return out;
}

/** /proc/cgroups: "#subsys_name hierarchy num_cgroups enabled", one line per ssid, in order. */
export function parseSubsystems(text: string): Map<string, number> {
  const out = new Map<string, number>();
  let ssid = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    out.set(line.split(/\s+/)[0], ssid++);
  }
  return out;
}

function describeMount(m: CgroupMount): string {
  if (m.version === 2) return `${m.mountPoint} (v2)`;
  return `${m.mountPoint} (v1: ${m.controllers.join(",") || `name=${m.name ?? "?"}`})`;
}

/** The mounted hierarchies, for error messages. */
export function describeMounts(mounts: readonly CgroupMount[]): string {
  return mounts.length
    ? mounts.map(describeMount).join(", ")
    : "none (no cgroup file system is mounted)";
}

function depth(path: string): number {
  return path.split("/").filter((p) => p !== "").length;
}

function within(path: string, dir: string): boolean {
  return dir === "/" || path === dir || path.startsWith(dir.endsWith("/") ? dir : `${dir}/`);
}

/** Resolves one -c PATH on HOST; a FilterError says what is wrong and what is mounted. */
export function resolveCgroup(given: string, host: CgroupHost): CgroupTarget {
  const mounted = () => `mounted cgroup hierarchies: ${describeMounts(host.mounts)}`;
  const v2 = host.mounts.find((m) => m.version === 2);
  let path = host.realPath(given);
  if (path === undefined && given.startsWith("/") && v2) {
    path = host.realPath(`${v2.mountPoint.replace(/\/$/, "")}${given}`);
  }
  if (path === undefined) {
    throw new FilterError(`-c ${given}: no such cgroup directory; ${mounted()}`);
  }
  const mount = host.mounts.filter((m) => within(path!, m.mountPoint))
    .sort((a, b) => b.mountPoint.length - a.mountPoint.length)[0];
  const st = host.stat(path);
  if (!mount || !st?.isDirectory || !host.stat(`${path}/cgroup.procs`)) {
    throw new FilterError(`-c ${given}: ${path} is not a cgroup directory; ${mounted()}`);
  }
  const level = depth(mount.root) + depth(path.slice(mount.mountPoint.length));
  if (mount.version === 2) {
    return { path, hierarchy: "v2", ssid: -1, level, id: st.ino };
  }
  const ssid = mount.controllers.map((c) => host.subsystems.get(c)).find((s) => s !== undefined);
  if (ssid === undefined) {
    throw new FilterError(
      `-c ${given}: the hierarchy at ${mount.mountPoint} has no controller ` +
        `(${mount.name ? `name=${mount.name}` : "none known"}), so the kernel cannot tell a ` +
        `task's cgroup on it; give a path under another: ${mounted()}`,
    );
  }
  return { path, hierarchy: `v1 ${mount.controllers.join(",")}`, ssid, level, id: st.ino };
}

/** This machine's hierarchies and files. */
export function hostCgroups(): CgroupHost {
  const read = (p: string) => {
    try {
      return Deno.readTextFileSync(p);
    } catch {
      return "";
    }
  };
  return {
    mounts: parseMountinfo(read("/proc/self/mountinfo")),
    subsystems: parseSubsystems(read("/proc/cgroups")),
    realPath: (p) => {
      try {
        return Deno.realPathSync(p);
      } catch {
        return undefined;
      }
    },
    stat: (p) => {
      try {
        const st = Deno.statSync(p);
        return { isDirectory: st.isDirectory, ino: BigInt(st.ino ?? 0) };
      } catch {
        return undefined;
      }
    },
  };
}

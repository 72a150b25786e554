/** CPU list files of sysfs, e.g. /sys/devices/system/cpu/online: "0-3,8,10-11". */

export class CpuListError extends Error {
  override name = "CpuListError";
}

export function parseCpuList(text: string): number[] {
  const cpus: number[] = [];
  const t = text.trim();
  if (t === "") return cpus;
  for (const part of t.split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new CpuListError(`malformed CPU list ${JSON.stringify(text)}`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new CpuListError(`malformed CPU range ${part} in ${JSON.stringify(text)}`);
    for (let c = lo; c <= hi; c++) cpus.push(c);
  }
  return cpus;
}

export function onlineCpus(path = "/sys/devices/system/cpu/online"): number[] {
  return parseCpuList(Deno.readTextFileSync(path));
}

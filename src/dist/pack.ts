/**
 * Builds dist/systing without `denort`: the native launcher, then each part compressed with zstd,
 * then a trailer listing them (layout shared with launcher.c). The program part is main.ts bundled
 * into one JavaScript module, with the workers' bundles carried inside it as source text, because
 * a bundle has no files beside it for `new Worker(url)` to load.
 *
 *   deno run -A src/dist/pack.ts --launcher build/launcher --runtime DENO --libgcc LIB \
 *     --level 19 --output dist/systing
 */
import { parseArgs } from "node:util";
import { WORKER_SOURCES_KEY } from "./worker_url.ts";

const MAGIC = "SYSTING1";
const NAME_LEN = 32;
const MAX_ENTRIES = 8;
const ENTRY_SIZE = 56;

/** Every worker the program starts, by the name worker_url.ts looks it up with. */
const WORKERS: Record<string, string> = {
  drain_worker: "src/pipeline/drain_worker.ts",
  inspector_guard_worker: "src/cli/inspector_guard_worker.ts",
};

const { values } = parseArgs({
  args: Deno.args,
  options: {
    launcher: { type: "string" },
    runtime: { type: "string" },
    libgcc: { type: "string" },
    level: { type: "string", default: "19" },
    output: { type: "string" },
    deno: { type: "string", default: Deno.execPath() },
    /** Only writes the bundled program there (to run it with `deno run`, e.g. to profile it). */
    "program-only": { type: "string" },
  },
});
if (values["program-only"]) {
  await Deno.writeFile(values["program-only"], await programSource());
  Deno.exit(0);
}
for (const k of ["launcher", "runtime", "libgcc", "output"] as const) {
  if (!values[k]) throw new Error(`pack.ts: --${k} is required`);
}

async function run(cmd: string, args: string[], input?: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: input ? "piped" : "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  // Fed while its output is read: a pipe holds far less than a runtime.
  const feeding = input
    ? (async () => {
      const w = child.stdin.getWriter();
      await w.write(input as Uint8Array<ArrayBuffer>);
      await w.close();
    })()
    : Promise.resolve();
  const [out] = await Promise.all([child.output(), feeding]);
  if (!out.success) throw new Error(`pack.ts: ${cmd} ${args.join(" ")} failed`);
  return out.stdout;
}

async function bundle(entry: string): Promise<string> {
  const tmp = await Deno.makeTempFile({ suffix: ".js" });
  try {
    await run(values.deno!, ["bundle", "--quiet", "--platform", "deno", "-o", tmp, entry]);
    return await Deno.readTextFile(tmp);
  } finally {
    await Deno.remove(tmp);
  }
}

async function programSource(): Promise<Uint8Array> {
  const workers: Record<string, string> = {};
  for (const [name, path] of Object.entries(WORKERS)) workers[name] = await bundle(path);
  const main = await bundle("main.ts");
  // A statement before the bundle's body: module imports (node: builtins only) never read it.
  const prologue = `globalThis[Symbol.for(${JSON.stringify(WORKER_SOURCES_KEY)})] = ${
    JSON.stringify(workers)
  };\n`;
  const lines = main.split("\n");
  // Keep import statements first, as a module needs; the prologue follows them.
  let i = 0;
  while (i < lines.length && /^(import |\/\/|$)/.test(lines[i])) i++;
  return new TextEncoder().encode(
    [...lines.slice(0, i), prologue, ...lines.slice(i)].join("\n"),
  );
}

async function zstd(bytes: Uint8Array): Promise<Uint8Array> {
  const level = Number(values.level);
  const flags = level > 19 ? ["--ultra", `-${level}`] : [`-${level}`];
  return await run("zstd", [...flags, "-T0", "-q", "-c", "-"], bytes);
}

const parts: { name: string; bytes: Uint8Array }[] = [
  { name: "deno", bytes: await Deno.readFile(values.runtime!) },
  { name: "systing.js", bytes: await programSource() },
  { name: "libgcc_s.so.1", bytes: await Deno.readFile(values.libgcc!) },
];
if (parts.length > MAX_ENTRIES) throw new Error("pack.ts: too many parts");

const launcher = await Deno.readFile(values.launcher!);
const chunks: Uint8Array[] = [launcher];
let offset = launcher.length;
const trailer = new Uint8Array(8 + MAX_ENTRIES * ENTRY_SIZE + 8);
const dv = new DataView(trailer.buffer);
dv.setUint32(0, parts.length, true);
for (const [i, part] of parts.entries()) {
  const packed = await zstd(part.bytes);
  const at = 8 + i * ENTRY_SIZE;
  const name = new TextEncoder().encode(part.name);
  if (name.length > NAME_LEN) throw new Error(`pack.ts: name too long: ${part.name}`);
  trailer.set(name, at);
  dv.setBigUint64(at + NAME_LEN, BigInt(offset), true);
  dv.setBigUint64(at + NAME_LEN + 8, BigInt(packed.length), true);
  dv.setBigUint64(at + NAME_LEN + 16, BigInt(part.bytes.length), true);
  chunks.push(packed);
  offset += packed.length;
  console.error(
    `pack: ${part.name.padEnd(14)} ${(part.bytes.length / 2 ** 20).toFixed(1).padStart(6)} MiB → ${
      (packed.length / 2 ** 20).toFixed(1).padStart(5)
    } MiB`,
  );
}
trailer.set(new TextEncoder().encode(MAGIC), trailer.length - 8);
chunks.push(trailer);

const tmp = `${values.output}.tmp`;
const file = await Deno.open(tmp, { write: true, create: true, truncate: true, mode: 0o755 });
for (const c of chunks) {
  let done = 0;
  while (done < c.length) done += await file.write(c.subarray(done));
}
file.close();
await Deno.rename(tmp, values.output!);
console.error(`pack: ${values.output} ${(offset + trailer.length) / 2 ** 20 | 0} MiB`);

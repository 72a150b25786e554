import assert from "node:assert/strict";
import { PYTHON_OFFSETS } from "../gen/python_offsets.ts";
import { ElfFile } from "../symbolize/elf_file.ts";
import { PYTHON_FILE, pythonImage } from "./python_image.ts";

const DEBIAN = "/usr/bin/python3.11";
const PYENV = "/root/.pyenv/versions";
const exists = (p: string) => Deno.statSync(p).isFile;
const has = (p: string) => {
  try {
    return exists(p);
  } catch {
    return false;
  }
};

function imageOf(path: string) {
  using elf = ElfFile.open(path);
  return pythonImage(elf, path);
}

Deno.test("python image: Debian's python3.11, with the offsets make took from its headers", () => {
  const image = imageOf(DEBIAN);
  assert.equal(image?.kind, "python");
  if (image?.kind !== "python") return;
  assert.equal(image.version, "3.11");
  // The address nm gives: a non-PIE executable keeps it.
  const nm = new Deno.Command("nm", { args: ["-D", DEBIAN] }).outputSync();
  const line = new TextDecoder().decode(nm.stdout).split("\n").find((l) => / _PyRuntime$/.test(l));
  assert.equal(image.runtime, parseInt(line!.split(" ")[0], 16));
  assert.deepEqual(image.offsets, PYTHON_OFFSETS["3.11"]);
});

Deno.test("python image: files that are not interpreters, and names that look like them", () => {
  assert.equal(imageOf("/bin/true"), undefined);
  for (
    const p of ["/usr/bin/python3.11", "python3", "/x/libpython3.12.so.1.0", "libpython3.13d.so"]
  ) {
    assert.match(p, PYTHON_FILE, p);
  }
  for (const p of ["/usr/bin/python3.11-config", "/x/python-foo", "libpython3.so.bak.c"]) {
    assert.doesNotMatch(p, PYTHON_FILE, p);
  }
});

// pyenv's builds, where this machine has them: 3.13 reads its own debug offsets, which must say
// what its headers say; 3.12 has no offsets in this build (Debian 12 ships no 3.12 headers).
const py313 = `${PYENV}/3.13.0/lib/libpython3.13.so.1.0`;
Deno.test({
  name: "python image: 3.13's _Py_DebugOffsets agree with its own headers",
  ignore: !has(py313),
  fn() {
    const image = imageOf(py313);
    assert.equal(image?.kind, "python", JSON.stringify(image));
    if (image?.kind !== "python") return;
    const bin = Deno.makeTempFileSync();
    const cc = new Deno.Command("gcc", {
      args: [
        "-std=gnu11",
        `-I${PYENV}/3.13.0/include/python3.13`,
        "-o",
        bin,
        new URL("./py_offsets.c", import.meta.url).pathname,
      ],
    }).outputSync();
    assert.ok(cc.success, new TextDecoder().decode(cc.stderr));
    const out = new TextDecoder().decode(new Deno.Command(bin).outputSync().stdout);
    Deno.removeSync(bin);
    const json = `{${out.trim().replace(/,$/, "").replace(/(\w+):/g, '"$1":')}}`;
    const fromHeaders = JSON.parse(json)["3.13"];
    assert.deepEqual(image.offsets, fromHeaders);
  },
});

const py312 = `${PYENV}/3.12.1/lib/libpython3.12.so.1.0`;
Deno.test({
  name: "python image: a version without offsets in this build says why",
  ignore: !has(py312),
  fn() {
    const image = imageOf(py312);
    assert.equal(image?.kind, "unsupported");
    if (image?.kind === "unsupported") assert.match(image.why, /no offsets for 3\.12/);
  },
});

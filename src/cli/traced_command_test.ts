import assert from "node:assert/strict";
import { CommandError, resolveCommand } from "./traced_command.ts";

Deno.test("resolveCommand: found on PATH in order, as a shell finds it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/a`);
    await Deno.mkdir(`${dir}/b`);
    await Deno.writeTextFile(`${dir}/a/tool`, "#!/bin/sh\n", { mode: 0o644 });
    await Deno.writeTextFile(`${dir}/b/tool`, "#!/bin/sh\n", { mode: 0o755 });
    // Not executable in a/, so b/'s is run, as bash does.
    assert.equal(resolveCommand("tool", `${dir}/a:${dir}/b`), `${dir}/b/tool`);
    assert.throws(() => resolveCommand("tool", `${dir}/a`), (e: CommandError) => e.status === 126);
    assert.throws(() => resolveCommand("nope", `${dir}/a`), (e: CommandError) => e.status === 127);
    assert.equal(resolveCommand(`${dir}/b/tool`, ""), `${dir}/b/tool`);
    assert.throws(() => resolveCommand(`${dir}/b`, ""), /Is a directory/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

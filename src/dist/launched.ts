/**
 * What dist/systing's launcher leaves in the environment for the runtime's sake (LD_PRELOAD of
 * the carried libgcc_s, Deno's cache settings, malloc tunables) is not the user's: it is taken back out before
 * anything could pass it on to a child process.
 */
import { nameThisThread } from "../ffi/library.ts";

const LAUNCHER_SETTINGS = ["DENO_DIR", "DENO_NO_UPDATE_CHECK", "DENO_NO_PACKAGE_JSON"];

export function forgetLauncherEnvironment(): void {
  if (Deno.env.get("SYSTING_LAUNCHER_FDS") === undefined) return;
  // Executed from a memfd, the process would be called "memfd:deno" in ps, top and traces.
  nameThisThread("systing");
  const ours = Deno.env.get("SYSTING_LAUNCHER_PRELOAD");
  if (ours !== undefined) {
    const rest = (Deno.env.get("LD_PRELOAD") ?? "").split(":").filter((p) => p && p !== ours);
    if (rest.length) Deno.env.set("LD_PRELOAD", rest.join(":"));
    else Deno.env.delete("LD_PRELOAD");
  }
  if (Deno.env.get("SYSTING_LAUNCHER_TUNABLES") !== undefined) Deno.env.delete("GLIBC_TUNABLES");
  for (
    const k of [
      ...LAUNCHER_SETTINGS,
      "SYSTING_LAUNCHER_FDS",
      "SYSTING_LAUNCHER_PRELOAD",
      "SYSTING_LAUNCHER_TUNABLES",
    ]
  ) {
    Deno.env.delete(k);
  }
}

import assert from "node:assert/strict";
import { CpuListError, onlineCpus, parseCpuList } from "./cpu_list.ts";

Deno.test("parseCpuList expands ranges and singles", () => {
  assert.deepEqual(parseCpuList("0-3,8,10-11\n"), [0, 1, 2, 3, 8, 10, 11]);
  assert.deepEqual(parseCpuList("0"), [0]);
  assert.deepEqual(parseCpuList(""), []);
});

Deno.test("parseCpuList rejects garbage", () => {
  assert.throws(() => parseCpuList("0-"), CpuListError);
  assert.throws(() => parseCpuList("3-1"), CpuListError);
  assert.throws(() => parseCpuList("a"), CpuListError);
});

Deno.test("onlineCpus matches this machine", () => {
  const cpus = onlineCpus();
  assert.ok(cpus.length >= 1);
  assert.equal(cpus.length, navigator.hardwareConcurrency);
});

import assert from "node:assert/strict";
import { Epoll } from "./epoll.ts";
import { WakeFd } from "./wake_fd.ts";

Deno.test("a wake fd ends an epoll wait at once, and closes once", () => {
  const wake = new WakeFd();
  const epoll = new Epoll(2);
  try {
    epoll.add(wake.fd, 0);
    assert.equal(epoll.wait(0), 0, "readable before any wake");
    wake.wake();
    // A generous timeout: only a missing wake-up makes this wait its whole length.
    assert.equal(epoll.wait(60_000), 1);
    assert.equal(epoll.wait(0), 1, "it stays readable: the stop is seen by every worker");
  } finally {
    epoll.close();
    wake.close();
    wake.close();
  }
  assert.equal(wake.fd, -1);
  wake.wake(); // closed: nothing to do, nothing thrown
});

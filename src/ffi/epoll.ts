/** Waiting on ring-buffer file descriptors from a worker thread. */
import { check, lastErrno, loadLibc } from "./library.ts";

const EPOLL_CLOEXEC = 0o2000000;
const EPOLL_CTL_ADD = 1;
const EPOLLIN = 1;
const EINTR = 4;
/** struct epoll_event is packed on x86-64: u32 events, u64 data at offset 4. */
const EVENT_SIZE = 12;

export class Epoll {
  #fd: number;
  #events: Uint8Array<ArrayBuffer>;

  constructor(maxEvents = 64) {
    const fd = loadLibc().epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) check(-lastErrno(), "epoll_create1");
    this.#fd = fd;
    this.#events = new Uint8Array(EVENT_SIZE * maxEvents);
  }

  add(fd: number, data: number): void {
    const ev = new Uint8Array(EVENT_SIZE);
    const dv = new DataView(ev.buffer);
    dv.setUint32(0, EPOLLIN, true);
    dv.setBigUint64(4, BigInt(data), true);
    if (loadLibc().epoll_ctl(this.#fd, EPOLL_CTL_ADD, fd, ev) < 0) {
      check(-lastErrno(), `epoll_ctl(ADD, fd ${fd})`);
    }
  }

  /** Blocks the calling thread up to timeoutMs; returns how many fds are ready. */
  wait(timeoutMs: number): number {
    const n = loadLibc().epoll_wait(
      this.#fd,
      this.#events,
      this.#events.length / EVENT_SIZE,
      timeoutMs,
    );
    if (n < 0) {
      const errno = lastErrno();
      if (errno === EINTR) return 0;
      check(-errno, "epoll_wait");
    }
    return n;
  }

  close(): void {
    if (this.#fd >= 0) {
      loadLibc().close(this.#fd);
      this.#fd = -1;
    }
  }
}

/**
 * An eventfd another thread can wait on beside its ring buffers (src/ffi/epoll.ts): the drain
 * workers sleep until BPF wakes them or a flush is due, and this ends the sleep at once when the
 * recording stops. Waking a thread costs tens of µs of CPU on the machines we run on, so they
 * must not poll.
 */
import { check, lastErrno, loadLibc } from "./library.ts";

const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;

export class WakeFd {
  #fd: number;

  constructor() {
    const fd = loadLibc().eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) check(-lastErrno(), "eventfd");
    this.#fd = fd;
  }

  /** The descriptor, for a thread of this process to add to its epoll set (-1 once closed). */
  get fd(): number {
    return this.#fd;
  }

  /** Makes the descriptor readable: every epoll set holding it returns. */
  wake(): void {
    if (this.#fd < 0) return;
    const one = new Uint8Array(8);
    one[0] = 1;
    // EAGAIN (the counter is full) still leaves it readable: nothing to check.
    loadLibc().write(this.#fd, one, 8n);
  }

  close(): void {
    if (this.#fd >= 0) {
      loadLibc().close(this.#fd);
      this.#fd = -1;
    }
  }
}

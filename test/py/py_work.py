# Python workloads for the Python-stack tests: each waits for a line on stdin (so a tracer can
# attach), does its part for SECONDS, then prints one line of JSON. Function names end in _zq so
# that no other Python code on the machine has them. Line numbers matter: the test reads them
# from this file (the lines marked "# line: NAME").
import asyncio
import json
import os
import sys
import threading
import time
import types


def inner_zq(n):
    s = 0
    for i in range(n):
        s += i * i  # line: inner
    return s


def middle_zq(n):
    return inner_zq(n) + 1  # line: middle


def outer_zq(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        middle_zq(5000)  # line: outer


def sleeper_zq(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.01)  # line: sleeper


def key_zq(x):
    s = 0
    for i in range(50):
        s += (x * i) % 7  # line: key
    return s


def caller_zq(seconds):
    end = time.monotonic() + seconds
    data = list(range(300))
    while time.monotonic() < end:
        sorted(data, key=key_zq)  # line: caller


def child_zq(seconds):
    outer_zq(seconds)  # line: child


def execd_zq(seconds):
    outer_zq(seconds)  # line: execd


async def leaf_async_zq(n):
    s = 0
    for i in range(n):
        s += i * i  # line: leaf_async
    return s


async def task_async_zq(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await leaf_async_zq(5000)  # line: task_async
        await asyncio.sleep(0)


def reuse_zq(seconds):
    # Code objects made and freed one after another: their memory is reused, by the next one
    # often at the same address. Each runs a known span of BOOTTIME, which the test checks
    # every sample of it against.
    # code.replace() makes an object of the same size, which lands where the freed one was.
    spans, addresses = [], set()
    end = time.monotonic() + seconds
    k = 0
    while time.monotonic() < end:
        name = f"fresh_{k}_zq"
        code = spin_template.__code__.replace(co_name=name, co_qualname=name)
        addresses.add(id(code))
        fn = types.FunctionType(code, globals())
        t0 = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        fn(time.monotonic() + 0.05)
        spans.append([k, t0, time.clock_gettime_ns(time.CLOCK_BOOTTIME)])
        del fn, code
        k += 1
    return spans, len(addresses)


def spin_template(t):
    while time.monotonic() < t:
        pass


def collector_zq(n):
    import gc
    for _ in range(n):
        gc.collect()  # line: collector


SUB_SOURCE = '''import time
def sub_zq(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sum(i * i for i in range(100))
sub_zq(SECONDS)
'''


def main():
    mode, seconds = sys.argv[1], float(sys.argv[2])
    if mode != "execd":
        sys.stdin.readline()
    out = {"pid": os.getpid(), "main": threading.get_native_id()}
    if mode == "threads":
        tids, hot = {}, {}

        def run(name, fn):
            tids[name] = threading.get_native_id()
            t0 = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
            fn(seconds)
            # When each thread ran its hot loop (BOOTTIME, the trace's clock): its samples
            # before and after are the thread's start and the interpreter's exit.
            hot[tids[name]] = [t0, time.clock_gettime_ns(time.CLOCK_BOOTTIME)]

        workers = [threading.Thread(target=run, args=("worker", outer_zq)),
                   threading.Thread(target=run, args=("sleeper", sleeper_zq))]
        for w in workers:
            w.start()
        run("main", outer_zq)
        for w in workers:
            w.join()
        out.update(tids)
        out["hot"] = hot
    elif mode == "callback":
        caller_zq(seconds)
    elif mode == "fork":
        child = os.fork()
        if child == 0:
            child_zq(seconds)
            os._exit(0)
        os.waitpid(child, 0)
        out["child"] = child
    elif mode == "exec":
        os.execv(sys.executable, [sys.executable, __file__, "execd", str(seconds)])
    elif mode == "execd":
        execd_zq(seconds)
    elif mode == "asyncio":
        async def both():
            await asyncio.gather(task_async_zq(seconds), task_async_zq(seconds))
        asyncio.run(both())
    elif mode == "subinterpreter":
        # A second interpreter in this thread (3.11's _xxsubinterpreters): its own thread state.
        import _xxsubinterpreters as interpreters
        interp = interpreters.create()
        interpreters.run_string(interp, SUB_SOURCE.replace("SECONDS", str(seconds)))  # line: run
    elif mode == "gc":
        collector_zq(int(seconds))  # line: gc_main
    elif mode == "reuse":
        out["spans"], out["addresses"] = reuse_zq(seconds)
    print(json.dumps(out), flush=True)


main()

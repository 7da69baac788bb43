#!/usr/bin/env python3
"""CPython figures for bench/compare's scaling rows (cases python_baseline.py does not have).

The workloads reuse python_baseline.py's own helpers (_queue_producer, _square, _noop,
scale, emit), imported from the shared directory, so they differ from the baseline's
cases only in the one parameter that scales:

  queue_throughput_{4096,1048576}B     one producer process -> main through mp.Queue(1024),
                                       exactly python_baseline's queue_throughput_64B with
                                       bigger messages (and fewer of them for 1 MiB)
  pool_map_throughput_w{1,2,4,8}       Pool(W).map(_square, range(n), chunksize=1) in tasks/s:
                                       how per-task dispatch scales with the worker count

Usage: python3 python_extra.py --baseline DIR [--quick] [--only CASE[,CASE...]]
Prints JSON lines in python_baseline.py's shape.
"""
import multiprocessing as mp
import os
import sys
import time

if "--baseline" not in sys.argv:
    sys.exit("python_extra.py: --baseline DIR (the directory of python_baseline.py) is required")
sys.path.insert(0, os.path.abspath(sys.argv[sys.argv.index("--baseline") + 1]))
import python_baseline as base  # noqa: E402  (parses --quick / --only from sys.argv itself)

# Message counts per size (64 B is the baseline's own case, 200,000 messages): half as many
# at 4 KiB, and 2,000 at 1 MiB (2 GiB moved, like pipe_bandwidth_1048576B's 2,000).
QUEUE_SIZES = {4096: 100_000, 1 << 20: 2_000}
POOL_WORKERS = (1, 2, 4, 8)


def queue_throughput(size, n):
    n = base.scale(n)
    q = mp.Queue(1024)
    p = mp.Process(target=base._queue_producer, args=(q, n, b"x" * size))
    t0 = time.perf_counter(); p.start()
    got = 0
    while q.get() is not None:
        got += 1
    dt = time.perf_counter() - t0; p.join()
    assert got == n
    base.emit(f"queue_throughput_{size}B", n / dt, "msg/s", "higher", n)


def pool_map_throughput(workers):
    n = base.scale(20_000)
    with mp.Pool(workers) as pool:
        pool.map(base._noop, range(100))
        t0 = time.perf_counter(); pool.map(base._square, range(n), chunksize=1)
        dt = time.perf_counter() - t0
    base.emit(f"pool_map_throughput_w{workers}", n / dt, "task/s", "higher", n)


CASES = [(f"queue_throughput_{s}B", (lambda s=s, n=n: queue_throughput(s, n))) for s, n in QUEUE_SIZES.items()]
CASES += [(f"pool_map_throughput_w{w}", (lambda w=w: pool_map_throughput(w))) for w in POOL_WORKERS]

if __name__ == "__main__":
    mp.set_start_method("fork")
    for name, fn in CASES:
        if base.wanted(name):
            fn()

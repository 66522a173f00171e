"""Fork driver, run in a subprocess by tests/test_kernels_threading.py with a timeout (a hang must not hang pytest).

Forks ``FORKS`` children (multiprocessing's fork start method, then bare
``os.fork``) while a second thread keeps running convolutions, pooling and
batch norm; every child runs ops itself and reports the result.  Then forks
once more from an idle process.  Prints one JSON line.

Usage: python tests/_fork_stress.py FORKS
"""

import json
import multiprocessing as mp
import os
import sys
import threading
import time

import numpy as np

import convlayers.functional as F

forks = int(sys.argv[1])
rng = np.random.default_rng(0)
x = rng.standard_normal((4, 16, 32, 32)).astype(np.float32)
w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
xp = rng.standard_normal((8, 32, 56, 56)).astype(np.float32)
# batch 1: the products run on BLAS's own threads (functional.conv._leave_threads_to_blas)
x1 = rng.standard_normal((1, 64, 56, 56)).astype(np.float32)
w1 = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)


def work():
    return (float(F.conv2d(x, w, padding=1).sum()) + float(F.max_pool2d(xp, 3, 2, 1).sum())
            + float(F.conv2d(x1, w1, padding=1).sum()) + float(F.conv2d(x1, w1[:, :, :1, :1]).sum())
            + float(F.batch_norm(xp, np.zeros(32, np.float32), np.ones(32, np.float32), training=True).sum()))


want = work()


def child(q):
    q.put(work())


stop = threading.Event()
calls = [0]


def busy():
    while not stop.is_set():
        work()
        calls[0] += 1


def fork_mp(ctx):
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,))
    p.start()
    got = q.get(timeout=120)
    p.join(120)
    assert p.exitcode == 0, p.exitcode
    assert abs(got - want) <= 1e-3 * abs(want), (got, want)


def fork_os():
    r, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(wfd, repr(work()).encode())
        finally:
            os._exit(0)
    os.close(wfd)
    got = float(os.read(r, 100).decode())
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert status == 0 and abs(got - want) <= 1e-3 * abs(want), (status, got, want)


t0 = time.monotonic()
ctx = mp.get_context("fork")
thread = threading.Thread(target=busy)
thread.start()
try:
    for i in range(forks):
        fork_mp(ctx) if i % 2 == 0 else fork_os()
        time.sleep(0.01 * (i % 3))  # fork at different points of the other thread's calls
finally:
    stop.set()
    thread.join()
fork_mp(ctx)  # idle parent
print(json.dumps({"forks": forks + 1, "busy_calls": calls[0], "seconds": round(time.monotonic() - t0, 2)}))

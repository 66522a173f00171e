"""How much faster the compiled conv2d is than the textbook loops (issue 2's ≥ 100× check).

The loop reference costs the same per output value everywhere, so it is timed
on a slice of the output (one sample, a few output channels) and scaled up;
running it whole (8×64×56×56, 3×3) would take most of an hour.

    python benchmarks/reference_speedup.py
"""

from __future__ import annotations

import time

import numpy as np

import convlayers.functional as F
from convlayers import reference


def main():
    rng = np.random.default_rng(0)
    n, c, h, w, cout = 8, 64, 56, 56, 64
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((cout, c, 3, 3)).astype(np.float32)
    F.conv2d(x, weight, padding=1)  # compile / warm up
    runs = []
    for _ in range(7):
        t0 = time.perf_counter()
        F.conv2d(x, weight, padding=1)
        runs.append(time.perf_counter() - t0)
    compiled = float(np.median(runs))

    sub_out = 2
    t0 = time.perf_counter()
    reference.conv2d_nchw(x[:1], weight[:sub_out], padding=1)
    loops_slice = time.perf_counter() - t0
    loops = loops_slice * (n * cout) / sub_out
    print(f"conv2d 8x64x56x56, 3x3, 64 out, padding 1, float32")
    print(f"  compiled (median of 7): {compiled * 1e3:9.1f} ms")
    print(f"  reference loops:        {loops:9.1f} s  (timed {loops_slice:.1f} s on 1/{n * cout // sub_out} "
          f"of the output, scaled)")
    print(f"  speed-up:               {loops / compiled:9.0f}x")


if __name__ == "__main__":
    main()

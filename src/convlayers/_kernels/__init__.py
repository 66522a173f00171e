"""Compiled numba kernels (private).

Threading: numba's default OpenMP layer spins its threads between parallel
regions, and so does OpenBLAS; on a 2-core machine with any other load the
two pools steal each other's cores and a conv2d ran 40× slower (measured:
0.98 s vs 25 ms for 8×64×56×56 3×3).  The workqueue layer's threads sleep
when idle, so convlayers picks it unless the user chose a layer through
``NUMBA_THREADING_LAYER``.  It takes effect only if no parallel numba code has
run in the process yet.
"""

import os

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

"""convlayers vs PyTorch (and scipy/OpenCV for filters), side by side in one process.

    python benchmarks/bench.py [--threads 2] [--repeats 7] [--quick]

Writes benchmarks/results.json.  OpenBLAS picks its kernel from the CPU; if
OPENBLAS_CORETYPE is set in the environment (some machines set it to work
around old OpenBLAS bugs) NumPy's matrix products may run a slower kernel:
run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` to compare fairly.
"""

import argparse
import pathlib

from convlayers.benchmark import run

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).with_name("results.json")))
    args = ap.parse_args()
    run(threads=args.threads, repeats=args.repeats, quick=args.quick, out_path=args.out)

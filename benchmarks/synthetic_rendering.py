"""How fast GalSim galaxies render: one process vs all cores, side by side in one run.

    python benchmarks/synthetic_rendering.py [--n 2048] [--repeats 3] [--json OUT]

Prints galaxies per second for each worker count (best of `repeats`, process start-up included, as a user
experiences it) and the speed-up over one process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from galaxy_autoencoders.data.synthetic import render_galaxies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048, help="galaxies per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting; the best counts")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()

    render_galaxies(64, seed=99, workers=1, progress=False)  # warm-up: imports, GalSim's Sersic tables
    cores = os.cpu_count() or 1
    results = {}
    for workers in sorted({1, cores}):
        best = min(_timed(args.n, workers) for _ in range(args.repeats))
        results[workers] = args.n / best
    print(f"{'workers':>8} {'galaxies/s':>11} {'speed-up':>9}   ({args.n} galaxies, {platform.processor() or 'cpu'})")
    for workers, rate in results.items():
        print(f"{workers:>8} {rate:>11.0f} {rate / results[1]:>8.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"n": args.n, "cores": cores, "galaxies_per_s": results, "machine": platform.platform()}, f)


def _timed(n: int, workers: int) -> float:
    start = time.perf_counter()
    render_galaxies(n, seed=0, workers=workers, progress=False)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()

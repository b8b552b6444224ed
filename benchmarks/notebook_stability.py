"""Do the notebooks print the same text whatever the thread count, alone and each in a fresh data folder?

For each notebook and each thread count, runs `pytest --nbval` on that notebook alone, in a fresh kernel, with an
empty data folder (`GALAXY_AE_DATA`) and `GALAXY_AE_THREADS=N`, and compares its text outputs with the stored
ones. Float sums over 1 or 2 threads differ in their last bits, and training amplifies that, so a number printed
with more digits than survive it fails here: print it at the precision that does. The same check catches a
notebook that needs another one to have run first. Prints a table (time, result, the cells that differed) and
writes each run's pytest output to --log. Usage::

    python benchmarks/notebook_stability.py                                  # every notebook, 1 and 2 threads
    python benchmarks/notebook_stability.py notebooks/05_generation.ipynb --threads 1
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_alone(notebook: Path, threads: int, log: Path) -> tuple[float, bool, list[str]]:
    """pytest --nbval on one notebook, alone, with an empty data folder -> (seconds, passed, differing cells)."""
    with tempfile.TemporaryDirectory(prefix="galaxy-ae-data-") as data:
        env = dict(os.environ, GALAXY_AE_PROFILE="quick", GALAXY_AE_DATA=data, GALAXY_AE_THREADS=str(threads))
        cmd = [sys.executable, "-m", "pytest", "--nbval", str(notebook.relative_to(ROOT)), "-p", "no:cacheprovider"]
        cmd += ["--sanitize-with", "notebooks/sanitize.cfg", "-q"]
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    with log.open("a") as f:
        f.write(f"\n===== {notebook.name}, {threads} thread(s): exit {done.returncode}\n{done.stdout}{done.stderr}")
    cells = re.findall(r"^FAILED \S+::(Cell \d+)", done.stdout, flags=re.M)
    return seconds, done.returncode == 0, cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in notebooks/")
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default 1,2)")
    parser.add_argument("--log", type=Path, default=Path(tempfile.gettempdir()) / "notebook_stability.log")
    args = parser.parse_args(argv)
    notebooks = [p.resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    args.log.write_text("")
    print("| notebook | threads | time | result |\n|---|---|---|---|")
    failed = 0
    for notebook in notebooks:
        for threads in (int(t) for t in args.threads.split(",")):
            seconds, passed, cells = run_alone(notebook, threads, args.log)
            failed += not passed
            result = "same as stored" if passed else "differs: " + (", ".join(cells) or "see the log")
            print(f"| {notebook.name} | {threads} | {seconds:.0f} s | {result} |", flush=True)
    print(f"\n{failed} run(s) differed; pytest's output of each run: {args.log}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

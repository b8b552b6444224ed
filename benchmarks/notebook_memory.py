"""Peak resident memory of the notebook kernels, the way Binder's memory limit sees it.

Runs every notebook in `notebooks/` in order (as `pytest --nbval` does: each in a fresh kernel, working
directory `notebooks/`) and reports, per notebook and overall:

- `VmHWM`: the kernel process's own peak resident set size, read from `/proc/self/status` by a cell appended
  to the end of the notebook (Linux only);
- `tree peak`: the largest sum of the RSS of the kernel and all its child processes, sampled every 0.1 s with
  psutil (what a container's memory limit counts, give or take shared pages).

The notebooks on disk are not changed. Usage::

    GALAXY_AE_PROFILE=quick python benchmarks/notebook_memory.py            # all five
    python benchmarks/notebook_memory.py notebooks/03_elbo.ipynb           # some of them
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
HWM_CELL = "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].strip())"


class TreeSampler(threading.Thread):
    """Sample the summed RSS of this process's descendants (the kernel and anything it starts)."""

    def __init__(self, interval: float = 0.1):
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = 0
        self._halt = threading.Event()
        self._me = psutil.Process()

    def run(self) -> None:
        while not self._halt.is_set():
            total = 0
            for child in self._me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._halt.wait(self.interval)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak


def run_notebook(path: Path, timeout: int) -> tuple[float, int, int]:
    """Execute one notebook in a fresh kernel; return (seconds, VmHWM bytes, sampled tree peak bytes)."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(HWM_CELL))
    sampler = TreeSampler()
    sampler.start()
    start = time.perf_counter()
    try:
        NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        ).execute()
    finally:
        tree_peak = sampler.stop()
    seconds = time.perf_counter() - start
    text = "".join(o.get("text", "") for o in nb.cells[-1].get("outputs", []))
    match = re.search(r"VmHWM:\s*(\d+)\s*kB", text)
    hwm = int(match.group(1)) * 1024 if match else 0
    return seconds, hwm, tree_peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb in order")
    parser.add_argument("--timeout", type=int, default=1800, help="per-cell timeout in seconds")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    print(f"profile: {os.environ.get('GALAXY_AE_PROFILE', '(unset: quick)')}, python {sys.version.split()[0]}")
    print(f"{'notebook':<32} {'seconds':>8} {'VmHWM MB':>9} {'tree peak MB':>13}")
    worst_hwm = worst_tree = 0
    for path in paths:
        seconds, hwm, tree = run_notebook(path.resolve(), args.timeout)
        worst_hwm, worst_tree = max(worst_hwm, hwm), max(worst_tree, tree)
        print(f"{path.name:<32} {seconds:8.1f} {hwm / 1e6:9.0f} {tree / 1e6:13.0f}", flush=True)
    print(f"{'peak over the sequence':<32} {'':>8} {worst_hwm / 1e6:9.0f} {worst_tree / 1e6:13.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Why a process of `galaxy-ae train --nproc N` ends with `exit_process` (training/distributed.py), shown with plain
torch: two gloo processes wrap a linear layer in DistributedDataParallel, train a few steps, destroy the process
group, and exit, either the usual way (the interpreter's teardown) or with os._exit after flushing.

It reports which gloo threads are still running after destroy_process_group (with and without a DDP model), then
runs each way of exiting `--runs` times with `--hogs` busy processes beside them and counts the launches that
failed. Linux only (threads are read from /proc). Usage::

    python benchmarks/distributed_exit.py --runs 30 --hogs 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER = """
import os, sys, torch, torch.distributed as dist
mode, wrap = sys.argv[1], sys.argv[2] == "ddp"
dist.init_process_group("gloo")
if wrap:
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(64, 64))
    for _ in range(20):
        model(torch.ones(8, 64)).sum().backward()
dist.barrier()
dist.destroy_process_group()
if mode == "threads" and os.environ["RANK"] == "0":
    names = sorted(open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task"))
    print("gloo threads after destroy_process_group:", ", ".join(n for n in names if "gloo" in n) or "none")
if mode == "os_exit":
    sys.stdout.flush(); sys.stderr.flush(); os._exit(0)
"""


def launch(script: Path, mode: str, wrap: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([*cmd, str(script), mode, wrap], capture_output=True, text=True, env=env, timeout=300)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="launches of each way of exiting (default 30)")
    parser.add_argument("--hogs", type=int, default=2, help="busy processes beside them (default 2)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "worker.py"
        script.write_text(WORKER)
        for wrap in ("none", "ddp"):
            shown = launch(script, "threads", wrap).stdout.strip().splitlines()
            print(f"{'with' if wrap == 'ddp' else 'without'} a DDP model: {shown[-1] if shown else '?'}")
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
        try:
            for mode in ("teardown", "os_exit"):
                failed = [launch(script, mode, "ddp") for _ in range(args.runs)]
                failed = [run for run in failed if run.returncode != 0]
                aborts = sum("terminate called without an active exception" in run.stderr for run in failed)
                print(
                    f"exit by {mode:8}: {len(failed)} of {args.runs} launches failed, {aborts} with 'terminate called "
                    f"without an active exception' ({args.hogs} busy processes beside them)"
                )
        finally:
            for hog in hogs:
                hog.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How long the latent explorer takes per slider move, in the kernel: decode one galaxy, PNG it, show it.

    python benchmarks/explorer_latency.py [--model data/models/elbo] [--updates 200] [--json OUT]

Moves a `LatentExplorer`'s sliders the way a student drags one (each move runs the same callback a browser
triggers) and prints the median and 95th percentile time per update, for the explorer's default of one decoding
thread and for all cores, side by side in one run. The budget is 50 ms per update on a laptop CPU. Without a
saved model it uses an untrained one of the default size: decoding costs the same either way. The browser's
share (websocket, drawing the PNG) is measured by tests/test_browser.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from galaxy_autoencoders.models import ModelConfig, build_model, load_checkpoint
from galaxy_autoencoders.widgets import LatentExplorer

BUDGET_MS = 50.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="data/models/elbo", help="checkpoint to explore (default: notebook 03's)")
    parser.add_argument("--updates", type=int, default=200, help="slider moves to time per setting")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()

    if Path(args.model + ".json").is_file():
        model, source = load_checkpoint(args.model), args.model
    else:
        torch.manual_seed(0)
        model, source = build_model(ModelConfig()).eval(), "an untrained default VAE (no checkpoint found)"
    cores = os.cpu_count() or 1
    results = {}
    for threads in sorted({1, cores}):
        # The prior sets sigma: no data set is needed to time a decode.
        explorer = LatentExplorer(model, k=6, threads=threads)
        results[threads] = _timed_updates(explorer, args.updates)

    print(f"Latent explorer: {args.updates} slider moves per setting; model: {source}")
    print(
        f"{'decoding threads':>17} {'median ms':>10} {'p95 ms':>8}   ({platform.processor() or 'cpu'}, {cores} cores)"
    )
    for threads, times in results.items():
        print(f"{threads:>17} {np.median(times):>10.1f} {np.percentile(times, 95):>8.1f}")
    median = float(np.median(results[1]))
    print(f"default (1 thread) within the {BUDGET_MS:.0f} ms budget: {median <= BUDGET_MS}")
    if args.json:
        summary = {
            str(t): {"median_ms": float(np.median(v)), "p95_ms": float(np.percentile(v, 95))}
            for t, v in results.items()
        }
        with open(args.json, "w") as f:
            json.dump({"model": source, "cores": cores, "machine": platform.platform(), "threads": summary}, f)


def _timed_updates(explorer: LatentExplorer, updates: int) -> list[float]:
    """Milliseconds per slider move (decode + PNG + widget update), after 10 moves of warm-up."""
    rng = np.random.default_rng(0)
    times = []
    for i in range(10 + updates):
        slider = explorer.sliders[i % len(explorer.sliders)]
        value = round(float(rng.uniform(-3, 3)), 1)
        if value == slider.value:  # an unchanged value fires no callback
            value = -value if value else 0.1
        start = time.perf_counter()
        slider.value = value
        if i >= 10:
            times.append((time.perf_counter() - start) * 1000)
    return times


if __name__ == "__main__":
    main()

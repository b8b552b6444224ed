"""Data-parallel training (galaxy_autoencoders.training.distributed): two CPU processes on gloo, launched by torchrun,
train what one process trains on the same batches; and `galaxy-ae train` runs under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from galaxy_autoencoders.dataloaders import galaxy_dls
from galaxy_autoencoders.training.distributed import shard_dls

pytest.importorskip("accelerate")
SCRIPT = Path(__file__).with_name("_ddp_train.py")


def _run(args, cwd, nproc=None):
    launcher = [sys.executable]
    if nproc:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([*launcher, *args], cwd=cwd, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module", params=["ae", "elbo"])
def runs(request, tmp_path_factory):
    """One process, two with DDP, and (AE only) two without: first-batch gradients and histories."""
    out = tmp_path_factory.mktemp(f"ddp_{request.param}")
    _run([str(SCRIPT), request.param, str(out / "one")], out)
    _run([str(SCRIPT), request.param, str(out / "two")], out, nproc=2)
    names = ["one.rank0", "two.rank0", "two.rank1"]
    if request.param == "ae":
        _run([str(SCRIPT), request.param, str(out / "alone"), "alone"], out, nproc=2)
        names.append("alone.rank0")
    grads = {name: torch.load(out / f"{name}.pt", weights_only=True) for name in names}
    info = {name: json.loads((out / f"{name}.json").read_text()) for name in names}
    return request.param, grads, info


def test_each_process_trains_on_half_of_each_batch(runs):
    _, _, info = runs
    one, ranks = info["one.rank0"], (info["two.rank0"], info["two.rank1"])
    assert one["world_size"] == 1 and all(r["world_size"] == 2 for r in ranks)
    assert one["bs"] == 32 and all(r["bs"] == 16 for r in ranks)
    assert all(r["batches"] == one["batches"] for r in ranks)  # the same number of steps
    assert sum(r["n"] for r in ranks) == one["n"]  # 158 training galaxies: 79 each


def _relative(a: dict, b: dict) -> float:
    """The largest relative difference, over the weight tensors, between two sets of gradients."""
    return max(((a[k] - b[k]).norm() / a[k].norm()).item() for k in a)


def test_two_processes_step_with_the_whole_batchs_gradient(runs):
    objective, grads, info = runs
    assert _relative(grads["two.rank0"], grads["two.rank1"]) == 0  # DDP gave both processes one average
    if objective == "ae":  # no random draws: the whole batch's gradient, summed in another order
        assert _relative(grads["one.rank0"], grads["two.rank0"]) < 1e-4
        # and the check can fail: each process's own half-batch gradient is 10% or more off
        assert _relative(grads["one.rank0"], grads["alone.rank0"]) > 1e-2
    # The ELBO draws eps per process, so its gradients differ; what was learned does not.
    history = {name: [row["valid_loss"] for row in info[name]["history"]] for name in info}
    assert history["two.rank0"] == pytest.approx(history["one.rank0"], rel=2e-6)
    if "alone.rank0" in history:
        assert history["alone.rank0"] != pytest.approx(history["one.rank0"], rel=2e-6)


def test_shard_zero_holds_every_other_training_galaxy():
    images = np.random.default_rng(0).integers(0, 256, (176, 69, 69, 3), dtype=np.uint8)
    dls = galaxy_dls(images, bs=32, device="cpu", seed=1, augment=False)
    dls.train.shuffle = False
    half = shard_dls(dls, 0, 2, "cpu")
    assert half.train.n == 79 and half.valid.n == dls.valid.n and len(half.train.images) == 79  # its shard only
    first, whole = half.train.one_batch()[0], dls.train.one_batch()[0]
    assert torch.equal(first, whole[0::2])  # shard 0's first batch: galaxies 0, 2, 4, ... of the first batch


def test_a_batch_that_does_not_split_is_refused():
    images = np.zeros((64, 69, 69, 3), dtype=np.uint8)
    dls = galaxy_dls(images, bs=30, device="cpu")
    with pytest.raises(ValueError, match="batch size 30 does not split over 4 processes"):
        shard_dls(dls, 0, 4, "cpu")


def test_exit_process_ends_only_a_process_that_trained_in_a_group(monkeypatch, capsys):
    from galaxy_autoencoders.training import distributed

    exits = []
    monkeypatch.setattr(distributed.os, "_exit", exits.append)
    monkeypatch.setattr(distributed, "joined", False)
    distributed.exit_process(0)  # a process that never trained in a group exits the usual way
    assert exits == []
    monkeypatch.setattr(distributed, "joined", True)
    print("the last line", end="")
    distributed.exit_process(3)
    assert exits == [3] and capsys.readouterr().out == "the last line"  # flushed, with its status

"""Data-parallel training over several GPUs (or CPU processes), on fastai's `DistributedTrainer` and Accelerate.

Start one process per GPU with torch's own launcher (`--nproc` calls it; `torchrun --standalone --nproc_per_node 4
-m galaxy_autoencoders.cli train ...` is the same); each process trains the same model on its own shard:

    galaxy-ae train --nproc 4 --data galaxies.h5 --bs 512 --out runs/ddp

What each process does (see `data_parallel`):

- `shard_dls` keeps on its device only its shard of the training galaxies (every world_size-th one, from its
  rank on), at a batch size of bs / world_size, so the N processes together make batches of `bs`;
- fastai's `DistributedTrainer` wraps the model in torch's `DistributedDataParallel` through Accelerate, which
  averages the gradients over the processes after each backward pass (on GPUs with `SyncBatchNorm`, so the
  batch statistics are those of the whole batch);
- each process validates on all validation galaxies; only rank 0 prints the table and writes files.

The gradient of a batch split this way is the gradient of the whole batch (the losses are means over the
batch), so N processes train what one would with the same batches. `tests/test_distributed.py` checks that
with two CPU processes on the gloo backend. Worth it when an epoch takes long: hundreds of thousands
of galaxies. For Galaxy10 SDSS one GPU is faster: the model is small, and the
gradient exchange after each batch would cost more than the batch.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import torch

from .._fastai import DataLoaders, ProgressCallback
from ..config import rank, world_size


def process_device() -> torch.device:
    """The device of this process: its own GPU (LOCAL_RANK) when there are GPUs, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def shard_dls(dls, rank: int, world_size: int, device=None) -> DataLoaders:
    """dls from `galaxy_dls` (keep it on the CPU) -> DataLoaders for process `rank` of `world_size`, on `device`.

    Training: galaxies rank, rank + world_size, ... of the training set (each shard the same length, so every
    process runs the same number of batches), batch size bs / world_size, moved to `device`: each process holds
    its shard only. Validation: all validation galaxies, on `device`.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not one of the {world_size} processes.")
    train, valid = dls.train, dls.valid
    if train.bs % world_size:
        raise ValueError(
            f"The batch size {train.bs} does not split over {world_size} processes; give --bs a multiple of "
            f"{world_size} (it is the batch of all processes together)."
        )
    per_shard = train.n // world_size
    if per_shard < train.bs // world_size:
        raise ValueError(f"{train.n} training galaxies are too few for {world_size} shards of batches of {train.bs}.")
    # Its own seed: each shard shuffles and flips its galaxies independently of the others.
    positions = torch.arange(rank, per_shard * world_size, world_size)
    shard = train.subset(positions, bs=train.bs // world_size, seed=train.seed + rank)
    shard.whole_mean_image = train.mean_image()  # the decoder starts from the whole set's colour in every process
    device = torch.device(device) if device is not None else process_device()
    out = DataLoaders(shard.to(device), valid.subset(torch.arange(valid.n)).to(device), device=device)
    out.n_inp, out.seed = dls.n_inp, dls.seed
    return out


def _sharded_trainer():
    """fastai's DistributedTrainer for loaders that are already sharded (fastai's own wraps each loader in its
    `DistributedDL`, which splits a fastai `TfmdDL`'s items; ours come sharded and on the device)."""
    from fastai.distributed import DistributedTrainer

    class ShardedTrainer(DistributedTrainer):
        def _wrap_dl(self, dl):
            return dl

    return ShardedTrainer


@contextmanager
def data_parallel(learn):
    """Train learn in DistributedDataParallel inside this block (a no-op in a single process).

    The process group comes from the launcher's environment (torchrun): NCCL on GPUs, gloo on CPUs. Batch
    norms become SyncBatchNorm on GPUs (gloo has no SyncBatchNorm; there the batch statistics stay per process).
    """
    if world_size() <= 1:
        yield learn
        return
    global joined
    joined = True  # the process group is started here, by Accelerate (see exit_process)
    on_cuda = next(learn.model.parameters()).device.type == "cuda"
    trainer = _sharded_trainer()(sync_bn=on_cuda, cpu=not on_cuda)
    learn.add_cb(trainer)
    removed = []
    if rank():  # one table and one progress bar, rank 0's
        removed = [cb for cb in learn.cbs if isinstance(cb, ProgressCallback)]
        learn.remove_cbs(removed)
    try:
        yield learn
    finally:
        learn.remove_cb(trainer)
        learn.add_cbs(removed)


def finish() -> None:
    """End this process's part in the process group after training (the others wait here until all are done)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


joined = False  # whether this process has trained in a process group (data_parallel)


def exit_process(status: int) -> None:
    """End this process with `status`, its output flushed, without the interpreter's teardown, if it has trained
    in a process group (`joined`); else return at once.

    Why: once a model has been wrapped in DistributedDataParallel, torch keeps its gloo process group alive after
    destroy_process_group (its threads pt_gloo_runloop and gloo_tcp_loop still run), so the group is torn down
    while the interpreter exits, racing those threads; under load the process then aborts with "terminate called
    without an active exception" and the launcher kills the others. benchmarks/distributed_exit.py shows both
    with plain torch; benchmarks/stress_distributed.sh runs the tests that train on two processes 20 times."""
    if not joined:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)

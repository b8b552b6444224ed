"""Trains a tiny model one way, for tests/test_distributed.py: `python tests/_ddp_train.py OBJECTIVE OUT [alone]`,
alone or under `torchrun --nproc_per_node 2` ("alone": each process trains its shard without DDP). Writes the
first batch's gradients (OUT.rankR.pt) and the history (OUT.rankR.json). The batches are the same either way (no
shuffle, no augmentation): rank r's shard holds galaxies r, r + 2, ..., so the two half-batches of step i make up the
single process's batch i."""

import json
import sys

import numpy as np
import torch
from fastai.callback.core import Callback

from galaxy_autoencoders.config import rank, world_size
from galaxy_autoencoders.dataloaders import galaxy_dls
from galaxy_autoencoders.models import ModelConfig
from galaxy_autoencoders.training import vae_learner
from galaxy_autoencoders.training.distributed import data_parallel, exit_process, finish, shard_dls

objective, out, alone = sys.argv[1], sys.argv[2], sys.argv[3:] == ["alone"]
torch.set_num_threads(1)
images = np.random.default_rng(0).integers(0, 256, (176, 69, 69, 3), dtype=np.uint8)
dls = galaxy_dls(images, bs=32, device="cpu", seed=1, augment=False)
dls.train.shuffle = False
if world_size() > 1:
    dls = shard_dls(dls, rank(), world_size(), "cpu")
    if alone:  # fastai still gathers the metrics over the processes, which needs a process group
        torch.distributed.init_process_group("gloo")
torch.manual_seed(0)
# norm="none": gloo has no SyncBatchNorm, and per-process batch statistics would differ from the whole batch's.
config = ModelConfig(widths=(8, 16, 32, 64), latent_size=8, norm="none")
learn = vae_learner(dls, objective=objective, config=config)


class FirstGradients(Callback):
    """Keeps the gradients of the first training batch, as the optimiser sees them (after DDP averaged them)."""

    order = 99

    def after_backward(self):
        if not hasattr(self, "grads"):
            named = learn.model.named_parameters()
            self.grads = {n.removeprefix("module."): p.grad.detach().clone() for n, p in named if p.grad is not None}


first = FirstGradients()
learn.add_cb(first)
with data_parallel(learn) if not alone else learn.no_logging(), learn.no_bar(), learn.no_logging():
    learn.fit(2, 1e-3)
torch.save(first.grads, f"{out}.rank{rank()}.pt")
info = {"world_size": world_size(), "batches": len(dls.train), "bs": dls.train.bs, "n": dls.train.n}
info["history"] = learn.recorder.history
with open(f"{out}.rank{rank()}.json", "w") as f:
    json.dump(info, f)
finish()  # leave the process group
exit_process(0)  # without the interpreter's teardown, which races gloo's threads (distributed.py)

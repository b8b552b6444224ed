"""`CompileModel`: the model's forward and backward passes compiled by `torch.compile`, as a fastai callback.

Why: a small model on a big GPU is held back by the host, not the GPU. One batch of the quick VAE is about 330
small kernels, each launched from Python, and the GPU waits between them. `torch.compile` fuses the kernels, and
with mode="reduce-overhead" on CUDA it records the fused forward and backward as CUDA graphs: the host replays a
whole pass with one call. The device-resident loader gives every training batch the same shape, which is what
a recorded graph needs (validation's shorter last batch gets a graph of its own).

The weights stay where they were: only the forward method is swapped for its compiled version, and only during
fit, so `state_dict()` keys and checkpoints are the same as without it. The first batches of each shape (train,
valid, valid's last) pay the compile time, tens of seconds; `benchmarks/throughput.py --to-result` counts it.
The loss terms stay eager.

`vae_learner` adds it on CUDA by default (`compile=None`); pass `compile=False` to train eagerly, or `True` to
compile on a CPU too (inductor then needs a C++ compiler; it is slower to start than it saves on a short run).
"""

from __future__ import annotations

import torch

from .._fastai import Callback


class CompileModel(Callback):
    """Run learn.model's forward through torch.compile during fit: mode "reduce-overhead" (CUDA graphs) on CUDA,
    "default" elsewhere.

    Only during fit: afterwards the model's forward is its own again, so inference on batches of other sizes
    (reconstructions, catalogues, notebook cells) does not compile a graph for each new shape. The compiled code
    is cached by torch, so a second fit does not compile again. dynamic=False: one specialised graph per batch
    shape (at most three in a fit: train, valid, valid's last batch), which CUDA graphs record best. Before each
    batch on CUDA it marks a new step for the CUDA-graph trees, so the previous batch's outputs may be reused.
    """

    order = 0  # before every callback that reads the model

    def __init__(self, mode: str | None = None, backend: str = "inductor"):
        self.mode, self.backend = mode, backend
        self.compiled_batches = 0

    def before_fit(self):
        model = self.learn.model
        self.on_cuda = next(model.parameters()).device.type == "cuda"
        mode = self.mode or ("reduce-overhead" if self.on_cuda else "default")
        self.graphs = self.on_cuda and mode == "reduce-overhead"
        # An instance attribute shadows the class's forward; nn.Module.__call__ looks it up the same way, and
        # state_dict() does not see it, so checkpoints are unchanged.
        model.forward = torch.compile(
            type(model).forward.__get__(model), mode=mode, backend=self.backend, dynamic=False
        )

    def before_batch(self):
        self.compiled_batches += 1
        if self.graphs:
            torch.compiler.cudagraph_mark_step_begin()

    def after_fit(self):
        self.learn.model.__dict__.pop("forward", None)  # the model's own forward again

"""`CompileModel` (torch.compile of the model, CUDA graphs on CUDA): the same training as eager, on a CPU.

On a GPU it is the package's default and `benchmarks/throughput.py` measures what it gains; here, with inductor
on the CPU, only that it computes the same thing and leaves checkpoints as they were.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from galaxy_autoencoders.dataloaders import galaxy_dls
from galaxy_autoencoders.models import ModelConfig, load_checkpoint
from galaxy_autoencoders.training import CompileModel, save_learner, vae_learner

CONFIG = ModelConfig(widths=(8, 16, 32, 64), latent_size=8)


def _fit(compile: bool):
    images = np.random.default_rng(0).integers(0, 256, (192, 69, 69, 3), dtype=np.uint8)
    dls = galaxy_dls(images, bs=32, device="cpu", seed=1)
    torch.manual_seed(0)
    learn = vae_learner(dls, objective="mmd", config=CONFIG, compile=compile)
    # Inductor draws its own random numbers unless told to use eager's, and reparameterize draws eps.
    with torch._inductor.config.patch(fallback_random=True), learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-3)
    return learn


@pytest.fixture(scope="module")
def eager_and_compiled():
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    eager = _fit(False)
    compiled = _fit(True)
    return eager, compiled, dict(torch._dynamo.utils.counters["stats"])


def test_compiled_training_matches_eager_within_a_thousandth(eager_and_compiled):
    eager, compiled, stats = eager_and_compiled
    assert stats.get("unique_graphs", 0) >= 2  # train and eval forward went through the compiler
    # and only during fit: afterwards the model runs its own forward (no compile per new inference shape)
    assert "forward" not in compiled.model.__dict__
    # Same batches, same eps, same weights at the start: only the order of floating-point sums differs.
    for column in ("train_loss", "valid_loss", "recon", "kl", "mmd"):
        assert compiled.recorder.history[-1][column] == pytest.approx(eager.recorder.history[-1][column], rel=1e-3), (
            column
        )
    # The trained models agree too. (Not weight by weight: a convolution's bias before a batch norm gets a
    # gradient of pure rounding noise, which Adam turns into full-size steps, so those biases wander apart.)
    x = eager.dls.valid.one_batch()[0]
    with torch.no_grad():
        a, b = eager.model.eval()(x)[0], compiled.model.eval()(x)[0]
    assert (a - b).abs().max() < 5e-3  # pixels in [0, 1]


def test_a_compiled_model_saves_the_same_checkpoint_keys(eager_and_compiled, tmp_path):
    eager, compiled, _ = eager_and_compiled
    assert list(compiled.model.state_dict()) == list(eager.model.state_dict())  # no "_orig_mod." prefix
    save_learner(compiled, tmp_path / "compiled")
    model = load_checkpoint(tmp_path / "compiled")
    for key, value in model.state_dict().items():
        assert torch.equal(value, compiled.model.state_dict()[key]), key


def test_compiling_is_the_default_on_cuda_only():
    images = np.random.default_rng(0).integers(0, 256, (64, 69, 69, 3), dtype=np.uint8)
    dls = galaxy_dls(images, bs=16, device="cpu")
    assert not any(isinstance(cb, CompileModel) for cb in vae_learner(dls, config=CONFIG).cbs)
    assert any(isinstance(cb, CompileModel) for cb in vae_learner(dls, config=CONFIG, compile=True).cbs)

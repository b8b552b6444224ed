"""The fastai Learner: loss columns that add up, the objective's MMD term, KL warm-up, the NaN guard, fastai's verbs."""

import re
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import nbformat
import numpy as np
import pytest
import torch
from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback
from fastai.callback.schedule import ParamScheduler

from galaxy_autoencoders.config import LAM, get_profile
from galaxy_autoencoders.data import GALAXY10_SDSS_CLASSES, Galaxies
from galaxy_autoencoders.dataloaders import galaxy_dls
from galaxy_autoencoders.losses import kl_divergence, mmd, reconstruction_loss
from galaxy_autoencoders.models import VAE, ModelConfig, build_model, checkpoint_info, load_checkpoint, save_checkpoint
from galaxy_autoencoders.training import (
    GPUFriendlyProgress,
    KLWarmup,
    NaNGuard,
    Objective,
    save_learner,
    torch_adamw,
    vae_learner,
)
from galaxy_autoencoders.training.speed import default_opt_func

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TINY = ModelConfig(latent_size=4, widths=(4, 8, 8, 8))


@pytest.fixture
def dls():
    # 64 galaxies: 58 train (3 batches of 16, the last partial one dropped), 6 valid (1 batch)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 69, 69, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, 64)
    return galaxy_dls(images, labels, bs=16, device="cpu", class_names=("a", "b", "c"))


def _learner(dls, tmp_path, **kwargs):
    torch.manual_seed(0)
    learn = vae_learner(dls, config=TINY, **kwargs)
    learn.path = tmp_path  # lr_find writes a temporary copy of the model under path/models
    return learn


def _last_record(learn) -> dict[str, float]:
    """The last epoch's row of fastai's table: {column: value} for train_loss, valid_loss and the loss parts."""
    return dict(zip(learn.recorder.metric_names[1:-1], map(float, learn.recorder.values[-1]), strict=True))


class Record(Callback):
    """Test helper: call fn(learn) at one event and keep what it returns."""

    order = 90

    def __init__(self, event, fn):
        self.values = []
        setattr(self, event, lambda: self.values.append(fn(self.learn)))


# ----------------------------------------------------------------------------------------------------------
# The table's columns and what they hold


@pytest.mark.parametrize(
    "objective, columns",
    [
        ("elbo", ["epoch", "train_loss", "valid_loss", "recon", "kl", "mmd", "time"]),
        ("mmd", ["epoch", "train_loss", "valid_loss", "recon", "kl", "mmd", "time"]),
        ("ae", ["epoch", "train_loss", "valid_loss", "recon", "time"]),
    ],
)
def test_fit_one_cycle_shows_each_loss_part(dls, tmp_path, objective, columns):
    learn = _learner(dls, tmp_path, objective=objective)
    with learn.no_bar():
        learn.fit_one_cycle(1)
    assert learn.objective == objective
    assert list(learn.recorder.metric_names) == columns
    record = _last_record(learn)
    assert all(np.isfinite(v) for v in record.values())
    # The columns are the validation loss taken apart.
    if objective == "elbo":
        assert record["valid_loss"] == pytest.approx(record["recon"] + record["kl"], rel=1e-5)
        assert record["kl"] > 100 * 1e-5 * record["recon"]  # large enough that a missing KL breaks the line above
    elif objective == "mmd":
        assert record["valid_loss"] == pytest.approx(record["recon"] + LAM * record["mmd"], rel=1e-5)
    else:
        assert record["valid_loss"] == pytest.approx(record["recon"], rel=1e-6)


def test_validation_columns_match_a_direct_computation(dls, tmp_path):
    learn = _learner(dls, tmp_path, objective="elbo")
    learn.validate()
    names = learn.recorder.metric_names[2:-1]  # valid_loss, recon, kl, mmd
    got = dict(zip(names, [float(v) for v in learn.final_record], strict=True))
    model = learn.model.eval()
    recon_sum = kl_sum = n = 0.0
    with torch.no_grad():
        for x, _, _ in dls.valid:
            recon, mu, logvar = model(x)
            recon_sum += reconstruction_loss(recon, x).item() * len(x)
            kl_sum += kl_divergence(mu, logvar).item() * len(x)
            n += len(x)
    assert got["recon"] == pytest.approx(recon_sum / n, rel=1e-5)
    assert got["kl"] == pytest.approx(kl_sum / n, rel=1e-5)


def test_objective_adds_exactly_lam_times_mmd(dls, tmp_path):
    learn = _learner(dls, tmp_path, objective="mmd", lam=250.0)
    x, _, y = dls.valid.one_batch()
    learn.model.eval()  # z = mu: the only randomness left is the prior sample, fixed by the seed below
    with torch.no_grad():
        recon, mu, logvar = pred = learn.model(x)
        torch.manual_seed(123)
        loss = learn.loss_func(pred, x, y)
        torch.manual_seed(123)
        distance = mmd(mu, torch.randn_like(mu))
    assert loss.item() == pytest.approx((reconstruction_loss(recon, x) + 250.0 * distance).item(), rel=1e-5)
    assert learn.loss_func.parts["mmd"].item() == pytest.approx(distance.item(), rel=1e-5)


def test_objective_mmd_on_means_or_samples(dls, tmp_path):
    learn = _learner(dls, tmp_path, objective="mmd", lam=1.0)
    x, _, y = dls.train.one_batch()
    learn.model.train()
    measured = {}
    for on in ("mean", "sample"):
        objective = Objective("mmd", lam=1.0, mmd_on=on)
        pred = learn.model(x)  # gradients on: training
        torch.manual_seed(7)
        objective(pred, x, y)
        measured[on] = objective.parts["mmd"].item()
        if on == "mean":  # in training too: the means, not the decoder's random sample
            torch.manual_seed(7)
            assert measured[on] == pytest.approx(mmd(pred[1], torch.randn_like(pred[1])).item(), rel=1e-5)
    assert measured["sample"] != pytest.approx(measured["mean"], rel=1e-3)
    with pytest.raises(ValueError, match="mean"):
        Objective("mmd", mmd_on="z")


def test_the_prior_sample_is_float32_when_the_codes_come_in_bfloat16(monkeypatch):
    # Under bf16 autocast the encoder's means arrive in bfloat16 (3 significant digits); the prior sample the MMD
    # compares them with is drawn in float32, not rounded to the codes' precision.
    import galaxy_autoencoders.training.objective as objective_module

    compared = []
    monkeypatch.setattr(objective_module, "mmd", lambda codes, prior, **kw: compared.append(prior) or mmd(codes, prior))
    mu = torch.randn(16, 5, generator=torch.Generator().manual_seed(0)).bfloat16()
    recon, x = torch.rand(16, 3, 69, 69), torch.rand(16, 3, 69, 69)
    with torch.no_grad():
        Objective("mmd", lam=1.0)((recon, mu, torch.zeros(16, 5)), x)
    (prior,) = compared
    assert prior.shape == (16, 5) and prior.dtype == torch.float32
    assert not torch.equal(prior, prior.bfloat16().float())  # not bf16 values stored as float32


def test_elbo_learner_measures_mmd_without_training_on_it(dls, tmp_path):
    learn = _learner(dls, tmp_path, objective="elbo")
    assert learn.loss_func.lam == 0.0 and learn.loss_func.beta == 1.0
    x, _, y = dls.valid.one_batch()
    with torch.no_grad():
        learn.loss_func(learn.model.eval()(x), x, y)
    assert learn.loss_func.parts["mmd"].item() > 0
    with pytest.raises(ValueError, match="lam"):
        Objective("mmd", lam=-1.0)


def test_bad_arguments_are_refused(dls, tmp_path):
    with pytest.raises(ValueError, match="objective"):
        vae_learner(dls, objective="gan")
    with pytest.raises(ValueError, match="VAE"):
        vae_learner(dls, objective="ae", beta=2.0)
    with pytest.raises(ValueError, match="beta"):
        vae_learner(dls, objective="elbo", beta=-1.0)


def test_latent_size_and_config(dls, tmp_path):
    learn = vae_learner(dls, objective="ae", latent_size=3, config=TINY)
    assert learn.model.config.latent_size == 3 and learn.model.config.kind == "ae"
    assert learn.model.config.widths == TINY.widths


# ----------------------------------------------------------------------------------------------------------
# KL warm-up


def test_kl_warmup_ramps_linearly_then_stays_at_one(dls, tmp_path):
    learn = _learner(dls, tmp_path, objective="elbo", kl_warmup=0.5)
    weights = Record("after_loss", lambda learn: learn.loss_func.warmup if learn.training else None)
    losses = Record(
        "after_loss",
        lambda learn: (learn.loss.item(), learn.loss_func.parts["recon"].item(), learn.loss_func.parts["kl"].item()),
    )
    with learn.no_bar(), learn.no_logging():
        learn.fit(2, lr=1e-3, cbs=[weights, losses])  # 3 steps an epoch: the ramp covers 0.5 * 6 = 3 steps
    train_weights = [w for w in weights.values if w is not None]
    assert train_weights == pytest.approx([0, 1 / 3, 2 / 3, 1, 1, 1])
    # The loss the optimiser sees uses that weight: at step 0 the KL counts for nothing.
    loss0, recon0, kl0 = losses.values[0]
    assert kl0 > 0 and loss0 == pytest.approx(recon0)
    # A second fit does not restart the warm-up, and lr_find does not advance it.
    learn.lr_find(num_it=10, show_plot=False)
    warmup = next(c for c in learn.cbs if isinstance(c, KLWarmup))
    assert warmup.step == 6
    weights.values.clear()
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=1e-3, cbs=[weights])
    assert [w for w in weights.values if w is not None] == [1.0, 1.0, 1.0]  # every step of the new fit at 1


@pytest.mark.parametrize(
    ("pct", "expected"),
    [
        (None, [0, 1 / 2, 1, 1, 1, 1]),  # the default, 30% of 6 steps: 2 steps
        (1.0, [0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6]),  # over the whole run
        (0.05, [0, 1, 1, 1, 1, 1]),  # 0.3 of a step rounds to 0: one step, never a division by 0
    ],
)
def test_kl_warmup_ramp_length_is_its_fraction_of_the_first_real_fit_even_after_lr_find(dls, tmp_path, pct, expected):
    learn = _learner(dls, tmp_path, objective="elbo")
    learn.add_cb(KLWarmup() if pct is None else KLWarmup(pct=pct))
    learn.lr_find(num_it=10, show_plot=False)  # a mock fit of 4 epochs first: it must not fix the ramp length
    weights = Record("after_loss", lambda learn: learn.loss_func.warmup if learn.training else None)
    with learn.no_bar(), learn.no_logging():
        learn.fit(2, lr=1e-3, cbs=[weights])  # 3 steps an epoch
    assert [w for w in weights.values if w is not None] == pytest.approx(expected)
    weights.values.clear()
    with learn.no_bar(), learn.no_logging():
        learn.fit(4, lr=1e-3, cbs=[weights])  # a longer second fit continues where the ramp ended
    assert [w for w in weights.values if w is not None] == [1.0] * 12


def test_kl_warmup_rejects_bad_fractions():
    with pytest.raises(ValueError, match="fraction"):
        KLWarmup(pct=0)
    with pytest.raises(ValueError, match="fraction"):
        KLWarmup(pct=2)


# ----------------------------------------------------------------------------------------------------------
# NaN guard and interrupts


class PoisonWeights(Callback):
    """Test helper: after the optimiser step of training batch `at`, write NaN into one decoder weight."""

    order = 90

    def __init__(self, at: int):
        self.at, self.seen, self.state_at_good_loss = at, 0, None

    def after_loss(self):
        if self.training and self.seen == self.at:  # NaNGuard (order 80) has just taken its snapshot
            self.state_at_good_loss = {k: v.clone() for k, v in self.learn.model.state_dict().items()}

    def after_step(self):
        if self.seen == self.at:
            with torch.no_grad():
                self.learn.model.decoder.fc.weight[0, 0] = float("nan")

    def after_batch(self):
        if self.training:
            self.seen += 1


@pytest.mark.parametrize("opt_func", [None, torch_adamw], ids=["fastai-adam", "torch-adamw"])
def test_nan_guard_stops_restores_and_explains(dls, tmp_path, opt_func):
    learn = _learner(dls, tmp_path, objective="elbo", nan_guard=False, cbs=[NaNGuard(every=1)], opt_func=opt_func)
    poison = PoisonWeights(at=1)
    with learn.no_bar(), learn.no_logging(), pytest.warns(RuntimeWarning) as caught:
        learn.fit(3, lr=1e-3, cbs=[poison])  # returns normally: the guard cancels the fit
    message = str(caught[0].message)
    assert "epoch 0, batch 2" in message and "learning rate 1.00e-03" in message and "lr=1.0e-04" in message
    # What happened to the weights, and every remedy it offers, so a student knows what to do next.
    assert "the weights are back to the last good ones (epoch 0, batch 1)" in message
    assert "Try a learning rate 10x lower" in message and "kl_warmup=0.3" in message and "NaN/inf" in message
    guard = learn.nan_guard
    assert guard.tripped and guard.message == message
    assert poison.seen == 2  # training stopped at the third batch of the first epoch
    state = learn.model.state_dict()
    for k, v in poison.state_at_good_loss.items():
        assert torch.equal(state[k], v), k
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())
    # The model and the optimiser are usable again.
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter("error")
        learn.fit(1, lr=1e-4)
    assert not learn.nan_guard.tripped
    assert np.isfinite(float(learn.recorder.values[-1][0]))


@pytest.mark.parametrize(("at", "good"), [(4, "epoch 1, batch 1"), (0, "epoch start of fit, batch -")])
def test_nan_guard_names_where_the_restored_weights_come_from(dls, tmp_path, at, good):
    # 3 training batches an epoch: batch 4 is the second of epoch 1. With a copy every 2 good batches, a NaN after
    # the first batch of the fit goes back to the weights the fit started with.
    learn = _learner(dls, tmp_path, objective="elbo", nan_guard=False, cbs=[NaNGuard(every=1 if at else 2)])
    with learn.no_bar(), learn.no_logging(), pytest.warns(RuntimeWarning) as caught:
        learn.fit(3, lr=1e-3, cbs=[PoisonWeights(at=at)])
    assert f"the weights are back to the last good ones ({good})" in str(caught[0].message)


def test_an_objective_is_an_elbo_unless_told_otherwise():
    objective = Objective()
    assert (objective.objective, objective.beta, objective.lam) == ("elbo", 1.0, 0.0)


@pytest.fixture
def dls_22_batches():
    # 200 galaxies: 180 train, 22 full batches of 8 (the last partial one dropped), 20 valid
    images = np.random.default_rng(1).integers(0, 256, (200, 69, 69, 3), dtype=np.uint8)
    return galaxy_dls(images, bs=8, device="cpu")


def test_loss_part_columns_average_over_every_validation_galaxy(dls_22_batches, tmp_path):
    from galaxy_autoencoders.inference import reconstruct_all

    learn = _learner(dls_22_batches, tmp_path, objective="elbo")  # 20 validation galaxies: batches of 8, 8 and 4
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=1e-3)
    record = _last_record(learn)
    x, recon = reconstruct_all(learn.model, dls_22_batches)  # the validation galaxies, decoded from z = mu
    per_galaxy = (recon - x).pow(2).flatten(1).sum(1)  # what the recon column sums per galaxy
    assert len(per_galaxy) == 20
    assert record["recon"] == pytest.approx(float(per_galaxy.mean()), rel=1e-4)


def test_nan_guard_checking_every_few_batches_finds_the_nan_and_restores_a_checked_copy(dls_22_batches, tmp_path):
    # On a GPU the guard reads its finite flag back every HOST_SYNC_EVERY batches; check_every=4 does it here.
    learn = _learner(
        dls_22_batches, tmp_path, objective="elbo", nan_guard=False, cbs=[NaNGuard(every=1, check_every=4)]
    )
    states = Record("after_loss", lambda learn: {k: v.clone() for k, v in learn.model.state_dict().items()})
    with learn.no_bar(), learn.no_logging(), pytest.warns(RuntimeWarning) as caught:
        learn.fit(2, lr=1e-3, cbs=[PoisonWeights(at=5), states])
    message = str(caught[0].message)
    # Batch 6 is the first NaN; batches 4-7 are read back together, after batch 7's loss.
    assert "became NaN or inf at epoch 0, between batches 4 and 7" in message
    assert "back to the last good ones (epoch 0, batch 3)" in message  # the copy taken at the check before
    state = learn.model.state_dict()
    for k, v in states.values[3].items():  # the weights that gave batch 3 its finite loss
        assert torch.equal(state[k], v), k
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())
    assert len(learn.recorder.history) == 0  # stopped in the first epoch


class CountHostReads(Callback):
    """Test helper: in which training batch of an epoch each read of a tensor back to the host happens (each one
    waits for a GPU): its index, or the number of batches for a read after the last one (the epoch's end).
    Reads made by modules whose names start with one of `ignore` are left out."""

    order = 100  # after every other callback's after_batch: a read there belongs to the batch just done
    READS = ("item", "__bool__", "__float__", "__int__", "__format__", "tolist", "numpy", "cpu")

    def __init__(self, monkeypatch, ignore: tuple[str, ...] = ()):
        self.reads, self.batches, self.at, self.ignore = [], 0, None, ignore
        for name in self.READS:
            monkeypatch.setattr(torch.Tensor, name, self._counted(getattr(torch.Tensor, name)))

    def _counted(self, real):
        def read(tensor, *args, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if self.at is not None and not caller.startswith(self.ignore):
                self.reads.append(self.at)
            return real(tensor, *args, **kwargs)

        return read

    def before_train(self):
        self.at = 0  # set here and in after_batch: CapturedStep ends before_batch before this callback's turn

    def after_batch(self):
        if self.training:
            self.batches += 1
            self.at = self.batches

    def after_train(self):
        self.at = None


@pytest.mark.parametrize("capture", [False, True], ids=["fastai-step", "captured-step"])
def test_training_batches_read_back_to_the_host_only_every_few_batches(dls_22_batches, tmp_path, monkeypatch, capture):
    learn = _learner(dls_22_batches, tmp_path, objective="mmd", capture=capture)
    # On a GPU these intervals are HOST_SYNC_EVERY; on a CPU reads are free and happen every batch.
    learn.nan_guard.check_every = learn.progress.every = 5
    # On a CPU, torch's AdamW (the captured step's) reads its step count back each batch; on CUDA its groups are
    # capturable and the count stays on the device. It is torch's own, left out here.
    counter = CountHostReads(monkeypatch, ignore=("torch.optim",))
    with learn.no_logging():
        learn.fit(1, lr=1e-3, cbs=[counter])
    assert counter.batches == 22
    # The guard's flag and the bar's comment, both in batches 4, 9, 14 and 19; the bar's in the last (21); at
    # the epoch's end (22) the guard's last flag and fastai's table row. No other batch reads anything back.
    assert sorted(set(counter.reads)) == [4, 9, 14, 19, 21, 22]
    assert len(counter.reads) == 4 * 2 + 1 + 2
    assert all(loss.device.type == "cpu" for loss in learn.recorder.losses)  # for plot_loss

    learn.nan_guard.check_every = learn.progress.every = None  # the CPU default: both read every batch
    counter = CountHostReads(monkeypatch, ignore=("torch.optim",))
    with learn.no_logging():
        learn.fit(1, lr=1e-3, cbs=[counter])
    assert len(counter.reads) == 2 * 22 + 1


def test_torch_adamw_trains_exactly_as_fastais_adam():
    # The optimiser vae_learner takes on a GPU (fused there, the same arithmetic unfused here): fit_one_cycle
    # moves the weights as with fastai's Adam, momentum schedule and weight decay (none on biases and norm
    # layers) included. A small regression net: in the VAE, a conv bias that a batch norm follows gets a
    # gradient of rounding noise, which Adam turns into full steps of either sign under either optimiser.
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.optimizer import Adam

    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g) + 0.5
    data = list(zip(x, y, strict=True))
    weights, optimisers = {}, {}
    for name, opt_func in (("fastai", Adam), ("torch", torch_adamw)):
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Linear(8, 16, bias=False), torch.nn.BatchNorm1d(16), torch.nn.ReLU(), torch.nn.Linear(16, 1)
        )
        start = {k: v.clone() for k, v in net.state_dict().items()}
        dls = DataLoaders.from_dsets(data[:80], data[80:], bs=16, shuffle=False, device="cpu")
        learn = Learner(dls, net, loss_func=torch.nn.MSELoss(), opt_func=opt_func)
        with learn.no_bar(), learn.no_logging():
            learn.fit_one_cycle(4, 3e-2)
        weights[name], optimisers[name] = net.state_dict(), learn.opt
    for key, value in weights["fastai"].items():
        if value.is_floating_point():
            assert not torch.allclose(value, start[key]), key  # it trained
            torch.testing.assert_close(weights["torch"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    assert type(optimisers["torch"].opt) is torch.optim.AdamW
    assert [h["wd"] for h in optimisers["torch"].hypers] == [0.01, 0.0]  # weights decay; biases, norms don't


def test_vae_learner_takes_fused_adamw_on_a_gpu_and_keeps_fastais_adam_on_a_cpu(dls, tmp_path):
    from fastai.optimizer import Adam, Optimizer

    cuda = default_opt_func(torch.device("cuda"))
    assert cuda.func is torch_adamw and cuda.keywords == {"fused": True}
    assert default_opt_func("cpu") is None and default_opt_func(None) is None
    learn = _learner(dls, tmp_path)
    assert learn.opt_func is Adam
    learn.create_opt()
    assert type(learn.opt) is Optimizer  # fastai's own, so CPU results (and the notebooks' outputs) stay as they were
    learn = _learner(dls, tmp_path, opt_func=torch_adamw)  # a caller's choice wins
    assert learn.opt_func is torch_adamw


def test_vae_learner_uses_the_gpu_friendly_bar_and_no_bar_still_works(dls, tmp_path):
    learn = _learner(dls, tmp_path)
    assert type(learn.progress) is GPUFriendlyProgress and learn.progress in learn.cbs
    assert not any(type(cb) is ProgressCallback for cb in learn.cbs)  # fastai's own bar is gone
    with learn.no_bar():
        assert not any(isinstance(cb, ProgressCallback) for cb in learn.cbs)
        learn.fit(1)
    assert len(learn.recorder.history) == 1


def test_nan_guard_catches_a_diverging_learning_rate(dls, tmp_path):
    learn = _learner(dls, tmp_path, objective="elbo")
    with learn.no_bar(), learn.no_logging(), pytest.warns(RuntimeWarning, match="NaNGuard"):
        learn.fit(20, lr=1e6)
    assert learn.nan_guard.tripped
    assert re.search(r"at epoch \d+, batch \d+ \(learning rate 1\.00e\+06\)", learn.nan_guard.message)
    assert "lr=1.0e+05" in learn.nan_guard.message
    assert len(learn.recorder.values) < 20
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())


def test_keyboard_interrupt_leaves_a_usable_model(dls, tmp_path):
    learn = _learner(dls, tmp_path, objective="mmd")

    class Interrupt(Callback):
        def after_backward(self):
            if self.iter == 1:
                raise KeyboardInterrupt

    with learn.no_bar(), learn.no_logging(), pytest.raises(KeyboardInterrupt):
        learn.fit_one_cycle(2, cbs=[Interrupt()])
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())
    assert not any(isinstance(cb, (Interrupt, ParamScheduler)) for cb in learn.cbs)  # fit's own cbs removed
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1)
    assert np.isfinite([float(v) for v in learn.recorder.values[-1]]).all()


# ----------------------------------------------------------------------------------------------------------
# fastai's verbs


def test_lr_find_runs_on_cpu_and_leaves_the_model_alone(dls, tmp_path):
    learn = _learner(dls, tmp_path, objective="elbo", kl_warmup=0.3)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with learn.no_bar():
        suggestion = learn.lr_find(num_it=25, show_plot=False)
    assert 1e-7 < suggestion.valley < 10
    after = learn.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not learn.nan_guard.tripped


@pytest.mark.parametrize("objective", ["elbo", "ae"])
def test_show_results_shows_inputs_above_reconstructions(dls, tmp_path, objective):
    learn = _learner(dls, tmp_path, objective=objective)
    plt.close("all")
    learn.show_results(max_n=4)
    (ax,) = plt.gcf().axes  # one image of tiles: 4 inputs above 4 reconstructions, 2 black pixels between
    assert [t.get_text() for t in ax.get_yticklabels()] == ["input", "output"]
    picture = np.asarray(ax.images[0].get_array())
    assert picture.shape == (2 * 69 + 2, 4 * 69 + 3 * 2, 3)
    top, bottom = picture[:69, :69], picture[71:, :69]
    assert not np.array_equal(top, bottom)
    plt.close("all")


def test_save_learner_round_trip(dls, tmp_path):
    learn = _learner(dls, tmp_path, objective="mmd", lam=300.0)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=1e-3)
        learn.show_results(max_n=2)  # a later validation pass must not change what is saved (notebook 03)
    plt.close("all")
    save_learner(learn, tmp_path / "ckpt" / "mmd", extra={"dataset": "random"})
    info = checkpoint_info(tmp_path / "ckpt" / "mmd")["extra"]
    assert info["objective"] == "mmd" and info["lam"] == 300.0 and info["dataset"] == "random"
    assert set(info["metrics"]) == {"train_loss", "valid_loss", "recon", "kl", "mmd"}
    model = load_checkpoint(tmp_path / "ckpt" / "mmd")
    x = dls.valid.one_batch()[0]
    learn.model.eval()
    with torch.no_grad():
        assert torch.equal(model(x)[0], learn.model(x)[0])


# ----------------------------------------------------------------------------------------------------------
# Notebook 05 run before 03 and 04: its own cells, without running the whole notebook

NOTEBOOK_05 = Path(__file__).resolve().parent.parent / "notebooks" / "05_generation.ipynb"


def _code_cell(path: Path, marker: str) -> str:
    """The source of the one code cell of the notebook at path that contains marker."""
    cells = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code" and marker in c.source]
    assert len(cells) == 1, f"{path.name}: expected one code cell containing {marker!r}, found {len(cells)}"
    return cells[0]


def test_notebook_05_before_04_says_so_and_trains_nothing_then_shows_04s_model(tmp_path, monkeypatch, capsys):
    load_cell = _code_cell(NOTEBOOK_05, "load_saved(")
    monkeypatch.setenv("GALAXY_AE_DATA", str(tmp_path))  # a fresh data folder: no data/models yet
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (48, 69, 69, 3), dtype=np.uint8), rng.integers(0, 10, 48)
    data = Galaxies(images, labels, GALAXY10_SDSS_CLASSES, params=None, name="random", path=None)
    profile = get_profile("quick")

    first = {"data": data, "profile": profile}
    exec(load_cell, first)
    assert "quick MMD-VAE: not here (none is saved yet); run 04 to see it" in capsys.readouterr().out
    assert first["quick_mmd"] is None and not (tmp_path / "models").exists()  # nothing trained, nothing saved
    # The main figures' models are the pretrained ones, whatever happened to the quick ones.
    assert all(m.config.widths == (32, 64, 128, 256) for m in first["models"].values())

    # Notebook 04 saved its MMD-VAE for other galaxies: 05 does not show it as this one's.
    save_checkpoint(build_model(TINY), tmp_path / "models" / "mmd", extra={"objective": "mmd", "data": "other"})
    exec(load_cell, second := {"data": data, "profile": profile})
    assert "not here (the saved one was trained with other settings)" in capsys.readouterr().out
    assert second["quick_mmd"] is None

    # Now for these galaxies and this profile: 05 shows that one.
    torch.manual_seed(1)
    saved = build_model(TINY)
    extra = {"objective": "mmd", "data": "random", "profile": "quick"}
    save_checkpoint(saved, tmp_path / "models" / "mmd", extra=extra)
    exec(load_cell, third := {"data": data, "profile": profile})
    assert "quick MMD-VAE: found" in capsys.readouterr().out and not third["quick_mmd"].training
    loaded = third["quick_mmd"].state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in saved.state_dict().items())


NOTEBOOK_04 = NOTEBOOK_05.with_name("04_mmd.ipynb")


def test_notebook_04_before_03_trains_03s_model_once_then_uses_the_saved_one(tmp_path, monkeypatch, capsys):
    load_cell = _code_cell(NOTEBOOK_04, "load_or_train(")
    monkeypatch.setenv("GALAXY_AE_DATA", str(tmp_path))
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (48, 69, 69, 3), dtype=np.uint8), rng.integers(0, 10, 48)
    data = Galaxies(images, labels, GALAXY10_SDSS_CLASSES, params=None, name="random", path=None)
    profile = replace(get_profile("quick"), epochs=1, batch_size=16, widths=TINY.widths)
    dls = galaxy_dls(data, bs=16, seed=0)

    exec(load_cell, first := {"data": data, "profile": profile, "dls": dls})
    assert "training a new elbo model (none is saved yet)" in capsys.readouterr().out
    assert isinstance(first["elbo_model"], VAE) and not first["elbo_model"].training
    saved_with = checkpoint_info(tmp_path / "models" / "elbo")["extra"]
    assert {key: saved_with[key] for key in ("objective", "data", "profile")} == {
        "objective": "elbo",
        "data": "random",
        "profile": "quick",
    }

    exec(load_cell, second := {"data": data, "profile": profile, "dls": dls})  # 04 again: 03's model is there now
    assert "using the elbo model saved as elbo" in capsys.readouterr().out
    trained, loaded = first["elbo_model"].state_dict(), second["elbo_model"].state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in trained.items())

    save_checkpoint(build_model(TINY), tmp_path / "models" / "elbo", extra={"objective": "elbo", "data": "other"})
    exec(load_cell, {"data": data, "profile": profile, "dls": dls})
    assert "training a new elbo model (the saved one was trained with other settings)" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------------------
# Optional terms


def test_class_aware_term_trains_a_class_head(dls, tmp_path):
    learn = _learner(dls, tmp_path, objective="elbo", class_weight=5.0)
    assert learn.model.class_head.out_features == 3
    head_before = learn.model.class_head.weight.detach().clone()
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=1e-3)
    assert learn.recorder.metric_names[-2] == "class"
    assert not torch.equal(head_before, learn.model.class_head.weight)
    assert np.isfinite(float(learn.recorder.values[-1][-1]))


@pytest.mark.parametrize("objective", ["elbo", "ae"])  # a VAE without a class head; a model without the attribute
def test_class_aware_term_without_a_class_head_says_how_to_get_one(dls, tmp_path, objective):
    from galaxy_autoencoders.training import ClassAwareCallback

    learn = _learner(dls, tmp_path, objective=objective)
    learn.add_cb(ClassAwareCallback(weight=1.0))
    with pytest.raises(ValueError, match=r"class head.*class_weight"), learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=1e-3)


@pytest.mark.parametrize("objective", ["ae", "elbo"])  # a plain reconstruction, or (recon, mu, logvar)
def test_perceptual_term_adds_a_column(tmp_path, objective):
    images = np.random.default_rng(1).integers(0, 256, (8, 69, 69, 3), dtype=np.uint8)
    small = galaxy_dls(images, bs=2, valid_pct=0.25, device="cpu")  # VGG at 69x69 is the slow part: few images
    learn = _learner(small, tmp_path, objective=objective, perceptual_weight=0.01, perceptual_pretrained=False)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=1e-3)
    names = list(learn.recorder.metric_names)
    assert names[-2] == "perceptual"
    record = _last_record(learn)
    assert record["perceptual"] > 0
    kl = record["kl"] if objective == "elbo" else 0.0  # beta = 1; the ELBO's mmd column is measured, not added
    assert record["valid_loss"] == pytest.approx(record["recon"] + kl + 0.01 * record["perceptual"], rel=1e-5)


def test_optional_terms_count_once_by_default_and_score_the_reconstruction(dls, tmp_path):
    from galaxy_autoencoders.training import ClassAwareCallback, PerceptualCallback

    learn = _learner(dls, tmp_path, objective="elbo", class_weight=5.0)  # a VAE with a class head
    learn.remove_cb(ClassAwareCallback)
    learn.add_cb(ClassAwareCallback())  # weight 1 by default
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=1e-3)
    record = _last_record(learn)
    assert record["valid_loss"] == pytest.approx(record["recon"] + record["kl"] + record["class"], rel=1e-5)

    # A stand-in learner with what the callback reads (pred, yb) and an objective that keeps what it adds.
    class Added:
        def add(self, learn, name, term, weight):
            self.term = (name, float(term), weight)

    perceptual = PerceptualCallback(pretrained=False)  # weight 1 by default
    x, recon = torch.rand(4, 3, 69, 69), torch.rand(4, 3, 69, 69)  # four different reconstructions
    mu, logvar = torch.zeros(4, 2), torch.zeros(4, 2)
    for pred in (recon, (recon, mu, logvar)):  # an autoencoder's output is the reconstruction itself; a VAE's a tuple
        perceptual.learn = SimpleNamespace(pred=pred, yb=(x,), loss_func=Added())
        perceptual.after_loss()
        assert perceptual.learn.loss_func.term == (
            "perceptual",
            pytest.approx(float(perceptual.perceptual(recon, x))),
            1.0,
        )
    assert len(PerceptualCallback(layer="relu1_2", pretrained=False).perceptual.features) < len(
        perceptual.perceptual.features
    )  # the callback passes its layer on (relu1_2 is shallower than the default relu2_2)


def test_fit_profile_trains_the_same_model_whatever_ran_before(dls):
    """Notebook 04 alone trains the ELBO-VAE that 03 trained (and saved) when it ran first: fit_profile starts from
    the profile's seed and from the loaders' first order, whatever was drawn before."""
    from galaxy_autoencoders.training import fit_profile

    profile = replace(get_profile("quick"), epochs=1, batch_size=16, widths=TINY.widths)
    first = fit_profile(dls, "elbo", profile, progress=False).model.state_dict()
    torch.manual_seed(123)  # another notebook's draws since, of torch's generator and of the loaders' own
    torch.randn(10)
    list(dls.train)
    dls.one_batch()
    again = fit_profile(dls, "elbo", profile, progress=False).model.state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    other = fit_profile(dls, "elbo", replace(profile, seed=profile.seed + 1), progress=False).model.state_dict()
    assert not all(torch.equal(first[k], other[k]) for k in first)  # the check can fail: the seed matters


def test_profile_learner_restarts_each_loader_at_its_own_seed_a_shard_keeping_its_offset(dls):
    """The notebooks' loaders restart at the profile's seed (plus valid's offset); under data-parallel training
    each process's shard keeps its own offset, so the shards shuffle and flip differently."""
    from galaxy_autoencoders.training import profile_learner
    from galaxy_autoencoders.training.distributed import shard_dls

    def restarted_at(dl) -> int:
        state = dl.generator.get_state()
        return next(s for s in range(100) if torch.equal(state, torch.Generator().manual_seed(s).get_state()))

    profile = replace(get_profile("quick"), widths=(4, 8), seed=dls.seed + 3)
    list(dls.train)  # the generators move on, as after a fit
    profile_learner(dls, "ae", profile)
    assert (restarted_at(dls.train), restarted_at(dls.valid)) == (dls.seed + 3, dls.seed + 4)
    shards = [shard_dls(dls, rank, 2, device="cpu") for rank in (0, 1)]
    for rank, shard in enumerate(shards):
        list(shard.train)
        profile_learner(shard, "ae", profile)
        assert restarted_at(shard.train) == profile.seed + rank

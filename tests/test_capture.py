"""`CapturedStep` (the whole training step as one call; a CUDA graph on CUDA): on a CPU, the same step runs eagerly
with its schedule fed as tensors, so these tests check on any machine that it trains as fastai's own loop does,
that fastai's schedule, warm-up and NaN guard still act, and that what it cannot record is refused by name.
What it gains on a GPU is for benchmarks/throughput.py (--paths package,captured) to measure."""

from __future__ import annotations

import contextlib
from functools import partial

import numpy as np
import pytest
import torch
from fastai.callback.channelslast import ChannelsLast
from torch.optim import adam

from galaxy_autoencoders._fastai import Callback
from galaxy_autoencoders.dataloaders import galaxy_dls
from galaxy_autoencoders.models import ModelConfig
from galaxy_autoencoders.training import CapturedStep, CompileModel, Objective, torch_adamw, vae_learner
from galaxy_autoencoders.training.speed import default_opt_func

CONFIG = ModelConfig(widths=(8, 16, 32, 64), latent_size=8)
IMAGES = np.random.default_rng(0).integers(0, 256, (256, 69, 69, 3), dtype=np.uint8)
LABELS = np.arange(256) % 10


def _learner(capture: bool, objective: str = "mmd", **options):
    dls = galaxy_dls(IMAGES, LABELS, bs=32, device="cpu", seed=1)
    torch.manual_seed(0)
    # The same optimiser both ways (AdamW, tensor by tensor): only the schedule's way in differs.
    opt = {"capture": True} if capture else {"opt_func": partial(torch_adamw, foreach=False)}
    return vae_learner(dls, objective=objective, config=CONFIG, **opt, **options)


def _fit(learn, epochs: int = 1, lr: float = 2e-3):
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs, lr)
    return learn


@pytest.mark.parametrize(("objective", "warmup"), [("elbo", 0.5), ("mmd", 0.0)])
def test_the_captured_step_trains_as_fastais_loop_within_a_thousandth(objective, warmup):
    eager = _fit(_learner(False, objective, kl_warmup=warmup))
    captured = _fit(_learner(True, objective, kl_warmup=warmup))
    step = next(cb for cb in captured.cbs if isinstance(cb, CapturedStep))
    assert step.batches == len(captured.dls.train) and step.replayed == 0  # every batch stepped; no graph on a CPU
    # Only rounding differs: AdamW reads lr and beta1 as float32 tensors instead of Python floats.
    for column in ("train_loss", "valid_loss", "recon", "kl", "mmd"):
        assert captured.recorder.history[-1][column] == pytest.approx(eager.recorder.history[-1][column], rel=1e-3), (
            column
        )
    # fit_one_cycle's schedule reached every batch, and fastai reads plain numbers again afterwards.
    assert captured.recorder.lrs == pytest.approx(eager.recorder.lrs) and len(set(captured.recorder.lrs)) > 4
    assert isinstance(captured.opt.hypers[0]["lr"], float) and isinstance(captured.opt.hypers[0]["mom"], float)
    assert isinstance(captured.loss_func.warmup, float)


def test_the_step_reads_the_schedule_from_the_tensors_a_cuda_graph_would_replay(monkeypatch):
    learn = _learner(True, "elbo", kl_warmup=0.5)
    step = next(cb for cb in learn.cbs if isinstance(cb, CapturedStep))
    seen, call = [], Objective.__call__

    def recording(objective, *args):
        if torch.is_grad_enabled():  # a training step
            group = step.adamw.param_groups[0]
            seen.append(
                (objective.warmup is step.kl_weight, group["lr"] is step.lrs[0], group["betas"][0] is step.beta1s[0])
            )
        return call(objective, *args)

    monkeypatch.setattr(Objective, "__call__", recording)
    _fit(learn)
    assert seen and all(all(flags) for flags in seen)  # not the Python numbers, which a recorded graph bakes in
    assert float(step.kl_weight) == pytest.approx(learn.loss_func.warmup)


@pytest.mark.parametrize("kind", ["elbo", "mmd"])
def test_a_tensor_warmup_of_zero_keeps_an_infinite_kl_out_of_the_loss(kind):
    objective = Objective(kind)
    objective.warmup = torch.tensor(0.0)  # the warm-up's first step, as CapturedStep feeds it
    x = torch.rand(4, 3, 69, 69)
    mu, logvar = torch.zeros(4, 8), torch.full((4, 8), 200.0)  # a KL of inf: exp(200) overflows float32
    loss = objective((x, mu, logvar), x)
    assert torch.isfinite(loss) and not torch.isfinite(objective.parts["kl"])


class PoisonBeforeStep(Callback):
    """Test helper: NaN into one decoder weight before training batch `at`'s step, as a diverging step would."""

    order = 30  # before CapturedStep (99) runs the step

    def __init__(self, at: int):
        self.at, self.seen = at, 0

    def before_batch(self):
        if self.training and self.seen == self.at:
            with torch.no_grad():
                self.learn.model.decoder.fc.weight[0, 0] = float("nan")

    def after_batch(self):
        if self.training:
            self.seen += 1


def test_the_nan_guard_still_stops_a_captured_fit_and_restores_the_weights():
    learn = _learner(True, "elbo")
    with learn.no_bar(), learn.no_logging(), pytest.warns(RuntimeWarning, match="epoch 0, batch 3"):
        learn.fit(2, lr=1e-3, cbs=[PoisonBeforeStep(at=3)])
    assert learn.nan_guard.tripped
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())


class ClipsGradients(Callback):
    def before_step(self):
        torch.nn.utils.clip_grad_norm_(self.learn.model.parameters(), 1.0)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"objective": "elbo", "class_weight": 1.0}, "ClassAwareCallback"),
        ({"cbs": [ClipsGradients()]}, "ClipsGradients"),
    ],
    ids=["extra-term", "hook-inside-the-step"],
)
def test_what_a_recorded_step_would_leave_out_is_refused_by_name(options, named):
    learn = _learner(True, **options)
    with pytest.raises(ValueError, match=rf"{named} would change the step.*capture=False"):
        _fit(learn)


class ChangesTheLoss(Callback):
    def after_loss(self):
        self.learn.loss_grad = self.learn.loss_grad * 2


def test_a_loss_changed_after_the_step_is_refused():
    learn = _learner(True, cbs=[ChangesTheLoss()])
    with pytest.raises(ValueError, match="changed the loss in after_loss.*capture=False"):
        _fit(learn)


def test_another_optimiser_or_compile_is_refused():
    from fastai.optimizer import Adam

    learn = _learner(True, opt_func=Adam)
    with pytest.raises(ValueError, match="this learner's optimiser is Optimizer.*capture=True"):
        _fit(learn)
    # Fused and multi-tensor AdamW read beta1 back to the host (torch/optim/adam.py): a recording forbids that.
    for implementation in ({"fused": True}, {"foreach": True}):
        learn = _learner(True, opt_func=partial(torch_adamw, **implementation))
        with pytest.raises(ValueError, match=r"AdamW \(fused or multi-tensor\)"):
            _fit(learn)
    assert default_opt_func("cuda", capture=True).keywords == {"foreach": False}
    assert default_opt_func("cuda").keywords == {"fused": True}  # without capture: as before
    with pytest.raises(ValueError, match="replaces compile=True"):
        _learner(True, compile=True)


def test_capture_is_off_unless_asked_for_and_lr_find_runs_fastais_loop():
    learn = _learner(False)
    assert not any(isinstance(cb, CapturedStep) for cb in learn.cbs)
    learn = _learner(True)
    assert not any(isinstance(cb, CompileModel) for cb in learn.cbs)
    with learn.no_bar(), learn.no_logging():
        learn.lr_find(num_it=8, show_plot=False)
    assert next(cb for cb in learn.cbs if isinstance(cb, CapturedStep)).active is False


def test_validate_and_get_preds_work_before_and_after_a_captured_fit():
    learn = _learner(True)
    with learn.no_bar(), learn.no_logging():
        before = learn.validate()  # fires before_fit with no optimiser yet
        _fit(learn)
        after = learn.validate()
        recon, *_ = learn.get_preds()[0]
    assert np.isfinite([before[0], after[0]]).all() and after[0] != before[0]  # the fit changed the model
    assert recon.shape == (learn.dls.valid.n, 3, 69, 69)


class FakeGraph:
    """A stand-in for torch.cuda.CUDAGraph on a CPU, to run CapturedStep's CUDA path: recording runs the step's
    Python once and undoes it (a real recording runs nothing); replay runs it again on the step's static batch,
    with the gradients written, not added to, as a replayed backward pass does. A real replay repeats what was
    recorded, whatever changed since: this one checks first that nothing the recording holds fixed has."""

    def __init__(self, step: CapturedStep):
        self.step = step

    def replay(self):
        step = self.step
        assert step.recording(step.static_xb, step.static_yb) == step.recorded_for, "a stale graph was replayed"
        step.adamw.zero_grad(set_to_none=False)
        step.static_pred, step.static_loss = step.step(step.static_xb, step.static_yb, recording=True)


class FakeRecording:
    def __init__(self, graph: FakeGraph):
        self.step = graph.step

    def __enter__(self):
        learn = self.step.learn
        # What a real recording needs: no gradients yet, so the recorded backward pass writes them.
        assert all(p.grad is None for p in learn.model.parameters())
        self.weights = {k: v.clone() for k, v in learn.model.state_dict().items()}
        self.state = {p: {k: v.clone() for k, v in s.items()} for p, s in self.step.adamw.state.items()}
        self.rng = torch.get_rng_state()

    def __exit__(self, *exc):
        self.step.learn.model.load_state_dict(self.weights)
        for p, s in self.state.items():
            self.step.adamw.state[p].update(s)
        torch.set_rng_state(self.rng)


def _on_fake_cuda(monkeypatch, learn) -> CapturedStep:
    """learn's CapturedStep taking its CUDA path on a CPU, torch.cuda's stream and graph calls stood in for."""
    step = next(cb for cb in learn.cbs if isinstance(cb, CapturedStep))
    stream = type("Stream", (), {"wait_stream": lambda self, other: None})
    step.streams_made = []  # the side streams CapturedStep made (a fresh stream each step cannot reuse memory)
    monkeypatch.setattr(torch.cuda, "Stream", lambda: step.streams_made.append(stream()) or step.streams_made[-1])
    monkeypatch.setattr(torch.cuda, "current_stream", lambda: stream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: FakeGraph(step))
    monkeypatch.setattr(torch.cuda, "graph", FakeRecording)
    # AdamW as on CUDA: capturable, the step count on the weight's device and the bias corrections as tensor
    # arithmetic (torch allows that on a CPU only when told the CPU can record).
    monkeypatch.setattr(adam, "_get_capturable_supported_devices", lambda *args, **kwargs: ["cpu"])
    original = CapturedStep._start_fit

    def on_cuda(self, xb, yb):
        original(self, xb, yb)
        self.on_cuda = True
        for group in self.adamw.param_groups:
            group["capturable"] = True  # as _start_fit makes them on CUDA

    monkeypatch.setattr(CapturedStep, "_start_fit", on_cuda)
    return step


def test_the_cuda_path_records_once_after_its_warmup_and_replays_every_later_batch(monkeypatch):
    # ChannelsLast as on a GPU: it converts the weights at every fit, which must not look like new weights.
    eager = _fit(_learner(False, "elbo", kl_warmup=0.5, cbs=[ChannelsLast()]))
    learn = _learner(True, "elbo", kl_warmup=0.5, cbs=[ChannelsLast()])
    step = _on_fake_cuda(monkeypatch, learn)
    _fit(learn)
    n = len(learn.dls.train)
    assert step.batches == n and step.replayed == n - step.warmup and step.recordings == 1
    assert len(step.streams_made) == 1  # one side stream for all the eager steps
    for column in ("train_loss", "valid_loss", "recon", "kl", "mmd"):
        assert learn.recorder.history[-1][column] == pytest.approx(eager.recorder.history[-1][column], rel=1e-3), column
    # A second fit replays the same recording from its first batch, after a validation in between.
    weights = [p.clone() for p in learn.model.parameters()]
    with learn.no_bar(), learn.no_logging():
        learn.validate()
    _fit(learn)
    assert step.recordings == 1 and step.replayed == 2 * n - step.warmup and step.replayed_in_fit == n
    assert any(not torch.equal(a, b) for a, b in zip(weights, learn.model.parameters(), strict=True))  # it trained


def _freeze_first_weight(learn):
    next(learn.model.parameters()).requires_grad_(False)


@pytest.mark.parametrize(
    "change",
    [
        lambda learn: learn.opt.clear_state(),  # NaNGuard's reset; learn.load(with_opt=True) makes new state too
        lambda learn: learn.opt.set_hyper("wd", 0.3),  # a number AdamW's step bakes in
        lambda learn: setattr(learn, "loss_func", Objective("elbo", beta=2.0)),
        _freeze_first_weight,
        lambda learn: setattr(learn.dls.train, "bs", learn.dls.train.bs // 2),
    ],
    ids=["optimiser-state", "weight-decay", "loss-function", "frozen-weight", "batch-size"],
)
def test_a_fit_whose_step_changed_records_again(monkeypatch, change):
    learn = _learner(True, "elbo")
    step = _on_fake_cuda(monkeypatch, learn)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=1e-3)
        change(learn)
        learn.fit(1, lr=1e-3)  # FakeGraph.replay fails if the first recording is replayed here
    n = len(learn.dls.train)
    assert step.recordings == 2 and step.replayed_in_fit == n - step.warmup


def test_a_step_count_kept_without_capturable_moves_to_where_a_capturable_adamw_keeps_it(monkeypatch):
    # An AdamW that stepped without capturable (a checkpoint's, fastai's own loop) keeps its count on the host, in
    # the default dtype; torch's capturable AdamW refuses a count that is not on its weight's device, and makes its
    # own as float32 there. On a GPU the host is another device; on a CPU only the dtype shows that it was moved.
    learn = _learner(True, "elbo")
    step = _on_fake_cuda(monkeypatch, learn)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=1e-3)
        for state in step.adamw.state.values():
            state["step"] = state["step"].double().cpu()
        learn.fit(1, lr=1e-3)
    n = len(learn.dls.train)
    for weight, state in step.adamw.state.items():
        assert state["step"].dtype == torch.float32 and state["step"].device == weight.device
        assert float(state["step"]) == 2 * n  # the count went on from where it was
    assert step.recordings == 2  # the moved counts are new memory: the graph is recorded again


def test_an_adamw_made_capturable_on_a_gpu_steps_on_a_cpu():
    # A checkpoint's optimiser settings come with learn.load(with_opt=True): a captured GPU run's are capturable,
    # which torch's AdamW refuses on a CPU.
    learn = _fit(_learner(True, "elbo"))
    for group in learn.opt.opt.param_groups:
        group["capturable"] = True
    _fit(learn)
    assert not any(group["capturable"] for group in learn.opt.opt.param_groups)


def test_a_failed_recording_leaves_no_graph_and_puts_the_stream_back(monkeypatch):
    # torch.cuda.graph skips restoring the stream it made current when ending the capture raises (torch/cuda/
    # graphs.py): what ran next, in the notebook or the next fit, would run on it.
    learn = _learner(True, "elbo")
    step = _on_fake_cuda(monkeypatch, learn)
    current, made_current = torch.cuda.current_stream(), []  # the stand-in's
    monkeypatch.setattr(torch.cuda, "current_stream", lambda: current)
    monkeypatch.setattr(torch.cuda, "set_stream", made_current.append)

    class FailingRecording(FakeRecording):
        def __exit__(self, *exc):
            super().__exit__(*exc)
            raise RuntimeError("CUDA error: operation failed due to a previous error during capture")

    monkeypatch.setattr(torch.cuda, "graph", FailingRecording)
    with pytest.raises(RuntimeError, match="during capture"):
        _fit(learn)
    assert step.graph is None and step.recordings == 0 and made_current == [current]

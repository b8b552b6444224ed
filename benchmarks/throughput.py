"""Training throughput of the package's path against three alternatives, side by side in one process.

    python benchmarks/throughput.py --device cpu|cuda [--quick] [--json OUT] [--n N] [--repeats R]

The same VAE (same widths, latent size and initial weights), the same batch size, the same galaxies (random
uint8 stamps of the Galaxy10 shape, Galaxy10-SDSS-sized by default) and the same MMD-VAE loss, trained by:

1. package:   `galaxy_dls` + `vae_learner(objective="mmd")` + `learn.fit`, exactly as the notebooks do
              (progress bar and loss-part columns included); on CUDA that compiles the model
              (`training.CompileModel`: torch.compile, CUDA graphs);
1b. eager:    the same with `vae_learner(compile=False)`, the package's path before it compiled;
2. plain:     a hand-written PyTorch loop over the same device-resident uint8 tensor with the same on-device
              symmetry augmentation and AdamW with fastai's Adam settings: the limit for this model
              (bf16 autocast + channels_last + fused AdamW on CUDA);
3. per-item:  a `torch.utils.data.Dataset` returning one float galaxy at a time + `DataLoader(num_workers=2)`,
              as the seed's notebook feeds its model, then the plain loop's step;
4. datablock: fastai's default image pipeline, `DataBlock(ImageBlock)` with items through PIL and
              `batch_tfms=Dihedral`, trained by the same `vae_learner`;
5. fastai-adam (only when `--paths` names it): the package's path with fastai's own Adam, the optimiser
              `vae_learner` used on a GPU before it took `torch_adamw(fused=True)` (the same on a CPU);
6. captured (only when `--paths` names it): the package's path with `vae_learner(capture=True)`, each training
              step (forward, loss, backward, AdamW) as one `training.CapturedStep`: one CUDA graph on CUDA,
              recorded in the warm-up epoch and replayed in every later one (the table says how often), the
              same step run eagerly on a CPU.

Each path is set up and trains one warm-up epoch, one path after another (its memory is measured then). The
`--repeats` timed epochs follow in rounds: each round times one epoch of every path, each round starting with
a different path, so a slow spell of a shared machine falls on all paths alike rather than on whichever ran
then. The best epoch counts. Only the training phase is timed (images/s over the training split); fastai's
validation pass is not. The table gives images/s, the ratios of path 1 (and of path 6, when timed) to each other
path, peak host memory (PSS of this process and its workers: what it held before any path plus what the path's
set-up and warm-up added), device memory the path added at its peak, and what 50 epochs would take at that rate.
`--json` writes the same with the machine and versions, after each stage (table, each profile, time to a result).
A path whose set-up, warm-up epoch or profile fails is left out and the rest go on: its traceback on stderr, its
error under "failed" in the JSON, and the exit status 1.
`--quick` (a small set and the quick profile's narrow network) finishes in under 2 minutes on a laptop CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import json
import math
import os
import platform
import pstats
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # fastai 2.8 on torch >= 2.9 (see galaxy_autoencoders.dataloaders)
    from fastai.callback.core import Callback
    from fastai.optimizer import Adam

from galaxy_autoencoders.config import LAM, get_profile
from galaxy_autoencoders.dataloaders import apply_dihedral, dihedral_index, galaxy_dls
from galaxy_autoencoders.files import atomic_write
from galaxy_autoencoders.losses import mmd, reconstruction_loss
from galaxy_autoencoders.models import ModelConfig, build_model, count_parameters
from galaxy_autoencoders.training import torch_adamw, vae_learner

PATHS = ("package", "eager", "plain", "per-item", "datablock")
OPTIONAL_PATHS = ("fastai-adam", "captured")
GALAXY10_SDSS_SIZE = 21_785
EPOCHS_TO_RESULT = 50  # the blog's run


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="1,024 galaxies, the quick profile's network")
    parser.add_argument("--n", type=int, help="galaxies (default: 21,785, or 1,024 with --quick)")
    parser.add_argument("--bs", type=int, help="batch size (default: the profile's, 128 full / 64 quick)")
    parser.add_argument("--repeats", type=int, default=2, help="timed epochs per path after one warm-up epoch")
    parser.add_argument(
        "--paths", default=",".join(PATHS), help=f"comma-separated, from {','.join(PATHS + OPTIONAL_PATHS)}"
    )
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of paths 3 and 4")
    parser.add_argument(
        "--to-result",
        type=int,
        default=0,
        metavar="EPOCHS",
        help=f"also time the package's path training EPOCHS epochs end to end, as `galaxy-ae train` does "
        f"(fit_one_cycle from fresh weights, validation included; the blog's run is {EPOCHS_TO_RESULT})",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile one epoch of the package's and the plain path (and fastai-adam's and captured's if "
        "timed) with torch.profiler: busy device time against wall time, and the operations that cost the host "
        "most; on CUDA also how often the host waits for the GPU in one more epoch",
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = sorted(set(paths) - set(PATHS + OPTIONAL_PATHS))
    if unknown:
        parser.error(f"--paths: unknown path(s) {unknown}; choose from {list(PATHS + OPTIONAL_PATHS)}")
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: give at least 1 timed epoch per path")
    if args.to_result < 0:
        parser.error(f"--to-result {args.to_result}: give a number of epochs (0 for none)")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA GPU here; use --device cpu")

    profile = get_profile("quick" if args.quick else "full")
    if profile.num_threads and device.type == "cpu":
        torch.set_num_threads(profile.num_threads)
    n = args.n or (1024 if args.quick else GALAXY10_SDSS_SIZE)
    bs = args.bs or profile.batch_size
    config = ModelConfig(widths=profile.widths)
    images = np.random.default_rng(0).integers(0, 256, size=(n, 69, 69, 3), dtype=np.uint8)
    labels = np.arange(n) % 10
    # One split for every path: the package's own, so all four train on the same galaxies.
    split = galaxy_dls(images, labels, bs=bs, device="cpu")
    train_idx = split.train.rows()
    valid_idx = split.valid.rows()
    n_train = len(split.train) * bs  # full batches only (drop_last), as in every path

    setup = {
        "device": _device_name(device),
        "n_images": n,
        "n_train_per_epoch": n_train,
        "batch_size": bs,
        "widths": list(config.widths),
        "latent_size": config.latent_size,
        "parameters": count_parameters(build_model(config)),
        "timed_epochs": args.repeats,
        "workers": args.workers,
        "threads": torch.get_num_threads(),
        "bf16_channels_last": device.type == "cuda" and torch.cuda.is_bf16_supported(),
    }
    print(
        f"Throughput: {n_train:,} training galaxies per epoch, batch size {bs}, a {setup['parameters']:,}-parameter "
        f"VAE (widths {config.widths}), MMD objective, on {setup['device']}; best of {args.repeats} epochs after "
        "a warm-up epoch, the paths taking turns.",
        flush=True,
    )
    builders = {
        "package": lambda: _package(images, labels, bs, config, device),
        "eager": lambda: _package(images, labels, bs, config, device, compile=False),
        "plain": lambda: _plain(images, train_idx, bs, config, device),
        "per-item": lambda: _per_item(images, train_idx, bs, config, device, args.workers),
        "datablock": lambda: _datablock(images, valid_idx, bs, config, device, args.workers),
        "fastai-adam": lambda: _package(images, labels, bs, config, device, opt_func=Adam),
        "captured": lambda: _package(images, labels, bs, config, device, capture=True),
    }
    gc.collect()
    base_mb = _tree_memory_mb(os.getpid())
    runs, memory, failed = {}, {}, {}
    for name in paths:  # set up and warm up one path at a time, measuring what each one adds
        try:
            with _PeakMemory(device) as memory[name]:
                runs[name] = builders[name]()
                runs[name].epoch()
        except Exception as error:  # a path's first run on a device: its failure costs the others nothing
            failed[name] = _failure(name, error)
            runs.pop(name, None)
    paths = [name for name in paths if name not in failed]
    if not paths:
        _write_json(args.json, {"setup": setup, "failed": failed})
        raise SystemExit(f"Every path failed: {failed}. Their tracebacks are above; fix the first, then run again.")
    schedule = turns(paths, args.repeats)
    seconds = {name: [] for name in paths}
    for turn in schedule:
        for name in turn:
            seconds[name].append(runs[name].epoch())
    setup["schedule"] = schedule
    results = {}
    for name in paths:
        best = min(seconds[name])
        added = memory[name].host_mb - memory[name].start_mb
        results[name] = {
            "images_per_s": n_train / best,
            "epoch_seconds": seconds[name],
            "final_loss": runs[name].final_loss(),
            "peak_host_mb": base_mb + added,
            "host_mb_added": added,
            "peak_device_mb": memory[name].device_mb,
            "seconds_for_50_epochs": EPOCHS_TO_RESULT * best,
        }
        step, replays = getattr(getattr(runs[name], "learn", None), "captured_step", None), ""  # capture=True's
        if step is not None:  # whether the graph ran: a step that fell back to eager would look the same here
            results[name]["graph_replays"], results[name]["graph_recordings"] = step.replayed, step.recordings
            replays = f" (graph replayed in {step.replayed} batches, recorded {step.recordings}x)"
            replays = replays if step.on_cuda else " (run eagerly: no CUDA graph on a CPU)"
        print(f"  {name}: {results[name]['images_per_s']:,.0f} images/s{replays}", flush=True)

    ratios = {}
    for head in ("package", "captured"):  # the package's path as it is, and with capture=True
        for other in paths:
            if head in results and other != head:
                ratios[f"{head}/{other}"] = results[head]["images_per_s"] / results[other]["images_per_s"]
    _print_table(results, ratios)
    summary = {"setup": setup, "results": results, "ratios": ratios, "machine": _machine(device), "failed": failed}
    _write_json(args.json, summary)
    if args.profile:
        summary["profile"] = {}
        for name in ("package", "plain", "fastai-adam", "captured"):
            if name not in runs:
                continue
            try:
                summary["profile"][name] = _profile(runs[name], name, device)
            except Exception as error:
                failed[f"profile of {name}"] = _failure(f"the profile of {name}", error)
            _write_json(args.json, summary)
    if args.to_result:
        del runs  # free the paths' device memory first
        gc.collect()
        summary["to_result"] = {
            name: _to_result(images, labels, bs, config, device, profile, args.to_result, name)
            for name in ("package", "eager", "captured")
            if name in paths
        }
        _write_json(args.json, summary)
    if failed:
        print(f"Failed, left out above (the tracebacks are on stderr): {failed}", flush=True)
    return summary


def _failure(name: str, error: Exception) -> str:
    """Report that `name` failed (its traceback on stderr, a line on stdout); returns, for the summary, the first
    line of the error and of the one it came from (a failed CUDA graph recording raises "operation failed due to
    a previous error during capture" over the error that broke it)."""
    traceback.print_exception(error)
    print(f"  {name}: failed ({type(error).__name__}); the rest goes on", flush=True)
    root = error
    while (root.__cause__ or root.__context__) is not None:
        root = root.__cause__ or root.__context__
    return _first_line(error) if root is error else f"{_first_line(error)} (from {_first_line(root)})"


def _first_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"


def _write_json(path: str | None, summary: dict) -> None:
    """Write summary to --json's path, if given, whole or not at all: after each stage, so that a run stopped
    later (a time limit) keeps what it measured."""
    if path:
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(summary, indent=2)))


def turns(paths: list[str], repeats: int) -> list[list[str]]:
    """The order of the timed epochs: `repeats` rounds of every path once, round r starting at path r (mod n)."""
    return [paths[r % len(paths) :] + paths[: r % len(paths)] for r in range(repeats)]


# ----------------------------------------------------------------------------------------------------------
# The four paths. Each builder returns a run: run.epoch() trains one epoch and returns the seconds its
# training phase took; run.final_loss() is the last training loss.
# ----------------------------------------------------------------------------------------------------------


class _TrainTimer(Callback):
    """Times the training phase of each epoch (not validation), waiting for the device before reading clocks."""

    order = 100  # before_train after every other callback's, so only the batches are inside the clock

    def before_train(self):
        _sync(self.dls.device)
        self.start = time.perf_counter()

    def after_train(self):
        _sync(self.dls.device)
        self.seconds = time.perf_counter() - self.start


class _LearnerRun:
    """A fastai path: each epoch is one `learn.fit(1)` (the optimizer and its state carry over between fits)."""

    def __init__(self, learn):
        self.learn, self.timer = learn, _TrainTimer()

    def epoch(self) -> float:
        # The progress bar stays on (students see it); its console output is swallowed here.
        with contextlib.redirect_stdout(io.StringIO()):
            self.learn.fit(1, cbs=[self.timer])
        return self.timer.seconds

    def final_loss(self) -> float:
        return float(self.learn.recorder.losses[-1])


def _package(images, labels, bs, config, device, opt_func=None, compile=None, capture=False) -> _LearnerRun:
    dls = galaxy_dls(images, labels, bs=bs, device=device)
    torch.manual_seed(0)
    learn = vae_learner(dls, objective="mmd", config=config, opt_func=opt_func, compile=compile, capture=capture)
    return _LearnerRun(learn)


def _train_step(model, opt, x: torch.Tensor, use_amp: bool) -> torch.Tensor:
    """One MMD-VAE step on x (B, 3, 69, 69) float in [0, 1]: what training.Objective computes, by hand."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=use_amp):
        recon, mu, _ = model(x)
    mu = mu.float()  # (B, L); the kernels run in float32, as the objective's do
    loss = reconstruction_loss(recon.float(), x) + LAM * mmd(mu, torch.randn_like(mu))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def _plain_setup(config, device):
    torch.manual_seed(0)
    model = build_model(config).to(device).train()
    use_amp = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if use_amp:
        model = model.to(memory_format=torch.channels_last)
    # The package's optimiser, unwrapped: fastai's Adam settings as torch's AdamW, fused on CUDA, stepped by hand.
    opt = torch_adamw(model.parameters(), lr=1e-3, fused=device.type == "cuda").opt
    return model, opt, use_amp


class _LoopRun:
    """A hand-written path: train() runs one epoch and returns its last loss (a tensor, read only at the end)."""

    def __init__(self, train, device):
        self.train, self.device, self.loss = train, device, None

    def epoch(self) -> float:
        _sync(self.device)
        start = time.perf_counter()
        self.loss = self.train()
        _sync(self.device)
        return time.perf_counter() - start

    def final_loss(self) -> float:
        return float(self.loss)


def _plain(images, train_idx, bs, config, device) -> _LoopRun:
    model, opt, use_amp = _plain_setup(config, device)
    x_all = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(device)  # uint8 (N, 3, H, W)
    idx = torch.from_numpy(train_idx).to(device)
    index = dihedral_index(69, 69).to(device)
    n_batches = len(idx) // bs

    def epoch():
        order = idx[torch.randperm(len(idx), device=device)]
        for i in range(n_batches):
            batch = order[i * bs : (i + 1) * bs]
            ops = torch.randint(0, 8, (bs,), device=device)
            x = apply_dihedral(x_all[batch], ops, index).float().div_(255)
            if use_amp:
                x = x.contiguous(memory_format=torch.channels_last)
            loss = _train_step(model, opt, x, use_amp)
        return loss

    return _LoopRun(epoch, device)


class PerItemGalaxies(Dataset):
    """The seed notebook's way: one galaxy at a time, converted and flipped/rotated in Python."""

    def __init__(self, images: np.ndarray, idxs: np.ndarray):
        self.images, self.idxs = images, idxs  # uint8 (N, 69, 69, 3), which ones to serve

    def __len__(self) -> int:
        return len(self.idxs)

    def __getitem__(self, i: int) -> torch.Tensor:
        x = torch.from_numpy(self.images[self.idxs[i]]).permute(2, 0, 1).float().div(255)  # (3, 69, 69)
        k = int(torch.randint(0, 8, ()))
        if k >= 4:
            x = x.flip(-1)
        return torch.rot90(x, k % 4, dims=(1, 2)).contiguous()


def _per_item(images, train_idx, bs, config, device, workers) -> _LoopRun:
    model, opt, use_amp = _plain_setup(config, device)
    loader = DataLoader(
        PerItemGalaxies(images, train_idx),
        batch_size=bs,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )

    def epoch():
        for x in loader:
            x = x.to(device, non_blocking=True)
            if use_amp:
                x = x.contiguous(memory_format=torch.channels_last)
            loss = _train_step(model, opt, x, use_amp)
        return loss

    return _LoopRun(epoch, device)


class _ItemImage:
    """get_x for the DataBlock: index -> PILImage (a class, not a lambda, so DataLoader workers can pickle it)."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __call__(self, i):
        from fastai.vision.core import PILImage

        return PILImage.create(self.images[i])


class _TargetIsInput(Callback):
    """An autoencoder's target is its input: a DataBlock with one ImageBlock gives no yb, so set it."""

    order = 1

    def before_batch(self):
        self.learn.yb = (self.learn.xb[0],)


def _datablock(images, valid_idx, bs, config, device, workers) -> _LearnerRun:
    from fastai.data.block import DataBlock
    from fastai.data.transforms import IndexSplitter
    from fastai.vision.augment import Dihedral
    from fastai.vision.data import ImageBlock

    block = DataBlock(
        blocks=(ImageBlock,),
        get_x=_ItemImage(images),
        splitter=IndexSplitter(valid_idx),
        batch_tfms=[Dihedral(p=1.0)],  # the 8 symmetries, on the device (IntToFloatTensor comes with ImageBlock)
        n_inp=1,
    )
    dls = block.dataloaders(np.arange(len(images)), bs=bs, num_workers=workers, device=device, drop_last=True)
    torch.manual_seed(0)
    return _LearnerRun(vae_learner(dls, objective="mmd", config=config, cbs=[_TargetIsInput()]))


# ----------------------------------------------------------------------------------------------------------
# Measuring
# ----------------------------------------------------------------------------------------------------------


def _to_result(images, labels, bs, config, device, profile, epochs: int, name: str = "package") -> dict:
    """The package's path (or "eager": without compiling; "captured": capture=True) end to end: `epochs` epochs of
    fit_one_cycle from fresh weights (validation and progress bar included), as `galaxy-ae train` runs them; wall
    time from the first batch to the last, so the compile (or recording) time on CUDA is inside it."""
    dls = galaxy_dls(images, labels, bs=bs, device=device)
    torch.manual_seed(0)
    learn = vae_learner(
        dls, objective="mmd", config=config, compile=False if name == "eager" else None, capture=name == "captured"
    )
    _sync(device)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        learn.fit_one_cycle(epochs, profile.lr)
    _sync(device)
    seconds = time.perf_counter() - start
    names = list(learn.recorder.metric_names[1:-1])  # the columns of recorder.values (no epoch, no time)
    last = dict(zip(names, learn.recorder.values[-1], strict=True))
    train_loss, valid_loss = float(last["train_loss"]), float(last["valid_loss"])
    print(
        f"\nTo a result: {epochs} epoch{'s' * (epochs != 1)} of the {name} path over "
        f"{dls.train.n:,} galaxies (fit_one_cycle, validation included) took {seconds:.1f} s; "
        f"final losses {train_loss:.4f} (train), {valid_loss:.4f} (valid).",
        flush=True,
    )
    return {"epochs": epochs, "seconds": seconds, "final_train_loss": train_loss, "final_valid_loss": valid_loss}


def _profile(run, name: str, device, rows: int = 12) -> dict:
    """One epoch of a path under torch.profiler: how long the device computed against the wall time (a path
    whose device idles is held back by the host), and the operations that cost the host the most."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    _sync(device)
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        run.epoch()
        _sync(device)
    wall = time.perf_counter() - start
    events = prof.key_averages()
    launches = sum(e.count for e in events if e.key.startswith("cudaLaunchKernel")) if cuda else None
    busy = None
    if cuda:  # the kernels' and copies' own rows, as the table's "Self CUDA time total" counts them
        busy = sum(e.self_device_time_total for e in events if e.device_type == DeviceType.CUDA) / 1e6
    print(f"\nProfile of one {name} epoch: {wall:.2f} s wall under the profiler", end="")
    print(f", device busy {busy:.2f} s ({busy / wall:.0%}), {launches:,} kernel launches" if cuda else "", flush=True)
    print(events.table(sort_by="self_cpu_time_total", row_limit=rows), flush=True)
    if cuda:
        print(events.table(sort_by="self_device_time_total", row_limit=rows), flush=True)
    # The Python side, which torch.profiler does not see: one more epoch under cProfile.
    python = cProfile.Profile()
    python.runcall(run.epoch)
    print(f"Python functions of one {name} epoch (cProfile), by own time:", flush=True)
    pstats.Stats(python, stream=sys.stdout).sort_stats("tottime").print_stats(rows)
    reads = _host_reads(run) if cuda else None
    if cuda:
        print(f"Host waits for the GPU in one more {name} epoch (torch.cuda sync debug mode): {reads}", flush=True)
    return {"wall_seconds": wall, "device_busy_seconds": busy, "launches": launches, "host_reads": reads}


def _host_reads(run) -> int:
    """One more epoch (validation included) with torch's CUDA sync debug mode on: how many times an operation
    made the host wait for the GPU (a value read back, a blocking copy either way), each a gap in its queue."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run.epoch()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


class _PeakMemory:
    """Peak host memory of this process plus its DataLoader workers (sampled every 20 ms) and what it held at
    the start (the rest is what the path added); on CUDA, the device memory allocated at the peak beyond what
    was allocated at the start (earlier paths' tensors stay resident while the paths take turns)."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.device_mb = None

    def __enter__(self):
        gc.collect()
        self.start_mb = self.host_mb = _tree_memory_mb(os.getpid())
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self._device_start = torch.cuda.memory_allocated()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        if self.device.type == "cuda":
            self.device_mb = (torch.cuda.max_memory_allocated() - self._device_start) / 2**20

    def _sample(self):
        while not self._stop.wait(0.02):
            self.host_mb = max(self.host_mb, _tree_memory_mb(os.getpid()))


def _tree_memory_mb(pid: int) -> float:
    """Memory of pid and its descendants in MB: the sum of PSS (shared pages split between the processes, so
    forked DataLoader workers are not counted twice) on Linux; elsewhere this process's peak RSS so far."""
    proc = Path("/proc")
    if not proc.is_dir():
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in (proc / str(p) / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) / 1024
            for task in (proc / str(p) / "task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # a worker that just exited
    return total


def _device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def _machine(device) -> dict:
    import fastai

    return {
        "device": _device_name(device),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "fastai": fastai.__version__,
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
    }


def _print_table(results: dict, ratios: dict) -> None:
    heads = [head for head in ("package", "captured") if head in results]
    print()
    print(
        f"{'path':<11} {'images/s':>10}" + "".join(f" {head + '/path':>13}" for head in heads) + f" {'host MB':>8} "
        f"{'(added)':>8} {'device MB':>10} {'50 epochs':>10}"
    )
    for name, r in results.items():
        shown = "".join(f" {ratios.get(f'{head}/{name}', 1.0 if name == head else math.nan):>13.2f}" for head in heads)
        device_mb = "-" if r["peak_device_mb"] is None else f"{r['peak_device_mb']:.0f}"
        print(
            f"{name:<11} {r['images_per_s']:>10,.0f}{shown} {r['peak_host_mb']:>8.0f} "
            f"{r['host_mb_added']:>8.0f} {device_mb:>10} {r['seconds_for_50_epochs']:>9.0f}s"
        )


if __name__ == "__main__":
    sys.exit(1 if main()["failed"] else 0)  # what did run is reported; the status says something did not

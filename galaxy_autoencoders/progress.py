"""Progress that suits where the output goes: a live bar on a terminal or in a notebook, and in a log file or CI
a plain line now and then (a live bar there is hundreds of kB of carriage-return redraws)."""

from __future__ import annotations

import sys
import time


def interactive() -> bool:
    """True in a notebook or when stdout is a terminal."""
    from fastcore.imports import in_notebook

    return in_notebook() or sys.stdout.isatty()


class Bar:
    """bar = Bar(total, "Rendering galaxies"); bar.update(k) ...; bar.close(): tqdm where `interactive()`, else a
    plain line at every 10% of total."""

    def __init__(self, total: int, desc: str, unit: str = "it", disable: bool = False):
        self.total, self.desc, self.unit, self.done = total, desc, unit, 0
        self.disable, self.live = disable, None
        self.next_line = max(1, total // 10)
        self.start = time.perf_counter()
        if not disable and interactive():
            from tqdm.auto import tqdm

            self.live = tqdm(total=total, desc=desc, unit=unit)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.live is not None:
            self.live.update(n)
        elif not self.disable and (self.done >= self.next_line or self.done == self.total):
            seconds = time.perf_counter() - self.start
            print(f"{self.desc}: {self.done}/{self.total} {self.unit} ({seconds:.0f} s)", flush=True)
            self.next_line = self.done + max(1, self.total // 10)

    def close(self) -> None:
        if self.live is not None:
            self.live.close()


def iterate(items, desc: str, show: bool = True, unit: str = "batches", total: int | None = None):
    """Yield from items with a `Bar` over them (total: how many there are; len(items) by default)."""
    bar = Bar(len(items) if total is None else total, desc, unit=unit, disable=not show)
    try:
        for item in items:
            yield item
            bar.update()
    finally:
        bar.close()


def epoch_lines():
    """A fastai callback printing one plain line per epoch (its table row), for training whose output is a file."""
    from ._fastai import Callback

    class EpochLines(Callback):
        order = 55  # after the Recorder (50) has the epoch's values, before CSVLogger (60) takes the logger

        def before_fit(self):
            self.start = time.perf_counter()
            self.learn.logger = _quiet  # the Recorder's own printing of each row as a raw list

        def after_epoch(self):
            from .config import rank

            if rank():  # one log, rank 0's
                return
            names = [n for n in self.learn.recorder.metric_names[1:] if n != "time"]
            values = self.learn.recorder.log[1 : 1 + len(names)]
            row = ", ".join(f"{n} {float(v):.4f}" for n, v in zip(names, values, strict=False) if v is not None)
            seconds = time.perf_counter() - self.start
            print(f"epoch {self.epoch + 1}/{self.n_epoch}: {row} ({seconds:.0f} s)", flush=True)

    return EpochLines()


def _quiet(*args, **kwargs) -> None:
    pass

"""The latent explorer: one slider per latent dimension (the most informative first) and the galaxy they decode to.

    explorer = LatentExplorer(model, data.images, k=6)
    explorer  # in a notebook: sliders, a live decoded galaxy, reset / random sample / encode-a-galaxy buttons

Each slider is in units of sigma, the spread of the data's codes in that dimension (see `latent`), so 0 is
the mean code and +-3 the edge of where galaxies live. Moving one changes that dimension of the current code
and decodes it at once; dimensions without a slider keep their value. Where widgets cannot run (nbviewer,
GitHub), the cell shows a PNG instead: the first two sliders' dimensions stepped from -2 to +2 sigma, labelled.
"""

from __future__ import annotations

import base64
import io
import time

import ipywidgets as widgets
import numpy as np
import torch
from torch import nn

from .data.checks import check_finite
from .display import to_hwc_uint8
from .inference import decode, encode_all
from .latent import LatentStats, latent_stats, prior_stats
from .plots import latent_traversal


def png_bytes(image, scale: int = 3) -> bytes:
    """One image, uint8 (69, 69, 3) or float (3, 69, 69) in [0, 1], as PNG bytes scaled up `scale` times."""
    from PIL import Image

    array = to_hwc_uint8(image)[0]
    if scale > 1:  # nearest pixel: the student sees the model's pixels, not a smoothed guess between them
        array = array.repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    # compress_level=1: a 207-pixel galaxy encodes in ~1 ms instead of ~5 ms, for a few hundred bytes more.
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class LatentExplorer:
    """Sliders over the k most informative latent dimensions of model and the galaxy they decode to, live.

    images (uint8 (N, 69, 69, 3), float (N, 3, 69, 69) or a Galaxies) set the mean code, sigma and ranking
    and are the galaxies "Encode galaxy" picks from; without images the prior N(0, I) sets them. k sliders of
    -n_sigma..+n_sigma in steps of `step` (one per latent dimension if the model has fewer than k); the
    picture is scale x 69 pixels wide; `threads` CPU threads decode it. `view` is the ipywidgets box;
    displaying the explorer displays it.
    """

    def __init__(
        self,
        model: nn.Module,
        images=None,
        k: int = 6,
        n_sigma: float = 3.0,
        step: float = 0.1,
        scale: int = 3,
        stats: LatentStats | None = None,
        labels=None,
        class_names=None,
        name: str = "",
        seed: int = 0,
        threads: int = 1,
    ):
        if hasattr(images, "images"):  # a Galaxies: take its labels and class names too
            labels = images.labels if labels is None else labels
            class_names = class_names or images.class_names
            images = images.images
        latent = model.config.latent_size
        if k < 1 or n_sigma <= 0:
            raise ValueError(f"k={k}, n_sigma={n_sigma}: the explorer needs k >= 1 sliders and n_sigma > 0.")
        if stats is not None and tuple(stats.mean.shape) != (latent,):
            raise ValueError(
                f"stats describe codes of {tuple(stats.mean.shape)[0]} dimensions, but this model's latent size is "
                f"{latent}: they belong to another model. Compute them with latent_stats(model, images)."
            )
        if isinstance(images, (np.ndarray, torch.Tensor)):  # checked whole, so the error names the bad galaxy
            check_finite(images, "LatentExplorer(images)")
        self.model = model
        self.images = images
        self.labels = None if labels is None else np.asarray(labels)
        self.class_names = class_names
        self.name = name or type(model).__name__
        self.scale = scale
        self.n_sigma = n_sigma
        self.threads = threads  # CPU threads for one decode (see render)
        if stats is None:
            stats = latent_stats(model, images) if images is not None else prior_stats(latent)
        self.stats = stats
        self.dims = stats.top(min(k, latent))  # a model with fewer dimensions than k gets a slider for each
        self.code = stats.mean.clone()  # (L,) the code on show
        self.source = "the mean code"  # where the code on show came from, for the status line
        self.moved: list[int] = []  # dimensions changed with a slider since then
        self.last_update_ms = 0.0  # decode + PNG + hand-over to the Image widget, of the latest update
        self._generator = torch.Generator().manual_seed(seed)
        self._quiet = False  # True while code sets several sliders, so they cause one redraw, not k

        self.sliders = [self._slider(d, step) for d in self.dims]
        self.view = self._layout(n_images=0 if images is None else len(images))
        side = model.config.img_size
        self.original.value = png_bytes(np.zeros((side, side, 3), dtype=np.uint8), scale)  # black until chosen
        self.render()

    # -- the widgets ---------------------------------------------------------------------------------------

    def _slider(self, d: int, step: float) -> widgets.FloatSlider:
        """The slider of latent dimension d, in sigma from the mean, redrawing as it moves."""
        kl = f", {float(self.stats.kl[d]):.2f} nats" if self.stats.kl is not None else ""
        slider = widgets.FloatSlider(
            value=0.0,
            min=-self.n_sigma,
            max=self.n_sigma,
            step=step,
            description=f"z{d}",
            tooltip=f"latent dimension {d}{kl}: position in sigma from the mean",
            continuous_update=True,  # decode while dragging, not only on release
            readout_format="+.1f",
            layout=widgets.Layout(width="330px"),
        )
        slider.observe(self._on_slider, names="value")
        return slider

    def _layout(self, n_images: int) -> widgets.VBox:
        """The pictures, buttons and status line around the sliders; returns the whole view."""
        size = f"{self.model.config.img_size * self.scale}px"
        self.image = widgets.Image(format="png", layout=widgets.Layout(width=size, height=size))
        self.original = widgets.Image(format="png", layout=widgets.Layout(width=size, height=size))
        self.status = widgets.HTML()
        self.reset_button = widgets.Button(description="Reset to mean", icon="undo")
        self.random_button = widgets.Button(description="Random sample", icon="random")
        self.encode_button = widgets.Button(description="Encode galaxy", icon="arrow-right")
        self.galaxy = widgets.BoundedIntText(
            value=0, min=0, max=max(n_images - 1, 0), description="Galaxy #", layout=widgets.Layout(width="170px")
        )
        self.galaxy.disabled = self.encode_button.disabled = n_images == 0
        self.reset_button.on_click(lambda _: self.reset())
        self.random_button.on_click(lambda _: self.sample())
        self.encode_button.on_click(lambda _: self.encode(self.galaxy.value))

        spread = "the spread of the data's codes" if self.images is not None else "the prior's standard deviation"
        header = widgets.HTML(f"<b>{self.name}</b>: sliders in sigma, {spread}")
        pictures = widgets.HBox(
            [
                widgets.VBox([widgets.HTML("decoded"), self.image]),
                widgets.VBox([widgets.HTML("chosen galaxy"), self.original]),
            ]
        )
        controls = widgets.VBox(
            [
                *self.sliders,
                widgets.HBox([self.reset_button, self.random_button]),
                widgets.HBox([self.galaxy, self.encode_button]),
            ]
        )
        return widgets.VBox([header, widgets.HBox([pictures, controls]), self.status])

    # -- what the buttons and sliders do ------------------------------------------------------------------

    def slider_values(self) -> np.ndarray:
        """The sliders' positions in sigma: (k,)."""
        return np.array([s.value for s in self.sliders])

    def set_code(self, code: torch.Tensor, source: str = "a code") -> None:
        """Show code (L,): sliders jump to its shown dimensions (clipped to +-n_sigma), then one redraw."""
        code = torch.as_tensor(code, dtype=torch.float32).clone()
        if code.shape != self.code.shape:
            raise ValueError(f"code has shape {tuple(code.shape)}; this model's codes are {tuple(self.code.shape)}.")
        if not torch.isfinite(code).all():
            raise ValueError(f"code holds NaN or inf values ({code.tolist()}); a code must be finite numbers.")
        self._quiet = True
        try:
            for d, slider in zip(self.dims, self.sliders, strict=True):
                position = float((code[d] - self.stats.mean[d]) / self.stats.std[d].clamp_min(1e-12))
                slider.value = float(np.clip(position, -self.n_sigma, self.n_sigma))
        finally:
            self._quiet = False
        self.code = code  # kept unclipped: a prior sample may lie beyond the sliders' range, and stays itself
        self.source = source
        self.moved = []
        self.render()

    def reset(self) -> None:
        """Back to the mean code, every slider at 0."""
        self.set_code(self.stats.mean, "the mean code")

    def sample(self) -> None:
        """A random code from the prior N(0, I), in every dimension (shown or not)."""
        self.set_code(torch.randn(len(self.code), generator=self._generator), "a sample from the prior N(0, I)")

    def encode(self, index: int) -> None:
        """Encode galaxy `index` of the images, show it next to the decode, and set the sliders to its code."""
        if self.images is None:
            raise ValueError("This explorer was made without images; pass images to LatentExplorer to encode one.")
        index = int(index)
        if not 0 <= index < len(self.images):
            raise IndexError(f"There is no galaxy #{index}: this explorer has galaxies 0..{len(self.images) - 1}.")
        code = encode_all(self.model, self.images[index : index + 1])[0]  # (L,)
        self.original.value = png_bytes(self.images[index], self.scale)
        what = f"galaxy #{index}"
        if self.labels is not None and self.class_names is not None:
            what += f" ({self.class_names[int(self.labels[index])]})"
        self.set_code(code, what)

    def _on_slider(self, change) -> None:
        if self._quiet:
            return
        if not np.isfinite(change["new"]):  # ipywidgets clamps +-inf into the range, but lets NaN through
            change["owner"].value = change["old"]  # a NaN code would decode to a black square
            return
        d = self.dims[self.sliders.index(change["owner"])]
        self.code[d] = self.stats.mean[d] + change["new"] * self.stats.std[d]
        if d not in self.moved:
            self.moved.append(d)
        self.render()

    def render(self) -> None:
        """Decode the current code and put it in the image widget; the time it took goes to last_update_ms."""
        start = time.perf_counter()
        threads = torch.get_num_threads()
        # One 69x69 galaxy is too little work to share between CPU threads: on a busy laptop (a browser, a
        # training run) extra threads wait for a free core, and a 10 ms decode turns into 300 ms now and then.
        torch.set_num_threads(self.threads)
        try:
            image = decode(self.model, self.code[None])[0]
        finally:
            torch.set_num_threads(threads)
        self.image.value = png_bytes(image, self.scale)
        self.last_update_ms = (time.perf_counter() - start) * 1000
        moved = f", then moved by hand: {', '.join(f'z{d}' for d in self.moved)}" if self.moved else ""
        self.status.value = f"Showing {self.source}{moved}."

    # -- display --------------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        dims = ", ".join(f"z{d}" for d in self.dims)
        return f"LatentExplorer({self.name}: sliders {dims}, each -{self.n_sigma:g}..+{self.n_sigma:g} sigma)"

    def _repr_mimebundle_(self, **kwargs) -> dict:
        # Live frontends render the widget view; nbviewer, GitHub and a notebook saved without widget state
        # fall back to the PNG, so the cell never shows only "VBox(children=...)". The text is stable for nbval.
        bundle = self.view._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = repr(self)
        bundle["image/png"] = base64.b64encode(self.static_png()).decode("ascii")
        return bundle

    def static_png(self, rows: int = 2) -> bytes:
        """What the sliders do, for a page without a kernel: for each of the first `rows` sliders, the mean code
        decoded with that dimension at -2..+2 sigma (the traversal of `plots`), each tile labelled ("z13 at -2
        sigma"); PNG bytes."""
        from PIL import Image, ImageDraw, ImageFont

        walk = latent_traversal(self.model, None, dims=self.dims[:rows], n_sigma=2.0, steps=5, stats=self.stats)
        dims, sigmas = walk.dims, walk.sigmas
        tiles = walk.tiles.reshape(-1, *walk.tiles.shape[2:])  # (D * S, 69, 69, 3)
        side, band, gap = tiles.shape[1] * 2, 14, 4  # tiles at twice the size; a band for each label
        sheet = Image.new("RGB", (len(sigmas) * (side + gap) - gap, len(dims) * (side + band + gap) - gap))
        draw, font = ImageDraw.Draw(sheet), ImageFont.load_default(size=12)
        for i, tile in enumerate(tiles):
            row, col = divmod(i, len(sigmas))
            x, y = col * (side + gap), row * (side + band + gap)
            label = f"z{dims[row]} at {sigmas[col]:+g} sigma".replace("+0 sigma", "0 (the mean)")
            draw.text((x + 2, y), label, fill=(230, 230, 230), font=font)
            sheet.paste(Image.fromarray(tile).resize((side, side), Image.NEAREST), (x, y + band))
        buffer = io.BytesIO()
        sheet.save(buffer, format="PNG")
        return buffer.getvalue()

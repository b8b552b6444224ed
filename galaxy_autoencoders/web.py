"""The latent explorer for a web browser: decoders as ONNX files, and the codes and spreads a page needs.

    from galaxy_autoencoders.web import export_web
    export_web("_site/explorer")                      # the pretrained ELBO-VAE and MMD-VAE
    galaxy-ae export-web OUT --elbo runs/elbo/model   # the same from the command line, with a model of your own

writes into the folder, for each model, `NAME.onnx` (its decoder: code float32 (1, L) -> image float32
(1, 3, 69, 69) in [0, 1]) and one `explorer.json` that holds, per model, what `latent.latent_stats` measures on
a set of galaxies (the mean code, sigma and the ranking of the dimensions by KL) and the codes of a strip of real
galaxies, one of each class, whose pictures it carries as PNG. The course site's explorer page
(docs/explorer/) loads them with onnxruntime-web and decodes in the browser: no kernel, no server.

Each decoder is exported with torch.onnx, then run once with onnxruntime against torch on a few codes: a file
that would draw other galaxies than the checkpoint is refused, never written. The weights are stored as the
checkpoint's float16 (ONNX casts them to float32 when the page loads them), so a decoder is ~1 MB and exact.
The checkpoints are only read.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .display import class_examples
from .files import atomic_write, check_output_folder
from .inference import decode, encode_all
from .latent import latent_stats
from .models import VAE
from .pretrained import resolve
from .widgets import png_bytes

FORMAT = 1  # of explorer.json; the page refuses another
LABELS = {"elbo": "ELBO-VAE", "mmd": "MMD-VAE"}
TOLERANCE = 1e-4  # largest difference (pixel values in [0, 1]) allowed between the ONNX file and torch


class Decoder(nn.Module):
    """A model's decoder alone, as ONNX sees it: code (1, L) -> image (1, 3, H, W) in [0, 1]."""

    def __init__(self, model: VAE):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z)


def _float16_initializers(graph) -> None:
    """Store each float32 weight that float16 holds exactly as float16, cast back to float32 in the graph."""
    import onnx
    from onnx import helper, numpy_helper

    casts = []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(init)
        half = values.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), values):  # not a float16 number: kept as it is
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(half, name=f"{name}.float16"))
        casts.append(helper.make_node("Cast", [f"{name}.float16"], [name], to=onnx.TensorProto.FLOAT))
    nodes = [*casts, *graph.node]  # the casts before every node that reads them
    del graph.node[:]
    graph.node.extend(nodes)


def export_decoder(model: VAE, path: str | Path, name: str = "the model") -> Path:
    """Write model's decoder to path (.onnx), checked against torch (`decoder_onnx`); returns path."""
    data = decoder_onnx(model, name)
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def decoder_onnx(model: VAE, name: str = "the model") -> bytes:
    """model's decoder as the bytes of an ONNX file, checked against torch with onnxruntime.

    Refuses (RuntimeError naming `name`) a decoder torch.onnx cannot export or whose file decodes other
    pictures than torch does; ImportError, saying what to install, without the web extra's packages."""
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it; asked here so the error says so)
    except ImportError as err:
        raise ImportError(
            f"Exporting a decoder needs {err.name}: pip install -e '.[web]' (onnx, onnxscript, onnxruntime)."
        ) from err

    model = model.float().eval()
    latent = model.config.latent_size
    quiet = [logging.getLogger(logger) for logger in ("onnx_ir", "onnxscript")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:  # the exporter's notes on its own passes, shown wherever an app logs at INFO (Sphinx)
        logger.setLevel(logging.WARNING)
    try:
        # optimize=False keeps BatchNorm apart from the convolutions, so every weight is the checkpoint's own
        # float16 number and _float16_initializers loses nothing.
        program = torch.onnx.export(
            Decoder(model).eval(), (torch.zeros(1, latent),), input_names=["z"], output_names=["image"],
            dynamo=True, optimize=False, verbose=False,
        )  # fmt: skip
    except Exception as err:  # the exporter raises many kinds; each means the same thing here
        raise RuntimeError(
            f"torch.onnx could not export the decoder of {name} ({type(err).__name__}: {err}). export-web handles "
            "the package's VAE decoders (models.build_model); retrain with galaxy-ae train or use a pretrained model."
        ) from err
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
    proto = program.model_proto
    _float16_initializers(proto.graph)
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()

    codes = torch.cat([torch.zeros(1, latent), torch.randn(4, latent, generator=torch.Generator().manual_seed(0))])
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = np.concatenate([session.run(None, {"z": code[None].numpy()})[0] for code in codes])
    expected = decode(model, codes).numpy()
    worst = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if not worst <= TOLERANCE:
        raise RuntimeError(
            f"The ONNX decoder of {name} draws other pictures than torch (largest difference {worst:.2g} on a scale "
            f"of 0-1, shapes {got.shape} and {expected.shape}); nothing was written. Report it with the model's "
            "config: the exporter mistranslated one of its layers."
        )
    return data


def png_data_uri(image) -> str:
    """One image (uint8 (69, 69, 3) or float (3, 69, 69) in [0, 1]) as a data: URI of a PNG, for a web page."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image, scale=1)).decode("ascii")


def strip_indices(galaxies) -> list[int]:
    """The strip of real galaxies to start from: the first of each class (the first ten when unlabelled)."""
    if not galaxies.labelled:
        return list(range(min(10, len(galaxies))))
    first = class_examples(galaxies.labels, per_class=1, n_classes=len(galaxies.class_names))[:, 0]
    return [int(i) for i in first if i >= 0]


def _rounded(values) -> list[float]:
    """Floats for JSON at float32's precision (7 significant digits), not Python's 17."""
    return [float(f"{v:.7g}") for v in np.asarray(values, dtype=np.float64).ravel()]


def describe_model(model: VAE, galaxies, strip: list[int]) -> dict:
    """What the page needs of one model: its stats over galaxies (mean, sigma, KL, ranking), the strip's codes."""
    stats = latent_stats(model, galaxies.images)
    codes = encode_all(model, galaxies.images[strip])  # (S, L)
    return {
        "latent_size": model.config.latent_size,
        "img_size": model.config.img_size,
        "mean": _rounded(stats.mean),
        "std": _rounded(stats.std),
        "kl": _rounded(stats.kl),
        "order": [int(d) for d in stats.order],
        "strip_codes": [_rounded(code) for code in codes],
    }


def load_vae(key: str, source: str) -> VAE:
    """The VAE at source (a checkpoint or pretrained:NAME), in float32 eval mode; refuses anything else."""
    if not key.isidentifier():
        raise ValueError(f"Model key {key!r} becomes a file name and a page label; use letters, e.g. 'elbo'.")
    model = resolve(source)
    if not isinstance(model, VAE):
        raise ValueError(
            f"{source} is not a VAE but an {type(model).__name__}: the explorer samples each model's prior "
            "N(0, I), which a plain autoencoder does not have. Export an ELBO-VAE or an MMD-VAE (galaxy-ae train)."
        )
    return model.float().eval()


def export_web(
    folder: str | Path,
    models: dict[str, str] | None = None,
    galaxies=None,
    sliders: int = 8,
) -> list[Path]:
    """Write the explorer's files into folder: NAME.onnx for each model and explorer.json; returns their paths.

    models: {key: checkpoint}, a checkpoint path or pretrained:NAME (default: the pretrained ELBO-VAE and
    MMD-VAE under "elbo" and "mmd"); each must be a VAE (the page samples its prior). galaxies (a `Galaxies`;
    default: the quick profile's synthetic set) give each model's mean code, sigma and ranking, and the strip.
    sliders: how many the page shows, the most informative dimensions first."""
    from .config import get_profile
    from .data import load_galaxies

    folder = check_output_folder(folder, "the explorer folder")
    models = models or {"elbo": "pretrained:elbo", "mmd": "pretrained:mmd"}
    if sliders < 1:
        raise ValueError(f"sliders={sliders}: the page needs at least one slider.")
    loaded = {key: load_vae(key, str(source)) for key, source in models.items()}
    if galaxies is None:
        profile = get_profile("quick")
        galaxies = load_galaxies(profile.dataset, n=profile.n_images, seed=profile.seed)
    strip = strip_indices(galaxies)

    files = {f"{key}.onnx": decoder_onnx(model, name=str(models[key])) for key, model in loaded.items()}
    described = []
    for key, model in loaded.items():
        source = str(models[key])
        described.append(
            {
                "key": key,
                "label": LABELS.get(key, key),
                "file": f"{key}.onnx",
                "source": source if source.startswith("pretrained:") else Path(source).name,  # no machine path
                **describe_model(model, galaxies, strip),
            }
        )
    class_names = galaxies.class_names
    page = {
        "format": FORMAT,
        "made_by": "galaxy_autoencoders.web.export_web (galaxy-ae export-web)",
        "galaxies": {"name": galaxies.name, "count": len(galaxies)},
        "sliders": min(sliders, *(m["latent_size"] for m in described)),
        "strip": [
            {
                "index": i,
                "label": class_names[int(galaxies.labels[i])] if galaxies.labelled else f"galaxy {i}",
                "png": png_data_uri(galaxies.images[i]),
            }
            for i in strip
        ],
        "models": described,
    }
    files["explorer.json"] = json.dumps(page).encode()
    # Written only once every decoder passed its check, so a folder never mixes one export's files with another's.
    folder.mkdir(parents=True, exist_ok=True)
    return [
        atomic_write(folder / file, lambda tmp, data=data: Path(tmp).write_bytes(data)) for file, data in files.items()
    ]

"""Convolutional autoencoders for 69x69 galaxies: a config, an encoder, a decoder, `AutoEncoder` and `VAE`.

Read top to bottom. The encoder halves the image four times with stride-2 convolutions, 69 -> 35 -> 18 -> 9 -> 5
(a 3x3 kernel with padding 1 maps n to ceil(n / 2), so odd sizes round up and nothing is cropped). The decoder
mirrors it with stride-2 transposed convolutions, which map n to 2n - 1 + output_padding; choosing
output_padding = 0 or 1 per layer lands exactly on the encoder's sizes 5 -> 9 -> 18 -> 35 -> 69. No resize or
interpolation is involved, so the output is 69x69 because the arithmetic says so, and a wrong size fails loudly.

Checkpoints are two files side by side: `name.pt` (the weights, a plain state_dict loaded with
`torch.load(weights_only=True)`, so a checkpoint cannot run code) and `name.json` (the `ModelConfig` that
rebuilds the model, plus whatever the trainer wants to remember: objective, epochs, metrics).
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from .config import LATENT_SIZE, WIDTHS
from .files import atomic_write

CHECKPOINT_FORMAT = "galaxy_autoencoders.checkpoint"
CHECKPOINT_VERSION = 1
LOGVAR_START = -4.0  # the log-variance head's starting bias (see VAE.__init__)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model: sizes, normalisation and kind ("vae" or "ae")."""

    latent_size: int = LATENT_SIZE
    widths: tuple[int, ...] = WIDTHS  # channels after each stride-2 convolution
    img_size: int = 69
    channels: int = 3
    norm: str = "batch"  # "batch" or "none"
    kind: str = "vae"  # "vae" (mean and log-variance heads) or "ae" (one deterministic code)
    n_classes: int = 0  # > 0 adds a linear class head on the latent mean (the class-aware loss)

    def __post_init__(self):
        # JSON gives lists back; a tuple keeps the config hashable and equal to the one that was saved.
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.latent_size < 1:
            raise ValueError(f"latent_size must be at least 1, got {self.latent_size}.")
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"widths must be a non-empty tuple of positive channel counts, got {self.widths}.")
        if self.norm not in ("batch", "none"):
            raise ValueError(f"norm must be 'batch' or 'none', got {self.norm!r}.")
        if self.kind not in ("vae", "ae"):
            raise ValueError(f"kind must be 'vae' or 'ae', got {self.kind!r}.")
        if self.img_size < 2 or self.channels < 1:
            raise ValueError(f"img_size and channels must be positive sizes, got {self.img_size}, {self.channels}.")

    @property
    def feature_sizes(self) -> tuple[int, ...]:
        """Spatial size after each encoder layer, starting with the input: (69, 35, 18, 9, 5) by default."""
        sizes = [self.img_size]
        for _ in self.widths:
            sizes.append((sizes[-1] + 1) // 2)  # 3x3 kernel, stride 2, padding 1: ceil(n / 2)
        return tuple(sizes)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """Rebuild from `asdict(config)` (e.g. read from a checkpoint's JSON); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"Unknown ModelConfig fields {unknown}; expected some of {sorted(known)}.")
        return cls(**d)


def _norm(config: ModelConfig, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if config.norm == "batch" else nn.Identity()


class Encoder(nn.Module):
    """Image (B, C, 69, 69) in [0, 1] -> flat features (B, widths[-1] * 5 * 5)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        layers = []
        c_in = config.channels
        for c_out in config.widths:
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), _norm(config, c_out), nn.ReLU()]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        self.out_features = config.widths[-1] * config.feature_sizes[-1] ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs(x)  # (B, widths[-1], 5, 5)
        return h.flatten(1)  # (B, widths[-1] * 25)


class Decoder(nn.Module):
    """Code (B, L) -> image (B, C, 69, 69) in [0, 1] (a sigmoid, the data's range)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        sizes = config.feature_sizes  # (69, 35, 18, 9, 5)
        widths = config.widths
        self.start = (widths[-1], sizes[-1], sizes[-1])
        self.fc = nn.Linear(config.latent_size, widths[-1] * sizes[-1] ** 2)
        self.fc_act = nn.Sequential(_norm(config, widths[-1]), nn.ReLU())
        # Walk the encoder's sizes backwards; a transposed conv (k=3, s=2, p=1) maps n -> 2n - 1 + output_padding,
        # so output_padding = target - (2n - 1) is 0 or 1 and each layer lands exactly on the encoder's size.
        # The last up-step keeps widths[0] channels; a stride-1 conv then mixes them into the colour channels,
        # which avoids the checkerboard a stride-2 layer straight to RGB tends to paint.
        layers = []
        c_outs = list(reversed(widths[:-1])) + [widths[0]]
        c_in = widths[-1]
        for i, c_out in enumerate(c_outs):
            n, target = sizes[-1 - i], sizes[-2 - i]
            output_padding = target - (2 * n - 1)
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=output_padding),
                _norm(config, c_out),
                nn.ReLU(),
            ]
            c_in = c_out
        self.ups = nn.Sequential(*layers)
        self.to_pixels = nn.Conv2d(c_in, config.channels, 3, padding=1)

    def start_from(self, pixel_mean) -> None:
        """Start the output at the data's mean colour, pixel_mean (C,) in (0, 1), instead of sigmoid(0) = 0.5 grey.

        Why it matters: galaxy stamps are mostly dark sky (median pixel 0.03, mean 0.12). A decoder that starts
        at 0.5 everywhere first spends its training pushing every pixel down, and the bias it learns for that
        drives the sigmoid into its flat, dark end; the bright cores and colours then need the features to climb
        all the way back, and short runs stall at the mean image (a grey ellipse, no pixel above 0.5). Starting
        the bias at logit(mean) skips that detour: the features learn the galaxy from the first step.
        """
        mean = torch.as_tensor(pixel_mean, dtype=torch.float32).clamp(1e-3, 1 - 1e-3)
        if mean.shape != self.to_pixels.bias.shape:
            raise ValueError(
                f"pixel_mean has shape {tuple(mean.shape)}, but the decoder makes {len(self.to_pixels.bias)} channels: "
                "pass one mean per channel, e.g. dls.train.channel_means()."
            )
        with torch.no_grad():
            self.to_pixels.bias.copy_(torch.logit(mean))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, *self.start)  # (B, widths[-1], 5, 5)
        h = self.ups(self.fc_act(h))  # (B, widths[0], 69, 69)
        return torch.sigmoid(self.to_pixels(h))  # (B, C, 69, 69) in [0, 1]


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Sample z = mu + sigma * eps with eps ~ N(0, I): (B, L), (B, L) -> (B, L); gradients reach mu and logvar."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


class AutoEncoder(nn.Module):
    """Deterministic autoencoder: forward(x (B, C, 69, 69)) -> reconstruction (B, C, 69, 69)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.to_z = nn.Linear(self.encoder.out_features, config.latent_size)
        self.decoder = Decoder(config)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, 69, 69) -> codes z (B, L)."""
        return self.to_z(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (B, L) -> images (B, C, 69, 69) in [0, 1]."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))  # (B, C, 69, 69)


class VAE(nn.Module):
    """Variational autoencoder: forward(x (B, C, 69, 69)) -> (recon (B, C, 69, 69), mu (B, L), logvar (B, L)).

    In training mode the decoder sees a sample z ~ N(mu, exp(logvar)); in eval mode it sees z = mu, so
    validation losses, reconstructions and figures are deterministic (the most likely code, not a random one).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.to_mu = nn.Linear(self.encoder.out_features, config.latent_size)
        self.to_logvar = nn.Linear(self.encoder.out_features, config.latent_size)
        # sigma starts at exp(LOGVAR_START / 2) ~ 0.14, not 1: with sigma ~ 1 the decoder's first input is mostly
        # noise (the means start near 0), and it learns the mean image. The KL widens sigma where the data allow.
        nn.init.constant_(self.to_logvar.bias, LOGVAR_START)
        self.decoder = Decoder(config)
        # Not used by forward: the class-aware loss reads it (training.ClassAwareCallback).
        self.class_head = nn.Linear(config.latent_size, config.n_classes) if config.n_classes else None

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, C, 69, 69) -> (mu (B, L), logvar (B, L)) of the Gaussian q(z | x)."""
        h = self.encoder(x)  # (B, F)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (B, L) -> images (B, C, 69, 69) in [0, 1]."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)  # (B, L) each
        z = reparameterize(mu, logvar) if self.training else mu  # (B, L)
        return self.decode(z), mu, logvar


def build_model(config: ModelConfig | None = None) -> AutoEncoder | VAE:
    """A fresh model for `config` (default: a VAE with latent_size 20)."""
    config = config or ModelConfig()
    return VAE(config) if config.kind == "vae" else AutoEncoder(config)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------------------------------------
# Checkpoints: name.pt (weights) + name.json (config and extras)


def _checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """'runs/elbo', 'runs/elbo.pt' or 'runs/elbo.json' -> (runs/elbo.pt, runs/elbo.json)."""
    path = Path(path)
    if path.suffix in (".pt", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".pt"), path.with_name(path.name + ".json")


def save_checkpoint(
    model: AutoEncoder | VAE, path: str | os.PathLike, extra: dict | None = None, half: bool = False
) -> Path:
    """Write path.pt (CPU state_dict) and path.json (config + extra, JSON-serialisable); returns path.pt.

    half=True stores the floating-point weights as float16 (half the size); loading casts them back.
    """
    config = getattr(model, "config", None)
    if not isinstance(config, ModelConfig):
        raise TypeError(f"save_checkpoint needs a model built from a ModelConfig, got {type(model).__name__}.")
    weights_path, json_path = _checkpoint_paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    # CPU, contiguous copies: the file loads anywhere, and a channels_last model saves like any other.
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    meta = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": asdict(config),
        "extra": extra or {},
    }
    text = json.dumps(meta, indent=2)  # before writing anything, so a non-JSON extra leaves no files
    # Weights first: a .json next to a .pt then always describes a complete weights file.
    atomic_write(weights_path, lambda tmp: torch.save(state, tmp))
    atomic_write(json_path, lambda tmp: tmp.write_text(text + "\n"))
    return weights_path


def checkpoint_info(path: str | os.PathLike) -> dict:
    """The checkpoint's JSON: {"format", "version", "config": {...}, "extra": {...}}."""
    _, json_path = _checkpoint_paths(path)
    if not json_path.is_file():
        raise FileNotFoundError(
            f"No checkpoint description at {json_path}. A checkpoint is two files, name.pt and name.json; "
            "make one with galaxy_autoencoders.models.save_checkpoint(model, path) "
            "or galaxy_autoencoders.training.save_learner(learn, path)."
        )
    try:
        meta = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{json_path} is not valid JSON ({e}); it is not a galaxy_autoencoders checkpoint.") from e
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT or "config" not in meta:
        raise ValueError(
            f"{json_path} is not a galaxy_autoencoders checkpoint (expected a JSON object with "
            f'"format": "{CHECKPOINT_FORMAT}" and a "config"); save models with save_checkpoint.'
        )
    return meta


def _latent_size_of(state: dict) -> int | None:
    """The latent size the weights were trained with: the decoder's first layer takes (B, L)."""
    w = state.get("decoder.fc.weight")
    return int(w.shape[1]) if isinstance(w, torch.Tensor) and w.ndim == 2 else None


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> AutoEncoder | VAE:
    """Rebuild the model saved at path(.pt/.json) and load its weights; returns it in eval mode."""
    weights_path, json_path = _checkpoint_paths(path)
    meta = checkpoint_info(path)
    if not weights_path.is_file():
        raise FileNotFoundError(
            f"Found {json_path} but not its weights {weights_path}; copy both files, or save again with "
            "save_checkpoint(model, path)."
        )
    config = ModelConfig.from_dict(meta["config"])
    try:
        # weights_only=True: only tensors and plain containers are unpickled, never code.
        state = torch.load(weights_path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"Refused to load {weights_path}: it holds Python objects other than tensors, which could run code. "
            "galaxy_autoencoders checkpoints are plain state_dicts; only load files you made with save_checkpoint."
        ) from e
    except (RuntimeError, EOFError, OSError) as e:
        raise ValueError(f"{weights_path} is not a readable PyTorch weights file ({e}); save it again.") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{weights_path} does not hold a state_dict (a dict of tensors); save with save_checkpoint.")
    weights_latent = _latent_size_of(state)
    if weights_latent is not None and weights_latent != config.latent_size:
        raise ValueError(
            f"Latent size mismatch in {json_path.name}/{weights_path.name}: the JSON config says "
            f"latent_size={config.latent_size} but the weights were trained with latent_size={weights_latent}. "
            "The two files come from different runs; save the model again with save_checkpoint."
        )
    model = build_model(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(
            f"The weights in {weights_path} do not fit the model described by {json_path} "
            f"({config}); the files come from different runs or versions. Details: {e}"
        ) from e
    return model.eval()

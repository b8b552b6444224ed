"""Numbers that describe a trained model: reconstruction error, sharpness, KL per latent dimension (active
units), and how latent means track the synthetic galaxies' true parameters; `evaluate` gathers them all. How
sure a comparison of these numbers is: statistics.py.

Models run in eval mode without gradients (a VAE then decodes its mean code, so every number repeats).
`images` can be uint8 (N, 69, 69, 3) as stored, float (N, 3, 69, 69) in [0, 1], a `Galaxies`, or fastai
`DataLoaders` (its validation galaxies, in stored order, without augmentation).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata, spearmanr
from torch import nn

from .inference import batches, encode, evaluating, model_device, outputs, reconstruct_all
from .losses import kl_per_dim


def reconstruction_mse(model: nn.Module, images, bs: int = 256) -> float:
    """Mean squared error per pixel value in [0, 1] units, over all pixels, channels and images.

    The training table's `recon` column is the same error summed over an image's 3 x 69 x 69 = 14,283 values.
    """
    total, count = 0.0, 0
    for x, recon, _, _ in outputs(model, images, bs):
        total += (recon.float() - x).pow(2).sum().item()
        count += x.numel()
    return total / count


def per_galaxy_mse(x: torch.Tensor, recon: torch.Tensor) -> np.ndarray:
    """Each galaxy's reconstruction MSE (per pixel value, [0, 1] units): x, recon (N, C, H, W) -> float64 (N,)."""
    return (recon.double() - x.double()).pow(2).flatten(1).mean(1).numpy()


def galaxy_colour(images: torch.Tensor, reference: torch.Tensor | None = None, top: float = 0.1) -> np.ndarray:
    """g - r colour index of each galaxy's displayed pixels: images float (N, 3, H, W), RGB = (i, r, g) -> (N,).

    -2.5 log10(sum of g / sum of r) over the brightest `top` fraction of each reference image's pixels (default:
    the images themselves), so an input and its reconstruction are measured over the same pixels. The sky is
    left out: its noise carries no colour. The pixels are asinh-stretched, so this is not a magnitude colour,
    but on 1,000 synthetic galaxies it tracks their true g - r with a Spearman correlation of 0.97.
    """
    reference = images if reference is None else reference
    out = []
    for ref, img in zip(reference.split(2048), images.split(2048), strict=True):  # torch.quantile takes < 2^24 values
        brightness = ref.float().sum(1).flatten(1)  # (B, H*W)
        mask = (brightness >= brightness.quantile(1 - top, dim=1, keepdim=True)).float()
        g = (img[:, 2].float().flatten(1) * mask).sum(1).clamp_min(1e-6)
        r = (img[:, 1].float().flatten(1) * mask).sum(1).clamp_min(1e-6)
        out.append(-2.5 * torch.log10(g / r))
    return torch.cat(out).numpy()


def compare_to_mean_image(x: torch.Tensor, recon: torch.Tensor, mean_image: torch.Tensor) -> dict:
    """Reconstructions recon of inputs x (N, C, H, W) against predicting mean_image (C, H, W) for every galaxy.

    Returns {"mse", "mean_image_mse", "mse_ratio" (< 1: better than the mean image), "colour_rho" (Spearman of
    each galaxy's g - r in the reconstruction against the input), "peak_ratio" (99th-percentile pixel of the
    reconstructions over that of the inputs)}: plain floats.
    """
    mse = float((recon - x).pow(2).mean())
    base = float((x - mean_image).pow(2).mean())
    rho = spearmanr(galaxy_colour(recon, x), galaxy_colour(x)).statistic
    peak = np.percentile(recon.numpy(), 99) / np.percentile(x.numpy(), 99)
    return {
        "mse": mse,
        "mean_image_mse": base,
        "mse_ratio": mse / base,
        "colour_rho": float(rho),
        "peak_ratio": float(peak),
    }


def baseline_report(model: nn.Module, dls, bs: int = 256) -> dict:
    """`compare_to_mean_image` for a model on the validation galaxies of DataLoaders made by `galaxy_dls`,
    against the mean image of their training galaxies."""
    if not hasattr(dls.train, "mean_image"):
        raise TypeError(
            f"baseline_report needs DataLoaders made by galaxy_autoencoders.dataloaders.galaxy_dls, whose training "
            f"loader knows its mean image; got a {type(dls.train).__name__}."
        )
    x, recon = reconstruct_all(model, dls.valid, bs=bs)
    return compare_to_mean_image(x, recon, dls.train.mean_image())


def baseline_table(models: dict[str, nn.Module], dls, bs: int = 256) -> pd.DataFrame:
    """`baseline_report` of each named model on the same validation galaxies: a DataFrame, one row per model.

    Columns: "MSE", "x mean image" (MSE over the mean image's; 1 = learned nothing), "colour rho", "peak ratio";
    rounded (MSE to 4 decimals, the rest to 2) so that a printed table repeats on any CPU.
    """
    rows = {}
    for name, model in models.items():
        r = baseline_report(model, dls, bs=bs)
        rows[name] = {
            "MSE": r["mse"],
            "x mean image": r["mse_ratio"],
            "colour rho": r["colour_rho"],
            "peak ratio": r["peak_ratio"],
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    return table.round({"MSE": 4, "x mean image": 2, "colour rho": 2, "peak ratio": 2})


def high_frequency_power(images: torch.Tensor, cutoff: float = 0.25) -> torch.Tensor:
    """Power of each image's 2-D Fourier modes with radial frequency above cutoff x Nyquist: (N, C, H, W) -> (N,).

    Frequencies are in cycles per pixel (Nyquist = 0.5); power `|FFT|^2` is summed over the band and channels.
    """
    if not 0 < cutoff < 2**0.5:
        raise ValueError(f"cutoff is a fraction of the Nyquist frequency in (0, 1.41); got {cutoff}.")
    h, w = images.shape[-2:]
    fy = torch.fft.fftfreq(h).view(h, 1)  # (H, 1)
    fx = torch.fft.fftfreq(w).view(1, w)  # (1, W)
    band = (fy**2 + fx**2).sqrt() > cutoff * 0.5  # (H, W)
    out = []
    for chunk in images.double().split(256):  # float64: the band holds little power, keep all of it
        power = torch.fft.fft2(chunk).abs().pow(2)  # (B, C, H, W)
        out.append((power * band).sum(dim=(1, 2, 3)))
    return torch.cat(out)


def sharpness_ratio(recon: torch.Tensor, x: torch.Tensor, cutoff: float = 0.25) -> float:
    """High-frequency power of recon over that of x, both (N, C, H, W) in [0, 1]: 1 = as sharp, < 1 = blurrier.

    Power is summed over all images before dividing, so faint galaxies count as little as they show. The
    default band, above a quarter of Nyquist, holds structure smaller than ~8 pixels: arms, knots, edges, and
    also the input's sky noise, which no autoencoder reproduces, so good reconstructions score below 1.
    """
    if recon.shape != x.shape:
        raise ValueError(f"recon and x must have the same shape, got {tuple(recon.shape)} and {tuple(x.shape)}.")
    p_x = high_frequency_power(x, cutoff).sum()
    # Parseval: all of x's Fourier power is H * W * sum(x^2); a band holding ~1e-12 of it is round-off.
    if p_x <= 1e-12 * x.double().pow(2).sum() * x.shape[-1] * x.shape[-2]:
        raise ValueError("The inputs have no power above the cutoff frequency (flat images?); sharpness is undefined.")
    return float(high_frequency_power(recon, cutoff).sum() / p_x)


def kl_per_dimension(model: nn.Module, images, bs: int = 256) -> torch.Tensor:
    """KL(q(z_j | x) || N(0, 1)) of each latent dimension j, averaged over the images: (L,) on the CPU."""
    total, count = None, 0
    with evaluating(model):
        for x in batches(images, bs, model_device(model)):
            mu, logvar = encode(model, x)
            if logvar is None:
                raise TypeError("kl_per_dimension needs a VAE (an encoder with a variance); got an AutoEncoder.")
            kl = kl_per_dim(mu, logvar).double().cpu() * len(x)  # (L,), summed over this batch
            total = kl if total is None else total + kl
            count += len(x)
    return (total / count).float()


def active_units(mu, threshold: float = 0.01) -> int:
    """Number of latent dimensions whose mean code varies across galaxies: Var_x(E_q[z_j | x]) > threshold, the
    definition of Burda et al. (2016); mu: the latent means of many galaxies, (N, L).

    A dimension whose mean is the same for every galaxy tells the decoder nothing about which galaxy it is,
    whatever its KL. (Counting dimensions by KL instead, `active_units_kl`, fails for the MMD-VAE: its MMD
    constrains only the means, so its sigmas, and with them every dimension's KL, are free.)"""
    mu = torch.as_tensor(mu, dtype=torch.float64)
    return int((mu.var(0) > threshold).sum())


def active_units_kl(kl_per_dim: torch.Tensor, threshold: float = 0.01) -> int:
    """Number of latent dimensions whose average KL (nats) exceeds threshold (see `active_units` for why the
    package reports the other definition)."""
    return int((torch.as_tensor(kl_per_dim) > threshold).sum())


def _angle_columns(name: str, values: np.ndarray) -> dict[str, np.ndarray]:
    # An orientation is the same at 0 and 180 degrees: cos/sin of twice the angle are continuous; the raw angle
    # jumps from 180 back to 0 and would hide any correlation.
    rad = np.deg2rad(2 * values)
    return {f"cos2_{name}": np.cos(rad), f"sin2_{name}": np.sin(rad)}


def parameter_columns(params: dict, n: int, angles_deg: tuple[str, ...] = ("position_angle_deg",)) -> dict:
    """{column: values (n,)}: each parameter, each orientation in angles_deg split into cos/sin of twice it."""
    columns: dict[str, np.ndarray] = {}
    for name, values in params.items():
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (n,):
            raise ValueError(f"Parameter {name!r} has shape {values.shape}; expected one value per galaxy, ({n},).")
        columns.update(_angle_columns(name, values) if name in angles_deg else {name: values})
    return columns


def unit_ranks(table: np.ndarray) -> np.ndarray:
    """Each column's ranks (ties averaged), centred and scaled to unit length: the dot product of two columns is
    their Spearman rho. A constant column becomes NaN."""
    ranks = rankdata(table, axis=0)
    ranks -= ranks.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ranks / np.sqrt((ranks**2).sum(0))


def latent_parameter_correlation(
    mu, params: dict[str, np.ndarray], angles_deg: tuple[str, ...] = ("position_angle_deg",)
) -> pd.DataFrame:
    """Spearman rank correlation of each latent mean (N, L) with each true parameter (N,): DataFrame (L, P).

    Rows z0..z{L-1}; columns the parameters, with each orientation named in angles_deg (degrees, period 180)
    replaced by cos(2 PA) and sin(2 PA) columns. Ties get average ranks; a constant column gives NaN.
    """
    mu = mu.detach().cpu().numpy() if isinstance(mu, torch.Tensor) else np.asarray(mu)
    latent = mu.shape[1]
    columns = parameter_columns(params, len(mu), angles_deg)
    ranks = unit_ranks(np.column_stack([mu] + list(columns.values())))  # (N, L + P)
    rho = ranks[:, :latent].T @ ranks[:, latent:]  # (L, P)
    return pd.DataFrame(rho, index=[f"z{j}" for j in range(latent)], columns=list(columns))


def evaluate(
    model: nn.Module, images, params: dict[str, np.ndarray] | None = None, bs: int = 256, n: int = 512
) -> dict:
    """The numbers the demo and notebook 04 report for one model on images (e.g. the validation DataLoaders).

    Returns {"mse": per-pixel MSE over all images, "sharpness": sharpness ratio over the first n,
    "active_units": int (Burda's definition, any model), "active_units_kl": int and "kl_per_dim": list (VAEs;
    None for an AutoEncoder), "best_correlation":
    {parameter: max `|Spearman rho|` over latent dims}} (the last only when the true params of the same galaxies,
    in the same order, are given, e.g. `params` of a synthetic `Galaxies` together with its DataLoaders, which
    `evaluate` then restricts to the validation galaxies). Plain floats and ints: ready for json.dumps.
    """
    loader = images.valid if hasattr(images, "valid") and hasattr(images, "train") else images
    # One pass over the images gives every number: error, sharpness inputs, codes and KL.
    xs, recons, mus, kl_sum, sq_err, values = [], [], [], None, 0.0, 0
    for x, recon, mu, logvar in outputs(model, loader, bs):
        sq_err += (recon.float() - x).pow(2).sum().item()
        values += x.numel()
        mus.append(mu.float().cpu())
        if logvar is not None:
            kl = kl_per_dim(mu, logvar).double().cpu() * len(x)  # (L,), summed over this batch
            kl_sum = kl if kl_sum is None else kl_sum + kl
        kept = n - sum(len(r) for r in recons)  # only the first n: float copies cost 57 kB a galaxy
        if kept > 0:
            recons.append(recon[:kept].float().cpu())
            xs.append(x[:kept].float().cpu())
    mu = torch.cat(mus)  # (N, L)
    report = {
        "mse": sq_err / values,
        "sharpness": sharpness_ratio(torch.cat(recons), torch.cat(xs)),
        "active_units": active_units(mu),
        "active_units_kl": None,
        "kl_per_dim": None,
    }
    if kl_sum is not None:
        kl = (kl_sum / len(mu)).float()
        report["active_units_kl"] = active_units_kl(kl)
        report["kl_per_dim"] = [float(v) for v in kl]
    if params is not None:
        if hasattr(loader, "rows"):  # a loader serves a subset: its galaxies' rows of the whole set's parameters
            params = {name: np.asarray(values)[loader.rows()] for name, values in params.items()}
        rho = latent_parameter_correlation(mu, params)
        report["best_correlation"] = {name: float(v) for name, v in rho.abs().max(axis=0).items()}
    return report

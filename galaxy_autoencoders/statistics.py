"""Statistics that say how sure a comparison is: bootstrap intervals over galaxies, the MMD two-sample test, and
what latent-parameter correlations reach by chance (permutation nulls).

A 95% bootstrap interval: resample the galaxies with replacement many times, recompute the number each time, and
keep the middle 95% of the results. An interval that contains 0 means these galaxies do not tell the two apart.
A permutation null: shuffle which galaxy each value belongs to, so any real link is broken, and see how large
the statistic still gets by chance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .losses import mmd
from .metrics import latent_parameter_correlation, parameter_columns, unit_ranks


def interval_text(d: dict, digits: int) -> str:
    """A difference from `bootstrap_difference` as the notebooks print it: "+0.075 (95% interval +0.053 to +0.101)"."""
    return f"{d['mean']:+.{digits}f} (95% interval {d['low']:+.{digits}f} to {d['high']:+.{digits}f})"


def bootstrap_difference(a, b, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean of a - b over paired per-galaxy values a, b (N,), with a 95% bootstrap interval over galaxies.

    Returns {"mean", "low", "high"} (plain floats). An interval that contains 0 means the galaxies do not tell
    the two apart; it says nothing about other training seeds, which vary the models themselves.
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 1 or len(d) < 2:
        raise ValueError(f"a and b must be paired 1-D arrays of at least 2 values, got shape {d.shape}.")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(1)  # (n_boot,)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(d.mean()), "low": float(low), "high": float(high)}


def mmd_test(x: torch.Tensor, y: torch.Tensor, n_perm: int = 200, seed: int = 0, **kernel) -> dict:
    """MMD as a two-sample test (Gretton et al. 2012): the unbiased MMD^2 of samples x (N, L), y (M, L) and its
    p-value, the fraction of n_perm random re-splits of the pooled points whose MMD^2 is at least as large.

    A small p-value: samples this different rarely come from one distribution. kernel: mmd's kernel, scales."""
    observed = float(mmd(x, y, unbiased=True, **kernel))
    pooled = torch.cat([x.float(), y.float()])
    g = torch.Generator().manual_seed(seed)
    count = 0
    for _ in range(n_perm):
        order = torch.randperm(len(pooled), generator=g)
        count += float(mmd(pooled[order[: len(x)]], pooled[order[len(x) :]], unbiased=True, **kernel)) >= observed
    return {"mmd2": observed, "p_value": (count + 1) / (n_perm + 1)}


# What the camera and the stamp set rather than the galaxy: the noise, the seeing, and the angular size (each
# stamp is scaled to the galaxy's r90, so on the stamp r90_arcsec changes only how much the seeing blurs it).
OBSERVING_CONDITIONS = ("snr", "psf_fwhm_px", "r90_arcsec")


def correlation_null(mu, params: dict[str, np.ndarray], n_perm: int = 200, seed: int = 0, q: float = 95) -> pd.Series:
    """What `latent_parameter_correlation`'s best `|rho|` per parameter reaches by chance: the q-th percentile,
    over n_perm random shuffles of the galaxies' parameter values, of the largest `|rho|` among the latent
    dimensions. A parameter whose best `|rho|` exceeds it is tracked at the (100 - q)% level. Series by column."""
    mu = mu.detach().cpu().numpy() if isinstance(mu, torch.Tensor) else np.asarray(mu)
    columns = parameter_columns(params, len(mu))  # the columns of latent_parameter_correlation's table
    z = unit_ranks(mu)  # (N, L)
    p = unit_ranks(np.column_stack(list(columns.values())))  # (N, P)
    rng = np.random.default_rng(seed)
    best = np.empty((n_perm, p.shape[1]))
    for k in range(n_perm):
        best[k] = np.nanmax(np.abs(z.T @ p[rng.permutation(len(p))]), axis=0)  # (P,)
    return pd.Series(np.percentile(best, q, axis=0), index=list(columns))


def best_correlation_difference(mu_a, mu_b, params: dict[str, np.ndarray], n_boot: int = 2000, seed: int = 0):
    """Per parameter: best `|rho|` of model a's latent means (N, La) minus model b's (N, Lb), codes of the same
    galaxies in the same order, with a 95% bootstrap interval over the galaxies. Each model's best dimension is
    the one found on all galaxies (re-choosing it in each resample would inflate the best `|rho|` of unrelated
    dimensions: a resample holds fewer distinct galaxies). DataFrame (P, 3): "difference", "low", "high"."""
    mu_a, mu_b = (m.detach().cpu().numpy() if isinstance(m, torch.Tensor) else np.asarray(m) for m in (mu_a, mu_b))
    if len(mu_a) != len(mu_b):
        raise ValueError(f"Give both models' codes of the same galaxies: {len(mu_a)} and {len(mu_b)} rows.")
    columns = parameter_columns(params, len(mu_a))
    table = np.column_stack(list(columns.values()))  # (N, P)
    best = [np.nanargmax(np.abs(unit_ranks(mu).T @ unit_ranks(table)), 0) for mu in (mu_a, mu_b)]  # (P,) each

    def difference(rows: np.ndarray) -> np.ndarray:  # (P,)
        p = unit_ranks(table[rows])
        a, b = (np.abs((unit_ranks(mu[rows][:, dims]) * p).sum(0)) for mu, dims in zip((mu_a, mu_b), best, strict=True))
        return a - b

    rng = np.random.default_rng(seed)
    boots = np.stack([difference(rng.integers(0, len(table), len(table))) for _ in range(n_boot)])
    low, high = np.nanpercentile(boots, [2.5, 97.5], axis=0)
    return pd.DataFrame(
        {"difference": difference(np.arange(len(table))), "low": low, "high": high}, index=list(columns)
    )


def latent_parameter_table(mu, params: dict[str, np.ndarray], n_perm: int = 200, seed: int = 0) -> pd.DataFrame:
    """Per true parameter: the latent dimension that tracks it best, its `|rho|`, the 95% null (`correlation_null`)
    and "*" where `|rho|` is above the null; the galaxy's own properties first, then the observing conditions
    (OBSERVING_CONDITIONS), each group by `|rho|`. Rounded to 2 decimals, so that a printed table repeats."""
    rho = latent_parameter_correlation(mu, params).abs()
    null = correlation_null(mu, params, n_perm=n_perm, seed=seed)
    table = pd.DataFrame({"dim": rho.idxmax(axis=0), "|rho|": rho.max(axis=0), "null 95%": null})
    table["above null"] = np.where(table["|rho|"] > table["null 95%"], "*", "")
    table["kind"] = ["observing" if name in OBSERVING_CONDITIONS else "galaxy" for name in table.index]
    table = table.sort_values(["kind", "|rho|"], ascending=[True, False])
    return table.round({"|rho|": 2, "null 95%": 2})

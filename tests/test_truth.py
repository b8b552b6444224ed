"""Checks against the noiseless truth (galaxy_autoencoders.truth, data.synthetic.render_truth), the permutation
null of the latent-parameter table, Burda's active units and the unbiased MMD^2."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from galaxy_autoencoders.data import Galaxies
from galaxy_autoencoders.losses import mmd
from galaxy_autoencoders.metrics import (
    OBSERVING_CONDITIONS,
    correlation_null,
    high_frequency_power,
    latent_parameter_table,
    sharpness_ratio,
)
from galaxy_autoencoders.truth import detail_recovered, truth_report


def _truths(n: int = 24) -> torch.Tensor:
    """Smooth galaxies with fine structure (rings of a few pixels), float (n, 3, 69, 69) in [0, 1]."""
    yy, xx = torch.meshgrid(torch.arange(69.0), torch.arange(69.0), indexing="ij")
    r = ((yy - 34) ** 2 + (xx - 34) ** 2).sqrt()
    out = []
    for k in range(n):
        blob = torch.exp(-r / (6 + k % 5)) * (0.6 + 0.4 * torch.cos(r * (1.2 + 0.05 * k)))
        out.append(blob.clamp(0, 1).expand(3, 69, 69))
    return torch.stack(out)


def _noisy(truth: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    noise = torch.randn(truth.shape, generator=torch.Generator().manual_seed(seed))
    return (truth + sigma * noise).clamp(0, 1)


def _blur(images: torch.Tensor) -> torch.Tensor:
    return nn.functional.avg_pool2d(images, 5, stride=1, padding=2, count_include_pad=False)


def test_detail_recovered_is_one_for_the_truth_and_lower_for_noise_or_blur():
    truth = _truths()
    assert detail_recovered(truth, truth) == pytest.approx(1.0)
    a_little, more = detail_recovered(_noisy(truth, 0.02), truth), detail_recovered(_noisy(truth, 0.08), truth)
    assert more < a_little < 1.0
    assert detail_recovered(_blur(truth), truth) < 0.9
    # The old ratio rewards noise: a noisy copy looks "sharper" than the galaxy itself. This one does not.
    assert sharpness_ratio(_noisy(truth, 0.08), truth) > 1.0
    assert detail_recovered(_noisy(truth, 0.08), truth) < detail_recovered(truth, truth)


class _Smoother(nn.Module):
    """A stand-in model: the code is the image, the decoder blurs it (a denoiser that loses some detail)."""

    def __init__(self, blur: bool):
        super().__init__()
        self.blur = blur
        self.dummy = nn.Parameter(torch.zeros(1))

    def encode(self, x):
        return x.flatten(1)

    def decode(self, z):
        x = z.view(-1, 3, 69, 69)
        return _blur(x) if self.blur else x


def test_truth_report_shows_a_model_that_beats_its_noisy_input():
    truth = _truths()
    noisy = _noisy(truth, 0.1)
    copy = truth_report(_Smoother(blur=False), noisy, truth)  # reproduces its input, noise and all
    assert copy["mse_vs_input"] == pytest.approx(0.0, abs=1e-12)
    assert copy["mse_vs_truth"] == pytest.approx(copy["noise_mse"])
    smoother = truth_report(_Smoother(blur=True), noisy, truth)
    assert smoother["mse_vs_input"] > 0
    assert smoother["vs_noisy_input"]["high"] < 0  # closer to the galaxy than its noisy input, interval and all
    assert smoother["detail_recovered"] > copy["detail_recovered"]  # the noise it leaves out is no detail
    assert smoother["mse_truth"].shape == smoother["detail_error"].shape == (len(truth),)
    with pytest.raises(ValueError, match="one per image"):
        truth_report(_Smoother(blur=False), noisy, truth[:5])


def test_render_truth_is_the_same_galaxy_without_its_noise(tmp_path):
    pytest.importorskip("galsim")
    from galaxy_autoencoders.data import load_galaxies
    from galaxy_autoencoders.data.synthetic import render_truth

    data = load_galaxies("synthetic", n=12, seed=3, data_dir=tmp_path, progress=False)
    truth = render_truth(data, rows=[2, 7])
    assert truth.shape == (2, 69, 69, 3) and truth.dtype == np.uint8
    noisy = data.images[[2, 7]].astype(float)
    residual = (noisy - truth) / 255  # the sky noise alone (slightly positive: the stretch clips it at black)
    assert abs(residual.mean()) < 0.05 and 0.005 < residual.std() < 0.3
    hf = [high_frequency_power(torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255).sum() for a in (truth, noisy)]
    assert hf[0] < 0.5 * hf[1]  # most of the fine-scale power of the noisy stamps was the noise
    assert not np.array_equal(truth, data.images[[2, 7]])
    for k in range(2):  # the galaxy itself: both copies agree where the galaxy is bright
        bright = truth[k].mean(-1) > 120
        assert bright.any() and np.abs(residual[k][bright]).mean() < 0.1
    other = Galaxies(data.images, data.labels, data.class_names, params=None, name="mine", path=None)
    with pytest.raises(ValueError, match="synthetic"):
        render_truth(other)


def test_the_permutation_null_sits_where_chance_puts_the_best_of_20_dimensions():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(205, 20))
    params = {"noise_a": rng.normal(size=205), "planted": mu[:, 3] + 0.1 * rng.normal(size=205), "snr": rng.random(205)}
    null = correlation_null(mu, params, n_perm=200)
    assert isinstance(null, pd.Series) and list(null.index) == ["noise_a", "planted", "snr"]
    # The best |rho| of 20 unrelated dimensions over 205 galaxies: ~0.15 typical, ~0.2 at the 95th percentile.
    assert all(0.15 < v < 0.26 for v in null)
    table = latent_parameter_table(mu, params, n_perm=200)
    assert table.loc["planted", "above null"] == "*" and table.loc["planted", "dim"] == "z3"
    assert table.loc["planted", "|rho|"] > 0.9
    assert table.loc["snr", "kind"] == "observing" and "snr" in OBSERVING_CONDITIONS
    assert list(table["kind"]) == sorted(table["kind"])  # the galaxy's own properties first


def test_unbiased_mmd_averages_to_zero_for_one_distribution_where_the_biased_one_does_not():
    g = torch.Generator().manual_seed(0)
    pairs = [(torch.randn(64, 8, generator=g), torch.randn(64, 8, generator=g)) for _ in range(60)]
    biased = torch.stack([mmd(x, y) for x, y in pairs])
    unbiased = torch.stack([mmd(x, y, unbiased=True) for x, y in pairs])
    assert (biased > 0).all() and (unbiased < biased).all()
    assert abs(unbiased.mean()) < 3 * unbiased.std() / len(pairs) ** 0.5 < biased.mean()
    assert (unbiased < 0).any()
    shifted = torch.stack([mmd(x + 1.0, y, unbiased=True) for x, y in pairs])
    assert shifted.mean() > 10 * unbiased.std()  # a real difference stands far out of that scatter
    with pytest.raises(ValueError, match="at least 2"):
        mmd(torch.randn(1, 8), torch.randn(5, 8), unbiased=True)

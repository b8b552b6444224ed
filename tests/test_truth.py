"""Checks against the noiseless truth (galaxy_autoencoders.truth: render_truth, noise_floor), the permutation
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
    best_correlation_difference,
    correlation_null,
    high_frequency_power,
    latent_parameter_correlation,
    latent_parameter_table,
    mmd_test,
    sharpness_ratio,
)
from galaxy_autoencoders.truth import detail_recovered, noise_floor, render_noisy_copies, render_truth, truth_report


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


def test_noisy_copies_are_the_same_galaxies_with_other_noise_of_the_same_level(tmp_path):
    pytest.importorskip("galsim")
    from galaxy_autoencoders.data import load_galaxies

    data = load_galaxies("synthetic", n=12, seed=3, data_dir=tmp_path, progress=False)
    rows = [1, 4, 7, 9]
    truth, copies = render_truth(data, rows), render_noisy_copies(data, rows, copies=4)
    assert copies.shape == (4, 4, 69, 69, 3) and copies.dtype == np.uint8
    assert not np.array_equal(copies[0], copies[1])  # other noise in each copy ...
    assert not any(np.array_equal(c, data.images[rows]) for c in copies)  # ... and not the stored noise
    floor = noise_floor(copies, truth)
    stored = float((((data.images[rows].astype(float) - truth) / 255) ** 2).mean())
    assert 0.7 < floor["copy_mse"] / stored < 1.4  # the same noise level as the stored stamps
    # The stretch is not linear: the average noisy picture stays away from the truth, but far less than one copy.
    assert 0 < floor["floor"] < 0.6 * floor["copy_mse"]
    with pytest.raises(ValueError, match="copies"):
        noise_floor(copies[:1], truth)


def test_noise_floor_removes_the_noise_left_in_the_average_of_the_copies():
    g = torch.Generator().manual_seed(0)
    truth = 0.3 + 0.4 * torch.rand((6, 3, 69, 69), generator=g)  # varies from pixel to pixel
    for bias in (0.0, 0.05):  # symmetric noise around the truth (+ a bias, as a non-linear stretch gives)
        copies = [(truth + bias + 0.1 * torch.randn(truth.shape, generator=g)).clamp(0, 1) for _ in range(3)]
        uint8 = np.stack([(c.permute(0, 2, 3, 1) * 255).round().byte().numpy() for c in copies])
        floor = noise_floor(uint8, truth)
        assert floor["floor"] == pytest.approx(bias**2, abs=2e-4)  # not bias² + 0.01 / 3 without the correction
        assert floor["copy_mse"] == pytest.approx(bias**2 + 0.01, rel=0.05)


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


def test_each_parameters_null_depends_only_on_that_parameter_and_the_seed():
    rng = np.random.default_rng(2)
    mu = rng.normal(size=(150, 20))
    alone = {"a": rng.normal(size=150)}
    many = {**alone, **{f"other{j}": rng.normal(size=150) for j in range(8)}}
    null = correlation_null(mu, many, n_perm=60, seed=4)
    assert null["a"] == pytest.approx(
        correlation_null(mu, alone, n_perm=60, seed=4)["a"], abs=1e-12
    )  # the same shuffles
    assert null.nunique() == len(many)  # a null of its own for each parameter
    np.testing.assert_allclose(correlation_null(torch.from_numpy(mu).float(), many, n_perm=60, seed=4), null, atol=1e-6)
    assert not null.equals(correlation_null(mu, many, n_perm=60, seed=5))  # another seed, other shuffles


def test_latent_parameter_table_is_built_from_the_correlations_and_the_null_it_names():
    rng = np.random.default_rng(3)
    mu = rng.normal(size=(205, 6))
    params = {
        "strong": mu[:, 2] + 0.2 * rng.normal(size=205),
        "weak": mu[:, 4] + 3.0 * rng.normal(size=205),
        "none": rng.normal(size=205),
        "psf_fwhm_px": mu[:, 0] + 0.5 * rng.normal(size=205),
        "snr": rng.normal(size=205),
    }
    table = latent_parameter_table(mu, params, n_perm=50, seed=7)
    assert list(table.columns) == ["dim", "|rho|", "null 95%", "above null", "kind"]
    assert list(table.index[:3]) == ["strong", "weak", "none"]  # the galaxy's own, strongest first ...
    assert list(table.index[3:]) == ["psf_fwhm_px", "snr"]  # ... then the observing conditions, strongest first
    rho = latent_parameter_correlation(mu, params).abs()
    null = correlation_null(mu, params, n_perm=50, seed=7)
    for name in params:
        assert table.loc[name, "dim"] == rho[name].idxmax()
        assert table.loc[name, "|rho|"] == round(rho[name].max(), 2)
        assert table.loc[name, "null 95%"] == round(null[name], 2)
    assert table["above null"].tolist() == ["*", "*", "", "*", ""]
    assert table["kind"].tolist() == ["galaxy"] * 3 + ["observing"] * 2
    torch_mu = torch.from_numpy(mu).float()
    assert latent_parameter_table(torch_mu, params, n_perm=50, seed=7)["|rho|"].tolist() == table["|rho|"].tolist()


def test_mmd_test_gives_a_large_p_value_for_one_distribution_and_the_smallest_for_two():
    g = torch.Generator().manual_seed(0)
    x, same, shifted = (torch.randn(80, 3, generator=g) for _ in range(3))
    one = mmd_test(x, same, n_perm=100, seed=1)
    two = mmd_test(x, shifted + 1.0, n_perm=100, seed=1)
    assert one["p_value"] > 0.05 and two["p_value"] == pytest.approx(1 / 101)
    assert one["mmd2"] == pytest.approx(float(mmd(x, same, unbiased=True)))
    assert two["mmd2"] > 10 * abs(one["mmd2"])
    assert mmd_test(x, same, n_perm=100, seed=1) == one  # the same re-splits for the same seed
    assert mmd_test(x, shifted + 0.3, n_perm=20, seed=1)["p_value"] >= 1 / 21  # never below 1 / (n_perm + 1)


def test_the_defaults_are_what_the_notebooks_say_200_shuffles_a_95_percent_null_2000_resamples_a_fixed_seed():
    rng = np.random.default_rng(5)
    mu, params = rng.normal(size=(60, 4)), {"a": rng.normal(size=60), "b": rng.normal(size=60)}
    x = torch.randn(30, 2, generator=torch.Generator().manual_seed(1))
    assert mmd_test(x, x + 3.0)["p_value"] == pytest.approx(1 / 201)  # 200 re-splits, none as extreme
    from galaxy_autoencoders.metrics import bootstrap_difference

    a, b = rng.normal(size=60), rng.normal(size=60)
    assert bootstrap_difference(a, b) == bootstrap_difference(a, b, n_boot=2000, seed=0)
    assert bootstrap_difference(a, b) != bootstrap_difference(a, b, n_boot=2000, seed=1)
    assert mmd_test(x, x + 0.1) == mmd_test(x, x + 0.1, n_perm=200, seed=0)
    assert correlation_null(mu, params).equals(correlation_null(mu, params, n_perm=200, seed=0, q=95))
    assert latent_parameter_table(mu, params).equals(latent_parameter_table(mu, params, n_perm=200, seed=0))
    default = best_correlation_difference(mu, mu[:, ::-1] ** 2, params)
    assert default.equals(best_correlation_difference(mu, mu[:, ::-1] ** 2, params, n_boot=2000, seed=0))
    assert not default.equals(best_correlation_difference(mu, mu[:, ::-1] ** 2, params, n_boot=2000, seed=1))


def test_best_correlation_difference_has_an_interval_that_separates_only_a_real_difference():
    rng = np.random.default_rng(1)
    planted, weak = rng.normal(size=205), rng.normal(size=205)
    params = {"planted": planted, "weak": weak, "position_angle_deg": rng.uniform(0, 180, 205)}
    tracks = rng.normal(size=(205, 20))
    tracks[:, 5] = planted + 0.3 * rng.normal(size=205)  # model a follows "planted" closely ...
    tracks[:, 9] = weak + 2.0 * rng.normal(size=205)  # ... and "weak" loosely
    blind = rng.normal(size=(205, 20))  # model b follows nothing
    table = best_correlation_difference(tracks, blind, params, n_boot=200)
    assert list(table.index) == ["planted", "weak", "cos2_position_angle_deg", "sin2_position_angle_deg"]
    assert (table["low"] <= table["difference"]).all() and (table["difference"] <= table["high"]).all()
    assert table.loc["planted", "difference"] > 0.7 and table.loc["planted", "low"] > 0.6
    assert table.loc["weak", "low"] > 0  # a weaker real difference is still separated
    for angle in ("cos2_position_angle_deg", "sin2_position_angle_deg"):  # neither model: the interval holds 0
        assert table.loc[angle, "low"] < 0 < table.loc[angle, "high"]
    flipped = best_correlation_difference(blind, tracks, params, n_boot=200)
    assert np.allclose(flipped["difference"], -table["difference"])
    with pytest.raises(ValueError, match="same galaxies"):
        best_correlation_difference(tracks, blind[:100], params)


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


def test_best_correlation_difference_interval_is_the_central_95_percent_of_the_resampled_differences():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(2)
    size = rng.normal(size=60)
    a, b = rng.normal(size=(60, 4)), rng.normal(size=(60, 3))
    a[:, 2] = size + rng.normal(size=60)  # each model's best dimension for "size"
    b[:, 0] = size + 2 * rng.normal(size=60)
    table = best_correlation_difference(a, b, {"size": size}, n_boot=400, seed=3)

    def difference(rows):  # Spearman's rho from scipy, on the same dimensions
        return abs(spearmanr(a[rows, 2], size[rows])[0]) - abs(spearmanr(b[rows, 0], size[rows])[0])

    assert table.loc["size", "difference"] == pytest.approx(difference(np.arange(60)))
    draws = np.random.default_rng(3)  # the same resamples: one draw of 60 rows each, from the seed
    resampled = [difference(draws.integers(0, 60, 60)) for _ in range(400)]
    assert [table.loc["size", "low"], table.loc["size", "high"]] == pytest.approx(np.percentile(resampled, [2.5, 97.5]))
    as_tensors = best_correlation_difference(
        torch.tensor(a, requires_grad=True), torch.tensor(b), {"size": size}, 400, 3
    )
    assert as_tensors.equals(table)  # the codes a model gives, still in its graph

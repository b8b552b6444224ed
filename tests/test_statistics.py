"""The statistics that say how sure a comparison is (statistics.py): permutation nulls, the latent-parameter table,
the MMD two-sample test and bootstrap intervals."""

import numpy as np
import pandas as pd
import pytest
import torch

from galaxy_autoencoders.losses import mmd
from galaxy_autoencoders.metrics import latent_parameter_correlation
from galaxy_autoencoders.statistics import (
    OBSERVING_CONDITIONS,
    best_correlation_difference,
    correlation_null,
    latent_parameter_table,
    mmd_test,
)


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
    from galaxy_autoencoders.statistics import bootstrap_difference

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

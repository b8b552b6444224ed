"""Metrics: sharpness is 1 for the input itself and falls with blur; correlations recover planted relations."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from galaxy_autoencoders.data import GalaxyDataError
from galaxy_autoencoders.dataloaders import galaxy_dls
from galaxy_autoencoders.inference import encode_all, reconstruct_all
from galaxy_autoencoders.losses import kl_per_dim
from galaxy_autoencoders.metrics import (
    active_units,
    active_units_kl,
    evaluate,
    high_frequency_power,
    kl_per_dimension,
    latent_parameter_correlation,
    reconstruction_mse,
    sharpness_ratio,
)
from galaxy_autoencoders.models import ModelConfig, build_model

TINY = ModelConfig(latent_size=5, widths=(4, 8, 8, 8))


def _galaxy_like(n=8, seed=0):
    """Blobs with sharp edges plus noise: (N, 3, 69, 69) float in [0, 1], power at all frequencies."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(69.0), torch.arange(69.0), indexing="ij")
    r = ((yy - 34) ** 2 + (xx - 34) ** 2).sqrt()
    radius = 5 + 10 * torch.rand(n, 1, 1, 1, generator=g)
    blob = (r < radius).float().expand(n, 3, 69, 69)
    return (0.7 * blob + 0.1 * torch.rand(n, 3, 69, 69, generator=g)).clamp(0, 1)


def _blur(x, k=5):
    return F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=False)


# ----------------------------------------------------------------------------------------------------------
# Sharpness


def test_sharpness_of_the_input_itself_is_one():
    x = _galaxy_like()
    assert sharpness_ratio(x, x) == 1.0


def test_blur_lowers_sharpness_and_more_blur_lowers_it_more():
    x = _galaxy_like()
    mild, strong = sharpness_ratio(_blur(x, 3), x), sharpness_ratio(_blur(x, 7), x)
    assert strong < mild < 0.5


def test_added_fine_detail_raises_sharpness():
    x = _galaxy_like()
    checker = (torch.arange(69).view(1, 69) + torch.arange(69).view(69, 1)) % 2  # the Nyquist pattern
    assert sharpness_ratio((x + 0.05 * checker).clamp(0, 1), x) > 1


def test_sharpness_ignores_brightness_offsets():
    # A constant shift is frequency zero: no high-frequency power changes.
    x = _galaxy_like() * 0.8
    assert sharpness_ratio(x + 0.1, x) == pytest.approx(1.0, rel=1e-6)


def test_high_frequency_power_is_the_same_for_stripes_across_and_along_the_rows():
    # The band is a ring in (fy, fx): stripes of 0.4 cycles per pixel lie above the 0.25 x Nyquist cutoff whether
    # they vary down the rows or along them; stripes of 0.05 cycles per pixel lie below it.
    pixels = torch.arange(69.0)
    for frequency, above in ((0.4, True), (0.05, False)):
        wave = 0.5 + 0.5 * torch.cos(2 * torch.pi * frequency * pixels)
        across, along = wave.view(69, 1).expand(1, 3, 69, 69), wave.view(1, 69).expand(1, 3, 69, 69)
        power = high_frequency_power(torch.cat([across, along]))
        assert float(power[0]) == pytest.approx(float(power[1]), rel=1e-9)
        total = torch.fft.fft2(across.double()).abs().pow(2).sum()
        assert bool(power[0] / total > 0.2) == above  # the stripes hold about a third of the power


def test_sharpness_is_undefined_for_flat_inputs():
    flat = torch.full((2, 3, 69, 69), 0.3)
    assert high_frequency_power(flat).abs().max() < 1e-6 * high_frequency_power(_galaxy_like(2)).min()
    with pytest.raises(ValueError, match="no power"):
        sharpness_ratio(_galaxy_like(2), flat)
    with pytest.raises(ValueError, match="same shape"):
        sharpness_ratio(flat[:1], flat)


# ----------------------------------------------------------------------------------------------------------
# Encoding, reconstruction error, KL per dimension


def test_encode_all_accepts_every_image_container():
    torch.manual_seed(0)
    model = build_model(TINY)
    model.train()
    images = np.random.default_rng(0).integers(0, 256, (20, 69, 69, 3), dtype=np.uint8)
    mu = encode_all(model, images, bs=8)
    assert mu.shape == (20, 5) and model.training  # the caller's mode is restored
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    model.eval()
    with torch.no_grad():
        expected = model.encode(x)[0]
    assert torch.allclose(mu, expected, atol=1e-5)
    assert torch.allclose(encode_all(model, x, bs=7), expected, atol=1e-5)

    dls = galaxy_dls(images, bs=4, valid_pct=0.25, device="cpu")
    valid_idx = torch.from_numpy(dls.valid.rows())
    assert torch.allclose(encode_all(model, dls), expected[valid_idx], atol=1e-5)
    # The training loader drops its last partial batch when training; encoding it keeps every galaxy, in order.
    train_idx = torch.from_numpy(dls.train.rows())
    assert len(train_idx) % 4 and torch.allclose(encode_all(model, dls.train), expected[train_idx], atol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        encode_all(model, torch.rand(2, 69, 69, 3))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_float_images_with_nan_or_inf_are_refused_by_name(bad):
    model = build_model(TINY)
    x = torch.rand(6, 3, 69, 69)
    x[3, 1, 5, 5] = bad
    expected = r"^images: 1 of 6 images contain NaN or inf values \(the first is image 3\).*np\.nan_to_num"
    for fn in (encode_all, reconstruct_all, reconstruction_mse):
        with pytest.raises(GalaxyDataError, match=expected):
            fn(model, x, bs=2)  # refused before the first batch, not after 3 images of NaN codes
    with pytest.raises(GalaxyDataError, match=expected):
        encode_all(model, x.numpy())
    x[3] = 0.5
    assert torch.isfinite(encode_all(model, x)).all()


def test_reconstruction_mse_is_the_per_value_mean():
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="ae", latent_size=3, widths=(4, 4, 4, 4))).eval()
    x = torch.rand(6, 3, 69, 69)
    with torch.no_grad():
        expected = (model(x) - x).pow(2).mean().item()
    assert reconstruction_mse(model, x, bs=4) == pytest.approx(expected, rel=1e-5)
    inputs, recon = reconstruct_all(model, x, bs=4)
    assert torch.equal(inputs, x) and recon.shape == x.shape


def test_kl_per_dimension_and_active_units():
    torch.manual_seed(0)
    model = build_model(TINY).eval()
    x = torch.rand(10, 3, 69, 69)
    with torch.no_grad():
        mu, logvar = model.encode(x)
    kl = kl_per_dimension(model, x, bs=3)
    assert kl.shape == (5,)
    assert torch.allclose(kl, kl_per_dim(mu, logvar), rtol=1e-5)
    assert active_units_kl(torch.tensor([0.0, 0.005, 0.02, 1.0])) == 2
    assert active_units_kl(torch.tensor([0.0, 0.005, 0.02, 1.0]), threshold=0.001) == 3
    with pytest.raises(TypeError, match="VAE"):
        kl_per_dimension(build_model(ModelConfig(kind="ae", latent_size=3, widths=(4, 4, 4, 4))), x)


def test_active_units_counts_dimensions_whose_means_vary_across_galaxies():
    # Burda et al.: Var_x E[z_j | x] > 0.01. Standard deviations 0, 0.05, 0.2 and 1 across 1,000 galaxies.
    mu = torch.randn(1000, 4, generator=torch.Generator().manual_seed(0)) * torch.tensor([0.0, 0.05, 0.2, 1.0])
    assert active_units(mu) == 2
    assert active_units(mu, threshold=0.001) == 3
    assert active_units(mu + 5.0) == 2  # a constant offset is no information
    exactly = torch.tensor([[0.0, 0.0], [2.0, 0.0]])  # variances 2 and 0 (unbiased, exact in float)
    assert active_units(exactly, threshold=2.0) == 0 and active_units(exactly, threshold=1.999) == 1  # above, not at


# ----------------------------------------------------------------------------------------------------------
# Latent-parameter correlation


def test_correlation_recovers_planted_monotonic_relations():
    rng = np.random.default_rng(0)
    n = 500
    params = {
        "bulge_fraction": rng.uniform(0, 1, n),
        "disk_q": rng.uniform(0.2, 1, n),
        "position_angle_deg": rng.uniform(0, 180, n),
    }
    mu = rng.normal(size=(n, 4))
    mu[:, 0] = np.exp(5 * params["bulge_fraction"])  # monotonic but far from linear
    mu[:, 1] = -(params["disk_q"] ** 3)
    mu[:, 2] = np.cos(np.deg2rad(2 * params["position_angle_deg"]))
    rho = latent_parameter_correlation(torch.from_numpy(mu).float(), params)
    assert list(rho.columns) == ["bulge_fraction", "disk_q", "cos2_position_angle_deg", "sin2_position_angle_deg"]
    assert list(rho.index) == ["z0", "z1", "z2", "z3"]
    assert rho.loc["z0", "bulge_fraction"] == pytest.approx(1.0)
    assert rho.loc["z1", "disk_q"] == pytest.approx(-1.0)
    assert rho.loc["z2", "cos2_position_angle_deg"] == pytest.approx(1.0)
    assert rho.loc["z3"].abs().max() < 0.2  # the noise dimension correlates with nothing
    # The raw angle would hide the relation that cos(2 PA) shows.
    raw = latent_parameter_correlation(mu, params, angles_deg=())
    assert abs(raw.loc["z2", "position_angle_deg"]) < 0.2


def test_correlation_of_a_constant_is_nan_and_shapes_are_checked():
    mu = np.random.default_rng(0).normal(size=(10, 2))
    rho = latent_parameter_correlation(mu, {"n_arms": np.zeros(10)})
    assert rho.isna().all().all()
    with pytest.raises(ValueError, match="one value per galaxy"):
        latent_parameter_correlation(mu, {"n_arms": np.zeros(9)})


# ----------------------------------------------------------------------------------------------------------
# evaluate: everything at once, as the demo's metrics.json


@pytest.mark.parametrize("kind", ["vae", "ae"])
def test_evaluate_reports_json_ready_numbers_for_the_validation_set(kind):
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind=kind, latent_size=5, widths=(4, 8, 8, 8))).eval()
    if kind == "vae":  # switch dimension 4 off: its posterior is the prior N(0, 1) for every galaxy, KL = 0
        with torch.no_grad():
            for head in (model.to_mu, model.to_logvar):
                head.weight[4] = 0.0
                head.bias[4] = 0.0
    images = np.random.default_rng(0).integers(0, 256, (40, 69, 69, 3), dtype=np.uint8)
    dls = galaxy_dls(images, bs=8, valid_pct=0.25, device="cpu")
    # A parameter that is exactly latent mean 0 for every galaxy of the whole set: if evaluate indexed the
    # parameters wrongly for the 10 validation galaxies, the correlation would be far from 1.
    planted = encode_all(model, images)[:, 0].numpy()
    params = {"planted": planted, "noise": np.arange(40.0)}
    report = evaluate(model, dls, params=params, bs=4, n=6)  # 3 batches
    json.dumps(report)
    assert report["mse"] == pytest.approx(reconstruction_mse(model, dls))
    x, recon = reconstruct_all(model, dls)
    assert report["sharpness"] == pytest.approx(sharpness_ratio(recon[:6], x[:6]))
    assert report["best_correlation"]["planted"] == pytest.approx(1.0)
    if kind == "vae":
        kl = kl_per_dimension(model, dls)
        assert report["kl_per_dim"] == pytest.approx(kl.tolist(), rel=1e-5)
        assert report["active_units_kl"] == active_units_kl(kl) == 4  # all but the switched-off dimension 4
    else:
        assert report["active_units_kl"] is None and report["kl_per_dim"] is None
    mu = encode_all(model, dls)
    assert report["active_units"] == active_units(mu)
    if kind == "vae":
        assert active_units(mu[:, 4:]) == 0  # the switched-off dimension's mean is 0 for every galaxy
    # A loader of the validation galaxies gives the same numbers, the parameters restricted to its galaxies too.
    assert evaluate(model, dls.valid, params=params, bs=4, n=6) == report


def test_baseline_table_puts_each_models_numbers_in_its_own_row_rounded():
    from galaxy_autoencoders.inference import reconstruct_all
    from galaxy_autoencoders.metrics import baseline_table, compare_to_mean_image

    images = np.random.default_rng(4).integers(0, 256, (24, 69, 69, 3), dtype=np.uint8)
    dls = galaxy_dls(images, bs=8, valid_pct=0.25, device="cpu")
    torch.manual_seed(0)
    models = {"vae": build_model(TINY), "ae": build_model(ModelConfig(latent_size=3, widths=(4, 8, 8, 8), kind="ae"))}
    table = baseline_table(models, dls)
    assert list(table.index) == ["vae", "ae"]
    assert list(table.columns) == ["MSE", "x mean image", "colour rho", "peak ratio"]
    for name, model in models.items():
        r = compare_to_mean_image(*reconstruct_all(model, dls.valid), dls.train.mean_image())
        expected = [round(r["mse"], 4), round(r["mse_ratio"], 2), round(r["colour_rho"], 2), round(r["peak_ratio"], 2)]
        assert table.loc[name].tolist() == pytest.approx(expected, abs=1e-12)
    assert table.loc["vae", "MSE"] != table.loc["ae", "MSE"]  # two models, two rows of their own


def test_float_images_in_bfloat16_come_back_as_float32():
    from galaxy_autoencoders.inference import as_float_images

    images = torch.rand(2, 3, 69, 69)
    assert torch.equal(as_float_images(images.bfloat16()), images.bfloat16().float())  # numpy has no bfloat16
    assert as_float_images(images.bfloat16()).dtype == torch.float32

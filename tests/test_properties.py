"""What the package is for, tested as properties rather than digits: a short fit learns more than the mean image,
each objective trains on its own terms (checked on the gradients), latent statistics and sampling are right in
value, and what the demo writes is what it says it is."""

import json

import numpy as np
import pytest
import torch
from fastai.callback.core import Callback, CancelBatchException

from galaxy_autoencoders.config import get_profile
from galaxy_autoencoders.data import load_galaxies
from galaxy_autoencoders.dataloaders import galaxy_dls
from galaxy_autoencoders.inference import encode_all
from galaxy_autoencoders.latent import latent_stats, prior_codes
from galaxy_autoencoders.losses import kl_divergence, mmd, reconstruction_loss
from galaxy_autoencoders.metrics import baseline_report, kl_per_dimension
from galaxy_autoencoders.models import ModelConfig, build_model, reparameterize
from galaxy_autoencoders.training import vae_learner

TINY = ModelConfig(latent_size=4, widths=(4, 8, 8, 8))


@pytest.fixture(scope="session")  # the slow tests run last (conftest.py): render once
def galaxies(tmp_path_factory):
    return load_galaxies("synthetic", n=640, seed=11, data_dir=tmp_path_factory.mktemp("data"), progress=False)


# ----------------------------------------------------------------------------------------------------------
# A short fit learns


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["ae", "elbo", "mmd"])
def test_a_short_quick_profile_fit_beats_the_mean_image_and_keeps_bright_cores(galaxies, objective):
    profile = get_profile("quick")
    torch.manual_seed(0)
    dls = galaxy_dls(galaxies, bs=profile.batch_size, seed=0, device="cpu")
    learn = vae_learner(dls, objective=objective, config=ModelConfig(widths=profile.widths), lr=profile.lr)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(3, profile.lr)
    report = baseline_report(learn.model, dls)
    # A model that learned nothing sits at 1 (it predicts the mean image) with cores at half the inputs' brightness.
    assert report["mse_ratio"] < 0.8
    assert report["peak_ratio"] > 0.8


def test_the_decoder_starts_at_the_datas_mean_colour_not_grey(galaxies):
    dls = galaxy_dls(galaxies, bs=32, seed=0, device="cpu")
    learn = vae_learner(dls, objective="ae", config=TINY)
    with torch.no_grad():
        start = torch.sigmoid(learn.model.decoder.to_pixels.bias)
    np.testing.assert_allclose(start.numpy(), dls.train.channel_means().numpy(), rtol=1e-5)
    assert (start < 0.3).all()  # mostly dark sky: far from sigmoid(0) = 0.5


def test_a_vae_starts_with_narrow_posteriors():
    torch.manual_seed(0)
    model = build_model(TINY).train()
    _, logvar = model.encode(torch.rand(8, 3, 69, 69))
    assert torch.exp(0.5 * logvar).mean() < 0.3  # sigma ~ 0.14: the decoder's first inputs are mostly signal


@pytest.mark.slow
def test_norm_none_trains(galaxies):
    torch.manual_seed(0)
    dls = galaxy_dls(galaxies, bs=32, seed=0, device="cpu")
    learn = vae_learner(dls, objective="ae", config=ModelConfig(widths=(16, 32, 64, 128), norm="none"), lr=2e-3)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(3, 2e-3)
    assert baseline_report(learn.model, dls)["mse_ratio"] < 0.95


# ----------------------------------------------------------------------------------------------------------
# Each objective trains on its own terms: the gradients fastai steps on equal those of the written objective


class _GradsOfOneBatch(Callback):
    """Seed the batch's random draws, keep its input and the gradients fastai computed, then skip the step."""

    order = 95

    def before_batch(self):
        if not self.training:  # validation batches come through here too, and have no backward pass
            return
        self.learn.model.zero_grad(set_to_none=True)  # the skipped step also skips fastai's zero_grad
        torch.manual_seed(1234)
        self.inputs = self.learn.xb[0].clone()

    def after_backward(self):
        self.grads = {n: p.grad.clone() for n, p in self.learn.model.named_parameters() if p.grad is not None}
        raise CancelBatchException()


def _fastai_grads(learn):
    grabber = _GradsOfOneBatch()
    learn.add_cb(grabber)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=0.0)
    learn.remove_cb(grabber)
    return grabber


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.fixture
def dls():
    rng = np.random.default_rng(0)
    return galaxy_dls(rng.integers(0, 256, (48, 69, 69, 3), dtype=np.uint8), bs=16, device="cpu")


@pytest.mark.parametrize("beta", [1.0, 3.0])
def test_elbo_gradients_are_those_of_recon_plus_beta_kl(dls, beta):
    torch.manual_seed(0)
    learn = vae_learner(dls, objective="elbo", beta=beta, config=TINY, nan_guard=False)
    got = _fastai_grads(learn)
    model = learn.model.train()

    def loss(kl_weight):
        torch.manual_seed(1234)  # the same draw of epsilon as in the fastai batch
        recon, mu, logvar = model(got.inputs)
        return reconstruction_loss(recon, got.inputs) + kl_weight * kl_divergence(mu, logvar)

    want, without_kl = _grads(model, loss(beta)), _grads(model, loss(0.0))
    for name in ("to_mu.weight", "to_logvar.bias", "encoder.convs.0.weight"):
        torch.testing.assert_close(got.grads[name], want[name], rtol=1e-4, atol=1e-6)
    # The KL's share of the encoder's gradient is far above the tolerance: a missing or detached KL is seen.
    assert (want["to_logvar.bias"] - without_kl["to_logvar.bias"]).abs().max() > 1e-2


def test_mmd_gradients_are_those_of_recon_plus_lambda_mmd_of_the_means(dls):
    lam = 250.0
    torch.manual_seed(0)
    learn = vae_learner(dls, objective="mmd", lam=lam, config=TINY, nan_guard=False)
    got = _fastai_grads(learn)
    model = learn.model.train()

    def loss(weight):
        torch.manual_seed(1234)
        recon, mu, _ = model(got.inputs)  # draws epsilon, as the fastai batch did
        prior = torch.randn_like(mu)  # then the MMD term's prior sample
        return reconstruction_loss(recon, got.inputs) + weight * mmd(mu, prior)

    want, without_mmd = _grads(model, loss(lam)), _grads(model, loss(0.0))
    torch.testing.assert_close(got.grads["to_mu.weight"], want["to_mu.weight"], rtol=1e-4, atol=1e-6)
    assert (want["to_mu.weight"] - without_mmd["to_mu.weight"]).abs().max() > 1e-2
    assert got.grads["to_logvar.bias"].abs().max() > 0  # sigma is trained by the reconstruction alone


def test_the_ae_objective_trains_on_the_reconstruction_alone(dls):
    torch.manual_seed(0)
    learn = vae_learner(dls, objective="ae", config=TINY, nan_guard=False)
    got = _fastai_grads(learn)
    model = learn.model.train()
    want = _grads(model, reconstruction_loss(model(got.inputs), got.inputs))
    torch.testing.assert_close(got.grads["to_z.weight"], want["to_z.weight"], rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------------------------------------
# Latent statistics and sampling, right in value


def test_reparameterize_draws_with_variance_exp_logvar():
    torch.manual_seed(0)
    mu = torch.tensor([[0.5, -1.0, 2.0]]).expand(40_000, 3)
    logvar = torch.tensor([[-2.0, 0.0, 1.0]]).expand(40_000, 3)
    z = reparameterize(mu, logvar)
    torch.testing.assert_close(z.mean(0), mu[0], atol=0.03, rtol=0)
    torch.testing.assert_close(z.var(0), logvar[0].exp(), rtol=0.03, atol=0)


def test_prior_codes_are_standard_normal():
    z = prior_codes(8, 20_000, seed=3)
    assert z.mean().abs() < 0.02 and (z.std(0) - 1).abs().max() < 0.03
    # normal, not uniform: a uniform of unit variance has no values beyond 1.74; a normal has 8% beyond it
    assert 0.06 < (z.abs() > 1.74).float().mean() < 0.10


def test_latent_stats_agree_with_encode_all_and_the_kl(galaxies):
    torch.manual_seed(0)
    model = build_model(TINY)
    images = galaxies.images[:64]
    stats = latent_stats(model, images)
    mu = encode_all(model, images).double()
    torch.testing.assert_close(stats.mean.double(), mu.mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stats.std.double(), mu.std(0), rtol=1e-5, atol=1e-6)
    assert stats.std.min() > 0 and not torch.allclose(stats.std, torch.ones_like(stats.std), atol=1e-3)
    kl = kl_per_dimension(model, images)
    assert stats.order.tolist() == torch.argsort(kl, descending=True, stable=True).tolist()
    torch.testing.assert_close(stats.kl, kl)  # and the ranking's numbers come with it


# ----------------------------------------------------------------------------------------------------------
# What the demo writes


@pytest.mark.slow
def test_demo_models_record_their_objective_and_the_figure_shows_their_reconstructions(tmp_path, monkeypatch, capsys):
    from galaxy_autoencoders import cli, plots
    from galaxy_autoencoders.inference import reconstruct_all
    from galaxy_autoencoders.models import load_checkpoint

    monkeypatch.setenv("GALAXY_AE_DATA", str(tmp_path / "data"))
    shown = {}
    real = plots.reconstruction_comparison

    def spy(x, recons, n=8, **kwargs):
        shown["x"], shown["recons"] = x.clone(), {k: v.clone() for k, v in recons.items()}
        return real(x, recons, n=n, **kwargs)

    monkeypatch.setattr(plots, "reconstruction_comparison", spy)
    out = tmp_path / "demo"
    assert cli.main(["demo", "--quick", "--n", "128", "--epochs", "1", "--out", str(out)]) == 0

    for objective in ("elbo", "mmd"):
        info = json.loads((out / "models" / f"{objective}.json").read_text())["extra"]
        assert info["objective"] == objective
        assert info["lam"] == (pytest.approx(100.0) if objective == "mmd" else 0.0)
        assert info["beta"] == (1.0 if objective == "elbo" else 0.0)
        model = load_checkpoint(out / "models" / objective)
        _, recon = reconstruct_all(model, shown["x"])
        torch.testing.assert_close(shown["recons"][objective.upper()], recon, rtol=1e-4, atol=1e-5)
        assert (shown["recons"][objective.upper()] - shown["x"]).abs().max() > 0.05  # not the inputs
    report = json.loads((out / "metrics.json").read_text())
    for objective in ("elbo", "mmd"):
        r = report[objective]
        assert r["mse_ratio"] == pytest.approx(r["mse"] / r["mean_image_mse"])
        assert 0.005 < r["mean_image_mse"] < 0.05  # the mean image of dark-sky stamps; flat grey would be ~0.19
    d = report["elbo_minus_mmd_mse"]
    assert d["low"] <= d["mean"] <= d["high"] and "mmd_sharper_than_elbo" not in report
    # Synthetic galaxies: both models also scored against the same noiseless truth.
    elbo, mmd = report["elbo"]["vs_truth"], report["mmd"]["vs_truth"]
    assert elbo["noise_mse"] == mmd["noise_mse"] > 0.001  # the inputs' own noise, the same for both
    assert 0 < report["truth_floor_mse"] < 0.6 * elbo["noise_mse"]  # the stretch's floor: above 0, below the noise
    d = report["elbo_minus_mmd_mse_vs_truth"]
    assert d["mean"] == pytest.approx(elbo["mse_vs_truth"] - mmd["mse_vs_truth"], rel=1e-6)
    d = report["elbo_minus_mmd_detail_error"]
    assert d["mean"] == pytest.approx(elbo["fine_detail_error"] - mmd["fine_detail_error"], abs=1e-9)

    # Run again into the same folder: the models saved there are used, not trained again, and say so.
    capsys.readouterr()
    assert cli.main(["demo", "--quick", "--n", "128", "--epochs", "1", "--out", str(out)]) == 0
    assert "using the elbo model saved as elbo" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text()) == report


def test_a_uint8_tensor_is_drawn_with_its_own_values_not_clipped_to_one():
    from galaxy_autoencoders.display import to_hwc_uint8

    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (2, 69, 69, 3), dtype=np.uint8)
    nchw = torch.from_numpy(nhwc.transpose(0, 3, 1, 2).copy())
    np.testing.assert_array_equal(to_hwc_uint8(nchw), nhwc)
    np.testing.assert_array_equal(to_hwc_uint8(nchw.float() / 255), nhwc)


# Properties that mutation testing (benchmarks/mutation_testing.py) found unguarded.


def test_slerp_keeps_the_radius_of_codes_of_equal_length_and_hits_its_ends():
    from galaxy_autoencoders.latent import interpolate

    a = torch.tensor([3.0, 0.0, 0.0])
    b = torch.tensor([0.0, 3.0, 0.0])  # orthogonal, both of length 3
    path = interpolate(a, b, steps=5, method="spherical")
    assert torch.allclose(path.norm(dim=1), torch.full((5,), 3.0), atol=1e-5)  # on the circle of radius 3
    assert torch.allclose(path[0], a) and torch.allclose(path[-1], b)
    assert torch.allclose(path[2], torch.tensor([1.0, 1.0, 0.0]) * 3 / 2**0.5, atol=1e-5)  # 45 degrees
    assert interpolate(a, b, steps=5, method="linear")[2].norm() < 2.2  # a straight line cuts inside
    assert torch.equal(interpolate(a, b, steps=5, method="slerp"), path)  # the alias
    # 60 degrees apart: the angle comes from the cosine of the two directions (dot / lengths).
    c = torch.tensor([1.5, 3 * 3**0.5 / 2, 0.0])
    middle = interpolate(a, c, steps=3, method="spherical")[1]
    assert middle.norm() == pytest.approx(3.0, abs=1e-5)
    assert torch.allclose(middle / 3, torch.tensor([3**0.5 / 2, 0.5, 0.0]), atol=1e-5)  # at 30 degrees


def test_prior_codes_have_the_asked_shape():
    from galaxy_autoencoders.latent import prior_codes

    assert prior_codes(latent_size=7, n=5).shape == (5, 7)


def test_per_galaxy_mse_is_each_galaxys_mean_squared_difference():
    from galaxy_autoencoders.metrics import per_galaxy_mse

    x = torch.zeros(2, 3, 4, 4)
    recon = torch.zeros(2, 3, 4, 4)
    recon[0] += 0.5  # galaxy 0: every value off by 0.5; galaxy 1: exact
    x[1] += 0.25
    recon[1] += 0.25
    assert per_galaxy_mse(x, recon).tolist() == [0.25, 0.0]
    assert per_galaxy_mse(recon, x).tolist() == [0.25, 0.0]  # symmetric
    x[0] += 0.5  # equal to its reconstruction now: a sum (not a difference) would give 1.0
    assert per_galaxy_mse(x, recon)[0] == 0.0


def test_reconstruction_mse_of_a_plain_autoencoder():
    from galaxy_autoencoders.metrics import reconstruction_mse

    torch.manual_seed(0)
    model = build_model(ModelConfig(widths=(8, 16, 32, 64), latent_size=4, kind="ae")).eval()
    images = np.random.default_rng(0).integers(0, 256, (6, 69, 69, 3), dtype=np.uint8)
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).float() / 255
    with torch.no_grad():
        expected = (model(x) - x).pow(2).mean().item()
    assert reconstruction_mse(model, images, bs=4) == pytest.approx(expected, rel=1e-5)


def test_the_latent_walk_passes_through_its_keys_on_a_symmetric_catmull_rom_curve():
    from galaxy_autoencoders.latent import closed_loop

    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])  # a square's corners on a circle
    path = closed_loop(keys, n_frames=8).double()
    assert torch.allclose(path[::2], keys.double())  # every second frame is a key, in order
    # Halfway from key 1 to key 2, a Catmull-Rom spline is at (-p0 + 9 p1 + 9 p2 - p3) / 16.
    p0, p1, p2, p3 = keys[0], keys[1], keys[2], keys[3]
    assert torch.allclose(path[3], ((-p0 + 9 * p1 + 9 * p2 - p3) / 16).double(), atol=1e-6)
    # and the loop closes: halfway from the last key back to the first, by the same rule
    assert torch.allclose(path[7], ((-p2 + 9 * p3 + 9 * p0 - p1) / 16).double(), atol=1e-6)
    # Five keys: the key two ahead and the key two behind differ (with four they are the same one).
    angles = torch.arange(5) * 2 * torch.pi / 5
    five = torch.stack([angles.cos(), angles.sin()], 1)
    path = closed_loop(five, n_frames=10).double()
    p0, p1, p2, p3 = five[0], five[1], five[2], five[3]
    assert torch.allclose(path[3], ((-p0 + 9 * p1 + 9 * p2 - p3) / 16).double(), atol=1e-6)


def test_bootstrap_difference_is_a_minus_b_with_an_interval_around_it():
    from galaxy_autoencoders.statistics import bootstrap_difference

    rng = np.random.default_rng(0)
    b = rng.normal(1.0, 0.1, 500)
    a = b + 0.02 + rng.normal(0, 0.01, 500)  # a is larger by 0.02 per pair
    d = bootstrap_difference(a, b)
    assert d["mean"] == pytest.approx(0.02, abs=0.002) and d["low"] < 0.02 < d["high"]
    assert 0 < d["low"] and d["high"] - d["low"] < 0.005  # 500 pairs: a narrow interval that excludes 0
    assert bootstrap_difference(b, a)["mean"] == pytest.approx(-d["mean"])
    assert bootstrap_difference([3.0, 1.0], [1.0, 1.0])["mean"] == 1.0  # two pairs are enough to resample
    with pytest.raises(ValueError, match=r"paired 1-D arrays of at least 2 values, got shape \(1,\)"):
        bootstrap_difference(a[:1], b[:1])  # one pair has no spread to resample
    with pytest.raises(ValueError, match=r"got shape \(50, 10\)"):
        bootstrap_difference(a.reshape(50, 10), b.reshape(50, 10))

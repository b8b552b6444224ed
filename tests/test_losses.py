"""Loss terms: exact values where they are known, properties (KL >= 0, MMD >= 0 and symmetric), and the signs."""

import math
from urllib.error import URLError

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from galaxy_autoencoders.config import LAM
from galaxy_autoencoders.losses import (
    DEFAULT_SCALES,
    PerceptualLoss,
    class_aware_loss,
    infovae_weights,
    kernel_matrix,
    kl_divergence,
    kl_per_dim,
    mmd,
    reconstruction_loss,
)
from galaxy_autoencoders.training import Objective

# ----------------------------------------------------------------------------------------------------------
# Reconstruction


def test_reconstruction_is_summed_over_pixels_and_averaged_over_the_batch():
    x = torch.zeros(4, 3, 69, 69)
    recon = torch.full_like(x, 0.5)
    # 0.25 per value, 3 * 69 * 69 = 14,283 values per galaxy, the same for each of the 4 galaxies
    assert reconstruction_loss(recon, x).item() == pytest.approx(0.25 * 14283)
    recon[0] = 0.0  # one perfect galaxy out of four
    assert reconstruction_loss(recon, x).item() == pytest.approx(0.75 * 0.25 * 14283)


def test_reconstruction_is_invariant_to_batch_order():
    torch.manual_seed(0)
    x, recon = torch.rand(16, 3, 69, 69), torch.rand(16, 3, 69, 69)
    perm = torch.randperm(16)
    assert torch.allclose(reconstruction_loss(recon, x), reconstruction_loss(recon[perm], x[perm]), rtol=1e-6)


# ----------------------------------------------------------------------------------------------------------
# KL divergence


def test_kl_is_exactly_zero_at_the_prior():
    mu, logvar = torch.zeros(8, 20), torch.zeros(8, 20)
    assert kl_divergence(mu, logvar).item() == 0.0
    assert torch.equal(kl_per_dim(mu, logvar), torch.zeros(20))


def test_kl_known_values():
    # KL(N(1, 1) || N(0, 1)) = 1/2 per dimension; KL(N(0, e^2) || N(0, 1)) = (e^2 - 1 - 2) / 2
    assert kl_divergence(torch.ones(3, 4), torch.zeros(3, 4)).item() == pytest.approx(2.0)
    assert kl_per_dim(torch.zeros(2, 1), torch.full((2, 1), 2.0)).item() == pytest.approx((math.e**2 - 3) / 2)


def test_kl_per_dim_sums_to_kl():
    torch.manual_seed(0)
    mu, logvar = torch.randn(32, 10), torch.randn(32, 10)
    per_dim = kl_per_dim(mu, logvar)
    assert per_dim.shape == (10,)
    assert torch.allclose(per_dim.sum(), kl_divergence(mu, logvar))
    assert kl_divergence(mu, logvar) > 0


finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)
logvars = st.floats(-60, 60, allow_nan=False, width=32)


@settings(max_examples=200, deadline=None)
@given(arrays("float32", (3, 5), elements=finite), arrays("float32", (3, 5), elements=logvars))
def test_kl_is_nonnegative_and_finite(mu, logvar):
    kl = kl_per_dim(torch.from_numpy(mu), torch.from_numpy(logvar))
    assert torch.isfinite(kl).all()
    assert (kl >= 0).all()
    if (mu != 0).any() or (logvar != 0).any():
        assert kl_divergence(torch.from_numpy(mu), torch.from_numpy(logvar)) >= 0


@settings(max_examples=100, deadline=None)
@given(st.floats(-(2**-10), 2**-10, allow_nan=False, width=32).filter(lambda v: v != 0))
def test_kl_is_positive_even_for_tiny_logvar(value):
    # exp(l) - 1 - l rounds to 0 or below for tiny l in float32; expm1 keeps the sign right.
    assert kl_per_dim(torch.zeros(1, 1), torch.full((1, 1), value)).item() >= 0


# ----------------------------------------------------------------------------------------------------------
# MMD


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_mmd_of_a_sample_with_itself_is_zero(kernel):
    torch.manual_seed(0)
    z = torch.randn(64, 20)
    assert mmd(z, z, kernel=kernel).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_mmd_is_symmetric_and_sees_a_shift(kernel):
    torch.manual_seed(0)
    x, y = torch.randn(128, 20), torch.randn(128, 20)
    assert mmd(x, y, kernel=kernel).item() == pytest.approx(mmd(y, x, kernel=kernel).item(), rel=1e-5)
    same = mmd(x, y, kernel=kernel)  # two samples of one distribution: only the estimator's offset
    shifted = mmd(x + 1.0, y, kernel=kernel)
    narrow = mmd(0.1 * x, y, kernel=kernel)  # codes collapsed near 0
    assert shifted > 3 * same and narrow > 3 * same


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_mmd_matches_its_definition_pair_by_pair_and_bandwidth_by_bandwidth(kernel):
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(7, 4, generator=g), 0.5 + torch.randn(5, 4, generator=g)  # two sizes: the blocks differ

    def k(a, b):  # the kernel of one pair, summed over the bandwidths, in float64
        d2 = float(((a.double() - b.double()) ** 2).sum())
        cs = [2 * 4 * s for s in DEFAULT_SCALES]
        return sum(c / (c + d2) if kernel == "imq" else math.exp(-d2 / c) for c in cs)

    def mean(a, b):
        return sum(k(p, q) for p in a for q in b) / (len(a) * len(b))

    expected = mean(x, x) + mean(y, y) - 2 * mean(x, y)
    assert mmd(x, y, kernel=kernel).item() == pytest.approx(expected, rel=1e-5)
    assert mmd(y, x, kernel=kernel).item() == pytest.approx(expected, rel=1e-5)


def test_mmd_trains_after_an_evaluation_under_inference_mode():
    scales = (0.3, 3.0)  # bandwidths first used here, under inference mode, as an evaluation would
    with torch.inference_mode():
        mmd(torch.randn(4, 3), torch.randn(4, 3), scales=scales)
    z = torch.randn(4, 3, requires_grad=True)
    mmd(z, torch.randn(4, 3), scales=scales).backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_kernel_matrix_is_one_on_the_diagonal_per_bandwidth():
    z = torch.randn(5, 3)
    k = kernel_matrix(z, z, scales=(0.5, 1.0, 2.0))
    assert torch.allclose(k.diagonal(), torch.full((5,), 3.0))
    assert torch.allclose(k, k.T)
    with pytest.raises(ValueError, match="kernel"):
        kernel_matrix(z, z, kernel="linear")


extreme = st.floats(-(2.0**100), 2.0**100, allow_nan=False, allow_infinity=False, width=32)  # ~1e30


@settings(max_examples=100, deadline=None)
@given(
    arrays("float32", (6, 4), elements=extreme),
    arrays("float32", (5, 4), elements=extreme),
    st.sampled_from(["imq", "rbf"]),
)
def test_mmd_is_finite_nonnegative_and_symmetric_for_any_input(x, y, kernel):
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    d_xy, d_yx = mmd(x, y, kernel=kernel), mmd(y, x, kernel=kernel)
    assert torch.isfinite(d_xy) and d_xy >= 0
    assert d_xy.item() == pytest.approx(d_yx.item(), abs=1e-5)


def test_mmd_gradient_is_finite_for_identical_codes():
    z = torch.zeros(8, 4, requires_grad=True)
    mmd(z, torch.randn(8, 4)).backward()
    assert torch.isfinite(z.grad).all()


# ----------------------------------------------------------------------------------------------------------
# ELBO and InfoVAE


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(8, 3, 69, 69, generator=g)
    recon = torch.rand(8, 3, 69, 69, generator=g)
    mu, logvar = torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g)
    return recon, x, mu, logvar


def test_elbo_objective_is_reconstruction_plus_beta_kl():
    recon, x, mu, logvar = _batch()
    expected = reconstruction_loss(recon, x) + 4.0 * kl_divergence(mu, logvar)
    assert torch.allclose(Objective("elbo", beta=4.0)((recon, mu, logvar), x), expected)


def test_mmd_objective_is_reconstruction_plus_lam_mmd_of_the_means():
    recon, x, mu, logvar = _batch()
    torch.manual_seed(3)
    got = Objective("mmd", lam=500.0)((recon, mu, logvar), x)
    torch.manual_seed(3)
    assert torch.allclose(got, reconstruction_loss(recon, x) + 500.0 * mmd(mu, torch.randn_like(mu)))


def test_infovae_weights_give_the_elbo_and_the_mmd_vae():
    recon, x, mu, logvar = _batch()
    beta, lam = infovae_weights(alpha=0.0, lam=1.0)  # InfoVAE's ELBO: KL weight 1, MMD weight 0
    assert (beta, lam) == (1.0, 0.0)
    assert torch.allclose(
        Objective("mmd", beta=beta, lam=lam)((recon, mu, logvar), x), Objective("elbo")((recon, mu, logvar), x)
    )
    assert infovae_weights(alpha=1.0, lam=500.0) == (0.0, 500.0)  # the blog's MMD-VAE


def test_infovae_refuses_a_negative_mmd_weight():
    with pytest.raises(ValueError, match=r"alpha \+ lam - 1 = -0\.5"):
        infovae_weights(alpha=-0.5, lam=1.0)
    with pytest.raises(ValueError, match="negative"):
        infovae_weights(alpha=0.5, lam=0.2)


def test_infovae_refuses_a_negative_kl_weight():
    with pytest.raises(ValueError, match=r"1 - alpha = -1"):
        infovae_weights(alpha=2.0, lam=10.0)


def test_popular_library_defaults_are_checked_not_assumed():
    # PyTorch-VAE's InfoVAE defaults alpha=-0.5, reg_weight=100 give positive weights: KL 1.5, MMD 98.5.
    assert infovae_weights(alpha=-0.5, lam=100.0) == (1.5, 98.5)
    # ...but the same alpha with a small lambda, as in the paper's tables (lam=1), flips the MMD sign.
    with pytest.raises(ValueError):
        infovae_weights(alpha=-0.5, lam=1.0)


def test_default_lam_makes_the_mmd_matter_without_drowning_the_reconstruction():
    torch.manual_seed(0)
    good_reconstruction = 0.05**2 * 3 * 69 * 69  # RMS error 0.05 per value, summed over a galaxy: ~36
    bunched = mmd(0.1 * torch.randn(64, 20), torch.randn(64, 20))  # codes at a tenth of the prior's spread
    matched = mmd(torch.randn(64, 20), torch.randn(64, 20))  # the estimator's offset for a perfect match
    assert LAM * bunched > 3 * good_reconstruction
    assert LAM * matched < good_reconstruction


# ----------------------------------------------------------------------------------------------------------
# Class-aware and perceptual terms


def test_class_aware_loss_is_cross_entropy():
    logits = torch.tensor([[10.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 2])
    assert class_aware_loss(logits, labels).item() == pytest.approx(F.cross_entropy(logits, labels).item())
    assert class_aware_loss(torch.zeros(4, 10), torch.arange(4)).item() == pytest.approx(math.log(10))


def test_perceptual_loss_with_random_weights():
    torch.manual_seed(0)
    loss = PerceptualLoss(pretrained=False)
    x = torch.rand(2, 3, 69, 69)
    assert loss(x, x).item() == 0.0
    recon = torch.rand(2, 3, 69, 69, requires_grad=True)
    value = loss(recon, x)
    value.backward()
    assert value > 0 and recon.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in loss.parameters())
    loss.train()
    assert not loss.training  # a frozen feature extractor stays in eval mode


def test_perceptual_loss_without_internet_says_what_to_do(monkeypatch):
    from torchvision.models import VGG16_Weights

    def no_network(*args, **kwargs):
        raise URLError("no route to host")

    monkeypatch.setattr(VGG16_Weights, "get_state_dict", no_network)
    with pytest.raises(
        RuntimeError, match=r"PerceptualLoss\(pretrained=True\) could not download the ImageNet VGG16"
    ) as e:
        PerceptualLoss()  # pretrained by default
    assert str(e.value).startswith("PerceptualLoss(pretrained=True) could not download")
    assert "(URLError: <urlopen error no route to host>)" in str(e.value)  # what went wrong, by name
    assert "needs the internet once. Use pretrained=False or drop the perceptual term" in str(e.value)


@pytest.mark.parametrize("layer", ["relu1_2", "relu2_2", "relu3_3"])
def test_perceptual_loss_and_callback_keep_only_the_imagenet_layers_they_use(monkeypatch, layer):
    from torchvision.models import VGG16_Weights
    from torchvision.models.vgg import cfgs, make_layers

    from galaxy_autoencoders.losses import VGG_LAYERS

    torch.manual_seed(3)  # stand-in "ImageNet" weights, as torchvision's checkpoint names them
    state = {f"features.{k}": v for k, v in make_layers(cfgs["D"]).state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # the classifier a perceptual loss never touches
    monkeypatch.setattr(VGG16_Weights, "get_state_dict", lambda self, *args, **kwargs: state)
    loss = PerceptualLoss(layer=layer, pretrained=True)
    assert len(loss.features) == VGG_LAYERS[layer]  # conv, ReLU and pool modules up to that ReLU, no more
    assert isinstance(loss.features[-1], torch.nn.ReLU)
    kept = loss.features.state_dict()
    assert kept and all(torch.equal(v, state[f"features.{k}"]) for k, v in kept.items())
    deeper = [k for k in state if k.startswith("features.") and int(k.split(".")[1]) >= VGG_LAYERS[layer]]
    assert deeper  # the checkpoint has deeper layers, and they were left out
    if layer == "relu2_2":  # the defaults: ImageNet weights up to relu2_2, for the loss and the training callback
        from galaxy_autoencoders.training import PerceptualCallback

        for default in (PerceptualLoss().features, PerceptualCallback().perceptual.features):
            assert default.state_dict().keys() == kept.keys()
            assert all(torch.equal(v, kept[k]) for k, v in default.state_dict().items())
    mean, std = (
        torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
        torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
    )
    x, black = torch.rand(2, 3, 69, 69), torch.zeros(2, 3, 69, 69)
    features = [loss.features((image - mean) / std) for image in (x, black)]  # ImageNet normalisation first
    expected = (features[0] - features[1]).pow(2).flatten(1).sum(1).mean()  # summed per image, mean over images
    torch.testing.assert_close(loss(x, black), expected)

"""Latent-space helpers: sigma steps, traversal codes, interpolation end points, the closed loop, class means."""

import numpy as np
import pytest
import torch

from galaxy_autoencoders.inference import decode, encode_all
from galaxy_autoencoders.latent import (
    class_mean_codes,
    closed_loop,
    interpolate,
    latent_stats,
    prior_codes,
    prior_stats,
    sigma_steps,
    slerp,
    traversal_codes,
)
from galaxy_autoencoders.metrics import kl_per_dimension
from galaxy_autoencoders.models import ModelConfig, build_model

TINY = ModelConfig(latent_size=5, widths=(4, 8, 8, 8))


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (12, 69, 69, 3), dtype=np.uint8)


def test_sigma_steps_are_symmetric_with_zero_in_the_middle():
    s = sigma_steps(3.0, 7)
    assert s.tolist() == [-3, -2, -1, 0, 1, 2, 3]
    assert torch.equal(sigma_steps(), s)  # the default: +-3 sigma in 7 steps, as the traversal figures say
    assert sigma_steps(0.5, 3).tolist() == [-0.5, 0, 0.5]  # the fewest steps, and less than one sigma, are fine
    assert len(sigma_steps(3.0, 9)) == 9
    for steps in (1, 2, 4, 6):  # too few, or no middle step
        with pytest.raises(ValueError, match="odd"):
            sigma_steps(3.0, steps)
    with pytest.raises(ValueError, match="positive"):
        sigma_steps(0.0, 7)


def test_traversal_codes_change_one_dimension_per_row():
    base, std = torch.arange(5.0), torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0])
    sigmas = sigma_steps(2.0, 5)
    codes = traversal_codes(base, [4, 1], std, sigmas)  # (2, 5, 5)
    assert codes.shape == (2, 5, 5)
    assert torch.equal(codes[0, :, 4], base[4] + sigmas * 3.0)
    assert torch.equal(codes[1, :, 1], base[1] + sigmas * 2.0)
    others = [d for d in range(5) if d != 4]
    assert torch.equal(codes[0][:, others], base[others].expand(5, 4))
    assert torch.equal(codes[:, 2], base.expand(2, 5))  # the middle column is the base code itself
    assert torch.equal(traversal_codes(base, [0], std, sigmas)[0, :, 0], base[0] + sigmas)  # the first dimension too
    with pytest.raises(ValueError, match=r"Latent dimensions \[5\] do not exist; this model has dimensions 0\.\.4\."):
        traversal_codes(base, [5], std, sigmas)


@pytest.mark.parametrize("method", ["linear", "spherical"])
def test_interpolation_starts_and_ends_exactly_at_the_two_codes(method):
    g = torch.Generator().manual_seed(1)
    z0, z1 = torch.randn(8, generator=g), torch.randn(8, generator=g)
    path = interpolate(z0, z1, steps=6, method=method)
    assert path.shape == (6, 8)
    torch.testing.assert_close(path[0], z0)
    torch.testing.assert_close(path[-1], z1)


def test_spherical_interpolation_keeps_the_radius_where_a_straight_line_cuts_inside():
    z0 = torch.tensor([3.0, 0.0, 0.0])
    z1 = torch.tensor([0.0, 3.0, 0.0])
    torch.testing.assert_close(interpolate(z0, z1, 5, "spherical").norm(dim=1), torch.full((5,), 3.0))
    assert interpolate(z0, z1, 5, "linear").norm(dim=1)[2] < 2.2  # 3 / sqrt(2)
    with pytest.raises(ValueError, match="method"):
        interpolate(z0, z1, 5, "cubic")


@pytest.mark.parametrize("angle", [0.5, 1.5, 2.5])  # radians between the two codes: narrow, wide, nearly opposite
@pytest.mark.parametrize("radius", [0.5, 3.0])  # codes shorter than 1 too
def test_spherical_interpolation_keeps_the_radius_at_every_angle(angle, radius):
    z0 = radius * torch.tensor([1.0, 0.0, 0.0, 0.0])
    z1 = radius * torch.tensor([np.cos(angle), np.sin(angle), 0.0, 0.0], dtype=torch.float32)
    path = slerp(z0, z1, torch.linspace(0, 1, 7))
    torch.testing.assert_close(path.norm(dim=1), torch.full((7,), radius))
    angles = torch.atan2(path[:, 1], path[:, 0])  # equal steps along the great circle
    torch.testing.assert_close(angles, torch.linspace(0, angle, 7), atol=1e-5, rtol=0)


def test_spherical_interpolation_of_parallel_or_opposite_codes_falls_back_to_a_straight_line():
    g = torch.Generator().manual_seed(0)
    t = torch.linspace(0, 1, 5)
    for _ in range(20):  # in floating point, cos(angle) of a code with itself often rounds to just above 1
        z = torch.randn(20, generator=g)
        for other in (z.clone(), 2 * z, -z):
            path = slerp(z, other, t)
            assert torch.isfinite(path).all()
            torch.testing.assert_close(path, z + t[:, None] * (other - z))


def test_interpolation_defaults_to_eight_steps_on_a_straight_line():
    z0, z1 = torch.zeros(3), torch.tensor([7.0, 0.0, 0.0])
    path = interpolate(z0, z1)  # the default a notebook's interpolation figure uses
    assert path.shape == (8, 3)
    torch.testing.assert_close(path[:, 0], torch.arange(8.0))


def test_the_shortest_paths_are_allowed_and_shorter_ones_refused():
    z0, z1 = torch.zeros(3), torch.ones(3)
    torch.testing.assert_close(interpolate(z0, z1, steps=2), torch.stack([z0, z1]))  # just the two ends
    with pytest.raises(ValueError, match="at least 2"):
        interpolate(z0, z1, steps=1)
    keys = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(closed_loop(keys[:2], 2), keys[:2])  # 2 keys, one frame each
    torch.testing.assert_close(closed_loop(keys, 3), keys)
    for bad_keys, frames in ((keys[:1], 4), (keys, 2)):  # one key is no loop; fewer frames than keys skips some
        with pytest.raises(ValueError, match="at least 2 keys and n_frames >= keys"):
            closed_loop(bad_keys, frames)


def test_prior_codes_default_to_seed_zero():
    assert torch.equal(prior_codes(4, 3), prior_codes(4, 3, seed=0))
    assert not torch.equal(prior_codes(4, 3), prior_codes(4, 3, seed=1))


def test_closed_loop_passes_through_every_key_and_returns_smoothly_to_the_start():
    keys = torch.randn(4, 6, generator=torch.Generator().manual_seed(2))
    path = closed_loop(keys, 32)
    assert path.shape == (32, 6)
    torch.testing.assert_close(path[::8], keys)
    steps = (path - path.roll(1, dims=0)).norm(dim=1)  # includes the step from the last frame back to the first
    assert steps.max() < 3 * steps.median()  # no jump where the loop closes


def test_class_means_average_each_class_and_name_missing_classes():
    mu = torch.tensor([[0.0, 2.0], [2.0, 4.0], [10.0, 10.0]])
    torch.testing.assert_close(class_mean_codes(mu, [0, 0, 1], 2), torch.tensor([[1.0, 3.0], [10.0, 10.0]]))
    with pytest.raises(ValueError, match=r"Classes \[2\]"):
        class_mean_codes(mu, [0, 0, 1], 3)
    # Galaxy10's labels are stored as uint8: they index the classes as well as int64 labels do.
    torch.testing.assert_close(
        class_mean_codes(mu, np.array([0, 0, 1], dtype=np.uint8), 2), class_mean_codes(mu, [0, 0, 1], 2)
    )


def test_latent_stats_rank_dimensions_by_kl(images):
    torch.manual_seed(0)
    model = build_model(TINY)
    stats = latent_stats(model, images)
    kl = kl_per_dimension(model, images)
    assert stats.order.tolist() == torch.argsort(kl, descending=True).tolist()
    assert stats.top(2) == stats.order[:2].tolist()
    assert stats.mean.shape == stats.std.shape == (5,)
    ae = build_model(ModelConfig(latent_size=5, widths=(4, 8, 8, 8), kind="ae"))
    ae_stats = latent_stats(ae, images)
    assert ae_stats.kl is None  # an AutoEncoder is ranked by the variance of its codes across the galaxies
    assert ae_stats.order.tolist() == torch.argsort(encode_all(ae, images).var(0), descending=True).tolist()
    assert latent_stats(model, images[:2]).std.shape == (5,)  # two galaxies are enough to measure a spread
    with pytest.raises(ValueError, match="at least 2 galaxies"):
        latent_stats(model, images[:1])


def test_prior_stats_and_prior_codes():
    stats = prior_stats(4)
    assert stats.mean.tolist() == [0.0] * 4 and stats.std.tolist() == [1.0] * 4 and stats.top(2) == [0, 1]
    assert torch.equal(prior_codes(4, 3, seed=5), prior_codes(4, 3, seed=5))


def test_decode_is_eval_mode_and_restores_training_mode():
    model = build_model(TINY).train()
    z = torch.randn(3, 5)
    out = decode(model, z)
    assert out.shape == (3, 3, 69, 69) and model.training
    torch.testing.assert_close(out, decode(model, z))  # BatchNorm in eval mode: the same code, the same galaxy

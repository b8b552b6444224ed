"""The arrays behind the figures: grid layout, traversal centre = base decode, interpolation ends, GIF frames."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from galaxy_autoencoders.display import to_hwc_uint8
from galaxy_autoencoders.inference import decode, encode_all
from galaxy_autoencoders.latent import latent_stats
from galaxy_autoencoders.models import ModelConfig, build_model
from galaxy_autoencoders.plots import (
    arithmetic_codes,
    arithmetic_strip,
    class_mean_array,
    comparison_array,
    interpolation_strip,
    latent_traversal,
    latent_walk_frames,
    plot_class_means,
    plot_interpolation,
    plot_intervals,
    plot_latent_arithmetic,
    plot_prior_samples,
    plot_traversal,
    prior_sample_array,
    reconstruction_comparison,
    save_figure,
    save_latent_walk_gif,
    save_traversal,
)

TINY = ModelConfig(latent_size=5, widths=(4, 8, 8, 8))
T = 69 + 2  # a tile and its gap


def _model(seed: int) -> torch.nn.Module:
    """A tiny untrained VAE whose decoder reacts strongly to the code, so different codes give different images."""
    torch.manual_seed(seed)
    model = build_model(TINY).eval()
    with torch.no_grad():
        model.decoder.fc.weight.mul_(30)
    return model


@pytest.fixture(scope="module")
def models():
    return {"ELBO": _model(0), "MMD": _model(1)}


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (20, 69, 69, 3), dtype=np.uint8)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def tile(grid: np.ndarray, row: int, col: int) -> np.ndarray:
    return grid[row * T : row * T + 69, col * T : col * T + 69]


# ----------------------------------------------------------------------------------------------------------
# The seed's comparison figure


def test_comparison_array_has_originals_on_top_and_one_row_per_model(images):
    recons = {"ELBO": torch.rand(8, 3, 69, 69), "MMD": torch.rand(8, 3, 69, 69)}
    grid = comparison_array(images, recons, n=6)
    assert grid.dtype == np.uint8 and grid.shape == (3 * T - 2, 6 * T - 2, 3)
    for k in range(6):
        assert np.array_equal(tile(grid, 0, k), images[k])
        assert np.array_equal(tile(grid, 1, k), to_hwc_uint8(recons["ELBO"])[k])
        assert np.array_equal(tile(grid, 2, k), to_hwc_uint8(recons["MMD"])[k])
    assert grid[69:71].max() == 0  # the gap between rows is black


def test_comparison_array_takes_float_originals_and_refuses_too_few(images):
    floats = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    assert np.array_equal(comparison_array(floats, {}, n=3), comparison_array(images, {}, n=3))
    with pytest.raises(ValueError, match="'MMD'"):
        comparison_array(images, {"MMD": torch.rand(2, 3, 69, 69)}, n=6)


def test_reconstruction_comparison_draws_that_array_with_row_labels(images):
    recons = {"ELBO": torch.rand(6, 3, 69, 69), "MMD": torch.rand(6, 3, 69, 69)}
    fig = reconstruction_comparison(images, recons, n=6)
    ax = fig.axes[0]
    assert np.array_equal(ax.images[0].get_array(), comparison_array(images, recons, n=6))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["original", "ELBO", "MMD"]


def test_save_figure_writes_atomically_and_needs_a_suffix(tmp_path, images):
    fig = reconstruction_comparison(images, {}, n=2)
    path = save_figure(fig, tmp_path / "sub" / "cmp.png")
    assert Image.open(path).format == "PNG"
    assert [p.name for p in path.parent.iterdir()] == ["cmp.png"]  # no temporary file left behind
    with pytest.raises(ValueError, match="has no extension; the figure can be written as .png"):
        save_figure(fig, tmp_path / "cmp")


# ----------------------------------------------------------------------------------------------------------
# Traversals


def test_traversal_grid_shape_and_centre_column_is_the_mean_code_decoded(models, images):
    model = models["ELBO"]
    stats = latent_stats(model, images)
    tr = latent_traversal(model, images, k=3, n_sigma=2.0, steps=5, stats=stats)
    assert tr.tiles.shape == (3, 5, 69, 69, 3) and tr.grid.shape == (3 * T - 2, 5 * T - 2, 3)
    assert tr.dims == stats.top(3)  # the most informative dimensions, by KL
    assert tr.sigmas.tolist() == [-2, -1, 0, 1, 2]
    centre = to_hwc_uint8(decode(model, stats.mean[None]))[0]
    for row in range(3):
        assert np.array_equal(tr.tiles[row, 2], centre)
    assert len({tr.tiles[0, s].tobytes() for s in range(5)}) == 5  # each step a different galaxy


def test_traversal_around_a_chosen_galaxy_centres_on_its_reconstruction(models, images):
    model = models["MMD"]
    tr = latent_traversal(model, images, dims=[4, 0], steps=3, base=7)
    assert tr.dims == [4, 0]
    recon = to_hwc_uint8(decode(model, encode_all(model, images[7:8])))[0]
    assert np.array_equal(tr.tiles[0, 1], recon) and np.array_equal(tr.tiles[1, 1], recon)


def test_plot_traversal_labels_rows_by_model_and_dimension_and_columns_in_sigma(models, images):
    trs = {name: latent_traversal(m, images, k=2, n_sigma=3, steps=7) for name, m in models.items()}
    ax = plot_traversal(trs).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-3σ", "-2σ", "-1σ", "0σ", "+1σ", "+2σ", "+3σ"]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert len(rows) == 4 and rows[0].startswith(f"ELBO z{trs['ELBO'].dims[0]} (") and rows[2].startswith("MMD z")
    assert ax.images[0].get_array().shape == (4 * T - 2, 7 * T - 2, 3)


def test_save_traversal_writes_a_png(models, images, tmp_path):
    path = save_traversal(models, images, tmp_path / "traversal.png", k=2, steps=3)
    assert Image.open(path).format == "PNG"


# ----------------------------------------------------------------------------------------------------------
# Interpolation, prior samples, class means


@pytest.mark.parametrize("method", ["linear", "spherical"])
def test_interpolation_ends_are_the_two_galaxies_decodes(models, images, method):
    model = models["ELBO"]
    strip = interpolation_strip(model, images, 2, 9, steps=6, method=method)
    assert strip.shape == (6, 69, 69, 3)
    ends = to_hwc_uint8(decode(model, encode_all(model, images[[2, 9]])))
    assert np.array_equal(strip[0], ends[0]) and np.array_equal(strip[-1], ends[1])


def test_plot_interpolation_has_inputs_then_a_row_per_model_and_method(models, images):
    ax = plot_interpolation(models, images, 2, 9, steps=5).axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows == ["inputs 2 → 9", "ELBO linear", "ELBO spherical", "MMD linear", "MMD spherical"]
    grid = ax.images[0].get_array()
    assert np.array_equal(tile(grid, 0, 0), images[2]) and np.array_equal(tile(grid, 0, 4), images[9])
    assert np.array_equal(tile(grid, 2, 4), interpolation_strip(models["ELBO"], images, 2, 9, 5, "spherical")[4])


def test_prior_samples_repeat_per_seed(models):
    a = prior_sample_array(models["MMD"], n=4, seed=3)
    assert a.shape == (4, 69, 69, 3) and np.array_equal(a, prior_sample_array(models["MMD"], n=4, seed=3))
    assert not np.array_equal(a, prior_sample_array(models["MMD"], n=4, seed=4))
    assert plot_prior_samples(models, n=4).axes[0].images[0].get_array().shape == (2 * T - 2, 4 * T - 2, 3)


def test_class_means_and_arithmetic(models, images):
    labels = np.arange(20) % 4
    model = models["ELBO"]
    assert class_mean_array(model, images, labels, n_classes=4).shape == (4, 69, 69, 3)
    means = torch.randn(4, 5)
    codes = arithmetic_codes(means, start=1, plus=3, minus=0, strengths=(0, 1, 2))
    torch.testing.assert_close(codes[0], means[1])
    torch.testing.assert_close(codes[2], means[1] + 2 * (means[3] - means[0]))
    strip = arithmetic_strip(model, images, labels, 1, 3, 0, strengths=(0, 1), n_classes=4)
    assert np.array_equal(strip[0], class_mean_array(model, images, labels, n_classes=4)[1])  # s=0: class 1's mean
    assert plot_class_means(models, images, labels, n_classes=4).axes[0].images[0].get_array().shape[1] == 4 * T - 2
    fig = plot_latent_arithmetic(models, images, labels, 1, 3, 0, strengths=(0, 1), n_classes=4, names="abcd")
    assert fig._suptitle.get_text() == "b  +  s × (d  −  a)"


# ----------------------------------------------------------------------------------------------------------
# The latent walk GIF


def test_latent_walk_frames_pass_through_the_key_galaxies_side_by_side(models, images):
    frames = latent_walk_frames(models, images, n_frames=12, keys=[1, 5, 8], scale=2)
    side = 2 * 69
    assert frames.shape == (12, 14 + side, 2 * side + 4, 3) and frames.dtype == np.uint8
    for p, model in enumerate(models.values()):
        keys = to_hwc_uint8(decode(model, encode_all(model, images[[1, 5, 8]])))
        for k in range(3):
            panel = frames[4 * k, 14:, p * (side + 4) : p * (side + 4) + side]
            assert np.array_equal(panel[::2, ::2], keys[k])  # every 4th frame is a key galaxy, scaled up 2x
    assert frames[:, :14].max() > 0  # the model names are written above the panels


def test_latent_walk_gif_has_the_frames_asked_for_and_stays_small(models, images, tmp_path):
    path = save_latent_walk_gif(models, images, tmp_path / "walk.gif", n_frames=24, keys=4, fps=12)
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == 24 and gif.info["loop"] == 0
        assert gif.info["duration"] == 80  # 1/12 s in the GIF's hundredths
        shown = np.stack([np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(gif)])
    assert path.stat().st_size <= 2 * 1024 * 1024
    frames = latent_walk_frames(models, images, n_frames=24, keys=4)
    assert np.abs(shown.astype(int) - frames).mean() < 2  # the same pictures, up to the 256-colour palette
    assert frames.shape[1:] == (14 + 207, 2 * 207 + 4, 3)  # by default each panel is 3 x 69 = 207 pixels wide


def test_plot_intervals_draws_each_difference_with_its_interval_and_puts_a_small_scale_in_the_label():
    small = {
        "seed +0": {"mean": 0.00023, "low": 0.00019, "high": 0.00028},
        "seed +1": {"mean": -1e-5, "low": -9e-5, "high": 7e-5},
    }
    ax = plot_intervals(small, "ELBO minus MMD")
    assert ax.get_xlabel() == "ELBO minus MMD ($\\times 10^{-4}$)"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["seed +0", "seed +1"]  # the first row on top
    points = ax.lines[0].get_xdata()
    np.testing.assert_allclose(points, [2.3, -0.1])  # in units of 10^-4
    bars = ax.collections[0].get_segments()  # each interval from its low to its high, in the same units
    np.testing.assert_allclose([(seg[0][0], seg[1][0]) for seg in bars], [(1.9, 2.8), (-0.9, 0.7)])
    large = plot_intervals({"seed +0": {"mean": 0.075, "low": 0.053, "high": 0.101}}, "fine-detail error")
    assert large.get_xlabel() == "fine-detail error" and large.lines[0].get_xdata()[0] == pytest.approx(0.075)
    with pytest.raises(ValueError, match="not finished yet"):  # a study with no pair yet: a sentence, not numpy's
        plot_intervals({}, "ELBO minus MMD")
    plt.close("all")

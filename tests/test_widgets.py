"""The latent explorer's callbacks without a browser: sliders, reset, random sample, encode, static fallback."""

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

from galaxy_autoencoders.data import GalaxyDataError
from galaxy_autoencoders.display import to_hwc_uint8
from galaxy_autoencoders.inference import decode, encode_all
from galaxy_autoencoders.latent import latent_stats, prior_stats
from galaxy_autoencoders.models import ModelConfig, build_model
from galaxy_autoencoders.widgets import LatentExplorer, png_bytes

TINY = ModelConfig(latent_size=5, widths=(4, 8, 8, 8))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = build_model(TINY).eval()
    with torch.no_grad():
        model.decoder.fc.weight.mul_(30)  # an untrained decoder that reacts visibly to its code
    return model


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (16, 69, 69, 3), dtype=np.uint8)


def shown(explorer) -> np.ndarray:
    """The explorer's image widget as uint8 (69 * scale, 69 * scale, 3)."""
    return np.asarray(Image.open(io.BytesIO(explorer.image.value)).convert("RGB"))


def expected(model, code, scale=3) -> np.ndarray:
    return to_hwc_uint8(decode(model, code[None]))[0].repeat(scale, 0).repeat(scale, 1)


def test_sliders_are_the_top_k_dimensions_in_sigma(model, images):
    explorer = LatentExplorer(model, images, k=3, n_sigma=2.5)
    stats = latent_stats(model, images)
    assert explorer.dims == stats.top(3)
    assert [s.description for s in explorer.sliders] == [f"z{d}" for d in stats.top(3)]
    assert all(s.min == -2.5 and s.max == 2.5 and s.value == 0 for s in explorer.sliders)
    assert np.array_equal(shown(explorer), expected(model, stats.mean))  # starts at the mean code


def test_moving_a_slider_changes_only_its_dimension_and_redraws(model, images):
    explorer = LatentExplorer(model, images, k=3)
    before, code_before = explorer.image.value, explorer.code.clone()
    d = explorer.dims[1]
    explorer.sliders[1].value = 2.0
    after = explorer.code
    torch.testing.assert_close(after[d], explorer.stats.mean[d] + 2.0 * explorer.stats.std[d])
    others = [j for j in range(5) if j != d]
    assert torch.equal(after[others], code_before[others])
    assert explorer.image.value != before
    assert np.array_equal(shown(explorer), expected(model, after))
    assert explorer.status.value == f"Showing the mean code, then moved by hand: z{d}."


def test_reset_button_restores_the_mean_code_and_its_image(model, images):
    explorer = LatentExplorer(model, images, k=3)
    first = explorer.image.value
    explorer.sliders[0].value = -3.0
    explorer.sliders[2].value = 1.5
    assert explorer.image.value != first
    explorer.reset_button.click()
    assert explorer.image.value == first
    assert explorer.slider_values().tolist() == [0, 0, 0] and torch.equal(explorer.code, explorer.stats.mean)


def test_random_button_shows_a_prior_sample_with_one_redraw(model, images, monkeypatch):
    explorer = LatentExplorer(model, images, k=3, seed=7)
    draws = []
    monkeypatch.setattr(explorer, "render", lambda: draws.append(explorer.code.clone()))
    explorer.random_button.click()
    z = torch.randn(5, generator=torch.Generator().manual_seed(7))
    assert len(draws) == 1 and torch.equal(draws[0], z)  # k sliders moved, one decode
    positions = ((z - explorer.stats.mean) / explorer.stats.std)[explorer.dims].clamp(-3, 3)
    np.testing.assert_allclose(explorer.slider_values(), positions.numpy(), atol=1e-6)
    assert "prior" in explorer.status.value or explorer.source.startswith("a sample")


def test_encode_button_sets_the_sliders_to_the_galaxys_code(model, images):
    explorer = LatentExplorer(model, images, k=4, n_sigma=10)
    explorer.galaxy.value = 5
    explorer.encode_button.click()
    mu = encode_all(model, images[5:6])[0]
    torch.testing.assert_close(explorer.code, mu)
    positions = ((mu - explorer.stats.mean) / explorer.stats.std)[explorer.dims]
    np.testing.assert_allclose(explorer.slider_values(), positions.numpy(), atol=1e-5)
    assert np.array_equal(shown(explorer), expected(model, mu))
    original = np.asarray(Image.open(io.BytesIO(explorer.original.value)).convert("RGB"))
    assert np.array_equal(original[::3, ::3], images[5])
    assert "galaxy #5" in explorer.status.value


def test_galaxies_with_labels_name_the_class_and_no_images_means_the_prior(model, images):
    from galaxy_autoencoders.data import Galaxies

    galaxies = Galaxies(images, np.arange(16) % 2, ("round", "spiral"), None, "test", None)
    explorer = LatentExplorer(model, galaxies, k=2)
    explorer.encode(3)
    assert "galaxy #3 (spiral)" in explorer.status.value
    prior = LatentExplorer(model, k=2)
    assert prior.dims == [0, 1] and prior.encode_button.disabled
    with pytest.raises(ValueError, match="without images"):
        prior.encode(0)
    with pytest.raises(ValueError, match="shape"):
        prior.set_code(torch.zeros(4))


def test_slider_values_at_and_beyond_the_range_are_clamped_and_decode_to_finite_images(model, images):
    explorer = LatentExplorer(model, images, k=3, n_sigma=2.0)
    mean, std = explorer.stats.mean, explorer.stats.std
    d, slider = explorer.dims[0], explorer.sliders[0]
    for asked, clamped in [(2.0, 2.0), (-2.0, -2.0), (50.0, 2.0), (-50.0, -2.0), (np.inf, 2.0), (-np.inf, -2.0)]:
        slider.value = asked
        assert slider.value == clamped, asked
        torch.testing.assert_close(explorer.code[d], mean[d] + clamped * std[d])
        assert torch.isfinite(decode(model, explorer.code[None])).all()
        assert np.array_equal(shown(explorer), expected(model, explorer.code))
    before, image = explorer.code.clone(), explorer.image.value
    slider.value = np.nan  # ipywidgets lets NaN through; the explorer puts the slider back
    assert slider.value == -2.0 and torch.equal(explorer.code, before) and explorer.image.value == image


def test_k_beyond_the_latent_size_gives_one_slider_per_dimension(model, images):
    explorer = LatentExplorer(model, images, k=12)  # TINY has 5 latent dimensions
    assert sorted(explorer.dims) == list(range(5)) and len(explorer.sliders) == 5
    for j, slider in enumerate(explorer.sliders):  # each slider moves its own dimension, and only it
        before = explorer.code.clone()
        slider.value = 1.0
        changed = torch.nonzero(explorer.code != before).flatten().tolist()
        assert changed == [explorer.dims[j]]
    assert LatentExplorer(model, k=12).dims == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="k >= 1"):
        LatentExplorer(model, images, k=0)
    with pytest.raises(ValueError, match="codes of 7 dimensions, but this model's latent size is 5"):
        LatentExplorer(model, images, stats=prior_stats(7))


def test_nan_images_codes_and_missing_galaxies_are_refused_by_name(model, images):
    floats = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255  # (16, 3, 69, 69) in [0, 1]
    floats[4, 0, 7, 7] = float("nan")
    with pytest.raises(GalaxyDataError, match=r"LatentExplorer\(images\): 1 of 16 .*NaN or inf.*image 4"):
        LatentExplorer(model, floats, k=2)
    explorer = LatentExplorer(model, images, k=2)
    code, image, original = explorer.code.clone(), explorer.image.value, explorer.original.value
    with pytest.raises(ValueError, match="NaN or inf"):
        explorer.set_code(torch.full((5,), float("nan")))
    with pytest.raises(IndexError, match=r"no galaxy #16: this explorer has galaxies 0\.\.15"):
        explorer.encode(16)
    assert torch.equal(explorer.code, code) and explorer.image.value == image and explorer.original.value == original


def test_display_offers_the_widget_a_static_png_and_stable_text(model, images):
    explorer = LatentExplorer(model, images, k=2, name="ELBO-VAE")
    bundle = explorer._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == explorer.view.model_id
    assert (
        bundle["text/plain"]
        == f"LatentExplorer(ELBO-VAE: sliders z{explorer.dims[0]}, z{explorer.dims[1]}, each -3..+3 sigma)"
    )
    static = Image.open(io.BytesIO(base64.b64decode(bundle["image/png"])))
    # Without a kernel: a row per slider (two here), five settings each, 138-pixel tiles under a label band.
    assert static.size == (5 * (138 + 4) - 4, 2 * (138 + 14 + 4) - 4)
    tiles = np.asarray(static.convert("RGB"))[14:152]  # the first row's tiles, below its labels
    first, middle = tiles[:, :138], tiles[:, 2 * 142 : 2 * 142 + 138]
    assert not np.array_equal(first, middle)  # -2σ and 0σ decode to different galaxies


def test_png_bytes_scales_by_whole_pixels():
    image = np.random.default_rng(1).integers(0, 256, (69, 69, 3), dtype=np.uint8)
    decoded = np.asarray(Image.open(io.BytesIO(png_bytes(image, scale=2))))
    assert decoded.shape == (138, 138, 3) and np.array_equal(decoded[1::2, ::2], image)

"""Checks against the noiseless truth (galaxy_autoencoders.truth: render_truth, noise_floor, fine-detail error)."""

import numpy as np
import pytest
import torch
from torch import nn

from galaxy_autoencoders.data import Galaxies
from galaxy_autoencoders.metrics import high_frequency_power, sharpness_ratio
from galaxy_autoencoders.truth import fine_detail_error, noise_floor, render_noisy_copies, render_truth, truth_report


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


def test_fine_detail_error_is_zero_for_the_truth_one_for_a_smooth_picture_and_higher_for_noise():
    truth = _truths()
    assert fine_detail_error(truth, truth) == pytest.approx(0.0)
    a_little, more = fine_detail_error(_noisy(truth, 0.02), truth), fine_detail_error(_noisy(truth, 0.08), truth)
    assert 0.0 < a_little < more
    smooth = truth.mean((2, 3), keepdim=True).expand_as(truth)  # each galaxy's mean colour: no detail at all
    assert fine_detail_error(smooth, truth) == pytest.approx(1.0)
    # Half of each galaxy's detail, in its place: a quarter of the power left as error.
    assert fine_detail_error(0.5 * truth + 0.5 * smooth, truth) == pytest.approx(0.25)
    # The sharpness ratio rewards noise: a noisy copy looks "sharper" than the galaxy itself. This one does not.
    assert sharpness_ratio(_noisy(truth, 0.08), truth) > 1.0
    assert fine_detail_error(_noisy(truth, 0.08), truth) > fine_detail_error(truth, truth)


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
    assert smoother["fine_detail_error"] < copy["fine_detail_error"]  # the noise it leaves out is no detail
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

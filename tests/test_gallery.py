"""The ELBO-vs-MMD gallery (gallery.py): galaxies chosen by their true parameters and their truth's detail, the
fine-detail maps, and the figure's rows."""

import matplotlib
import numpy as np
import pytest
import torch

from galaxy_autoencoders.gallery import MIN_KNOTS, detail_gallery, detailed_galaxies, fine_detail

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _points(n: int, seed: int = 0) -> np.ndarray:
    """n uint8 pictures (n, 69, 69, 3): a grey sky with 1 + i bright dots in picture i (more dots, more detail)."""
    rng = np.random.default_rng(seed)
    images = np.full((n, 69, 69, 3), 40, dtype=np.uint8)
    for i in range(n):
        for y, x in rng.integers(5, 64, (1 + i, 2)):
            images[i, y, x] = 255
    return images


def test_the_gallery_picks_only_galaxies_with_arms_or_knots_most_detailed_first():
    truth = _points(8)  # picture i has 1 + i dots: the later, the more detail
    params = {"n_arms": np.array([0, 2, 0, 0, 3, 0, 0, 2.0]), "n_knots": np.array([0, 0, MIN_KNOTS, 1, 0, 2, 9, 0])}
    # candidates: 1, 4, 7 (arms) and 2, 6 (knots); 0, 3 and 5 have neither, however detailed
    assert detailed_galaxies(params, truth, n=4).tolist() == [7, 6, 4, 2]
    with pytest.raises(ValueError, match="Only 5 of these 8 galaxies have arms or knots"):
        detailed_galaxies(params, truth, n=6)


def test_fine_detail_is_zero_for_a_flat_sky_and_sees_a_point_not_its_blur():
    flat = np.full((1, 69, 69, 3), 90, dtype=np.uint8)
    assert fine_detail(flat).abs().max() < 1e-6  # the edges too: a grey sky is no detail
    point = _points(1)
    sharp = fine_detail(point)
    assert sharp.shape == (1, 69, 69) and sharp.max() > 0.5
    x = torch.from_numpy(point).permute(0, 3, 1, 2).float() / 255
    blurred = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
    assert fine_detail(blurred).sum() < 0.5 * sharp.sum()


def test_the_gallery_has_a_row_per_picture_and_per_detail_map_at_readable_size():
    truth = _points(3)
    recons = {"ELBO": torch.rand(3, 3, 69, 69), "MMD": torch.rand(3, 3, 69, 69)}
    fig = detail_gallery(truth, truth, recons, detail_of=["MMD"], size=1.7)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["input", "truth (no noise)", "ELBO", "MMD", "truth: fine detail", "MMD: fine detail"]
    image = fig.axes[0].get_images()[0].get_array()
    assert image.shape[:2] == (6 * 71 - 2, 3 * 71 - 2)
    assert fig.get_size_inches()[0] >= 3 * 1.7  # 1.7 inches a galaxy: >= 120 pixels at the notebooks' 72 dpi
    plt.close(fig)
    with pytest.raises(ValueError, match="same 3 galaxies"):
        detail_gallery(truth, truth, {"ELBO": torch.rand(2, 3, 69, 69)})

"""The GalSim galaxies: deterministic, Galaxy10-like, and their true parameters match what the pictures show."""

import numpy as np
import pytest

from galaxy_autoencoders.data import synthetic

pytest.importorskip("galsim")


@pytest.fixture(scope="module")
def rendered():
    """Ten galaxies of each class, rendered once for the module."""
    return synthetic.render_galaxies(100, seed=7, workers=1, progress=False)


def _second_moment_axis_ratio(image: np.ndarray) -> float:
    """b/a of the light distribution from its second moments (1 = round)."""
    light = image.astype(float).mean(axis=-1)
    light = np.where(light > 40, light, 0.0)  # the galaxy, not the sky noise far out
    y, x = np.indices(light.shape)
    w = light / light.sum()
    cx, cy = (w * x).sum(), (w * y).sum()
    cov = np.cov(np.stack([x.ravel() - cx, y.ravel() - cy]), aweights=w.ravel())
    lo, hi = np.linalg.eigvalsh(cov)
    return float(np.sqrt(lo / hi))


def test_shapes_types_and_balanced_classes(rendered):
    images, labels, params = rendered
    assert images.shape == (100, 69, 69, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64
    assert np.bincount(labels, minlength=10).tolist() == [10] * 10
    assert set(params) == set(synthetic.PARAM_NAMES)
    assert all(v.shape == (100,) and np.isfinite(v).all() for v in params.values())


def test_same_seed_gives_identical_bytes_whatever_the_worker_count():
    a = synthetic.render_galaxies(300, seed=3, workers=1, progress=False)
    b = synthetic.render_galaxies(300, seed=3, workers=2, progress=False)
    assert a[0].tobytes() == b[0].tobytes()
    assert np.array_equal(a[1], b[1])
    assert all(np.array_equal(a[2][k], b[2][k]) for k in a[2])
    c = synthetic.render_galaxies(20, seed=4, workers=1, progress=False)
    assert c[0].tobytes() != a[0][:20].tobytes()


def test_class_counts_follow_weights_and_reject_bad_weights():
    assert synthetic.class_counts(23).sum() == 23
    counts = synthetic.class_counts(1000, [2, 1, 1, 1, 1, 1, 1, 1, 1, 0])
    assert counts[0] == 200 and counts[9] == 0 and counts.sum() == 1000
    with pytest.raises(ValueError, match="10 non-negative"):
        synthetic.class_counts(10, [1, 2, 3])
    with pytest.raises(ValueError, match="10 non-negative"):
        synthetic.class_counts(10, [-1] + [1] * 9)


def test_galaxies_are_centred_on_a_dark_sky_and_fill_the_stamp(rendered):
    images = rendered[0].astype(float).mean(axis=-1)  # (N, 69, 69) brightness
    centre = images[:, 30:39, 30:39].mean(axis=(1, 2))
    corners = np.concatenate([images[:, :8, :8], images[:, -8:, -8:]], axis=1).mean(axis=(1, 2))
    assert (centre > 4 * corners + 20).all()
    assert np.median(corners) < 25  # the sky is dark, as in SDSS JPEGs
    # Galaxy Zoo scaling: the visible galaxy covers a good part of the stamp, never a dot, never the whole.
    lit = (images > 40).mean(axis=(1, 2))
    assert 0.03 < np.median(lit) < 0.5


def test_classes_show_their_defining_shapes_and_colours(rendered):
    images, labels, params = rendered
    ratio = np.array([_second_moment_axis_ratio(im) for im in images])
    round_, cigar, edge_on = ratio[labels == 1], ratio[labels == 3], ratio[labels == 6]
    assert round_.min() > 0.75
    assert np.median(edge_on) < 0.4 and np.median(cigar) < 0.65
    # Red bulges, blue disks: smooth galaxies have more red (i) than blue (g) light; loose spirals less.
    red_over_blue = images[..., 0].astype(float).sum(axis=(1, 2)) / images[..., 2].astype(float).sum(axis=(1, 2))
    assert red_over_blue[labels == 1].min() > red_over_blue[labels == 9].max()
    assert (params["g_r"][labels == 1] > params["g_r"][labels == 9].max()).all()


def test_parameters_follow_the_class_definitions(rendered):
    _, labels, p = rendered
    spirals = np.isin(labels, [7, 8, 9])
    assert (p["n_arms"][spirals] >= 2).all() and (p["n_arms"][~spirals] == 0).all()
    tight, medium, loose = (p["arm_pitch_deg"][labels == c] for c in (7, 8, 9))
    assert tight.max() < medium.min() and medium.max() < loose.min()
    assert (p["inclination_deg"][np.isin(labels, [4, 5, 6])] > 80).all()
    assert (p["bulge_fraction"][np.isin(labels, [1, 2])] > 0.75).all()
    assert (p["bulge_fraction"][labels == 6] < 0.05).all()
    assert (0 <= p["position_angle_deg"]).all() and (p["position_angle_deg"] < 180).all()
    # Small galaxies on the sky are blurrier in the stamp: the seeing covers more pixels.
    assert np.corrcoef(np.log(p["r90_arcsec"]), np.log(p["psf_fwhm_px"]))[0, 1] < -0.8


def test_position_angle_turns_the_image():
    rng = np.random.default_rng(0)
    p = synthetic.sample_parameters(3, rng)
    p["snr"] = 1e6
    angles = []
    for pa in (0.0, 90.0):
        img = synthetic.render_one(dict(p, position_angle_deg=pa), np.random.default_rng(1)).astype(float).mean(-1)
        angles.append(np.argmax([img[34, :].sum(), img[:, 34].sum()]))
    assert angles[0] != angles[1]  # the long axis moved from one image axis to the other


def test_asinh_stretch_keeps_black_black_and_colours_when_saturating():
    assert synthetic.asinh_rgb(np.zeros((3, 5, 5))).max() == 0
    bands = np.ones((3, 5, 5))
    bands[:, 2, 2] = [0.5, 1.0, 2.0]  # very bright g, r, i (red) centre
    rgb = synthetic.asinh_rgb(bands * 100)
    assert rgb[2, 2, 0] == 255 and rgb[2, 2, 2] < rgb[2, 2, 0]  # saturated but still red, not white


def test_windows_gets_a_clear_error(monkeypatch):
    monkeypatch.setattr(synthetic.sys, "platform", "win32")
    with pytest.raises(RuntimeError, match="Windows"):
        synthetic.render_galaxies(4, progress=False)


def test_a_script_without_a_main_guard_renders_and_does_not_hang(tmp_path):
    # What most people write first: load_galaxies at the top level of a script, no `if __name__ == "__main__":`.
    import subprocess
    import sys

    script = tmp_path / "first_try.py"
    script.write_text(
        "import sys\nfrom galaxy_autoencoders import load_galaxies\n"
        "g = load_galaxies('synthetic', n=256, data_dir=sys.argv[1], progress=False)\nprint('loaded', len(g))\n"
    )
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "data")], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "loaded 256"  # rendered by 2 workers (n // 128), which ran nothing of the script

"""Galaxy10-like galaxies rendered with GalSim, with the true parameters that real data never gives us.

Each galaxy is built the way astronomers describe one:

* an old, red **bulge** (a Sersic profile; n ~ 4 is de Vaucouleurs) with its own axis ratio,
* an old **disk** (exponential; edge-on disks use GalSim's `InclinedExponential`, which has a real thickness),
* a young, blue component of **spiral arms** (an m-armed logarithmic spiral with a given pitch angle laid on the
  disk) and **star-forming knots**, drawn in NumPy and handed to GalSim as an `InterpolatedImage`,

all sheared to the disk's axis ratio and position angle, convolved with an SDSS-like Moffat PSF, observed in the
g, r and i bands with sky noise, and turned into an RGB picture with the asinh stretch of SDSS colour JPEGs
(Lupton et al. 2004; R = i, G = r, B = g).

Like Galaxy Zoo cutouts, every stamp is scaled to its galaxy: the 90%-light radius R90 is about 17 of the 69
pixels whatever the galaxy's angular size, so galaxies that are small on the sky look blurrier (the 1.4 arcsec
seeing covers more stamp pixels), not smaller.

`render_galaxies(n, seed)` is deterministic: galaxy i depends only on (seed, i), never on how the work was split
between processes.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from .checks import STAMP

# Bump when the rendering changes: cached files carry the version in their name, so stale ones are not reused.
SYNTHETIC_VERSION = 1

OVERSAMPLE = 2  # the young component is drawn on a grid this much finer than the stamp
BANDS = ("g", "r", "i")


# The true parameters stored with every synthetic galaxy (all floats; angles in degrees).
PARAM_NAMES = (
    "r90_arcsec",  # angular size on the sky; sets how many stamp pixels the seeing covers
    "psf_fwhm_px",  # seeing FWHM in stamp pixels (bigger = blurrier)
    "bulge_fraction",  # bulge-to-total flux ratio in r
    "sersic_n",  # bulge Sersic index
    "bulge_q",  # bulge axis ratio b/a
    "disk_q",  # apparent disk axis ratio b/a (1 = face-on)
    "inclination_deg",  # disk inclination (0 = face-on, 90 = edge-on)
    "position_angle_deg",  # major-axis angle, 0..180
    "n_arms",  # number of spiral arms (0 = none)
    "arm_pitch_deg",  # spiral pitch angle (small = tightly wound); 0 without arms
    "arm_fraction",  # share of the disk light in arms and knots
    "n_knots",  # star-forming knots
    "g_r",  # total colour g - r in magnitudes (red bulges, blue disks)
    "snr",  # signal-to-noise of the whole galaxy in r
)


@dataclass(frozen=True)
class ClassRanges:
    """Parameter ranges (low, high) that define one Galaxy10 class."""

    bulge_fraction: tuple[float, float]
    sersic_n: tuple[float, float]
    bulge_q: tuple[float, float]
    inclination_deg: tuple[float, float]
    arms: tuple[int, ...] = (0,)  # arm counts to draw from
    pitch_deg: tuple[float, float] = (0.0, 0.0)
    arm_fraction: tuple[float, float] = (0.0, 0.0)
    knots: tuple[int, int] = (0, 0)


# One row per Galaxy10 SDSS class, in its order (the names are galaxy10.GALAXY10_SDSS_CLASSES).
CLASS_RANGES = (
    # 0 Disk, Face-on, No Spiral
    ClassRanges((0.05, 0.3), (1.5, 3.0), (0.7, 1.0), (0, 55), knots=(0, 8), arm_fraction=(0.0, 0.1)),
    # 1 Smooth, Completely round
    ClassRanges((0.85, 1.0), (3.5, 5.5), (0.85, 1.0), (0, 30)),
    # 2 Smooth, in-between round
    ClassRanges((0.8, 1.0), (2.5, 4.5), (0.5, 0.8), (40, 65)),
    # 3 Smooth, Cigar shaped
    ClassRanges((0.5, 0.8), (1.5, 3.0), (0.25, 0.45), (72, 82)),
    # 4 Disk, Edge-on, Rounded Bulge
    ClassRanges((0.25, 0.5), (2.5, 4.0), (0.75, 1.0), (82, 90)),
    # 5 Disk, Edge-on, Boxy Bulge
    ClassRanges((0.25, 0.45), (0.6, 1.0), (0.45, 0.65), (82, 90)),
    # 6 Disk, Edge-on, No Bulge
    ClassRanges((0.0, 0.04), (1.0, 2.0), (0.5, 1.0), (84, 90)),
    # 7 Disk, Face-on, Tight Spiral
    ClassRanges((0.15, 0.35), (2.0, 4.0), (0.75, 1.0), (0, 45), (2, 2, 3), (8, 14), (0.5, 0.7), (10, 30)),
    # 8 Disk, Face-on, Medium Spiral
    ClassRanges((0.1, 0.3), (1.5, 3.5), (0.75, 1.0), (0, 45), (2, 2, 3), (16, 24), (0.55, 0.75), (15, 35)),
    # 9 Disk, Face-on, Loose Spiral
    ClassRanges((0.0, 0.2), (1.0, 3.0), (0.75, 1.0), (0, 45), (2, 3, 4), (26, 40), (0.6, 0.8), (20, 45)),
)

# Colours (magnitudes) of the three stellar populations: old bulge, old disk, young arms and knots.
POPULATION_COLOURS = {"bulge": (0.80, 0.40), "disk": (0.50, 0.25), "young": (0.05, -0.05)}  # (g-r, r-i)

SDSS_SEEING_ARCSEC = 1.4  # typical r-band PSF FWHM (galaxy10.md)
R90_PX = 16.7  # Galaxy Zoo cutouts: R90 is about 17 of the 69 pixels
# Lupton asinh stretch: per-channel weights chosen so ellipticals look yellow-orange and arms blue, as in SDSS.
RGB_WEIGHTS = (1.0, 1.15, 1.9)  # applied to (i, r, g)
STRETCH_Q = 12.0


def class_counts(n: int, class_weights: Sequence[float] | None = None) -> np.ndarray:
    """Number of galaxies per class for n galaxies: int (10,), balanced unless weights are given."""
    w = np.ones(len(CLASS_RANGES)) if class_weights is None else np.asarray(class_weights, dtype=float)
    if w.shape != (len(CLASS_RANGES),) or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError(
            f"class_weights must be 10 non-negative numbers, one per class, not {class_weights!r}; "
            "pass None for a balanced set."
        )
    exact = n * w / w.sum()
    counts = np.floor(exact).astype(int)
    # Largest remainders get the leftover galaxies, so the counts always add up to n.
    counts[np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]] += 1
    return counts


def sample_parameters(label: int, rng: np.random.Generator) -> dict[str, float]:
    """Draw one galaxy's true parameters from its class's ranges."""
    c = CLASS_RANGES[label]
    u = rng.uniform
    n_arms = int(rng.choice(c.arms))
    inclination = u(*c.inclination_deg)
    # A thick disk never looks thinner than about 0.1 even when seen exactly edge-on.
    disk_q = max(math.cos(math.radians(inclination)), 0.1)
    r90_arcsec = math.exp(u(math.log(3.5), math.log(15.0)))
    seeing = float(np.clip(rng.normal(SDSS_SEEING_ARCSEC, 0.2), 1.0, 2.0))
    pixel_arcsec = r90_arcsec / (R90_PX * u(0.85, 1.15))
    return {
        "r90_arcsec": r90_arcsec,
        "psf_fwhm_px": round(seeing / pixel_arcsec, 1),  # quantised so PSFs can be reused
        "bulge_fraction": u(*c.bulge_fraction),
        # Quantised so GalSim can reuse its Sersic tables (building one costs milliseconds).
        "sersic_n": round(u(*c.sersic_n) * 4) / 4,
        "bulge_q": u(*c.bulge_q),
        "disk_q": disk_q,
        "inclination_deg": inclination,
        "position_angle_deg": u(0.0, 180.0),
        "n_arms": float(n_arms),
        "arm_pitch_deg": u(*c.pitch_deg) if n_arms else 0.0,
        "arm_fraction": u(*c.arm_fraction),
        "n_knots": float(rng.integers(c.knots[0], c.knots[1] + 1)),
        "snr": math.exp(u(math.log(150.0), math.log(1500.0))),
    }


def _band_fluxes(colour: tuple[float, float]) -> np.ndarray:
    """Flux in (g, r, i) for unit r flux of a population with colours (g-r, r-i) in magnitudes."""
    g_r, r_i = colour
    return np.array([10 ** (-0.4 * g_r), 1.0, 10 ** (0.4 * r_i)])


def _young_component(p: dict[str, float], disk_hlr: float, rng: np.random.Generator) -> np.ndarray:
    """Arms and knots on the fine grid, float (69*2+1, 69*2+1), summing to 1 (before projection to the sky)."""
    size = STAMP * OVERSAMPLE + 1
    half = size // 2
    coords = (np.arange(size) - half) / OVERSAMPLE  # stamp pixels, centre at 0
    y, x = np.meshgrid(coords, coords, indexing="ij")
    # Sky -> disk plane: undo the position angle, then stretch the minor axis by 1/q.
    pa = math.radians(p["position_angle_deg"])
    xr = x * math.cos(pa) + y * math.sin(pa)
    yr = (-x * math.sin(pa) + y * math.cos(pa)) / p["disk_q"]
    r = np.hypot(xr, yr) + 1e-6
    theta = np.arctan2(yr, xr)
    scale_length = disk_hlr / 1.678  # exponential: half-light radius = 1.678 scale lengths
    disk = np.exp(-r / scale_length)
    inner = 1.0 - np.exp(-((r / (0.6 * scale_length)) ** 2))  # arms start outside the bulge
    young = np.zeros_like(disk)
    if p["n_arms"]:
        winding = 1.0 / math.tan(math.radians(p["arm_pitch_deg"]))
        phase = p["n_arms"] * (theta - winding * np.log(r / scale_length)) + rng.uniform(0, 2 * np.pi)
        young = disk * inner * ((1 + np.cos(phase)) / 2) ** 4
    n_knots = int(p["n_knots"])
    if n_knots:
        # Knots sit where the young light is: on the arms, or scattered over the disk when there are none.
        weight = (young if p["n_arms"] else disk * inner).ravel()
        picks = rng.choice(weight.size, size=n_knots, p=weight / weight.sum())
        knots = np.zeros(weight.size)
        np.add.at(knots, picks, rng.exponential(1.0, n_knots))
        knots = gaussian_filter(knots.reshape(disk.shape), sigma=0.6 * OVERSAMPLE, mode="constant")
        young = young / max(young.sum(), 1e-12) + 0.5 * knots / knots.sum() if p["n_arms"] else knots
    return young / young.sum()


@functools.cache
def _gsparams():
    """GalSim accuracy settings: looser than the defaults (invisible at 8 bits) and several times faster."""
    import galsim

    return galsim.GSParams(folding_threshold=2e-2, maxk_threshold=5e-3)


@functools.lru_cache(maxsize=256)
def _psf(fwhm_px: float):
    """SDSS-like Moffat PSF, cached: GalSim works out its Fourier extent once per (quantised) FWHM."""
    import galsim

    return galsim.Moffat(beta=3.5, fwhm=fwhm_px, gsparams=_gsparams())


def render_one(p: dict[str, float], rng: np.random.Generator, noise: bool | np.random.Generator = True) -> np.ndarray:
    """Render one galaxy from its parameters: uint8 (69, 69, 3) RGB = (i, r, g) after an asinh stretch.

    noise=False: the galaxy without its sky noise, its noiseless truth. The noise is the last draw from rng, so
    the same rng state gives the same galaxy with and without it. noise=<a Generator>: the same galaxy with
    other sky noise, drawn from that generator."""
    import galsim

    gsp = _gsparams()
    psf = _psf(p["psf_fwhm_px"])
    pa = p["position_angle_deg"] * galsim.degrees
    # Sizes that put R90 of the whole galaxy near 17 pixels: R90 ~ 2.3 hlr for a disk, ~3 hlr for a bulge.
    disk_hlr = R90_PX / 2.3
    bulge_hlr = R90_PX / (3.0 + 0.5 * p["sersic_n"]) * (0.5 + 0.5 * p["bulge_fraction"])

    bt, arm_frac = p["bulge_fraction"], p["arm_fraction"]
    young_flux = (1 - bt) * arm_frac if (p["n_arms"] or p["n_knots"]) else 0.0
    fluxes = {"bulge": bt, "disk": 1 - bt - young_flux, "young": young_flux}

    components = {}
    if fluxes["bulge"] > 0:
        bulge = galsim.Sersic(n=p["sersic_n"], half_light_radius=bulge_hlr, trunc=8 * bulge_hlr, gsparams=gsp)
        components["bulge"] = bulge.shear(q=p["bulge_q"], beta=pa)
    if fluxes["disk"] > 0:
        if p["inclination_deg"] > 70:
            disk = galsim.InclinedExponential(
                inclination=p["inclination_deg"] * galsim.degrees,
                half_light_radius=disk_hlr,
                scale_h_over_r=0.1,
                gsparams=gsp,
            ).rotate(pa)
        else:
            disk = galsim.Exponential(half_light_radius=disk_hlr, gsparams=gsp).shear(q=p["disk_q"], beta=pa)
        components["disk"] = disk
    if fluxes["young"] > 0:
        young = _young_component(p, disk_hlr, rng)
        components["young"] = galsim.InterpolatedImage(
            galsim.Image(young, scale=1.0 / OVERSAMPLE),
            x_interpolant="linear",
            pad_factor=1.5,
            calculate_stepk=False,
            calculate_maxk=False,
            gsparams=gsp,
        )

    bands = np.zeros((3, STAMP, STAMP))
    for name, profile in components.items():
        drawn = galsim.Convolve(profile, psf, gsparams=gsp).drawImage(nx=STAMP, ny=STAMP, scale=1.0).array
        bands += fluxes[name] * drawn[None] / profile.flux * _band_fluxes(POPULATION_COLOURS[name])[:, None, None]

    # Sky noise: the same per-pixel sigma in every band, set by the galaxy's r-band signal-to-noise.
    # The total r flux is 1, spread over roughly the pixels inside R90, so SNR = 1 / (sigma sqrt(npix)).
    npix = math.pi * R90_PX**2
    if noise is not False:
        bands += (rng if noise is True else noise).normal(0.0, 1.0 / (p["snr"] * math.sqrt(npix)), size=bands.shape)
    return asinh_rgb(bands)


def asinh_rgb(bands: np.ndarray, q: float = STRETCH_Q, brightness: float = 1.6) -> np.ndarray:
    """Lupton et al. (2004) asinh stretch: float (3, H, W) g, r, i fluxes -> uint8 (H, W, 3) RGB = (i, r, g)."""
    rgb = bands[::-1] * np.asarray(RGB_WEIGHTS)[:, None, None]  # (i, r, g)
    peak = np.percentile(rgb.mean(axis=0), 99.5)
    rgb = rgb * (brightness / max(peak, 1e-12))
    rgb = np.clip(rgb, 0.0, None)
    intensity = rgb.mean(axis=0)
    # asinh(Q I) / asinh(Q) compresses the bright core and lifts the faint outskirts, as SDSS JPEGs do.
    safe = np.maximum(intensity, 1e-12)
    factor = np.where(intensity > 0, np.arcsinh(q * safe) / (safe * math.asinh(q)), 0.0)
    rgb = rgb * factor
    # Saturated pixels keep their colour: scale the triplet down instead of clipping each channel.
    over = np.maximum(rgb.max(axis=0), 1.0)
    rgb = rgb / over
    return np.round(rgb.transpose(1, 2, 0) * 255).astype(np.uint8)


def _labels(n: int, seed: int, class_weights: Sequence[float] | None) -> np.ndarray:
    """Class of each galaxy: int64 (n,), counts from class_counts, order shuffled by the seed."""
    labels = np.repeat(np.arange(len(CLASS_RANGES)), class_counts(n, class_weights))
    return np.random.default_rng([seed, 0xC1A55]).permutation(labels).astype(np.int64)


def _render_chunk(args: tuple[int, int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Worker: render galaxies start.. of the given labels; returns images (k, 69, 69, 3) and params (k, P)."""
    seed, start, labels = args
    images = np.empty((len(labels), STAMP, STAMP, 3), dtype=np.uint8)
    params = np.empty((len(labels), len(PARAM_NAMES)))
    for k, label in enumerate(labels):
        rng = np.random.default_rng([seed, start + k])  # galaxy i depends only on (seed, i)
        p = sample_parameters(int(label), rng)
        images[k] = render_one(p, rng)
        p["g_r"] = _total_colour(p)
        params[k] = [p[name] for name in PARAM_NAMES]
    return images, params


def _total_colour(p: dict[str, float]) -> float:
    """g - r of the whole galaxy from its populations' fluxes."""
    bt = p["bulge_fraction"]
    young = (1 - bt) * p["arm_fraction"] if (p["n_arms"] or p["n_knots"]) else 0.0
    g = sum(
        f * _band_fluxes(POPULATION_COLOURS[name])[0]
        for name, f in (("bulge", bt), ("disk", 1 - bt - young), ("young", young))
    )
    return -2.5 * math.log10(g)


@contextmanager
def _workers_skip_main():
    """Start spawned workers without re-running the user's script in them.

    A spawned worker first imports the parent's __main__ module (so that functions defined there can be sent to
    it). A script that calls load_galaxies("synthetic") at top level, without `if __name__ == "__main__":`, would
    then call it again in every worker, which may not start processes of its own: the workers die and the
    parent waits. The workers only run `_render_chunk` of this module, so they need nothing from __main__:
    while they start, __main__ does not say where it came from, and multiprocessing imports nothing for it.
    """
    main = sys.modules.get("__main__")
    saved = {key: main.__dict__[key] for key in ("__file__", "__spec__") if main is not None and key in main.__dict__}
    try:
        for key in saved:
            setattr(main, key, None) if key == "__spec__" else delattr(main, key)
        yield
    finally:
        for key, value in saved.items():
            setattr(main, key, value)


def render_galaxies(
    n: int,
    seed: int = 0,
    class_weights: Sequence[float] | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Render n galaxies: images uint8 (n, 69, 69, 3), labels int64 (n,), params name -> float (n,)."""
    if sys.platform.startswith("win"):
        raise RuntimeError(
            "Rendering synthetic galaxies needs GalSim, which has no Windows wheel. Use WSL, Colab or Binder, or "
            "copy a file made elsewhere with `galaxy-ae data synthetic --out FILE` and load it by path."
        )
    try:
        import galsim  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "Rendering synthetic galaxies needs GalSim: `pip install galsim` (Linux and macOS wheels exist)."
        ) from err
    if n < 1:
        raise ValueError(f"n must be a positive number of galaxies, not {n}.")
    labels = _labels(n, seed, class_weights)
    workers = min(workers or os.cpu_count() or 1, max(1, n // 128))
    chunk = 64
    jobs = [(seed, start, labels[start : start + chunk]) for start in range(0, n, chunk)]

    from ..progress import Bar

    bar = Bar(n, "Rendering galaxies", unit="galaxies", disable=not progress)
    results = []
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: forking a process that already runs torch's thread pools can hang. An executor, not a
        # Pool: a worker that dies makes it raise (BrokenProcessPool) where a Pool would wait for ever.
        context = multiprocessing.get_context("spawn")
        with _workers_skip_main(), ProcessPoolExecutor(workers, mp_context=context) as pool:
            for images, params in pool.map(_render_chunk, jobs):
                results.append((images, params))
                bar.update(len(images))
    else:
        for job in jobs:
            results.append(_render_chunk(job))
            bar.update(len(job[2]))
    bar.close()
    images = np.concatenate([r[0] for r in results])
    table = np.concatenate([r[1] for r in results])
    return images, labels, {name: table[:, j] for j, name in enumerate(PARAM_NAMES)}

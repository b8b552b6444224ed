"""Checking functions for the notebooks' exercises: each says whether an answer is right and, when it is not, gives
a hint. They never show the answer; the notebooks' collapsed "Solution" blocks do.

Each check takes the student's function or value, compares it with the package's own implementation on fresh
inputs, prints one line ("Right: ..." or "Not yet: ...") and returns a `Verdict`, true when right, which a test
can assert and a notebook cell does not print a second time.
"""

from __future__ import annotations

import numpy as np
import torch


class Verdict:
    """A check's result: true when the answer is right. The check has printed why; a notebook shows nothing more."""

    def __init__(self, right: bool):
        self.right = bool(right)

    def __bool__(self) -> bool:
        return self.right

    def __repr__(self) -> str:
        return f"Verdict(right={self.right})"

    def _ipython_display_(self) -> None:
        pass  # the line the check printed says it


def _report(ok: bool, right: str, hint: str) -> Verdict:
    print(f"Right: {right}" if ok else f"Not yet: {hint}")
    return Verdict(ok)


PLACEHOLDER_HINT = "replace the ... with your answer, then run the cell again."


def _missing(*values) -> bool:
    """True (after saying so) while an answer is still the notebook's placeholder, ... (or None)."""
    if any(v is Ellipsis or v is None for v in values):
        print(f"Not yet: {PLACEHOLDER_HINT}")
        return True
    return False


def _call(function, *args):
    """function(*args), or the exception it raised (a placeholder raises NotImplementedError)."""
    try:
        return function(*args)
    except NotImplementedError:
        return NotImplementedError("the function still raises NotImplementedError: replace it with your code")
    except Exception as err:  # a student's bug: report it as a hint, not a traceback
        return err


def _failed(result) -> str | None:
    """The hint for a call that raised: the placeholder's own words, or the error's type and message."""
    if isinstance(result, NotImplementedError):
        return str(result)
    return f"{type(result).__name__}: {result}" if isinstance(result, Exception) else None


def _close(got, expected: torch.Tensor, **tolerance) -> bool:
    """got is a tensor of expected's shape (a scalar may be shaped (1,)) and close to it."""
    if not torch.is_tensor(got) or got.numel() != expected.numel():
        return Verdict(False)
    return torch.allclose(got.detach().float().reshape(expected.shape), expected.float(), **tolerance)


def _samples(seed: int, shape=(16, 6)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


# -- 01 and 02: data and baselines --------------------------------------------------------------------------


def check_class_counts(counts, labels, n_classes: int = 10) -> Verdict:
    """Exercise: how many galaxies of each class? counts: a sequence of n_classes numbers."""
    if _missing(counts):
        return Verdict(False)
    expected = np.bincount(np.asarray(labels), minlength=n_classes)
    counts = np.asarray(counts).ravel()
    if counts.shape != expected.shape:
        return _report(False, "", f"give {n_classes} numbers, one per class (got {counts.size}); try np.bincount.")
    return _report(
        np.array_equal(counts, expected),
        f"{int(expected.sum())} galaxies, the most common class has {int(expected.max())}.",
        "compare with the class shares of notebook 01's bar chart; each label is a class index 0..9.",
    )


def check_mean_image_mse(mse: float, x, mean_image) -> Verdict:
    """Exercise: the MSE per pixel value of predicting the training galaxies' mean image for every validation
    galaxy. x: validation galaxies, float (N, 3, H, W); mean_image: (3, H, W)."""
    if _missing(mse):
        return Verdict(False)
    expected = float((torch.as_tensor(x).double() - torch.as_tensor(mean_image).double()).pow(2).mean())
    ok = abs(float(mse) - expected) <= 1e-6 + 1e-4 * expected
    return _report(
        ok,
        f"{expected:.4f}; every model must beat this to have learned anything.",
        "average the squared difference over all galaxies, channels and pixels (not summed per galaxy).",
    )


def check_reconstruction_loss(function) -> Verdict:
    """Exercise: the package's reconstruction loss, squared error summed over each image, averaged over the batch:
    function(recon, x) with both (B, C, H, W) -> scalar tensor."""
    from .losses import reconstruction_loss

    recon, x = (torch.rand(4, 3, 5, 5, generator=torch.Generator().manual_seed(s)) for s in (1, 2))
    got = _call(function, recon, x)
    if error := _failed(got):
        return _report(False, "", error)
    expected = reconstruction_loss(recon, x)
    ok = torch.is_tensor(got) and got.shape == () and _close(got, expected, rtol=1e-5)
    ratio = float(got) / float(expected) if torch.is_tensor(got) and got.numel() == 1 else None
    hint = "sum over each image's values (dims 1, 2, 3), then take the mean over the batch."
    if ratio is not None and abs(ratio * 75 - 1) < 1e-3:  # a mean per value instead of a sum per image
        hint = "that is the mean per pixel value; the loss sums over each image (3 x 5 x 5 = 75 values here)."
    return _report(ok, "the same number as losses.reconstruction_loss.", hint)


# -- 03: the VAE --------------------------------------------------------------------------------------------


def check_reparameterize(function) -> Verdict:
    """Exercise: z = mu + sigma * eps with sigma = exp(logvar / 2): function(mu, logvar) -> z, differentiable."""
    mu = torch.full((20000, 2), 3.0, requires_grad=True)
    logvar = torch.full((20000, 2), np.log(0.25), requires_grad=True)  # sigma 0.5
    torch.manual_seed(0)
    z = _call(function, mu, logvar)
    if error := _failed(z):
        return _report(False, "", error)
    if not torch.is_tensor(z) or z.shape != mu.shape:
        return _report(False, "", "return a tensor of the same shape as mu.")
    if not z.requires_grad:
        return _report(False, "", "no gradient reaches mu and logvar: build z from them, do not sample z directly.")
    mean, std = float(z.detach().mean()), float(z.detach().std())
    if abs(mean - 3.0) > 0.02:
        return _report(False, "", f"the samples' mean is {mean:.2f}, not mu = 3: add mu.")
    if abs(std - 0.5) > 0.02:
        hint = "the spread is exp(logvar), the variance: sigma is exp(logvar / 2)."
        return _report(False, "", hint if abs(std - 0.25) < 0.02 else f"the samples' std is {std:.2f}, not 0.5.")
    return _report(True, "mean 3.00 and standard deviation 0.50, and gradients flow to mu and logvar.", "")


def check_kl(function) -> Verdict:
    """Exercise: KL(N(mu, exp(logvar)) || N(0, 1)), summed over latent dimensions, averaged over the batch:
    function(mu, logvar) with (B, L) each -> scalar."""
    from .losses import kl_divergence

    mu, logvar = _samples(3)
    got = _call(function, mu, logvar)
    if error := _failed(got):
        return _report(False, "", error)
    expected = kl_divergence(mu, logvar)
    ok = _close(got, expected, rtol=1e-4)
    zero = _call(function, torch.zeros(3, 4), torch.zeros(3, 4))
    if ok and not (torch.is_tensor(zero) and abs(float(zero)) < 1e-6):
        ok = False
    return _report(
        ok,
        "it matches losses.kl_divergence, and is 0 for a cloud equal to the prior.",
        "0.5 * (mu^2 + exp(logvar) - logvar - 1), summed over dims (dim 1), averaged over the batch (dim 0).",
    )


def check_honest_beta(beta: float, mse_per_value: float) -> Verdict:
    """Exercise: the beta that matches a Gaussian decoder whose noise is the model's own residual:
    beta = 2 sigma_x^2 with sigma_x^2 = the MSE per pixel value. A value rounded to 2 significant digits passes."""
    if _missing(beta):
        return Verdict(False)
    expected = 2 * mse_per_value
    return _report(
        abs(float(beta) - expected) <= 0.05 * expected,
        f"beta = 2 x {mse_per_value:.4f} = {expected:.4f}, about {1 / expected:.0f} times smaller than 1.",
        "multiply minus the ELBO by 2 sigma_x^2: the KL's weight becomes 2 sigma_x^2; sigma_x^2 is the MSE.",
    )


def check_beta_blur(learn, detail_error, dls, truth, beta: float) -> Verdict:
    """Exercise: an ELBO-VAE trained with this beta (learn, from fit_profile or vae_learner) and its fine-detail
    error against truth (the validation galaxies of dls without noise). Right when both are; says how it compares
    with a perfectly smooth picture's 1."""
    if _missing(learn, detail_error):
        return Verdict(False)
    from .truth import truth_report

    settings = getattr(learn, "hparams", {})
    if settings.get("objective") != "elbo" or settings.get("beta") != beta:
        return _report(
            False, "", f"train an ELBO-VAE with beta={beta:g}: fit_profile(dls, 'elbo', profile, beta={beta:g})."
        )
    expected = truth_report(learn.model, dls, truth)["fine_detail_error"]
    side = "above" if expected > 1 else "below"
    return _report(
        abs(float(detail_error) - expected) <= 1e-3 * max(expected, 1.0),
        f"at beta = {beta:g} the fine-detail error is {expected:.2f}, {side} a perfectly smooth picture's 1.",
        "truth_report(learn.model, dls, truth)['fine_detail_error'] scores the model against the noiseless truth.",
    )


# -- 04: MMD ------------------------------------------------------------------------------------------------


def check_mmd(function, unbiased: bool = False) -> Verdict:
    """Exercise: MMD^2 of samples x (N, L) and y (M, L) with `losses.kernel_matrix` (biased: all pairs; unbiased:
    leaving out each point's pair with itself): function(x, y) -> scalar."""
    from .losses import mmd

    x, y = _samples(5, (12, 3))
    got = _call(function, x, y + 0.5)
    if error := _failed(got):
        return _report(False, "", error)
    expected = mmd(x, y + 0.5, unbiased=unbiased)
    ok = _close(got, expected, atol=1e-5)
    other = mmd(x, y + 0.5, unbiased=not unbiased)
    close_to_other = _close(got, other, atol=1e-5)
    hint = "kernel_matrix(x, x).mean() + kernel_matrix(y, y).mean() - 2 * kernel_matrix(x, y).mean()"
    if unbiased:
        hint = "leave the diagonal out of the x-x and y-y means: (sum - trace) / (n * (n - 1))."
    if close_to_other:
        hint = "that is the other estimator: " + ("leave out the diagonal." if unbiased else "keep the diagonal.")
    return _report(ok, f"it matches losses.mmd(..., unbiased={unbiased}).", hint)


# -- 05 and 06: the latent space ----------------------------------------------------------------------------


def check_lerp(function) -> Verdict:
    """Exercise: linear interpolation between codes z0, z1 (L,) at fractions t (T,): function(z0, z1, t) -> (T, L)."""
    z0, z1 = torch.zeros(4), torch.arange(4.0)
    t = torch.tensor([0.0, 0.25, 1.0])
    got = _call(function, z0, z1, t)
    if error := _failed(got):
        return _report(False, "", error)
    expected = z0 + t[:, None] * (z1 - z0)
    ok = torch.is_tensor(got) and got.shape == expected.shape and _close(got, expected)
    return _report(ok, "t = 0 gives z0, t = 1 gives z1, and the steps between are even.", "z0 + t[:, None] * (z1 - z0)")


def check_class_mean_code(code, mu, labels, cls: int) -> Verdict:
    """Exercise: the mean latent code of the galaxies of class cls: code (L,), from mu (N, L) and labels (N,)."""
    if _missing(code):
        return Verdict(False)
    labels = np.asarray(labels)
    expected = torch.as_tensor(mu)[torch.as_tensor(labels == cls)].float().mean(0)
    code = torch.as_tensor(code).float()
    ok = code.shape == expected.shape and torch.allclose(code, expected, atol=1e-5)
    return _report(
        ok,
        f"the average of {int((labels == cls).sum())} codes.",
        "select the rows of mu whose label is cls, then .mean(0).",
    )


def check_neighbours(rows, mu, row: int, k: int) -> Verdict:
    """Exercise: the k galaxies whose latent means are nearest to galaxy `row`'s (Euclidean), not counting itself."""
    if _missing(rows):
        return Verdict(False)
    mu = np.asarray(mu, dtype=np.float64)
    distances = np.linalg.norm(mu - mu[row], axis=1)
    distances[row] = np.inf
    expected = set(np.argsort(distances, kind="stable")[:k].tolist())
    got = {int(r) for r in np.asarray(rows).ravel()}
    return _report(
        got == expected,
        f"the {k} nearest codes to galaxy {row}.",
        "compute the distance of every code to mu[row], leave out the galaxy itself, keep the k smallest.",
    )

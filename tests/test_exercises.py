"""The notebooks' exercise checkers: a right answer passes, the usual wrong ones fail with the matching hint, and
an untouched placeholder (raise NotImplementedError) says so instead of crashing."""

import numpy as np
import torch

from galaxy_autoencoders import exercises as ex
from galaxy_autoencoders.losses import kernel_matrix


def _placeholder(*args):
    raise NotImplementedError


def test_reconstruction_loss(capsys):
    assert ex.check_reconstruction_loss(lambda r, x: (r - x).pow(2).flatten(1).sum(1).mean())
    assert not ex.check_reconstruction_loss(lambda r, x: (r - x).pow(2).mean())
    assert "mean per pixel value" in capsys.readouterr().out
    assert not ex.check_reconstruction_loss(_placeholder)
    assert "NotImplementedError" in capsys.readouterr().out


def test_reparameterize(capsys):
    assert ex.check_reparameterize(lambda mu, logvar: mu + torch.exp(0.5 * logvar) * torch.randn_like(mu))
    assert not ex.check_reparameterize(lambda mu, logvar: mu + torch.exp(logvar) * torch.randn_like(mu))
    assert "sigma is exp(logvar / 2)" in capsys.readouterr().out
    assert not ex.check_reparameterize(lambda mu, logvar: torch.normal(mu.detach(), 0.5))
    assert "no gradient" in capsys.readouterr().out


def test_kl(capsys):
    def kl(mu, logvar):
        return (0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)).sum(1).mean()

    assert ex.check_kl(kl)
    assert not ex.check_kl(lambda mu, logvar: (0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)).mean())
    assert not ex.check_kl(lambda mu, logvar: (0.5 * (mu.pow(2) + logvar.exp() - logvar)).sum(1).mean())


def test_mmd_biased_and_unbiased(capsys):
    def biased(x, y):
        return kernel_matrix(x, x).mean() + kernel_matrix(y, y).mean() - 2 * kernel_matrix(x, y).mean()

    def unbiased(x, y):
        n, m = len(x), len(y)
        kxx, kyy = kernel_matrix(x, x), kernel_matrix(y, y)
        within = (kxx.sum() - kxx.trace()) / (n * (n - 1)) + (kyy.sum() - kyy.trace()) / (m * (m - 1))
        return within - 2 * kernel_matrix(x, y).mean()

    assert ex.check_mmd(biased) and ex.check_mmd(unbiased, unbiased=True)
    capsys.readouterr()
    assert not ex.check_mmd(biased, unbiased=True)
    assert "other estimator" in capsys.readouterr().out


def test_values_and_codes(capsys):
    labels = np.array([0, 1, 1, 3, 3, 3])
    assert ex.check_class_counts(np.bincount(labels, minlength=10), labels)
    assert not ex.check_class_counts([1, 2, 3], labels)
    x, mean = torch.rand(5, 3, 4, 4), torch.rand(3, 4, 4)
    assert ex.check_mean_image_mse(float((x - mean).pow(2).mean()), x, mean)
    assert not ex.check_mean_image_mse(float((x - mean).pow(2).flatten(1).sum(1).mean()), x, mean)
    assert ex.check_honest_beta(0.0144, 0.0072) and not ex.check_honest_beta(0.0072, 0.0072)
    assert ex.check_honest_beta(0.014, 0.0072) and not ex.check_honest_beta(0.0072**0.5 * 2, 0.0072)  # sigma, not var
    assert ex.check_lerp(lambda z0, z1, t: z0 + t[:, None] * (z1 - z0))
    assert not ex.check_lerp(lambda z0, z1, t: z1 + t[:, None] * (z0 - z1))
    mu = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    assert ex.check_class_mean_code(mu[3:].mean(0), mu, labels, 3)
    assert not ex.check_class_mean_code(mu.mean(0), mu, labels, 3)
    distances = (mu - mu[0]).norm(dim=1)
    assert ex.check_neighbours(distances.argsort()[1:3], mu, row=0, k=2)
    assert not ex.check_neighbours(distances.argsort()[:2], mu, row=0, k=2)  # includes the galaxy itself
    out = capsys.readouterr().out
    assert out.count("Right:") == 7 and out.count("Not yet:") == 7
    # The notebooks' placeholders: a hint, not a traceback.
    assert not ex.check_mean_image_mse(..., x, mean) and not ex.check_class_counts(..., labels)
    assert not ex.check_neighbours(..., mu, row=0, k=2) and not ex.check_honest_beta(..., 0.0072)
    assert not ex.check_class_mean_code(..., mu, labels, 3)
    assert capsys.readouterr().out.count("replace the ... with your answer") == 5


def test_check_beta_blur_wants_the_asked_beta_and_the_models_own_fine_detail_error(capsys):
    from galaxy_autoencoders.dataloaders import galaxy_dls
    from galaxy_autoencoders.models import ModelConfig
    from galaxy_autoencoders.training import vae_learner
    from galaxy_autoencoders.truth import truth_report

    images = np.random.default_rng(0).integers(0, 256, (40, 69, 69, 3), dtype=np.uint8)
    dls = galaxy_dls(images, np.zeros(40, dtype=int), bs=8, device="cpu")
    truth = images[dls.valid.rows()]  # any pictures of the same galaxies stand in for the truth here
    tiny = ModelConfig(latent_size=3, widths=(4, 8))
    learn = vae_learner(dls, objective="elbo", beta=4.0, config=tiny)
    error = truth_report(learn.model, dls, truth)["fine_detail_error"]
    assert ex.check_beta_blur(learn, error, dls, truth, beta=4.0)
    assert not ex.check_beta_blur(learn, error + 0.1, dls, truth, beta=4.0)  # not this model's number
    other = vae_learner(dls, objective="elbo", config=tiny)  # beta 1
    assert not ex.check_beta_blur(other, truth_report(other.model, dls, truth)["fine_detail_error"], dls, truth, 4.0)
    assert not ex.check_beta_blur(..., ..., dls, truth, beta=4.0)
    out = capsys.readouterr().out
    assert out.count("Right:") == 1 and "train an ELBO-VAE with beta=4" in out and "replace the ..." in out

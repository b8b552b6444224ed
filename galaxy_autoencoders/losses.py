"""The loss terms, as pure functions on tensors: reconstruction, KL divergence, MMD. `training.objective` adds
them up, with their weights, into what each model minimises.

One convention everywhere: each term is summed over one galaxy's numbers (pixels, latent dimensions) and
averaged over the batch. That is the seed notebook's `MSELoss(reduction="sum")` + KL per galaxy, and it keeps
the balance the blog trained with: 14,283 pixel errors (3 x 69 x 69) weigh against 20 KL terms. A per-pixel
*mean* would divide the reconstruction by 14,283 while the KL stays put, and the KL would win: the decoder
would learn the average galaxy, a blur. With per-galaxy sums, a term's weight (beta, lambda) means the same at
any batch size.

Shapes: images (B, C, H, W) in [0, 1]; latent means, log-variances and codes (B, L).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from .config import KERNEL

# Bandwidth multipliers for the MMD kernels, as in Tolstikhin et al. (2018), Wasserstein Auto-Encoders:
# a kernel with several bandwidths sees both small and large differences between the two samples.
DEFAULT_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def reconstruction_loss(recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Squared error summed over each image's pixels, averaged over the batch: (B, C, H, W) x2 -> scalar."""
    sq = (recon.float() - x.float()).pow(2)  # (B, C, H, W); float32 even under bf16 autocast
    return sq.flatten(1).sum(1).mean()


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per latent dimension, averaged over the batch: (B, L) x2 -> (L,)."""
    mu, logvar = mu.float(), logvar.float()
    # 0.5 (mu^2 + sigma^2 - 1 - log sigma^2). expm1 keeps exp(l) - 1 - l accurate (and >= 0) near l = 0, where
    # exp(l) - 1 would round away the very terms that make the KL positive.
    kl = 0.5 * (mu.pow(2) + torch.expm1(logvar) - logvar)  # (B, L)
    # Rounding can still leave -1e-9 where the true value is 0; the KL of two Gaussians is never negative.
    return kl.clamp_min(0.0).mean(0)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) summed over latent dimensions, averaged over the batch: (B, L) x2 -> scalar."""
    return kl_per_dim(mu, logvar).sum()


def kernel_matrix(
    x: torch.Tensor, y: torch.Tensor, kernel: str = KERNEL, scales: tuple[float, ...] = DEFAULT_SCALES
) -> torch.Tensor:
    """Sum over bandwidths of k(x_i, y_j): x (N, L), y (M, L) -> (N, M), each kernel in (0, 1], 1 at x = y.

    With C = 2 * L * s (2 L is the expected squared distance between two N(0, I) samples, so s is relative):
    "imq" (inverse multiquadric) k = C / (C + `|x - y|^2`); "rbf" (Gaussian) k = exp(-`|x - y|^2` / C).
    """
    if kernel not in ("imq", "rbf"):
        raise ValueError(f"kernel must be 'imq' or 'rbf', got {kernel!r}.")
    # Differences, not |x|^2 + |y|^2 - 2 x.y: no cancellation, so the distance is >= 0 and inf (never NaN)
    # for huge inputs, where the kernel then is exactly 0.
    d2 = (x.float()[:, None, :] - y.float()[None, :, :]).pow(2).sum(-1)  # (N, M)
    # Every bandwidth at once, (S, 1, 1) against (N, M): a handful of kernels on a GPU rather than 3 per bandwidth.
    c = _bandwidths(tuple(scales), x.shape[1], d2.device)
    k = c / (c + d2) if kernel == "imq" else torch.exp(-d2 / c)  # (S, N, M)
    return k.sum(0)


@functools.cache  # never dropped: a recorded CUDA graph (training/capture.py) reads it
def _bandwidths(scales: tuple[float, ...], latent_size: int, device: torch.device) -> torch.Tensor:
    """C = 2 L s for each scale s, as a (S, 1, 1) float32 tensor on device, made once (a copy to a GPU waits).
    Made outside inference mode, so training can use it after an evaluation under torch.inference_mode()."""
    with torch.inference_mode(False):
        return torch.tensor([2.0 * latent_size * s for s in scales], device=device)[:, None, None]


def mmd(
    x: torch.Tensor,
    y: torch.Tensor,
    kernel: str = KERNEL,
    scales: tuple[float, ...] = DEFAULT_SCALES,
    unbiased: bool = False,
) -> torch.Tensor:
    """Squared maximum mean discrepancy MMD^2 between samples x (N, L) and y (M, L) -> scalar.

    MMD^2 = mean k(x, x') + mean k(y, y') - 2 mean k(x, y) (Gretton et al. 2012). unbiased=False (what training
    uses): the V-statistic, means over all pairs including i = j; it is >= 0 and exactly 0 for identical
    samples, so it reads as a distance, at the price of an offset of order (number of bandwidths) / N above the
    true value. unbiased=True: the U-statistic, which leaves out the i = j pairs of k(x, x') and k(y, y'); its
    average over many samples is the true MMD^2, and for two samples of one distribution it scatters around 0;
    its scatter is skewed, so it comes out negative more often than not (about 60% of the time for two samples of
    500 points from one 2-D normal).
    """
    n, m = len(x), len(y)
    both = torch.cat([x.float(), y.float()])  # (N + M, L): one kernel matrix holds all three blocks
    k = kernel_matrix(both, both, kernel, scales)  # (N + M, N + M)
    # Means of values near 1 whose difference is small: summed in float64 (where the device has it), so the
    # distance keeps its digits and mmd(x, y) == mmd(y, x) to rounding.
    k = k.double() if k.device.type != "mps" else k
    kxy = k[:n, n:].mean()
    if unbiased:
        if min(n, m) < 2:
            raise ValueError(f"The unbiased MMD^2 needs at least 2 samples on each side, got {n} and {m}.")
        kxx = (k[:n, :n].sum() - k[:n, :n].diagonal().sum()) / (n * (n - 1))
        kyy = (k[n:, n:].sum() - k[n:, n:].diagonal().sum()) / (m * (m - 1))
        return (kxx + kyy - 2 * kxy).float()
    kxx, kyy = k[:n, :n].mean(), k[n:, n:].mean()
    # The sum is >= 0 in exact arithmetic (a positive definite kernel); clamp the float round-off.
    return (kxx + kyy - 2 * kxy).clamp_min(0.0).float()


def infovae_weights(alpha: float, lam: float) -> tuple[float, float]:
    """InfoVAE's (KL weight, MMD weight) = (1 - alpha, alpha + lam - 1), the (beta, lam) of `training.Objective`;
    ValueError if either is negative."""
    kl_weight, mmd_weight = 1.0 - alpha, alpha + lam - 1.0
    if mmd_weight < 0:
        raise ValueError(
            f"InfoVAE with alpha={alpha}, lam={lam} gives the MMD term the weight alpha + lam - 1 = {mmd_weight:g}, "
            "which is negative: training would push the codes away from the prior. Use lam >= 1 - alpha "
            "(the MMD-VAE of the blog is alpha=1 with lam > 0)."
        )
    if kl_weight < 0:
        raise ValueError(
            f"InfoVAE with alpha={alpha} gives the KL term the weight 1 - alpha = {kl_weight:g}, which is negative: "
            "the loss would reward posteriors far from the prior and have no minimum. Use alpha <= 1."
        )
    return kl_weight, mmd_weight


def class_aware_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross entropy of class logits (B, K) against labels long (B,), averaged over the batch -> scalar."""
    return F.cross_entropy(logits.float(), labels)


# How many VGG16 `features` layers to keep to end at these ReLUs (Johnson et al. 2016 use relu2_2 for content).
VGG_LAYERS = {"relu1_2": 4, "relu2_2": 9, "relu3_3": 16}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PerceptualLoss(nn.Module):
    """Squared distance between VGG16 features of recon and x (B, 3, H, W) in [0, 1], summed per image -> scalar.

    pretrained=True loads ImageNet weights through torchvision (downloaded once, needs the internet);
    pretrained=False uses random weights (for tests: the plumbing, not the perception). The network is frozen.
    """

    def __init__(self, layer: str = "relu2_2", pretrained: bool = True):
        super().__init__()
        from torchvision.models import VGG16_Weights
        from torchvision.models.vgg import cfgs, make_layers

        if layer not in VGG_LAYERS:
            raise ValueError(f"layer must be one of {sorted(VGG_LAYERS)}, got {layer!r}.")
        n_layers = VGG_LAYERS[layer]
        # Only the layers we use: torchvision's vgg16() would also build the deeper convolutions and the
        # 124 M-parameter classifier (500 MB) that a perceptual loss never touches. In VGG16's layer list
        # ("D") a number is a conv + ReLU (2 modules) and "M" a max-pool (1 module).
        cfg, n_modules = [], 0
        for entry in cfgs["D"]:
            if n_modules >= n_layers:
                break
            cfg.append(entry)
            n_modules += 1 if entry == "M" else 2
        self.features = make_layers(cfg)
        if pretrained:
            try:
                state = VGG16_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
            except Exception as e:  # URLError, OSError, hash mismatch: all mean "no weights here"
                raise RuntimeError(
                    "PerceptualLoss(pretrained=True) could not download the ImageNet VGG16 weights "
                    f"({type(e).__name__}: {e}); it needs the internet once. Use pretrained=False or drop the "
                    "perceptual term (perceptual_weight=0)."
                ) from e
            prefix = "features."
            self.features.load_state_dict(
                {
                    k[len(prefix) :]: v
                    for k, v in state.items()
                    if k.startswith(prefix) and int(k.split(".")[1]) < n_layers
                }
            )
        self.features.eval()
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> PerceptualLoss:
        # Frozen feature extractor: stays in eval mode whatever the surrounding model does.
        return super().train(False)

    def forward(self, recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        f_recon = self.features((recon.float() - self.mean) / self.std)  # (B, K, h, w)
        f_x = self.features((x.float() - self.mean) / self.std)  # (B, K, h, w)
        return (f_recon - f_x).pow(2).flatten(1).sum(1).mean()

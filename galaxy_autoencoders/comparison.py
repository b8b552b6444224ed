"""The demo's comparison of the ELBO-VAE and the MMD-VAE (`galaxy-ae demo`): each model's numbers on the validation
galaxies, against the mean image and, for synthetic galaxies, the noiseless truth, and the ELBO-minus-MMD
differences with their 95% intervals; then the same as the lines the demo prints.
"""

from __future__ import annotations

from .inference import reconstruct_all
from .metrics import compare_to_mean_image, evaluate, per_galaxy_mse
from .statistics import bootstrap_difference
from .truth import noise_floor, render_noisy_copies, render_truth, truth_report


def compare_models(models: dict, data, dls) -> dict:
    """models {"elbo": VAE, "mmd": VAE}, the galaxies and their DataLoaders -> {name: each model's numbers on the
    validation galaxies (`evaluate`, the mean-image baseline and, for synthetic galaxies, "vs_truth")} and the
    ELBO-minus-MMD differences with their 95% intervals ("elbo_minus_mmd_*"): plain values, ready for JSON."""
    truth, scores, per_galaxy = None, {}, {}
    if getattr(data, "seed", None) is not None:  # synthetic: the same galaxies without their noise
        truth = render_truth(data, dls.valid.rows())
        # what the stretch leaves even for a perfect model of the noisy pictures (truth.noise_floor)
        scores["truth_floor_mse"] = noise_floor(render_noisy_copies(data, dls.valid.rows(), copies=4), truth)["floor"]
    for name, model in models.items():
        x_valid, recon = reconstruct_all(model, dls.valid)
        per_galaxy[name] = {"mse": per_galaxy_mse(x_valid, recon)}
        # evaluate's own MSE is the same number; the baseline's comes last, from the pass its ratio is made of
        scores[name] = {
            **evaluate(model, dls, params=data.params),
            **compare_to_mean_image(x_valid, recon, dls.train.mean_image()),
        }
        if truth is not None:
            full = truth_report(model, dls.valid, truth)
            per_galaxy[name].update(mse_truth=full.pop("mse_truth"), detail_error=full.pop("detail_error"))
            scores[name]["vs_truth"] = full
    scores["elbo_minus_mmd_mse"] = bootstrap_difference(per_galaxy["elbo"]["mse"], per_galaxy["mmd"]["mse"])
    if truth is not None:
        elbo, mmd = per_galaxy["elbo"], per_galaxy["mmd"]
        scores["elbo_minus_mmd_mse_vs_truth"] = bootstrap_difference(elbo["mse_truth"], mmd["mse_truth"])
        scores["elbo_minus_mmd_detail_error"] = bootstrap_difference(elbo["detail_error"], mmd["detail_error"])
    return scores


def summary_lines(report: dict, n_valid: int) -> list[str]:
    """The demo's summary, a string a line: each model against the mean image (and the truth), then the
    differences."""
    lines = []
    floor = f", the stretch's floor {report['truth_floor_mse']:.4f}" if "truth_floor_mse" in report else ""
    for name in ("elbo", "mmd"):
        r = report[name]
        lines.append(
            f"{name.upper():>4}: MSE {r['mse']:.4f} = {r['mse_ratio']:.2f} x the mean image's "
            f"{r['mean_image_mse']:.4f}; "
            f"colour kept (Spearman) {r['colour_rho']:.2f}; brightest pixels {r['peak_ratio']:.2f} x the inputs'"
        )
        if "vs_truth" in r:
            t = r["vs_truth"]
            lines.append(
                f"      against the noiseless truth: MSE {t['mse_vs_truth']:.4f} (the noisy input's "
                f"{t['noise_mse']:.4f}{floor}); fine-detail error {t['fine_detail_error']:.2f} (a smooth picture's 1)"
            )
    where = f"95% interval over the {n_valid} validation galaxies"
    for key, label, digits in (
        ("elbo_minus_mmd_mse", "MSE per galaxy", 5),
        ("elbo_minus_mmd_mse_vs_truth", "MSE against the truth", 5),
        ("elbo_minus_mmd_detail_error", "fine-detail error", 3),
    ):
        if key in report:
            d = report[key]
            low, high = f"{d['low']:+.{digits}f}", f"{d['high']:+.{digits}f}"
            lines.append(
                f"ELBO minus MMD, {label}: {d['mean']:+.{digits}f} ({where}: {low} to {high}; one training seed)"
            )
    return lines

"""The one-line mutations of issue "Tests that can fail", each applied to a copy of the package and checked
against `pytest tests` (the unit tests only, no notebooks): a mutation is killed when some test fails.

    python benchmarks/mutation_table.py            # all mutations, about 1-2 minutes each on a 2-core CPU
    python benchmarks/mutation_table.py --list     # what each one changes

Each mutation runs the test files that exercise the code it changes (listed beside it), in a temporary copy of
the checkout, so the working tree is never touched. First the same tests run on an unmutated copy and must pass,
so that a kill means the mutation was seen. Prints one line per mutation and the kill count.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (name, file, original text, mutated text, test files that should catch it)
MUTATIONS = [
    (
        "MMD term detached (the MMD-VAE not trained on MMD)",
        "galaxy_autoencoders/training/objective.py",
        "loss = loss + self.lam * distance",
        "loss = loss + self.lam * distance.detach()",
        ["tests/test_properties.py", "tests/test_learner.py"],
    ),
    (
        "KL term detached",
        "galaxy_autoencoders/training/objective.py",
        "loss = loss + kl_weight * kl",
        "loss = loss + kl_weight * kl.detach()",
        ["tests/test_properties.py", "tests/test_learner.py"],
    ),
    (
        "the objective without the KL",
        "galaxy_autoencoders/training/objective.py",
        "loss = loss + kl_weight * kl",
        "loss = loss",
        ["tests/test_properties.py", "tests/test_learner.py"],
    ),
    (
        "reparameterize with exp(logvar) as the standard deviation",
        "galaxy_autoencoders/models.py",
        "return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)",
        "return mu + torch.exp(logvar) * torch.randn_like(mu)",
        ["tests/test_properties.py", "tests/test_models.py"],
    ),
    (
        "latent_stats std forced to 1",
        "galaxy_autoencoders/latent.py",
        "return LatentStats(mean=mu.mean(0).float(), std=mu.std(0).float(), kl=kl, order=order)",
        "return LatentStats(mean=mu.mean(0).float(), std=torch.ones_like(mu.std(0)).float(), kl=kl, order=order)",
        ["tests/test_properties.py", "tests/test_latent.py"],
    ),
    (
        "prior_codes drawing uniform instead of normal",
        "galaxy_autoencoders/latent.py",
        "return torch.randn(n, latent_size, generator=torch.Generator().manual_seed(seed))",
        "return torch.rand(n, latent_size, generator=torch.Generator().manual_seed(seed))",
        ["tests/test_properties.py", "tests/test_latent.py"],
    ),
    (
        "evaluate reporting every dimension active",
        "galaxy_autoencoders/metrics.py",
        '"active_units": active_units(mu),',
        '"active_units": mu.shape[1],',
        ["tests/test_metrics.py"],
    ),
    (
        "KL warm-up restarting at every fit",
        "galaxy_autoencoders/training/callbacks.py",
        "if self.counting and self.n_steps is None:",
        "if self.counting:\n            self.step = 0",
        ["tests/test_learner.py"],
    ),
    (
        "galaxy-ae train --objective mmd training an ELBO",
        "galaxy_autoencoders/training/learner.py",
        "learn = vae_learner(dls, objective=objective, config=config,",
        'learn = vae_learner(dls, objective="elbo" if objective == "mmd" else objective, config=config,',
        ["tests/test_properties.py", "tests/test_cli.py"],
    ),
    (
        "the demo's figure showing the inputs where the reconstructions belong",
        "galaxy_autoencoders/commands.py",
        "recons = {name.upper(): reconstruct_all(model, x)[1] for name, model in models.items()}",
        "recons = {name.upper(): x.clone() for name, model in models.items()}",
        ["tests/test_properties.py"],
    ),
    (
        "the decoder starting at grey (sigmoid(0) = 0.5), the cause of the grey ellipses",
        "galaxy_autoencoders/training/learner.py",
        "model.decoder.start_from(_channel_means(dls))",
        "model.decoder.start_from(torch.full((3,), 0.5))",
        ["tests/test_properties.py"],
    ),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--baseline", action="store_true", help="only check that the unmutated tests pass")
    args = parser.parse_args()
    if args.list:
        for name, path, _, _, tests in MUTATIONS:
            print(f"{name}: {path}; caught by {', '.join(tests)}?")
        return 0
    # First the unmutated copy: every listed test must pass there, or a "kill" would mean nothing.
    all_tests = sorted({t for *_, tests in MUTATIONS for t in tests})
    if _run_tests(None, all_tests) != 0:
        print("?? the tests fail without any mutation; fix them first")
        return 2
    print("baseline: the unmutated copy passes " + ", ".join(all_tests), flush=True)
    if args.baseline:
        return 0
    killed = 0
    for name, path, old, new, tests in MUTATIONS:
        code = _run_tests((path, old, new), tests)
        if code == 2:
            print(f"?? {name}: the original line is not in {path} exactly once; update this table")
            return 2
        caught = code != 0
        killed += caught
        print(f"{'killed  ' if caught else 'SURVIVED'} {name}", flush=True)
    print(f"{killed} of {len(MUTATIONS)} mutations killed by pytest tests alone")
    return 0 if killed == len(MUTATIONS) else 1


def _run_tests(mutation, tests) -> int:
    """Run tests in a fresh copy of the checkout with mutation (path, old, new) applied, or none: pytest's status.

    Returns 2 (and runs nothing) when the original text is not in the file exactly once."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "checkout"
        shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", ".venv*", "data", "*.egg-info"))
        (copy / "data").mkdir()
        if mutation is not None:
            path, old, new = mutation
            target = copy / path
            text = target.read_text()
            if text.count(old) != 1:
                return 2
            target.write_text(text.replace(old, new))
        env = {**os.environ, "PYTHONPATH": str(copy), "GALAXY_AE_DATA": str(copy / "data")}
        where = subprocess.run(
            [sys.executable, "-c", "import galaxy_autoencoders; print(galaxy_autoencoders.__file__)"],
            cwd=copy,
            capture_output=True,
            text=True,
            env=env,
        ).stdout
        if not where.startswith(str(copy)):  # the tests must import the copy, not the checkout
            raise RuntimeError(f"the copy's tests import {where.strip()}, not the copy in {copy}")
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
            cwd=copy,
            capture_output=True,
            text=True,
            env=env,
        )
        return 1 if done.returncode == 2 else done.returncode  # pytest's own 2 (interrupted) counts as a failure


if __name__ == "__main__":
    sys.exit(main())

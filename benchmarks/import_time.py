"""What importing the package costs beyond `import torch`, measured in fresh interpreters with `-X importtime`.

    python benchmarks/import_time.py [--repeats 5] [--json OUT]

Each statement below runs in a new Python process `--repeats` times; the median of Python's own import
clock (the sum of the top-level imports' cumulative times from `-X importtime`) counts. A notebook pays this on
every kernel restart. The budget: `import galaxy_autoencoders` adds at most 1.5 s beyond `import torch`. The
package imports its modules lazily, so the first use of `vae_learner` is shown too, next to fastai's own import
cost (fastai pulls in scikit-learn, pandas, matplotlib and SciPy), which the package cannot avoid.

The command line must answer at once: what `galaxy-ae --help`, `data info` and `data synthetic` import adds at
most 0.5 s beyond `import torch` (none of them imports fastai or the training code).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys

STATEMENTS = {
    "torch": "import torch",
    "torch + galaxy_autoencoders": "import torch; import galaxy_autoencoders",
    "torch + fastai.learner, fastai.callback.progress": "import torch; import fastai.learner, fastai.callback.progress",
    "torch + galaxy_dls, vae_learner (fastai)": "import torch; from galaxy_autoencoders import galaxy_dls, vae_learner",
    "torch + LatentExplorer (ipywidgets, matplotlib)": "import torch; from galaxy_autoencoders import LatentExplorer",
}
PARSER = "import torch; from galaxy_autoencoders.cli import build_parser; build_parser()"
CLI_STATEMENTS = {  # the imports each command makes before its work starts
    "galaxy-ae --help": PARSER,
    "galaxy-ae data info": f"{PARSER}; from galaxy_autoencoders.data import describe",
    "galaxy-ae data synthetic": f"{PARSER}; from galaxy_autoencoders.data import make_synthetic; "
    "from galaxy_autoencoders.files import check_output_file",
}
BUDGET_S = 1.5
CLI_BUDGET_S = 0.5


def import_seconds(statement: str) -> float:
    """Seconds Python spends importing in a fresh interpreter running `statement` (its -X importtime total)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True, check=True
    )
    total_us = 0
    for line in done.stderr.splitlines():
        # "import time:   self [us] | cumulative | imported package"; top-level imports have no indent
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        if not name.startswith("  "):  # one space after the bar, then the name; nested ones are indented
            total_us += int(cumulative)
    return total_us / 1e6


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh interpreters per statement; the median counts")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    import_seconds("import torch")  # warm the file cache, so the first row is not the only cold one
    medians = {}
    for label, statement in {**STATEMENTS, **CLI_STATEMENTS}.items():
        medians[label] = statistics.median(import_seconds(statement) for _ in range(args.repeats))
    base = medians["torch"]
    print(f"Import time, median of {args.repeats} fresh interpreters ({platform.processor() or platform.machine()}):")
    print(f"{'what':<50} {'seconds':>8} {'beyond torch':>13}")
    for label, seconds in medians.items():
        extra = "" if label == "torch" else f"{seconds - base:>13.2f}"
        print(f"{label:<50} {seconds:>8.2f} {extra}")
    beyond = medians["torch + galaxy_autoencoders"] - base
    print(f"`import galaxy_autoencoders` adds {beyond:.2f} s beyond torch; within the {BUDGET_S} s budget: ", end="")
    print(beyond <= BUDGET_S)
    slowest = max(medians[label] for label in CLI_STATEMENTS) - base
    print(
        f"The slowest command line path adds {slowest:.2f} s beyond torch; within the {CLI_BUDGET_S} s budget: ", end=""
    )
    print(slowest <= CLI_BUDGET_S)
    summary = {
        "seconds": medians,
        "beyond_torch": {k: v - base for k, v in medians.items() if k != "torch"},
        "budget_s": BUDGET_S,
        "cli_budget_s": CLI_BUDGET_S,
        "python": platform.python_version(),
        "machine": platform.platform(),
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return summary


if __name__ == "__main__":
    main()

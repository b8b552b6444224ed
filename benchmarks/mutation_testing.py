"""Mutation testing of the modules that carry the science, with mutmut (configured in pyproject.toml).

    python benchmarks/mutation_testing.py [--children 2] [--report-only] [--fresh] [--sample N --seed S]

mutmut copies the package into mutants/, makes one small change at a time (a + for a -, 0.5 for 1.5, a default
argument, a dropped call) in the modules listed under [tool.mutmut] in pyproject.toml (losses, models, latent,
metrics, inference, the training objective and callbacks), and runs the tests of those modules that cover the
changed function (tests/test_losses.py, _models, _latent, _metrics, _properties, _learner, _truth). A change the
tests notice is "killed"; one they do not is "survived", and is either a gap in the tests or an equivalent change
(one that cannot alter behaviour, e.g. a batch size of 257 instead of 256 for a computation that does not depend on
it). This script runs mutmut (it resumes: mutants already checked keep their result) and prints, per module, how
many were caught (killed, timed out or crashed), missed (survived, or no test covers them) and are not yet checked,
and the kill rate.

It takes hours on a 2-core machine (1,618 mutants; 2 to 80 a minute there: a survivor runs every test that covers
it), so it is not part of CI. mutmut checks the mutants it expects to be quick first, so a run stopped early has
checked a biased set (the slow ones are those that every test covers, e.g. the layers of the model). --sample N
draws N mutants at random from those not checked yet (kept in mutants/sample.json: a later call checks the rest of
it, until --fresh), checks only them, and, once all are checked, estimates the kill rate over all the mutants with a
95% interval: the ones checked before the draw counted exactly, the rest estimated from the sample. --fresh deletes
mutants/ first: mutmut re-mutates a file only when the source is newer than its copy in mutants/, so a mutants/
folder left from before files moved keeps stale copies and too few mutants (after the code moved into data/ and
training/, a stale folder gave 191 mutants instead of about 2,000). `benchmarks/mutation_table.py` is the fast check
of the ten hand-made mutations of the issue that asked for this.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

# mutmut's statuses, in four kinds. Caught: the tests failed (a timeout or a crash is a change that made them hang
# or die; the type checker is off here). Missed: the tests passed, or none covers the change. Not checked: no
# verdict yet (an interrupted check included). Skipped mutants are left out, as mutmut's own score does.
KINDS = {
    "killed": "caught",
    "timeout": "caught",
    "segfault": "caught",
    "caught by type check": "caught",
    "survived": "missed",
    "no tests": "missed",
    "suspicious": "missed",
    "not checked": "not checked",
    "check was interrupted by user": "not checked",
    "skipped": "skipped",
}
SAMPLE = Path("mutants") / "sample.json"  # the random sample of --sample, kept with mutmut's results
UTF8 = {**os.environ, "PYTHONIOENCODING": "utf-8"}  # mutant names hold "ǁ"


def statuses() -> dict[str, str]:
    """{mutant name: kind} (KINDS) from `mutmut results --all true`."""
    done = subprocess.run(
        ["mutmut", "results", "--all", "true"], capture_output=True, text=True, encoding="utf-8", env=UTF8, check=True
    )
    out = {}
    for line in done.stdout.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            out[name] = KINDS.get(status.strip(), "missed")  # a status this script does not know counts against
    return out


def results(by_name: dict[str, str]) -> dict[str, collections.Counter]:
    """{module: Counter(kind)}."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for name, kind in by_name.items():
        module = name.split(".x")[0].rsplit(".", 1)[-1]  # galaxy_autoencoders.latent.x_slerp__mutmut_11 -> latent
        counts[module][kind] += 1
    return counts


def draw_sample(by_name: dict[str, str], n: int, seed: int) -> dict:
    """n mutants drawn at random from those not checked yet; kept in SAMPLE so that a later call resumes it."""
    if SAMPLE.is_file():
        drawn = json.loads(SAMPLE.read_text())
        if n and (n, seed) != (len(drawn["sample"]), drawn["seed"]):
            print(
                f"Resuming the sample in {SAMPLE} ({len(drawn['sample'])} mutants, seed {drawn['seed']}); "
                "--fresh starts again."
            )
        return drawn
    population = sorted(name for name, kind in by_name.items() if kind == "not checked")
    sample = random.Random(seed).sample(population, min(n, len(population)))
    drawn = {"seed": seed, "population": population, "sample": sample}
    SAMPLE.write_text(json.dumps(drawn))
    return drawn


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a proportion k/n."""
    centre, half = (k + z * z / 2) / (n + z * z), z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    return centre - half, centre + half


def estimate(by_name: dict[str, str], drawn: dict) -> None:
    """The kill rate over every mutant: the ones checked before the draw counted exactly, the ones not checked
    then estimated from the random sample of them, with a 95% interval (no finite-population correction, so a
    little wide). Only from the whole sample: mutmut checks the quickest mutants first, so a part is biased."""
    population = set(drawn["population"])
    sample = [by_name.get(name, "not checked") for name in drawn["sample"]]
    k, n = sample.count("caught"), sample.count("caught") + sample.count("missed")
    outside = [kind for name, kind in by_name.items() if name not in population and kind in ("caught", "missed")]
    total = len(outside) + len(population)
    print(
        f"\nRandom sample of the {len(population)} mutants not checked before it (seed {drawn['seed']}): "
        f"{n} of {len(sample)} checked, {k} caught" + (f" ({k / n:.1%})." if n else ".")
    )
    if n < len(sample) - sample.count("skipped"):
        print("The estimate waits for the whole sample (mutmut checks the quickest mutants first).")
        return
    low, high = wilson(k, n)
    rate = [(outside.count("caught") + len(population) * p) / total for p in (k / n, low, high)]
    print(
        f"Estimated kill rate over all {total} mutants ({len(outside)} counted, {len(population)} estimated "
        f"from the sample): {rate[0]:.1%} (95% interval {rate[1]:.1%} to {rate[2]:.1%})."
    )


def report(counts: dict[str, collections.Counter]) -> float:
    print(f"{'module':<10} {'caught':>7} {'missed':>7} {'unchecked':>10} {'skipped':>8} {'kill rate':>10}")
    total = collections.Counter()
    for module in sorted(counts):
        total.update(counts[module])
        _row(module, counts[module])
    _row("all", total)
    return _rate(total)


def _rate(c: collections.Counter) -> float:
    checked = c["caught"] + c["missed"]
    return c["caught"] / checked if checked else float("nan")


def _row(name: str, c: collections.Counter) -> None:
    print(f"{name:<10} {c['caught']:>7} {c['missed']:>7} {c['not checked']:>10} {c['skipped']:>8} {_rate(c):>10.1%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--report-only", action="store_true", help="print the results so far; run nothing")
    parser.add_argument("--fresh", action="store_true", help="delete mutants/ (all results so far) and start again")
    parser.add_argument(
        "--sample", type=int, metavar="N", help="check only N mutants drawn at random from those not checked yet"
    )
    parser.add_argument("--seed", type=int, default=0, help="the sample's seed (default 0)")
    args = parser.parse_args(argv)
    if args.fresh and not args.report_only:
        shutil.rmtree("mutants", ignore_errors=True)
    if args.sample and not Path("mutants").is_dir():
        # mutmut lists the mutants only once it has made them: make them (and time the tests, one full test run)
        # by asking for a mutant that does not exist, which mutmut then refuses.
        subprocess.run(["mutmut", "run", "no-mutant-has-this-name"], capture_output=True, env=UTF8)
    sampling = bool(args.sample) or SAMPLE.is_file()
    before = statuses() if sampling else {}
    drawn = draw_sample(before, args.sample, args.seed) if sampling else None
    if not args.report_only:
        names = [] if drawn is None else [n for n in drawn["sample"] if before.get(n) == "not checked"]
        if names and not args.sample:
            print(f"Checking the rest of the sample in {SAMPLE}, not all the mutants (--fresh starts again).")
        if drawn is None or names:  # mutmut re-checks every mutant it is given by name, and all when given none
            subprocess.run(["mutmut", "run", "--max-children", str(args.children), *names], env=UTF8, check=False)
    by_name = statuses()
    rate = report(results(by_name))
    print(f"\nKill rate over the mutants checked so far: {rate:.1%} (the goal is at least 85%).")
    if drawn is not None:
        estimate(by_name, drawn)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Mutation testing of the modules that carry the science, with mutmut (configured in pyproject.toml).

    python benchmarks/mutation_testing.py [--children 2] [--report-only] [--fresh]

mutmut copies the package into mutants/, makes one small change at a time (a + for a -, 0.5 for 1.5, a default
argument, a dropped call) in the modules listed under [tool.mutmut] in pyproject.toml (losses, models, latent,
metrics, inference, the training objective and callbacks), and runs the tests of
those modules that cover the changed function (tests/test_losses.py, _models, _latent, _metrics, _properties,
_learner). A change the tests notice is "killed"; one they do not is "survived", and is either a gap in the tests
or an equivalent change (one that cannot alter behaviour, e.g. a batch size of 257 instead of 256 for a
computation that does not depend on it). This script runs mutmut (it resumes: mutants already checked keep their
result) and prints, per module, how many were killed, survived and are not yet checked, and the kill rate.

It takes hours on a 2-core machine (1,618 mutants; 2 to 80 a minute there: a survivor runs every test that covers
it), so it is not part of CI. --fresh deletes mutants/ first: mutmut re-mutates a file only when the source is
newer than its copy in mutants/, so a mutants/ folder left from before files moved keeps stale copies and too few
mutants (after the code moved into data/ and training/, a stale folder gave 191 mutants instead of about 2,000).
`benchmarks/mutation_table.py` is the fast check of the ten hand-made mutations of the issue that asked for this.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys

CAUGHT = ("killed", "timeout")  # a timeout is a change that made the tests hang: caught too


def results() -> dict[str, collections.Counter]:
    """{module: Counter(status)} from `mutmut results --all true`."""
    done = subprocess.run(["mutmut", "results", "--all", "true"], capture_output=True, text=True, check=True)
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in done.stdout.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if not name:
            continue
        module = name.split(".x")[0].rsplit(".", 1)[-1]  # galaxy_autoencoders.latent.x_slerp__mutmut_11 -> latent
        counts[module][status.strip()] += 1
    return counts


def report(counts: dict[str, collections.Counter]) -> float:
    print(f"{'module':<10} {'killed':>7} {'survived':>9} {'no tests':>9} {'unchecked':>10} {'kill rate':>10}")
    total = collections.Counter()
    for module in sorted(counts):
        c = counts[module]
        total.update(c)
        _row(module, c)
    _row("all", total)
    return _rate(total)


def _rate(c: collections.Counter) -> float:
    caught = sum(c[s] for s in CAUGHT)
    checked = caught + c["survived"] + c["no tests"]
    return caught / checked if checked else float("nan")


def _row(name: str, c: collections.Counter) -> None:
    caught = sum(c[s] for s in CAUGHT)
    print(f"{name:<10} {caught:>7} {c['survived']:>9} {c['no tests']:>9} {c['not checked']:>10} {_rate(c):>10.1%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--report-only", action="store_true", help="print the results so far; run nothing")
    parser.add_argument("--fresh", action="store_true", help="delete mutants/ (all results so far) and start again")
    args = parser.parse_args(argv)
    if args.fresh and not args.report_only:
        shutil.rmtree("mutants", ignore_errors=True)
    if not args.report_only:
        subprocess.run(["mutmut", "run", "--max-children", str(args.children)], check=False)
    rate = report(results())
    print(f"\nKill rate over the mutants checked so far: {rate:.1%} (the goal is at least 85%).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

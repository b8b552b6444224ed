#!/usr/bin/env bash
# Throughput of the package's path against the plain loop, for an earlier commit and for the work tree, taking
# turns in one run: before, after, before, after. A refactor of the training set-up must not slow it down.
#
#     bash benchmarks/before_after.sh REV [throughput.py options]     e.g.  bash benchmarks/before_after.sh HEAD~1
#
# REV is checked out into a temporary git worktree; each turn runs that tree's benchmarks/throughput.py with
# PYTHONPATH pointing at that tree's package. Default options: --device cpu
# --quick --paths package,plain --repeats 3. Prints each turn's package/plain ratio, then each side's median.
set -euo pipefail
rev=${1:?give the commit to compare with, e.g. HEAD~1}
shift
options=("$@")
[ ${#options[@]} -gt 0 ] || options=(--device cpu --quick --paths package,plain --repeats 3)
root=$(git rev-parse --show-toplevel)
before=$(mktemp -d)
results=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$before" >/dev/null 2>&1 || true; rm -rf "$results"' EXIT
git -C "$root" worktree add --detach "$before" "$rev" >/dev/null

for turn in 1 2; do
  for side in before after; do
    tree=$root
    [ "$side" = before ] && tree=$before
    echo "turn $turn: $side ($( [ "$side" = before ] && echo "$rev" || echo "work tree"))" >&2
    PYTHONPATH="$tree" python "$tree/benchmarks/throughput.py" "${options[@]}" --json "$results/$side-$turn.json" \
      >/dev/null
  done
done

python - "$results" "$rev" <<'EOF'
import json, statistics, sys
from pathlib import Path

folder, rev = Path(sys.argv[1]), sys.argv[2]
print(f"package / plain throughput ratio, {rev} (before) against the work tree (after):")
for side in ("before", "after"):
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob(f"{side}-*.json"))]
    ratios = [r["ratios"]["package/plain"] for r in runs]
    rates = [r["results"]["package"]["images_per_s"] for r in runs]
    print(
        f"  {side:<6} ratios {', '.join(f'{x:.2f}' for x in ratios)} (median {statistics.median(ratios):.2f}); "
        f"package {', '.join(f'{x:,.0f}' for x in rates)} images/s"
    )
print(f"machine: {runs[0]['machine']}")
EOF

#!/usr/bin/env bash
# The test environment's lock. requirements/test.txt pins every package that `pip install -e ".[test]"` brings,
# and the README's test command installs through it (pip's --constraint), so a new release of a dependency cannot
# move a printed digit of a notebook under CI's feet. The plain `pip install -e .` for users stays unpinned.
#
#   bash requirements/lock.sh refresh   resolve the newest releases in a new virtual environment and write the lock
#   bash requirements/lock.sh newest    run the README's test command against the newest releases, without the lock
#
# Moving forward is a deliberate step: `newest`, read what moved, fix it, then `refresh` and commit the lock with
# the notebooks' new outputs. Both use this machine's pip settings (a pip.conf that caps torch applies to them).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
if [ "$mode" != refresh ] && [ "$mode" != newest ]; then
  echo "usage: bash requirements/lock.sh refresh|newest" >&2
  exit 2
fi
folder=$(mktemp -d)
trap 'rm -rf "$folder"' EXIT  # the environment weighs gigabytes (torch)
venv=$folder/venv
python3 -m venv "$venv"
# shellcheck disable=SC1091
source "$venv/bin/activate"
python -m pip install -q --upgrade pip
python -m pip install -q --upgrade --upgrade-strategy eager -e ".[test]"
if [ "$mode" = refresh ]; then
  {
    echo "# The test environment's lock (pip constraints), written by: bash requirements/lock.sh refresh"
    echo "# on $(python -c 'import platform; print(platform.python_implementation(), platform.python_version(), platform.machine())'). Used by the README's test command, .ci/run and binder/."
    python -m pip freeze --all --exclude-editable | grep -v '^pip=='  # --all: setuptools too (torch needs it)
  } > requirements/test.txt.new
  mv requirements/test.txt.new requirements/test.txt
  echo "wrote requirements/test.txt ($(grep -vc '^#' requirements/test.txt) packages). Now give environment.yml and"
  echo "binder/environment.yml the same versions (tests/test_environment.py checks them), run the notebooks again"
  echo "(benchmarks/notebook_stability.py says which printed digits moved), and check it all with: bash .ci/run"
else
  test_command=$(awk '/<!-- test-command -->/{found=1; next} found && /^```/{if (inblock) exit; inblock=1; next} found && inblock {print}' README.md)
  pytest_part=${test_command#*&& }  # the README's pytest, without its locked install
  echo "newest releases: $(python -m pip freeze | grep -iE '^(torch|numpy|scipy|scikit-learn|pandas|fastai|matplotlib)==' | tr '\n' ' ')"
  GALAXY_AE_PROFILE=quick bash -c "$pytest_part"
fi

#!/usr/bin/env bash
# Installs the Python package from this checkout into a fresh virtual environment in WORK_DIR and runs
# its tests there (ctest's `python` test; no torch, CuPy or GPU needed). Needs python3 with venv and
# PyPI for the build backend (scikit-build-core).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=${1:?usage: venv_test.sh WORK_DIR [PYTHON]}
python=${2:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1
rm -rf "$work"
mkdir -p "$work"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet "$repo/python"
# From outside the checkout, so that `import stash` is the installed package.
cd "$work"
exec "$work/venv/bin/python" -m unittest discover -s "$repo/python/tests" -p 'test_*.py' -v

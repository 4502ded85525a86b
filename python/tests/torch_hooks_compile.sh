#!/usr/bin/env bash
# Compiles stash.torch's extension (python/src/stash/_torch_hooks.cpp) against the C++ headers of the
# PyTorch the GPU machine runs (2.11.0; STASH_TORCH_HEADERS_VERSION to change it), as
# torch.utils.cpp_extension builds it there, with no torch installed and no GPU: torch's wheel is
# downloaded (no dependencies) into WORK_DIR and only torch/include is unpacked, once. Syntax and types
# only (-fsyntax-only): nothing links or runs. So a hook that no longer matches PyTorch's
# CUDAPluggableAllocator fails here, not at enable() on a GPU machine. Needs PyPI, python3-venv (for pip),
# Python's headers (python3-dev) and the CUDA toolkit's headers.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=${1:?usage: torch_hooks_compile.sh WORK_DIR [PYTHON]}
python=${2:-python3}
version=${STASH_TORCH_HEADERS_VERSION:-2.11.0}
headers="$work/torch-$version"
if [[ ! -d "$headers/torch/include" ]]; then
  rm -rf "$work/wheel" "$work/venv" "$headers"
  # pip from a virtual environment (python3-venv): a bare Debian's python3 has no pip module.
  "$python" -m venv "$work/venv"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$work/venv/bin/python" -m pip download --quiet --no-deps \
    --only-binary=:all: --dest "$work/wheel" "torch==$version"
  "$python" - "$work/wheel" "$headers.partial" <<'PY'
import glob, sys, zipfile
wheel, = glob.glob(sys.argv[1] + "/torch-*.whl")
with zipfile.ZipFile(wheel) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("torch/include/")])
PY
  mv "$headers.partial" "$headers"
  rm -rf "$work/wheel" "$work/venv"
fi
python_include=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
cuda=${CUDA_HOME:-/usr/local/cuda}
echo "compiling _torch_hooks.cpp against torch $version's headers"
# -isystem: warnings inside PyTorch's headers are theirs; the extension's own must be none.
"${CXX:-g++}" -std=c++17 -fsyntax-only -Wall -Wextra -Werror -DTORCH_EXTENSION_NAME=stash_torch_hooks \
  -D_GLIBCXX_USE_CXX11_ABI=1 -isystem "$headers/torch/include" \
  -isystem "$headers/torch/include/torch/csrc/api/include" -isystem "$cuda/include" \
  -isystem "$python_include" "$repo/python/src/stash/_torch_hooks.cpp"
echo "ok"

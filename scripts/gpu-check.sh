#!/usr/bin/env bash
# The GPU check, ready for a GPU host: set up, build (or reuse) and install llama.cpp's CUDA
# build from NVIDIA's pip packages, then race llmserver with every layer offloaded against
# llama.cpp's llama-server and llama-batched-bench (same flags) at 1, 16 and 64 users, and
# write the table (bench/gpu.py).
#   scripts/gpu-check.sh [--quick|--smoke] [--out DIR]     (default: docs/benchmarks)
# Without a GPU (no nvidia-smi listing one) it runs the same race on the installed CPU build
# with LLMSERVER_N_GPU_LAYERS=0, so the check itself is tested on every machine.
# TINYLLM_CUDA_ARCHS picks the CUDA architectures (default: llama.cpp's release list);
# TINYLLM_GPU_MODEL a GGUF to race with instead of the packaged SmolLM2.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  echo "==> $(nvidia-smi -L | head -1)"
  echo "==> the CUDA build (compiled once, then kept in ~/.cache/tinyllm)"
  .venv/bin/python -m tinyllm.cudabuild install
  export LLMSERVER_N_GPU_LAYERS=${LLMSERVER_N_GPU_LAYERS:--1}
else
  echo "==> no GPU here: the same race on this machine's CPU build (LLMSERVER_N_GPU_LAYERS=0)"
  export LLMSERVER_N_GPU_LAYERS=0
fi
exec .venv/bin/tinyllm bench gpu "$@"

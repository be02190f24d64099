"""Build llama-cpp-python for the CPU it lands on, and prove the build decodes before
trusting it.

`-march=native` (llama.cpp's default) turns on every instruction set the CPU advertises,
AMX included; a virtual machine can advertise AMX and still fault on its first tile
instruction. So the build names its instruction sets itself: those the CPU advertises, AMX
only when a probe in a child process runs tile instructions. After installing, a child
decodes a few tokens of the packaged model; if it dies, setup rebuilds portable (AVX2 at
most) and says why. Standard library only: setup runs it before anything else is installed.

    python -m tinyllm.llamabuild setup           build, install and self-check (setup.sh)
    python -m tinyllm.llamabuild args [TARGET]   the CMake flags of a target: native, portable
    python -m tinyllm.llamabuild wheel TARGET [-DOPT=V...]   build (or reuse) a wheel, print
                                                 its path
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("tinyllm.llamabuild")
REPO_ROOT = Path(__file__).resolve().parent.parent
# What the installed build was made with; llmserver, the benchmarks and `tinyllm doctor` read it.
MARKER = "tinyllm-llama-build.json"

# /proc/cpuinfo flag(s) -> ggml's CMake option, in ggml's own order.
X86_FEATURES: list[tuple[str, tuple[str, ...]]] = [
    ("GGML_SSE42", ("sse4_2",)),
    ("GGML_AVX", ("avx",)),
    ("GGML_F16C", ("f16c",)),
    ("GGML_FMA", ("fma",)),
    ("GGML_BMI2", ("bmi2",)),
    ("GGML_AVX2", ("avx2",)),
    ("GGML_AVX_VNNI", ("avx_vnni",)),
    ("GGML_AVX512", ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw")),
    ("GGML_AVX512_VBMI", ("avx512vbmi",)),
    ("GGML_AVX512_VNNI", ("avx512_vnni",)),
    ("GGML_AVX512_BF16", ("avx512_bf16",)),
]
AMX_FEATURES: list[tuple[str, tuple[str, ...]]] = [
    ("GGML_AMX_TILE", ("amx_tile",)),
    ("GGML_AMX_INT8", ("amx_int8",)),
    ("GGML_AMX_BF16", ("amx_bf16",)),
]
# Portable: x86-64-v3 (Haswell, 2013, and every x86-64 CPU since that has AVX2).
PORTABLE = {"GGML_SSE42", "GGML_AVX", "GGML_F16C", "GGML_FMA", "GGML_BMI2", "GGML_AVX2"}

# Runs tile instructions the way ggml's AMX kernels do (permission, config, a dot product).
AMX_PROBE = r"""
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
struct cfg { uint8_t palette, start_row, reserved[14]; uint16_t colsb[16]; uint8_t rows[16]; };
int main(void) {
    if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */)) return 2;
    static struct cfg c; static int8_t a[16 * 64], b[16 * 64]; static int32_t out[16 * 16];
    c.palette = 1;
    for (int i = 0; i < 3; i++) { c.rows[i] = 16; c.colsb[i] = 64; }
    memset(a, 1, sizeof a); memset(b, 2, sizeof b);
    _tile_loadconfig(&c);
    _tile_zero(0); _tile_loadd(1, a, 64); _tile_loadd(2, b, 64);
    _tile_dpbssd(0, 1, 2); _tile_stored(0, out, 64); _tile_release();
    return out[0] == 128 ? 0 : 3;
}
"""

@dataclass(frozen=True)
class Target:
    """One way to build: a name, the CMake flags, and the instruction sets they use."""

    name: str
    cmake_args: tuple[str, ...]
    features: tuple[str, ...]

    def describe(self) -> str:
        shown = ", ".join(f.removeprefix("GGML_") for f in self.features) or "baseline x86-64"
        return f"{self.name} ({shown})"


# -- what the CPU gives ----------------------------------------------------------------
def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The instruction-set flags the kernel reports for this CPU (empty if unknown)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    match = re.search(r"^flags\s*:(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def amx_usable(flags: set[str] | None = None) -> tuple[bool, str]:
    """Whether AMX tile instructions actually run here: compiled and run in a child."""
    flags = cpu_flags() if flags is None else flags
    if not {"amx_tile", "amx_int8"} <= flags:
        return False, "the CPU does not advertise AMX"
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        return False, "no C compiler to probe AMX with"
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "amx.c", Path(tmp) / "amx"
        src.write_text(AMX_PROBE)
        built = subprocess.run([compiler, "-O1", "-mamx-tile", "-mamx-int8", str(src), "-o",
                                str(exe)], capture_output=True, text=True)
        if built.returncode != 0:
            return False, "the compiler cannot emit AMX"
        try:
            ran = subprocess.run([str(exe)], capture_output=True, timeout=30)
        except subprocess.TimeoutExpired:
            return False, "the AMX probe hung"
    if ran.returncode == 0:
        return True, "AMX tile instructions ran in a probe"
    return False, f"the CPU advertises AMX but a probe {exit_reason(ran.returncode)}"


def exit_reason(rc: int) -> str:
    """'died of SIGILL' for a signal, 'exited with 3' otherwise."""
    if rc < 0:
        try:
            return f"died of {signal.Signals(-rc).name}"
        except ValueError:
            return f"died of signal {-rc}"
    return f"exited with {rc}"


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


# -- what to build -----------------------------------------------------------------------
def _x86_target(name: str, enabled: set[str]) -> Target:
    options = [opt for opt, _ in X86_FEATURES + AMX_FEATURES]
    args = ["-DGGML_NATIVE=OFF"] + [f"-D{opt}={'ON' if opt in enabled else 'OFF'}"
                                    for opt in options]
    return Target(name, tuple(args), tuple(opt for opt in options if opt in enabled))


def native_target(flags: set[str] | None = None, amx: bool | None = None) -> Target:
    """This CPU's instruction sets by name; AMX only if `amx` (default: the probe says so)."""
    if not is_x86():
        return Target("native", ("-DGGML_NATIVE=ON",), ())
    flags = cpu_flags() if flags is None else flags
    enabled = {opt for opt, needs in X86_FEATURES if set(needs) <= flags}
    if amx is None:
        amx = amx_usable(flags)[0]
    if amx:
        enabled |= {opt for opt, needs in AMX_FEATURES if set(needs) <= flags}
    return _x86_target("native", enabled)


def portable_target(flags: set[str] | None = None) -> Target:
    """x86-64-v3 at most; `flags` given: only what this CPU has of it (else any AVX2 CPU)."""
    if not is_x86():
        return Target("portable", ("-DGGML_NATIVE=OFF",), ())
    enabled = set(PORTABLE)
    if flags is not None:
        enabled = {opt for opt, needs in X86_FEATURES if opt in PORTABLE and set(needs) <= flags}
    return _x86_target("portable", enabled)


def target(name: str) -> Target:
    if name == "native":
        return native_target()
    if name == "portable":
        return portable_target()
    raise ValueError(f"unknown target {name!r} (native, portable)")


# -- building ----------------------------------------------------------------------------
def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tinyllm"


def locked_version(lock: Path = REPO_ROOT / "requirements.lock") -> str:
    match = re.search(r"^llama-cpp-python==(\S+)", lock.read_text(), re.MULTILINE)
    if not match:
        raise RuntimeError(f"{lock} pins no llama-cpp-python")
    return match.group(1)


def sdist(version: str, python: str = sys.executable) -> Path:
    """llama-cpp-python's source release, downloaded once into the cache."""
    folder = cache_dir() / "sdist"
    found = sorted(folder.glob(f"llama_cpp_python-{version}.tar.gz"))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([python, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps",
                    "--disable-pip-version-check", f"llama-cpp-python=={version}", "-d",
                    str(folder)], check=True)
    return folder / f"llama_cpp_python-{version}.tar.gz"


def _wheel_dir(tgt: Target, version: str, extra_args: tuple[str, ...] = ()) -> Path:
    key = hashlib.sha256(" ".join(tgt.cmake_args + extra_args).encode()).hexdigest()[:12]
    return cache_dir() / f"llama-cpp-python-{version}-{tgt.name}-{key}"


def cached(tgt: Target, version: str, extra_args: tuple[str, ...] = ()) -> Path | None:
    """The wheel built earlier with exactly these flags, if any."""
    found = sorted(_wheel_dir(tgt, version, extra_args).glob("llama_cpp_python-*.whl"))
    return found[0] if found else None


def wheel(tgt: Target, version: str, python: str = sys.executable,
          extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Path:
    """Build llama-cpp-python for `tgt` (or reuse the wheel built with the same flags)."""
    args = tgt.cmake_args + extra_args
    out = _wheel_dir(tgt, version, extra_args)
    found = cached(tgt, version, extra_args)
    if found:
        return found
    source = sdist(version, python)
    tmp = out.with_name(out.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    build_env = {**os.environ, **(env or {}), "CMAKE_ARGS": " ".join(args), "FORCE_CMAKE": "1"}
    # --no-cache-dir: pip's wheel cache ignores CMAKE_ARGS and would hand back another build.
    subprocess.run(["nice", "-n", "10", python, "-m", "pip", "wheel", "-q", "--no-cache-dir",
                    "--no-deps", "--disable-pip-version-check", "-w", str(tmp), str(source)],
                   check=True, env=build_env)
    (tmp / "cmake-args.txt").write_text(" ".join(args) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return sorted(out.glob("llama_cpp_python-*.whl"))[0]


def install(python: str, whl: Path, version: str) -> None:
    """Install `whl` into `python`'s environment, then what it needs from the lock."""
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["--no-deps", "--force-reinstall", str(whl)], check=True)
    subprocess.run(pip + ["-c", str(REPO_ROOT / "requirements.lock"),
                          f"llama-cpp-python[server]=={version}"], check=True)


def marker_path(python: str) -> Path:
    code = "import sys; print(sys.prefix)"
    prefix = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return Path(prefix.stdout.strip()) / MARKER


def write_marker(python: str, tgt: Target, version: str, system_info: str) -> None:
    """Record the build just installed and proven (read by doctor and the benchmarks)."""
    marker_path(python).write_text(json.dumps({
        "version": version, "target": tgt.name, "features": list(tgt.features),
        "cmake_args": list(tgt.cmake_args), "system_info": system_info}, indent=1) + "\n")


def read_marker(prefix: str | Path = sys.prefix) -> dict[str, object] | None:
    """What setup recorded about the installed build, or None if setup did not build it."""
    try:
        data = json.loads((Path(prefix) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def installed_cmake_args(prefix: str | Path = sys.prefix) -> tuple[str, ...]:
    """The flags the installed build was made with (native if setup did not record them)."""
    recorded = read_marker(prefix)
    args = recorded.get("cmake_args") if recorded else None
    if isinstance(args, list):
        return tuple(str(a) for a in args)
    return native_target().cmake_args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else "help"
    if command == "setup":
        from tinyllm.selfcheck import setup  # it builds on this module

        return setup()
    if command == "args":
        sys.stdout.write(" ".join(target(argv[1] if len(argv) > 1 else "native").cmake_args)
                         + "\n")
        return 0
    if command == "wheel" and len(argv) > 1:
        built = wheel(target(argv[1]), locked_version(), extra_args=tuple(argv[2:]))
        sys.stdout.write(f"{built}\n")
        return 0
    sys.stdout.write(__doc__ or "")
    return 0 if command in ("help", "-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main())

"""llama.cpp's own benchmarks (`llama-bench`, `llama-batched-bench`) and HTTP server
(`llama-server`), built from the vendor/llama.cpp folder of the installed
llama-cpp-python's source release."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

from services.config import REPO_ROOT
from tinyllm import cudabuild, llamabuild
from tinyllm.procs import ServiceProcess

log = logging.getLogger("tinyllm.bench")
BUILD = REPO_ROOT / "build" / "llamacpp"  # gitignored
TOOLS = ("llama-bench", "llama-batched-bench", "llama-server")


def _build_dir(args: tuple[str, ...]) -> Path:
    return BUILD / f"cmake-build-{hashlib.sha256(' '.join(args).encode()).hexdigest()[:12]}"


def built() -> bool:
    """Whether the tools are built for the installed llama-cpp-python's flags."""
    build = _build_dir(llamabuild.installed_cmake_args())
    return all((build / "bin" / name).is_file() for name in TOOLS)


def tools() -> tuple[dict[str, Path] | None, str]:
    """The three binaries, building them the first time (minutes); (None, why) on failure.

    They are compiled with the instruction sets of the installed llama-cpp-python build
    (tinyllm/llamabuild.py records them), so both sides of a race run the same kernels and
    neither emits an instruction this machine refuses."""
    args = llamabuild.installed_cmake_args()
    build = _build_dir(args)
    found = {name: build / "bin" / name for name in TOOLS}
    if built():
        return found, ""
    release = version("llama-cpp-python")
    try:
        source = BUILD / f"llama_cpp_python-{release}" / "vendor" / "llama.cpp"
        if not source.is_dir():
            log.info("unpacking the llama-cpp-python %s source release", release)
            BUILD.mkdir(parents=True, exist_ok=True)
            with tarfile.open(llamabuild.sdist(release)) as tar:
                tar.extractall(BUILD, filter="data")
        log.info("building %s from %s (a few minutes)", ", ".join(TOOLS), source)
        env = None
        if "-DGGML_CUDA=ON" in args:  # the CUDA build: the same pip toolkit compiles them
            env = {**os.environ, **cudabuild.build_env(cudabuild.toolkit())}
        subprocess.run(["cmake", "-S", str(source), "-B", str(build),
                        "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
                        "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                        "-DLLAMA_BUILD_SERVER=ON", "-DBUILD_SHARED_LIBS=OFF", *args],
                       check=True, capture_output=True, env=env)
        subprocess.run(["cmake", "--build", str(build), "-j2", "--target", *TOOLS],
                       check=True, capture_output=True, env=env)
    except (OSError, subprocess.CalledProcessError, tarfile.TarError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        return None, f"llama.cpp's tools could not be built: {exc} {detail[-300:]!r}"
    if not all(p.is_file() for p in found.values()):
        return None, "llama.cpp's build finished without the benchmark binaries"
    return found, ""


def batched_decode(binary: Path, model: Path, threads: int, users: list[int], prompt: int,
                   answer: int, flash: str, ctx: int | None = None, ngl: int = 0
                   ) -> dict[int, float]:
    """Aggregate decode tokens/s (S_TG) of `llama-batched-bench` at each user count.

    `ctx`: the whole KV cache, split into max(users) sequences as in a server with that many
    slots; None: the least that holds the run (without flash attention that decodes faster
    than a server's cache: here 8 sequences of 512 cells and more 5-10% slower than of 256)."""
    speeds = parse_batched(batched_output(binary, model, threads, users, prompt, answer, flash,
                                          ctx, ngl))
    if set(speeds) != set(users):
        raise RuntimeError(f"llama-batched-bench reported users {sorted(speeds)}, not {users}")
    return speeds


def batched_output(binary: Path, model: Path, threads: int, users: list[int], prompt: int,
                   answer: int, flash: str, ctx: int | None = None, ngl: int = 0) -> str:
    """What `llama-batched-bench` prints for `batched_decode`'s run."""
    ctx = ctx or max(users) * (prompt + answer) + 256
    cmd = [str(binary), "-m", str(model), "-c", str(ctx),
           "-b", "512", "-ub", "512", "-npp", str(prompt), "-ntg", str(answer),
           "-npl", ",".join(map(str, users)), "-t", str(threads), "-fa", flash,
           "-ngl", str(_layers(ngl)), "--output-format", "jsonl"]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def parse_batched(stdout: str) -> dict[int, float]:
    """S_TG per user count from `llama-batched-bench --output-format jsonl`."""
    speeds = {}
    for line in stdout.splitlines():
        if line.startswith("{") and '"speed_tg"' in line:
            row = json.loads(line)
            speeds[int(row["pl"])] = float(row["speed_tg"])
    return speeds


def single_decode(binary: Path, model: Path, threads: int, answer: int, flash: str) -> float:
    """Single-stream decode tokens/s of `llama-bench` (tg, no prompt); `flash`: -fa's value."""
    return parse_single(single_output(binary, model, threads, answer, flash))


def single_output(binary: Path, model: Path, threads: int, answer: int, flash: str,
                  repeats: int = 2) -> str:
    """What `llama-bench` prints for `single_decode`'s run."""
    cmd = [str(binary), "-m", str(model), "-t", str(threads), "-p", "0", "-n", str(answer),
           "-r", str(repeats), "-fa", flash, "-o", "jsonl"]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def parse_single(stdout: str) -> float:
    """Tokens/s from `llama-bench -o jsonl` (its first result line)."""
    for line in stdout.splitlines():
        if line.startswith("{"):
            return float(json.loads(line)["avg_ts"])
    raise RuntimeError("llama-bench printed no result")


def server(binary: Path, model: Path, threads: int, parallel: int, ctx: int, flash: str,
           ngl: int = 0) -> ServiceProcess:
    """`llama-server` on a free loopback port (from LLAMA_ARG_HOST and LLAMA_ARG_PORT) with
    `parallel` slots sharing a `ctx`-cell KV cache, one buffer per slot as in llmserver's
    engine, `ngl` layers on the GPU (-1: all), and its defaults otherwise; a context manager,
    healthy once entered."""
    return ServiceProcess("llama-server", "LLAMA_ARG_", health_timeout=120, command=[
        str(binary), "-m", str(model), "-t", str(threads), "-tb", str(threads), "-c", str(ctx),
        "-np", str(parallel), "-b", "512", "-ub", "512", "-fa", flash, "--no-kv-unified",
        "-ngl", str(_layers(ngl)), "--no-webui"])


def _layers(ngl: int) -> int:
    """llmserver's LLMSERVER_N_GPU_LAYERS (-1: all) as llama.cpp's tools take it."""
    return 999 if ngl < 0 else ngl


RECORDED = REPO_ROOT / "tests" / "bench" / "recorded" / "llamacpp_output.json"


def sample_outputs(bins: dict[str, Path], model: Path) -> dict[str, str]:
    """What the tools print for a tiny run of the benchmark's own commands (1 and 2 users,
    4 tokens), as the readers get it."""
    batched = batched_output(bins["llama-batched-bench"], model, 2, [1, 2], 16, 4, "auto")
    single = single_output(bins["llama-bench"], model, 2, 4, "auto", repeats=1)
    return {"llama_cpp_python": version("llama-cpp-python"), "batched": batched,
            "single": single.replace(str(model), model.name)}  # no path of this machine


if __name__ == "__main__":  # python -m bench.llamacpp_tools: record the tools' output anew
    from llmserver.models import DEFAULT_MODEL, packaged_models

    logging.basicConfig(level=logging.INFO)
    bins, why = tools()
    if bins is None:
        raise SystemExit(why)
    RECORDED.parent.mkdir(parents=True, exist_ok=True)
    RECORDED.write_text(json.dumps(sample_outputs(bins, packaged_models()[DEFAULT_MODEL]),
                                   indent=1) + "\n")
    sys.stdout.write(f"wrote {RECORDED}\n")

"""The llama.cpp build: flags named from the CPU, AMX only when it runs, and a self-check in a
child that turns a build that dies into a portable rebuild."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmserver.models import packaged_models
from tinyllm import llamabuild as lb
from tinyllm import selfcheck as sc

ZEN4 = set("sse4_2 avx f16c fma bmi2 avx2 avx512f avx512cd avx512vl avx512dq avx512bw "
           "avx512vbmi avx512_vnni avx512_bf16".split())
SAPPHIRE = ZEN4 | {"avx_vnni", "amx_tile", "amx_int8", "amx_bf16"}


@pytest.fixture(scope="module")
def model() -> Path:
    return packaged_models()["smollm2-135m-instruct"]


def option(args: tuple[str, ...], name: str) -> str:
    return next(a.split("=", 1)[1] for a in args if a.startswith(f"-D{name}="))


@pytest.mark.skipif(not lb.is_x86(), reason="the x86 instruction-set options")
def test_native_names_each_instruction_set_and_leaves_amx_out_unless_it_runs() -> None:
    native = lb.native_target(SAPPHIRE, amx=False).cmake_args
    assert option(native, "GGML_NATIVE") == "OFF"  # never -march=native
    assert option(native, "GGML_AVX512_BF16") == "ON"
    assert option(native, "GGML_AVX_VNNI") == "ON"
    assert {option(native, f"GGML_AMX_{x}") for x in ("TILE", "INT8", "BF16")} == {"OFF"}
    with_amx = lb.native_target(SAPPHIRE, amx=True).cmake_args
    assert option(with_amx, "GGML_AMX_INT8") == "ON"
    # AVX-512 needs all five of its subsets; Zen 4 has no AVX-VNNI (only AVX512-VNNI).
    zen4 = lb.native_target(ZEN4, amx=False).cmake_args
    assert option(zen4, "GGML_AVX_VNNI") == "OFF"
    assert option(lb.native_target(ZEN4 - {"avx512vl"}, amx=False).cmake_args,
                  "GGML_AVX512") == "OFF"


@pytest.mark.skipif(not lb.is_x86(), reason="the x86 instruction-set options")
def test_portable_stops_at_avx2_and_at_what_the_cpu_has() -> None:
    portable = lb.portable_target(SAPPHIRE)
    assert set(portable.features) == lb.PORTABLE
    assert option(portable.cmake_args, "GGML_AVX512") == "OFF"
    old = lb.portable_target({"sse4_2", "avx"})  # Sandy Bridge
    assert set(old.features) == {"GGML_SSE42", "GGML_AVX"}
    assert option(old.cmake_args, "GGML_AVX2") == "OFF"


def test_cpu_flags_reads_the_kernels_list(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_tile\nbugs\t: x\n")
    assert lb.cpu_flags(info) == {"fpu", "avx2", "amx_tile"}
    assert lb.cpu_flags(tmp_path / "missing") == set()


@pytest.mark.skipif(not lb.is_x86(), reason="AMX is x86")
def test_the_amx_probe_believes_only_what_runs() -> None:
    assert lb.amx_usable(ZEN4) == (False, "the CPU does not advertise AMX")
    # Told the CPU has AMX, the probe compiles and runs tile instructions in a child: it
    # answers True only where they really run, and a fault there never reaches this process.
    usable, why = lb.amx_usable(SAPPHIRE)
    real = {"amx_tile", "amx_int8"} <= lb.cpu_flags()
    if not real:
        assert not usable
        assert "probe" in why or "compiler" in why, why


def test_the_installed_build_decodes_in_a_child(model: Path) -> None:
    verdict = sc.selfcheck(sys.executable, model)
    assert verdict.ok, verdict.detail
    assert "CPU" in verdict.detail  # llama.cpp's system info: what the build runs with
    assert "AMX_INT8 = 1" not in verdict.detail or lb.amx_usable()[0]


def test_setup_recorded_the_build_it_proved() -> None:
    recorded = lb.read_marker(sys.prefix)
    assert recorded is not None, "scripts/setup.sh records the llama.cpp build it installed"
    assert recorded["version"] == lb.locked_version()
    args = recorded["cmake_args"]
    assert "-DGGML_NATIVE=ON" not in args or not lb.is_x86()
    if not lb.amx_usable()[0]:
        assert "-DGGML_AMX_INT8=ON" not in args
    assert lb.installed_cmake_args(sys.prefix) == tuple(args)


def test_a_library_that_dies_fails_the_check_with_its_signal(model: Path,
                                                             dying_lib: Path) -> None:
    verdict = sc.selfcheck(sys.executable, model, env={"LLAMA_CPP_LIB_PATH": str(dying_lib)})
    assert not verdict.ok
    assert verdict.detail.startswith("died of SIGILL"), verdict.detail


def test_a_build_that_dies_is_rebuilt_portable_and_says_why(model: Path,
                                                           dying_lib: Path) -> None:
    """The setup loop with the first build replaced by one that faults: the installed
    library (really compiled) stands in for the portable rebuild."""
    native, portable = lb.native_target(amx=False), lb.portable_target()
    installed = Path("(the installed build)")
    builds = {native.name: dying_lib, portable.name: installed}
    env: dict[str, str] = {}
    said: list[str] = []

    def install(lib: Path) -> None:
        env.clear()
        if lib != installed:
            env["LLAMA_CPP_LIB_PATH"] = str(lib)

    build = lambda tgt: builds[tgt.name]  # noqa: E731
    chosen, verdict = sc.ensure([native, portable], build, install,
                                lambda: sc.selfcheck(sys.executable, model, env=dict(env)),
                                said.append)
    assert chosen == portable and verdict.ok
    assert len(said) == 1 and "\n" not in said[0]
    assert "died of SIGILL" in said[0] and "rebuilding portable" in said[0]


def test_when_every_build_dies_setup_names_each_failure(model: Path, dying_lib: Path) -> None:
    native, portable = lb.native_target(amx=False), lb.portable_target()
    env = {"LLAMA_CPP_LIB_PATH": str(dying_lib)}
    with pytest.raises(RuntimeError) as err:
        sc.ensure([native, portable], lambda t: dying_lib, lambda p: None,
                  lambda: sc.selfcheck(sys.executable, model, env=env), lambda s: None)
    assert str(err.value).count("died of SIGILL") == 2


def test_the_command_prints_flags_for_the_wheelhouse() -> None:
    root = Path(lb.__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "tinyllm.llamabuild", "args", "portable"],
                          cwd=root, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": ""})
    assert done.stdout.split() == list(lb.portable_target().cmake_args)

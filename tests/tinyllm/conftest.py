"""Fixtures of the tools' tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def dying_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a libllama.so that executes an illegal instruction (ud2) the moment it
    is loaded: point LLAMA_CPP_LIB_PATH at it for a llama.cpp build that dies on this CPU."""
    folder = tmp_path_factory.mktemp("dying-llama")
    src = folder / "dies.c"
    src.write_text("__attribute__((constructor)) static void dies(void) { __builtin_trap(); }\n")
    subprocess.run(["cc", "-shared", "-fPIC", str(src), "-o", str(folder / "libllama.so")],
                   check=True)
    return folder

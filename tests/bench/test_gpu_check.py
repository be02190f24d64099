"""scripts/gpu-check.sh, the check a GPU host runs, runs end to end here too: with no GPU it
races llmserver against llama.cpp on the CPU build (LLMSERVER_N_GPU_LAYERS=0), so it cannot
rot before anyone has a GPU to run it on."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.bench.test_run import table_rows
from tinyllm.procs import REPO

pytestmark = pytest.mark.slow


@pytest.mark.timeout(900)
def test_gpu_check_runs_here_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "LLMSERVER_N_GPU_LAYERS"}
    done = subprocess.run(["bash", "scripts/gpu-check.sh", "--smoke", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=850, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "no GPU here" in done.stdout
    section = (out / "gpu.md").read_text()
    assert section.startswith("## GPU check") and "LLMSERVER_N_GPU_LAYERS=0" in section
    assert "CPU build: running on the CPU" in section  # what llmserver logged it ran on
    rows = table_rows(section)
    assert [r.split("|")[1].strip() for r in rows] == ["1", "2"]  # the smoke run's users
    engine = [r.split("|")[4].strip() for r in rows]
    assert all(float(e.split()[0]) > 0 for e in engine), rows
    assert "## GPU check" in (out / "benchmarks.md").read_text()

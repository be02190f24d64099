"""`tinyllm bench --smoke --out DIR` in the default suite: every benchmark's code path at
its smallest, each writing its table and plot into DIR. `tinyllm bench --quick --out DIR`
(tens of minutes, scripts/test.sh --bench): everything it writes lands in DIR (the
repository's docs/ and the temp folder are left as they were)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bench.run import NAMES
from tinyllm.procs import REPO

pytestmark = pytest.mark.slow


def run_bench(flag: str, out: Path, timeout: float, **env: str) -> str:
    """`tinyllm bench FLAG --out OUT`; the page it says it wrote."""
    result = subprocess.run([sys.executable, "-m", "tinyllm", "bench", flag, "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip() == f"wrote {out / 'benchmarks.md'}"
    return (out / "benchmarks.md").read_text()


def repo_state() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored", "docs", "data"],
                          cwd=REPO, capture_output=True, text=True).stdout


@pytest.mark.bench
@pytest.mark.timeout(3600)
def test_bench_quick_writes_only_into_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    scratch = tmp_path / "tmp"  # the benchmarks' temp folder, to see what they leave behind
    scratch.mkdir()
    docs = {p: p.stat().st_mtime_ns for p in (REPO / "docs").rglob("*")}
    before = repo_state()
    page = run_bench("--quick", out, 3500, TMPDIR=str(scratch))
    for name in NAMES:
        section = (out / f"{name}.md").read_text()
        assert section.startswith("## ") and "(quick)" in section, name
        assert section.split("\n")[0] in page
    written = {p.name for p in out.iterdir()}
    assert {f"{n}.md" for n in NAMES} | {"benchmarks.md"} <= written
    assert all(p.is_file() and p.suffix in (".md", ".png") for p in out.iterdir()), written
    for png in out.glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG"
        assert f"]({png.name})" in page, "image links resolve inside DIR"
    assert {p: p.stat().st_mtime_ns for p in (REPO / "docs").rglob("*")} == docs
    assert repo_state() == before, "nothing written into the repository"
    assert list(scratch.iterdir()) == [], "scratch files are removed"
    assert tempfile.gettempdir() != str(scratch)


def table_rows(markdown: str) -> list[str]:
    """The body rows of every table (the lines under a |---| line)."""
    rows, body = [], False
    for line in markdown.splitlines():
        if re.fullmatch(r"\|[-|: ]+\|", line.strip()):
            body = True
        elif body and line.startswith("|"):
            rows.append(line)
        else:
            body = False
    return rows


PLOTS = {name: f"{name}.png" for name in NAMES}


@pytest.mark.timeout(1800)  # minutes on an idle machine; far longer on a loaded one
def test_bench_smoke_runs_every_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "out"
    docs = {p: p.stat().st_mtime_ns for p in (REPO / "docs").rglob("*")}
    page = run_bench("--smoke", out, 1750)
    for name in NAMES:
        section = (out / f"{name}.md").read_text()
        assert section.startswith("## ") and "(smoke)" in section, name
        rows = table_rows(section)
        assert [r for r in rows if re.search(r"\d", r)], f"{name}: no table rows\n{section}"
        assert "nan" not in " ".join(rows).lower().split(), f"{name}: {rows}"
        png = out / PLOTS[name]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert png.stat().st_size > 5000, f"{name}: an empty plot"
        assert f"]({png.name})" in page
    assert {p: p.stat().st_mtime_ns for p in (REPO / "docs").rglob("*")} == docs


def test_smoke_never_writes_into_docs(capsys: pytest.CaptureFixture[str]) -> None:
    import bench.run as run

    with pytest.raises(SystemExit) as exit_:
        run.main(["--smoke"])
    assert exit_.value.code == 2 and "--smoke needs --out DIR" in capsys.readouterr().err


def test_out_contract_with_a_stand_in_benchmark(tmp_path: Path, monkeypatch) -> None:
    """The same contract in a second: sections, plots and page in DIR, scratch removed."""
    import types

    import bench.run as run

    seen: dict[str, str] = {}

    def fake_run(out_dir: Path, quick: bool = False) -> str:
        seen["tmp"] = tempfile.mkdtemp()  # a benchmark's own scratch, in the run's temp folder
        Path(seen["tmp"], "work.bin").write_bytes(b"x")
        seen["tmpdir_env"] = os.environ["TMPDIR"]
        (out_dir / "fake.png").write_bytes(b"\x89PNG fake")
        return f"## fake: quick={quick}\n\n![plot](benchmarks/fake.png)\n"

    monkeypatch.setitem(sys.modules, "bench.fake", types.SimpleNamespace(run=fake_run))
    monkeypatch.setattr(run, "NAMES", ["fake"])
    out = tmp_path / "out"
    assert run.main(["fake", "--quick", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["benchmarks.md", "fake.md", "fake.png"]
    page = (out / "benchmarks.md").read_text()
    assert "## fake: quick=True" in page and "](fake.png)" in page
    assert not Path(seen["tmp"]).exists() and seen["tmpdir_env"] == str(Path(seen["tmp"]).parent)
    assert os.environ.get("TMPDIR") != seen["tmpdir_env"]

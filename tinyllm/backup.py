"""`tinyllm backup PATH` / `tinyllm restore PATH`: the stack's state in one archive.

What goes in, each found where the services' own settings say (docs/architecture.md,
Operations):
- models: every file in llmserver's models folder (GGUFs are written by rename, so each
  copy is whole), without checkpoints unless asked;
- collections: with a Qdrant server, one snapshot per collection through Qdrant's API;
  embedded, rag's data folder, every SQLite file through SQLite's online backup (a
  consistent copy while rag writes) and the other files copied;
- the chatbot's data: its SQLite database (`database_url`) or data folder, the same way.
Backup runs while the stack runs. Restore goes into an empty stack: it refuses to overwrite
existing data unless `--force`, and refuses while a service that holds its files open
(embedded rag, the chatbot) is running.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sqlite3
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from services.logs import setup_logging

from . import snapshots
from .catalog import SERVICES, Service

log = logging.getLogger("tinyllm.backup")
FORMAT = 1
SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")


def _service(name: str) -> Service:
    return next(s for s in SERVICES if s.name == name)


@dataclass
class Places:
    """Where each part lives, read from the services' settings."""

    models_dir: Path
    rag_data: Path
    qdrant_url: str | None
    qdrant_api_key: str | None
    chatbot_data: Path | None  # a database file or a folder; None: nothing stored
    rag_url: str
    chatbot_url: str

    @classmethod
    def from_settings(cls) -> Places:
        llm, rag, bot = (_service(n).settings() for n in ("llmserver", "rag", "chatbot"))
        return cls(models_dir=Path(llm.models_dir),  # type: ignore[attr-defined]
                   rag_data=Path(rag.data_dir),  # type: ignore[attr-defined]
                   qdrant_url=getattr(rag, "qdrant_url", None) or None,
                   qdrant_api_key=getattr(rag, "qdrant_api_key", None) or None,
                   chatbot_data=_chatbot_data(bot), rag_url=_service("rag").url(),
                   chatbot_url=_service("chatbot").url())


def _chatbot_data(settings: Any) -> Path | None:
    # The chatbot resolves its own default (SQLite under the data folder) in database().
    resolve = getattr(settings, "database", None)
    url = str(resolve() if callable(resolve) else getattr(settings, "database_url", "") or "")
    if url.startswith("sqlite"):
        return Path(url.split("///", 1)[1]) if "///" in url else None
    if url:
        log.warning("the chatbot's database %s is not SQLite: back it up with its own tools",
                    url.split("@")[-1])
        return None
    folder = getattr(settings, "data_dir", None)
    return Path(folder) if folder else None


# --- backup ---------------------------------------------------------------------------


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _private_file(path: Path) -> BinaryIO:
    """A new file only its owner can read, whatever the umask (the archive holds every chat)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")


def _sqlite_copy(source: Path, scratch: Path) -> Path:
    """A consistent copy of a live SQLite database (the online backup API)."""
    target = scratch / f"{source.name}.{os.getpid()}.copy"
    _private_file(target).close()  # SQLite keeps the mode of the empty file it is given
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return target


def _add_tree(tar: tarfile.TarFile, root: Path, prefix: str, scratch: Path,
              skip: tuple[str, ...] = ()) -> list[str]:
    """Every file under root: SQLite files by online backup, the rest copied as they are."""
    added = []
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for path in files:
        rel = path.name if root.is_file() else path.relative_to(root).as_posix()
        if rel.startswith(skip) or path.name in (".lock",) or path.name.endswith(".tmp"):
            continue
        if path.name.endswith(("-journal", "-wal", "-shm")):
            continue  # folded into the database by the online backup
        if path.suffix in SQLITE_SUFFIXES:
            copy = _sqlite_copy(path, scratch)
            tar.add(copy, f"{prefix}/{rel}")
            copy.unlink()
        else:
            tar.add(path, f"{prefix}/{rel}")
        added.append(rel)
    return added


def _qdrant(places: Places) -> httpx.Client:
    return snapshots.client(str(places.qdrant_url), places.qdrant_api_key)


def _snapshot_collections(tar: tarfile.TarFile, places: Places, scratch: Path) -> list[str]:
    """One Qdrant snapshot per collection, taken by the server (consistent per collection)."""
    with _qdrant(places) as client:
        names = snapshots.collections(client)  # names checked before any goes into a path
        for name in names:
            path = scratch / f"{name}{snapshots.SUFFIX}"
            with _private_file(path) as out:
                snapshots.take(client, name, out)
            tar.add(path, snapshots.entry(name))
            path.unlink()
    return names


def backup(target: Path, places: Places, checkpoints: bool = False) -> dict[str, Any]:
    """Write the archive atomically (a temp file beside it, then a rename), readable by its
    owner only."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    manifest: dict[str, Any] = {"format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                           time.gmtime())}
    mode = "w:gz" if target.name.endswith(("gz", ".tgz")) else "w"
    try:
        with _private_file(tmp) as raw, tempfile.TemporaryDirectory() as scratch_dir, \
                tarfile.open(fileobj=raw, mode=mode) as tar:  # type: ignore[call-overload]
            scratch = Path(scratch_dir)
            skip = () if checkpoints else ("checkpoints/",)
            manifest["models"] = (_add_tree(tar, places.models_dir, "models", scratch, skip)
                                  if places.models_dir.is_dir() else [])
            if places.qdrant_url:
                manifest["rag"] = {"mode": "server",
                                   "collections": _snapshot_collections(tar, places, scratch)}
            else:
                files = (_add_tree(tar, places.rag_data, "rag/data", scratch)
                         if places.rag_data.is_dir() else [])
                manifest["rag"] = {"mode": "embedded", "files": files}
            data = places.chatbot_data
            manifest["chatbot"] = (_add_tree(tar, data, "chatbot", scratch)
                                   if data is not None and data.exists() else [])
            manifest["chatbot_kind"] = "file" if data is not None and data.is_file() else "dir"
            _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=1).encode())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return manifest


# --- restore --------------------------------------------------------------------------


class RestoreError(Exception):
    """The archive cannot be restored here as things stand (said before anything is written)."""


def _up(url: str) -> bool:
    try:
        httpx.get(url + "/health", timeout=2)
        return True
    except httpx.HTTPError:
        return False


def _members(tar: tarfile.TarFile, prefix: str) -> list[tarfile.TarInfo]:
    out = []
    for member in tar.getmembers():
        if not member.name.startswith(prefix + "/"):
            continue
        rel = member.name[len(prefix) + 1:]
        if not member.isfile() or rel.startswith("/") or ".." in Path(rel).parts:
            raise RestoreError(f"unsafe entry in the archive: {member.name!r}")
        out.append(member)
    return out


def _snapshot_members(tar: tarfile.TarFile) -> list[tuple[str, tarfile.TarInfo]]:
    """(collection, entry) of each snapshot; the name goes into a Qdrant URL, so it is held
    to the rule backup keeps."""
    out = []
    for member in _members(tar, "rag/snapshots"):
        name = snapshots.collection_of(member.name)
        if name is None:
            raise RestoreError(f"unsafe entry in the archive: {member.name!r} (a collection "
                               f"name is {snapshots.NAME_RULE})")
        out.append((name, member))
    return out


def _extract(tar: tarfile.TarFile, members: list[tarfile.TarInfo], prefix: str,
             root: Path) -> None:
    """Each file to a temp name beside its target, then renamed: no half-written file."""
    for member in members:
        target = root / member.name[len(prefix) + 1:]
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.restore.tmp")
        source = tar.extractfile(member)
        assert source is not None
        with open(tmp, "wb") as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
        os.replace(tmp, target)


def restore(archive: Path, places: Places, force: bool = False) -> dict[str, Any]:
    """Check everything first, then write; returns the archive's manifest."""
    with tarfile.open(archive) as tar:
        try:
            manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        except (KeyError, AttributeError, ValueError) as exc:
            raise RestoreError(f"{archive} is not a TinyLLM backup: {exc}") from None
        if manifest.get("format") != FORMAT:
            raise RestoreError(f"unknown backup format {manifest.get('format')!r}")
        models = _members(tar, "models")
        rag_files = _members(tar, "rag/data")
        snaps = _snapshot_members(tar)
        chat = _members(tar, "chatbot")
        # Refuse before writing anything.
        clashes = [m.name for m in models
                   if (places.models_dir / m.name[len("models/"):]).exists()]
        if rag_files:
            if places.qdrant_url:
                raise RestoreError("the backup holds an embedded store but QDRANT_URL is set")
            if _up(places.rag_url):
                raise RestoreError(f"rag is running at {places.rag_url}: stop it first (it "
                                   "holds the embedded store open)")
            if places.rag_data.is_dir() and any(places.rag_data.iterdir()):
                clashes.append(str(places.rag_data))
        if snaps and not places.qdrant_url:
            raise RestoreError("the backup holds Qdrant server snapshots: set QDRANT_URL")
        chat_root = places.chatbot_data
        if chat:
            if chat_root is None:
                raise RestoreError("the backup holds chatbot data, but the chatbot's settings "
                                   "name no SQLite database or data folder")
            if _up(places.chatbot_url):
                raise RestoreError(f"the chatbot is running at {places.chatbot_url}: stop it "
                                   "first")
            if chat_root.exists() and (chat_root.is_file() or any(chat_root.iterdir())):
                clashes.append(str(chat_root))
        if clashes and not force:
            raise RestoreError("not an empty stack; these exist already (--force to "
                               f"overwrite): {', '.join(clashes[:5])}")
        _extract(tar, models, "models", places.models_dir)
        _extract(tar, rag_files, "rag/data", places.rag_data)
        if chat and chat_root is not None:
            if manifest.get("chatbot_kind") == "file":
                _extract(tar, chat, "chatbot", chat_root.parent)
            else:
                _extract(tar, chat, "chatbot", chat_root)
        if snaps:
            with _qdrant(places) as client:
                for name, member in snaps:
                    data = tar.extractfile(member)
                    assert data is not None  # _members keeps regular files only
                    snapshots.upload(client, name, data)
    return manifest


def _summary(manifest: dict[str, Any]) -> str:
    rag = manifest.get("rag", {})
    what = rag.get("collections", rag.get("files", []))
    return (f"{len(manifest.get('models', []))} model files, rag ({rag.get('mode')}): "
            f"{len(what)} {'collections' if 'collections' in rag else 'files'}, "
            f"chatbot: {len(manifest.get('chatbot', []))} files")


def backup_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinyllm backup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="the archive to write (.tar or .tar.gz)")
    parser.add_argument("--checkpoints", action="store_true",
                        help="include training checkpoints (large)")
    args = parser.parse_args(argv)
    setup_logging("info", "tinyllm")
    try:
        manifest = backup(args.path, Places.from_settings(), args.checkpoints)
    except (OSError, sqlite3.Error, httpx.HTTPError, snapshots.UnsafeName) as exc:
        sys.stderr.write(f"tinyllm backup: error: {exc}\n")
        return 1
    sys.stdout.write(f"wrote {args.path}: {_summary(manifest)}\n")
    return 0


def restore_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinyllm restore", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="an archive written by tinyllm backup")
    parser.add_argument("--force", action="store_true", help="overwrite existing data")
    args = parser.parse_args(argv)
    setup_logging("info", "tinyllm")
    try:
        manifest = restore(args.path, Places.from_settings(), args.force)
    except (RestoreError, OSError, tarfile.TarError, httpx.HTTPError) as exc:
        sys.stderr.write(f"tinyllm restore: error: {exc}\n")
        return 1
    sys.stdout.write(f"restored {args.path}: {_summary(manifest)}\n")
    return 0

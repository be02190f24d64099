"""Qdrant server snapshots for `tinyllm backup` / `tinyllm restore`: one per collection.

A collection's name goes into Qdrant URLs and into file names (scratch files, archive
entries), so names are checked both ways against one strict rule: what Qdrant lists at
backup, and what an archive claims at restore.
"""

from __future__ import annotations

import re
from typing import IO, BinaryIO

import httpx

NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}")  # no '/', no leading '.'
NAME_RULE = "letters, digits, '-', '_' and '.', not starting with '.' and without '..'"
PREFIX, SUFFIX = "rag/snapshots/", ".snapshot"


class UnsafeName(ValueError):
    """A collection name that cannot go into a URL or a file name as it is."""


def safe(name: str) -> bool:
    return NAME.fullmatch(name) is not None and ".." not in name


def entry(name: str) -> str:
    """The archive entry of a collection's snapshot."""
    return f"{PREFIX}{name}{SUFFIX}"


def collection_of(entry_name: str) -> str | None:
    """The collection an archive entry restores; None unless it is PREFIX + safe name + SUFFIX."""
    if not entry_name.startswith(PREFIX) or not entry_name.endswith(SUFFIX):
        return None
    name = entry_name[len(PREFIX):-len(SUFFIX)]
    return name if safe(name) else None


def client(url: str, api_key: str | None) -> httpx.Client:
    headers = {"api-key": api_key} if api_key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=600)


def collections(qdrant: httpx.Client) -> list[str]:
    """Every collection's name; UnsafeName if one breaks the rule (nothing is taken then)."""
    reply = qdrant.get("/collections").raise_for_status()
    names = [str(c["name"]) for c in reply.json()["result"]["collections"]]
    for name in names:
        if not safe(name):
            raise UnsafeName(f"the Qdrant collection {name!r} cannot be backed up: a name "
                             f"must be {NAME_RULE}")
    return names


def take(qdrant: httpx.Client, name: str, out: BinaryIO) -> None:
    """Snapshot collection `name` on the server (consistent per collection) into `out`."""
    snap = qdrant.post(f"/collections/{name}/snapshots", params={"wait": "true"})
    snap_name = snap.raise_for_status().json()["result"]["name"]
    with qdrant.stream("GET", f"/collections/{name}/snapshots/{snap_name}") as reply:
        reply.raise_for_status()
        for chunk in reply.iter_bytes():
            out.write(chunk)
    qdrant.delete(f"/collections/{name}/snapshots/{snap_name}")


def upload(qdrant: httpx.Client, name: str, data: IO[bytes]) -> None:
    """Recreate collection `name` from its snapshot."""
    reply = qdrant.post(f"/collections/{name}/snapshots/upload",
                        params={"priority": "snapshot", "wait": "true"},
                        files={"snapshot": (f"{name}{SUFFIX}", data)})
    reply.raise_for_status()

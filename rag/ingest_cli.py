"""`tinyllm ingest PATH... --collection C`: upload documents to the rag service with progress."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import httpx
from tqdm import tqdm

SUFFIXES = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"}
DEFAULT_URL = "http://127.0.0.1:8001"


def collect(paths: list[Path]) -> list[Path]:
    """Files named, plus the supported files under each folder named (recursively)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*")
                            if p.is_file() and p.suffix.lower() in SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return found


def error_text(response: httpx.Response) -> str:
    try:
        err = response.json()["error"]
        return f"{response.status_code} {err.get('code')}: {err.get('message')}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code}: {response.text[:200]}"


def upload_one(client: httpx.Client, collection: str, path: Path, bar: tqdm,
               poll_s: float) -> dict | str:
    """Upload one file as a background job and follow it; the document row or an error."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        response = client.post(f"/collections/{collection}/documents",
                               params={"background": "true"},
                               files={"files": (path.name, handle)})
    if response.status_code != 202:
        bar.update(size)
        return error_text(response)
    job = response.json()["job"]
    shown = 0
    while True:
        advanced = int(size * float(job.get("progress") or 0))
        bar.update(advanced - shown)
        shown = advanced
        if job["status"] in ("done", "failed"):
            break
        time.sleep(poll_s)
        reply = client.get(f"/jobs/{job['id']}")
        if reply.status_code != 200:
            bar.update(size - shown)
            return error_text(reply)
        job = reply.json()
    bar.update(size - shown)
    if job["status"] == "failed":
        err = job.get("error") or {}
        return f"{err.get('code')}: {err.get('message')}"
    return job["documents"][0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinyllm ingest", description=__doc__)
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="files, or folders to search for .txt .md .html .pdf .docx")
    parser.add_argument("--collection", "-c", required=True, help="target collection")
    parser.add_argument("--url", default=os.environ.get("TINYLLM_RAG_URL", DEFAULT_URL),
                        help=f"rag service base URL (default {DEFAULT_URL}, or TINYLLM_RAG_URL)")
    parser.add_argument("--api-key", default=os.environ.get("RAG_API_KEY"),
                        help="bearer key of the rag service (default: RAG_API_KEY)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per request")
    parser.add_argument("--poll", type=float, default=0.3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        files = collect(args.paths)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    if not files:
        parser.error("no supported files found")
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    failed = 0
    total = sum(p.stat().st_size for p in files)
    with httpx.Client(base_url=args.url.rstrip("/"), headers=headers,
                      timeout=httpx.Timeout(args.timeout, connect=5)) as client, \
            tqdm(total=total, unit="B", unit_scale=True, desc=args.collection,
                 file=sys.stderr) as bar:
        for path in files:
            bar.set_postfix_str(path.name[-40:])
            try:
                result = upload_one(client, args.collection, path, bar, args.poll)
            except httpx.HTTPError as exc:
                result = f"cannot reach {args.url}: {type(exc).__name__}"
            if isinstance(result, str):
                failed += 1
                tqdm.write(f"FAILED {path}: {result}", file=sys.stderr)
            else:
                tqdm.write(f"{result['status']:<9} {path} -> {result['id']} "
                           f"({result['chunks']} chunks)")
    tqdm.write(f"{len(files) - failed} of {len(files)} files in collection "
               f"'{args.collection}'")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

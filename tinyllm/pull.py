"""`tinyllm pull`: a GGUF from the Hugging Face Hub, or any HTTPS URL, into the models folder.

Accepted forms:
  https://huggingface.co/<repo>/resolve/<rev>/<file>.gguf   (as the seed's wget lines)
  <owner>/<repo>/<file>.gguf                                 (the main revision)
  <owner>/<repo>:<quant>                                     (e.g. :Q4_K_M, from its files)
  https://host/path/model.gguf                               (any HTTPS URL)

Hub downloads go through `huggingface_hub` (HF_ENDPOINT, HF_TOKEN, its resume). Every file is
checked before it appears: free disk first, the hub's SHA-256 when it has one, then the GGUF
header and its tensors' sizes; only then is it moved into the models folder in one rename.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

HUB_HOSTS = {"huggingface.co", "hf.co", "www.huggingface.co"}
SHA256 = re.compile(r"^[0-9a-f]{64}$")
SPARE = 64 << 20  # bytes left free on the disk after a pull
SOURCES = ".sources.json"  # where each pulled model came from, in the models folder


class PullError(Exception):
    """A pull that cannot go on; the message says what to do."""


@dataclass
class Source:
    repo: str | None = None
    revision: str = "main"
    filename: str | None = None
    quant: str | None = None
    url: str | None = None  # a plain URL, not on a hub


def _endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def parse(spec: str) -> Source:
    """The model a `tinyllm pull` argument names."""
    spec = spec.strip()
    if spec.startswith(("https://", "http://")):
        url = urlparse(spec)
        parts = [unquote(p) for p in url.path.split("/") if p]
        hub = url.hostname in HUB_HOSTS or url.netloc == urlparse(_endpoint()).netloc
        if hub and len(parts) >= 5 and parts[2] in ("resolve", "blob"):
            return Source(repo="/".join(parts[:2]), revision=parts[3],
                          filename="/".join(parts[4:]))
        local = url.hostname in ("127.0.0.1", "localhost", "::1")
        if url.scheme != "https" and not local:
            raise PullError(f"{spec}: only HTTPS URLs are fetched.")
        if not url.path.endswith(".gguf"):
            raise PullError(f"{spec}: not a .gguf file (the URL must end in .gguf).")
        return Source(url=spec, filename=parts[-1])
    if ":" in spec:
        repo, _, quant = spec.partition(":")
        if repo.count("/") == 1 and quant:
            return Source(repo=repo, quant=quant)
    parts = spec.split("/")
    if len(parts) >= 3 and spec.endswith(".gguf") and all(parts):
        return Source(repo="/".join(parts[:2]), filename="/".join(parts[2:]))
    raise PullError(f"'{spec}' names no model. Use <owner>/<repo>/<file>.gguf, "
                    "<owner>/<repo>:<quant>, or a https://...gguf URL.")


def pick(files: dict[str, int], quant: str, repo: str) -> str:
    """The GGUF of `files` (path -> size) in quantisation `quant` (Q4_K_M...)."""
    wanted = re.compile(rf"(^|[^A-Za-z0-9]){re.escape(quant)}([^A-Za-z0-9]|$)", re.I)
    found = sorted(f for f in files if f.endswith(".gguf") and wanted.search(Path(f).stem)
                   and "mmproj" not in f.lower())
    if not found:
        quants = sorted({m.group(1) for f in files if f.endswith(".gguf")
                         for m in [re.search(r"((?:I?Q\d\w*)|F16|BF16|F32)", Path(f).stem,
                                             re.I)] if m})
        raise PullError(f"{repo} has no {quant} GGUF. It has: {', '.join(quants) or 'none'}.")
    if any(re.search(r"-\d{5}-of-\d{5}", f) for f in found):
        raise PullError(f"{repo}:{quant} is split into several files; split GGUFs are not "
                        "supported yet: merge them with llama-gguf-split first.")
    return min(found, key=lambda f: files[f])


def _free_disk(folder: Path, need: int | None) -> None:
    if need is None:
        return
    free = shutil.disk_usage(folder).free
    if free < need + SPARE:
        raise PullError(f"Not enough disk space in {folder}: the model needs "
                        f"{need / 1e9:.2f} GB, {free / 1e9:.2f} GB is free.")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _hub(source: Source, staging: Path, quiet: bool) -> tuple[Path, str | None, str]:
    """A hub file: listing, location, size and SHA-256 from `huggingface_hub` (HF_ENDPOINT,
    HF_TOKEN); the bytes through `_fetch`, which keeps a partial file to resume from (the
    hub client deletes its partial file when interrupted)."""
    import huggingface_hub as hub
    from huggingface_hub import constants, errors

    # The environment as it is now: the library reads HF_HUB_OFFLINE once, at import, and
    # this process may have imported it under another setting (rag's embedder sets it).
    constants.HF_HUB_OFFLINE = os.environ.get("HF_HUB_OFFLINE", "").lower() in (
        "1", "true", "yes", "on")
    api = hub.HfApi(endpoint=_endpoint())
    assert source.repo is not None
    where = f"{_endpoint()}/{source.repo}"
    try:
        if source.filename is None:
            entries = [e for e in api.list_repo_tree(source.repo, revision=source.revision,
                                                     recursive=True)
                       if isinstance(e, hub.hf_api.RepoFile)]
            source.filename = pick({e.path: e.size for e in entries}, source.quant or "",
                                   source.repo)
        url = hub.hf_hub_url(source.repo, source.filename, revision=source.revision,
                             endpoint=_endpoint())
        where = url
        meta = hub.get_hf_file_metadata(url)
    except errors.GatedRepoError as exc:
        raise PullError(f"{where}: this model is gated; accept its terms on the hub and set "
                        "HF_TOKEN.") from exc
    except errors.RepositoryNotFoundError as exc:
        raise PullError(f"{where}: no such repository, or it is private (set HF_TOKEN).") \
            from exc
    except (errors.RevisionNotFoundError, errors.EntryNotFoundError) as exc:
        raise PullError(f"{where}: not found (404).") from exc
    except errors.OfflineModeIsEnabled as exc:
        raise PullError(f"{where}: HF_HUB_OFFLINE is set; unset it to download.") from exc
    except errors.HfHubHTTPError as exc:
        raise PullError(f"{where}: {exc}") from exc
    except Exception as exc:  # connection refused, DNS, TLS: the hub cannot be reached
        if type(exc).__name__ in ("ConnectError", "ConnectTimeout", "ReadTimeout",
                                  "LocalEntryNotFoundError"):
            raise PullError(f"{where}: cannot reach the hub ({exc}).") from exc
        raise
    _free_disk(staging, meta.size)
    etag = (meta.etag or "").lower()
    headers = hub.utils.build_hf_headers()
    part = _fetch(meta.location, headers, staging / (Path(source.filename).name + ".part"),
                  quiet, Path(source.filename).name)
    return part, etag if SHA256.match(etag) else None, url


def _plain(source: Source, staging: Path, quiet: bool) -> tuple[Path, str | None, str]:
    """A plain URL; its SHA-256 when the server sends one as its ETag."""
    import httpx

    assert source.url is not None and source.filename is not None
    try:
        head = httpx.head(source.url, follow_redirects=True, timeout=30)
    except httpx.TransportError as exc:
        raise PullError(f"{source.url}: cannot connect ({exc}).") from exc
    if head.status_code >= 400:
        raise PullError(f"{source.url}: {head.status_code} {head.reason_phrase}.")
    _free_disk(staging, int(head.headers.get("content-length") or 0) or None)
    etag = (head.headers.get("x-linked-etag") or head.headers.get("etag") or "")
    etag = etag.removeprefix("W/").strip('"').lower()
    part = _fetch(source.url, {}, staging / (source.filename + ".part"), quiet,
                  source.filename)
    return part, etag if SHA256.match(etag) else None, source.url


def _fetch(url: str, headers: dict[str, str], part: Path, quiet: bool, label: str) -> Path:
    """Download `url` into `part`, resuming what an earlier try left there (Range); a
    dropped connection resumes at once, up to five times."""
    import httpx
    from tqdm import tqdm

    for attempt in range(6):
        start = part.stat().st_size if part.exists() else 0
        ask = {**headers, "Accept-Encoding": "identity",
               **({"Range": f"bytes={start}-"} if start else {})}
        try:
            with httpx.stream("GET", url, headers=ask, follow_redirects=True,
                              timeout=30) as r:
                if r.status_code == 416:  # nothing left to send: the part is whole
                    return part
                if r.status_code >= 400:
                    raise PullError(f"{url}: {r.status_code} {r.reason_phrase}.")
                if r.status_code == 200:
                    start = 0  # the server ignored the range: start over
                length = int(r.headers.get("content-length") or 0)
                with part.open("r+b" if start else "wb") as f, tqdm(
                        total=start + length or None, initial=start, unit="B",
                        unit_scale=True, desc=label, disable=quiet) as bar:
                    f.seek(start)
                    f.truncate()
                    for chunk in r.iter_raw():  # as it arrives: a drop loses nothing
                        f.write(chunk)
                        bar.update(len(chunk))
            return part
        except httpx.TransportError as exc:
            if attempt == 5:
                raise PullError(f"{url}: the connection failed ({exc}); run the same "
                                "command again to resume.") from exc
            time.sleep(min(2 ** attempt, 8) / 4)
    return part


def pull(spec: str, models_dir: Path, quiet: bool = False) -> Path:
    """Fetch, check and install one model; returns its path in `models_dir`."""
    from llmserver import modelfile

    source = parse(spec)
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = models_dir / ".pull"
    staging.mkdir(exist_ok=True)
    fetched, sha, url = (_plain if source.url else _hub)(source, staging, quiet)
    if sha is not None:
        got = _sha256(fetched)
        if got != sha:
            fetched.unlink(missing_ok=True)
            raise PullError(f"{url}: the download is corrupt (SHA-256 {got[:16]}..., the hub "
                            f"says {sha[:16]}...); it was deleted, run the command again.")
    try:
        info = modelfile.check(fetched)
    except ValueError as exc:
        fetched.unlink(missing_ok=True)
        raise PullError(f"{url}: not a usable GGUF model: {exc}. It was deleted.") from exc
    target = models_dir / Path(source.filename or fetched.name).name
    os.replace(fetched, target)  # one rename: the file appears whole or not at all
    _record(models_dir, target, {"source": spec, "url": url, "sha256": sha,
                                 "quant": info.quant, "pulled_at": int(time.time())})
    return target


def _record(models_dir: Path, target: Path, entry: dict[str, object]) -> None:
    path = models_dir / SOURCES
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    known[target.name] = entry
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(known, indent=1))
    os.replace(tmp, path)


def sources(models_dir: Path) -> dict[str, dict[str, object]]:
    """Where each pulled file came from (file name -> entry)."""
    try:
        data = json.loads((models_dir / SOURCES).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def default_models_dir() -> Path:
    from llmserver.config import Settings

    return Path(Settings().models_dir)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tinyllm pull", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a hub URL, <owner>/<repo>/<file>.gguf, "
                                      "<owner>/<repo>:<quant>, or a https URL to a .gguf")
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="where models go (default: llmserver's models folder)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    models_dir = args.models_dir or default_models_dir()
    try:
        path = pull(args.model, models_dir, args.quiet)
    except PullError as exc:
        sys.stderr.write(f"tinyllm pull: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("\ntinyllm pull: stopped; run the same command again to resume.\n")
        return 130
    from llmserver.models import model_name

    sys.stdout.write(f"{path.name}: ready as '{model_name(path)}' in {models_dir}\n")
    return 0

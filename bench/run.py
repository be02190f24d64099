"""`tinyllm bench`: run the benchmarks side by side and write docs/benchmarks.md.

Each `bench/<name>.py` has `run(out_dir, quick) -> markdown`; its section is kept in
`docs/benchmarks/<name>.md`, so running one benchmark leaves the others' results in place.
With `--out DIR`, everything (sections, plots, the assembled benchmarks.md) goes into DIR
and nowhere else: scratch files live in a temporary folder removed at the end.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path

from services.config import REPO_ROOT
from services.logs import setup_logging

log = logging.getLogger("tinyllm.bench")
NAMES = ["llmserver", "chatbot", "rag", "trainer"]
DOCS = REPO_ROOT / "docs"


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, " \
           f"Python {platform.python_version()}"


def assemble(out_dir: Path) -> Path:
    """benchmarks.md: a header, then every section present, in NAMES order.

    It goes to docs/ for the default folder, into `out_dir` itself otherwise (with the
    sections' image links, written relative to docs/, made relative to `out_dir`).
    """
    parts = ["# Benchmarks\n",
             "Produced by `tinyllm bench` (one command; each section compares both sides in "
             "the same run, so read the ratios: these machines are shared and noisy).\n"]
    for name in NAMES:
        section = out_dir / f"{name}.md"
        if section.is_file():
            parts.append(section.read_text().strip() + "\n")
    page = "\n".join(parts)
    if out_dir.resolve() == (DOCS / "benchmarks").resolve():
        target = DOCS / "benchmarks.md"
    else:
        target = out_dir / "benchmarks.md"
        page = page.replace("](benchmarks/", "](")
    target.write_text(page)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinyllm bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"which benchmarks (default: all of {', '.join(NAMES)})")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, smaller sizes")
    parser.add_argument("--out", type=Path, default=DOCS / "benchmarks",
                        help="folder for the sections, plots and benchmarks.md, and nothing "
                             "else (default: docs/benchmarks, the page in docs/)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NAMES))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    setup_logging("info", "bench")
    args.out.mkdir(parents=True, exist_ok=True)

    def _on_sigterm(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # unwind: stop the services started, remove the scratch

    previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
    # Every temp file and service log of the benchmarks goes here and is removed at the end.
    with tempfile.TemporaryDirectory(prefix="tinyllm-bench-") as scratch:
        previous, tempfile.tempdir = tempfile.tempdir, scratch
        previous_env = os.environ.get("TMPDIR")
        os.environ["TMPDIR"] = scratch  # and the services' own temp files
        try:
            run_all(args.names or NAMES, args.out, args.quick)
        finally:
            signal.signal(signal.SIGTERM, previous_sigterm)
            tempfile.tempdir = previous
            if previous_env is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = previous_env
    sys.stdout.write(f"wrote {assemble(args.out)}\n")
    return 0


def run_all(names: list[str], out: Path, quick: bool) -> None:
    for name in names:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError:
            log.warning("no benchmark named %s yet", name)
            continue
        log.info("running %s", name)
        started = time.perf_counter()
        section = module.run(out, quick=quick)
        stamp = f"\n\n_Run {time.strftime('%Y-%m-%d')} on {machine()}, " \
                f"{time.perf_counter() - started:.0f} s{' (quick)' if quick else ''}._\n"
        (out / f"{name}.md").write_text(section.strip() + stamp)

"""`tinyllm bench`: run the benchmarks side by side and write docs/benchmarks.md.

Each `bench/<name>.py` has `run(out_dir, quick) -> markdown`; its section is kept in
`docs/benchmarks/<name>.md`, so running one benchmark leaves the others' results in place.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import platform
import sys
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
    """docs/benchmarks.md: a header, then every section present, in NAMES order."""
    parts = ["# Benchmarks\n",
             "Produced by `tinyllm bench` (one command; each section compares both sides in "
             "the same run, so read the ratios: these machines are shared and noisy).\n"]
    for name in NAMES:
        section = out_dir / f"{name}.md"
        if section.is_file():
            parts.append(section.read_text().strip() + "\n")
    target = DOCS / "benchmarks.md"
    target.write_text("\n".join(parts))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinyllm bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"which benchmarks (default: all of {', '.join(NAMES)})")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, smaller sizes")
    parser.add_argument("--out", type=Path, default=DOCS / "benchmarks",
                        help="folder for the sections and plots")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NAMES))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    setup_logging("info", "bench")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names or NAMES:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError:
            log.warning("no benchmark named %s yet", name)
            continue
        log.info("running %s", name)
        started = time.perf_counter()
        section = module.run(args.out, quick=args.quick)
        stamp = f"\n\n_Run {time.strftime('%Y-%m-%d')} on {machine()}, " \
                f"{time.perf_counter() - started:.0f} s{' (quick)' if args.quick else ''}._\n"
        (args.out / f"{name}.md").write_text(section.strip() + stamp)
    sys.stdout.write(f"wrote {assemble(args.out)}\n")
    return 0

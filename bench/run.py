"""`tinyllm bench`: run the benchmarks side by side and write docs/benchmarks.md.

Each `bench/<name>.py` has `run(out_dir, quick) -> markdown`; its section is kept in
`docs/benchmarks/<name>.md`, so running one benchmark leaves the others' results in place.
With `--out DIR`, everything (sections, plots, the assembled benchmarks.md) goes into DIR
and nowhere else: scratch files live in a temporary folder removed at the end.
`--smoke` is the smallest run (a test of every benchmark's code path, not a measurement):
`--quick` with the sizes shrunk further by `shrunk` below, from outside the benchmarks.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import multiprocessing.util
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from services.config import REPO_ROOT
from services.logs import setup_logging

log = logging.getLogger("tinyllm.bench")
NAMES = ["llmserver", "chatbot", "rag", "trainer"]
# Run only when named: the GPU check (scripts/gpu-check.sh) is for a GPU host.
ON_REQUEST = ["gpu"]
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
    for name in NAMES + ON_REQUEST:
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
                        help=f"which benchmarks (default: all of {', '.join(NAMES)}; "
                             f"{', '.join(ON_REQUEST)} only when named)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, smaller sizes")
    parser.add_argument("--smoke", action="store_true",
                        help="the smallest run: one round, tiny sizes, every code path, each "
                             "benchmark's table and plot (a test, not a measurement; --out)")
    parser.add_argument("--out", type=Path, default=DOCS / "benchmarks",
                        help="folder for the sections, plots and benchmarks.md, and nothing "
                             "else (default: docs/benchmarks, the page in docs/)")
    args = parser.parse_args(argv)
    if args.smoke and args.out.resolve() == (DOCS / "benchmarks").resolve():
        parser.error("--smoke needs --out DIR: its numbers are no measurements for docs/")
    unknown = sorted(set(args.names) - set(NAMES + ON_REQUEST))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from "
                     f"{', '.join(NAMES + ON_REQUEST)}")
    setup_logging("info", "bench")
    args.out.mkdir(parents=True, exist_ok=True)

    def _on_sigterm(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # unwind: stop the services started, remove the scratch

    previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
    # multiprocessing's own temp folder is made now, outside the scratch below: it removes it
    # at exit itself, and would fail to if it lay in a scratch already removed.
    multiprocessing.util.get_temp_dir()
    # Every temp file and service log of the benchmarks goes here and is removed at the end.
    with tempfile.TemporaryDirectory(prefix="tinyllm-bench-") as scratch:
        previous, tempfile.tempdir = tempfile.tempdir, scratch
        previous_env = os.environ.get("TMPDIR")
        os.environ["TMPDIR"] = scratch  # and the services' own temp files
        try:
            with shrunk() if args.smoke else contextlib.nullcontext():
                run_all(args.names or NAMES, args.out, args.quick or args.smoke,
                        "smoke" if args.smoke else "quick")
        finally:
            signal.signal(signal.SIGTERM, previous_sigterm)
            tempfile.tempdir = previous
            if previous_env is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = previous_env
    sys.stdout.write(f"wrote {assemble(args.out)}\n")
    return 0


def run_all(names: list[str], out: Path, quick: bool, label: str = "quick") -> None:
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
                f"{time.perf_counter() - started:.0f} s{f' ({label})' if quick else ''}._\n"
        (out / f"{name}.md").write_text(section.strip() + stamp)


def _shrink_args(module: Any, name: str, change: Callable[..., tuple]) -> Callable[..., Any]:
    """`module.name` called with the arguments `change(*args)` returns."""
    original = getattr(module, name)

    def call(*args: Any, **kwargs: Any) -> Any:
        return original(*change(*args), **kwargs)

    return call


def _built_only(tools: Callable[[], tuple], built: Callable[[], bool]) -> Callable[[], tuple]:
    def call() -> tuple:
        if built():
            return tools()
        return None, "llama.cpp's tools are not built (--smoke does not build them)"
    return call


def _one_size(search: Callable[[list[int], int], dict], size: int,
              queries: int) -> Callable[[list[int], int], dict]:
    """A search benchmark run at one small collection size, its result given for every
    size the report asks for (a smoke run's numbers are not measurements)."""
    def call(sizes: list[int], _queries: int) -> dict:
        per_engine = search([size], queries)  # {engine: {size: result}}
        return {engine: {s: results[size] for s in sizes}
                for engine, results in per_engine.items()}
    return call


def _first(load: Callable[..., list], n: int) -> Callable[..., list]:
    """`load` keeping the first n items (documents) it returns."""
    return lambda *args, **kwargs: load(*args, **kwargs)[:n]


# --smoke sizes: module constants, and the arguments of the steps that take their sizes from
# local literals, so the benchmarks themselves keep one code path. A renamed step fails the
# smoke test loudly (AttributeError) rather than running at full size.
SMOKE: dict[str, dict[str, Any]] = {
    "bench.llmserver": {"USERS": [1, 2], "ANSWER": 8},
    "bench.cheapstep": {"USERS": [1, 2], "ANSWER": 8, "MIN_TOKENS": 0},
    "bench.defaults": {"USERS": [1, 2]},
    "bench.flash_race": {"USERS": [1, 2]},
    "bench.gpu": {"USERS": [1, 2], "ANSWER": 8, "SLOTS": 2},
    "bench.race": {"TINY": {"vocab-size": 300, "embd": 32, "head": 2, "layer": 1, "ctx": 64,
                            "iters": 1, "batch": 2, "seed": 1}},
    # llama.cpp's own tools are used when built (`tinyllm bench llmserver` builds them once,
    # minutes); a smoke run never builds them and reports their columns as skipped.
    "bench.llamacpp_tools": {"tools": lambda m: _built_only(m.tools, m.built)},
    "bench.chatbot": {
        "THREADS": [None],  # the 1-thread side runs the same code with another setting
        "gateway_side": lambda m: _shrink_args(m, "gateway_side", lambda threads, *_: (
            threads, 1, [1, 2], 1, 8)),
        "db_side": lambda m: _shrink_args(m, "db_side", lambda r, rep, tmp: (1, 1, tmp)),
    },
    "bench.chatbot_store": {
        "fill": lambda m: _shrink_args(m, "fill", lambda db, n_conv, n_msgs, *rest: (
            db, min(n_conv, 200), min(n_msgs, 4), *rest)),
        "list_and_search": lambda m: _shrink_args(m, "list_and_search",
                                                  lambda db, uid, vocab, calls: (
                                                      db, uid, vocab, min(calls, 5))),
        "turn_writes": lambda m: _shrink_args(m, "turn_writes", lambda db, n, rounds: (
            db, n, min(rounds, 2))),
    },
    "bench.rag": {
        "bench_ingest": lambda m: _shrink_args(m, "bench_ingest", lambda rounds, docs, *rest: (
            1, docs[:2], *rest)),
        "bench_under_load": lambda m: _shrink_args(m, "bench_under_load", lambda docs, q: (
            docs[:2], min(q, 5))),
    },
    "bench.rag_search": {"bench_search": lambda m: _one_size(m.bench_search, 200, 5)},
    "tests.rag.gitdocs": {"load": lambda m: _first(m.load, 4)},
    "bench.trainer": {
        "SIZE": {"ctx": 16, "embd": 64, "head": 4, "layer": 2, "batch": 8},
        "matmul_gflops": lambda m: _shrink_args(m, "matmul_gflops", lambda *a: (256, 2)),
        "_budget_run": lambda m: _shrink_args(m, "_budget_run", lambda path, budget, *rest: (
            path, min(budget, 3.0), *rest)),
    },
}


@contextlib.contextmanager
def shrunk() -> Iterator[None]:
    """Apply SMOKE for the run; restore every module afterwards."""
    saved: list[tuple[Any, str, Any]] = []
    try:
        for module_name, changes in SMOKE.items():
            module = importlib.import_module(module_name)
            for attr, value in changes.items():
                saved.append((module, attr, getattr(module, attr)))
                setattr(module, attr, value(module) if callable(value) else value)
        yield
    finally:
        for module, attr, value in reversed(saved):
            setattr(module, attr, value)

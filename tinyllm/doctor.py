"""`tinyllm doctor`: what this machine gives the stack, and what will go wrong.

One line a check, starting OK, WARN or FAIL; a WARN or FAIL line is followed by an indented
"fix:" line saying what to do. Checks: Python, the llama.cpp build (loaded and decoding in a
child process, so a build that dies on this CPU cannot take doctor down), CPU, GPU, memory
against the models, disk under the data folder, each service's port, docker.

Exit status: 0 when nothing FAILs (WARNs included), 1 when any check FAILs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from services.config import ServiceSettings, default_data_dir
from services.logs import setup_logging

from . import doctor_checks as checks
from . import doctor_probes as probes
from . import llamabuild as lb
from .catalog import SERVICES, Service
from .doctor_checks import Finding, LlamaProbe
from .selfcheck import selfcheck

log = logging.getLogger("tinyllm.doctor")

DECODE_TIMEOUT_S = 120  # loading SmolLM2 and decoding 8 tokens
STYLES = {"OK": "green", "WARN": "yellow", "FAIL": "bold red"}


def service(name: str) -> Service:
    return next(s for s in SERVICES if s.name == name)


class BadSetting(Exception):
    """A service's setting that does not validate, named as its environment variable."""


def settings_of(svc: Service) -> ServiceSettings:
    try:
        return svc.settings()
    except ValidationError as exc:
        raise BadSetting("; ".join(
            f"{svc.prefix}{'_'.join(map(str, e['loc'])).upper()}={str(e.get('input'))[:60]!r}: "
            f"{e['msg']}" for e in exc.errors())) from exc


# -- the checks ------------------------------------------------------------------------------
def check_llama(python: str, probe: LlamaProbe) -> Finding:
    verdict = None
    if probe.version:
        from llmserver.models import DEFAULT_MODEL, packaged_models

        model = packaged_models().get(DEFAULT_MODEL)
        verdict = selfcheck(python, model, timeout=DECODE_TIMEOUT_S) if model else None
    try:
        locked: str | None = lb.locked_version()
    except (OSError, RuntimeError):
        locked = None  # installed without the repository's lock
    return checks.llama_build(probe, verdict, lb.read_marker(sys.prefix), locked)


def check_cpu() -> Finding:
    flags = lb.cpu_flags(probes.CPUINFO)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return checks.cpu(probes.cpu_model(), cores or 1, flags, lb.amx_usable(flags)[0], lb.is_x86())


def check_gpu(probe: LlamaProbe, run: probes.Run) -> Finding:
    llm = service("llmserver")
    layers = int(settings_of(llm).n_gpu_layers)  # type: ignore[attr-defined]
    gpus, why_none = probes.query_gpus(run)
    return checks.gpu(probe.gpu_offload, gpus, why_none, f"{llm.prefix}N_GPU_LAYERS", layers)


def check_memory() -> Finding:
    from llmserver.models import discover

    llm = service("llmserver")
    found = discover(Path(settings_of(llm).models_dir))  # type: ignore[attr-defined]
    sizes = {}
    for name, path in found.items():
        try:
            sizes[name] = path.stat().st_size
        except OSError:
            continue  # removed while we looked
    return checks.memory(probes.mem_available(), sizes, f"{llm.prefix}DEFAULT_MODEL")


def check_disk() -> Finding:
    folder, free = probes.free_bytes(default_data_dir())
    return checks.disk(folder, free)


def check_port(svc: Service) -> Finding:
    settings = settings_of(svc)
    return checks.port(svc.name, f"{svc.prefix}PORT", f"{settings.host}:{settings.port}",
                       probes.probe_port(svc.url()))


def guarded(name: str, check: Callable[[], Finding]) -> Finding:
    """A check that breaks is a FAIL line naming why, never a traceback instead of a report."""
    try:
        return check()
    except BadSetting as exc:
        return Finding(name, "FAIL", f"invalid setting {exc}",
                       "correct it in the environment or .env")
    except Exception as exc:  # one broken check must not hide the others
        log.debug("check %s failed", name, exc_info=True)
        return Finding(name, "FAIL", f"the check broke: {type(exc).__name__}: {exc}",
                       "fix what the error names and run tinyllm doctor again")


def diagnose(python: str = sys.executable,
             run: probes.Run = probes.run_command) -> Iterator[Finding]:
    """Every check in report order, each as soon as it is done."""
    yield checks.python_version(tuple(sys.version_info[:3]))
    probe = probes.probe_llama(python, run)
    steps: list[tuple[str, Callable[[], Finding]]] = [
        ("llama.cpp", lambda: check_llama(python, probe)),
        ("cpu", check_cpu),
        ("gpu", lambda: check_gpu(probe, run)),
        ("memory", check_memory),
        ("disk", check_disk),
        *((f"port {s.name}", lambda s=s: check_port(s)) for s in SERVICES if s.http),
        ("docker", lambda: checks.docker(probes.docker_facts(run))),
    ]
    for name, step in steps:
        yield guarded(name, step)


# -- the report ------------------------------------------------------------------------------
def render(finding: Finding) -> str:
    """'WARN name: detail' and, for WARN and FAIL, an indented 'fix:' line."""
    text = f"{finding.status:<4} {finding.name}: {finding.detail}\n"
    if finding.status != "OK" and finding.fix:
        text += f"     fix: {finding.fix}\n"
    return text


def show(finding: Finding, out: TextIO) -> None:
    """Write one finding, the status in colour on a terminal."""
    text = render(finding)
    if out.isatty():
        from rich.console import Console
        from rich.text import Text

        status = len(finding.status)
        line = Text.assemble((text[:status], STYLES[finding.status]), text[status:].rstrip())
        Console(file=out, soft_wrap=True, highlight=False).print(line)
    else:
        out.write(text)
    out.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinyllm doctor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true",
                        help='print the checks as a JSON list of {"name", "status", "detail", '
                             '"fix"} instead')
    args = parser.parse_args(argv)
    setup_logging("warning", "tinyllm")
    findings = []
    for finding in diagnose():
        findings.append(finding)
        if not args.json:
            show(finding, sys.stdout)
    if args.json:
        sys.stdout.write(json.dumps([asdict(f) for f in findings], indent=1) + "\n")
    return 1 if any(f.status == "FAIL" for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main())

"""`tinyllm up`: run the stack as processes on this host and keep it up until Ctrl-C.

A service that dies is restarted after a back-off that doubles from 1 s to 30 s (reset
once it has stayed healthy for a minute), as compose's `restart: unless-stopped` does; the
launcher gives up and stops everything only when a service keeps dying before it ever
becomes healthy, or on Ctrl-C (docs/architecture.md, Two ways to run).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from dataclasses import dataclass, field

from services.logs import setup_logging

from .catalog import Service, http_services
from .procs import ServiceProcess, describe_exit, stop_all

log = logging.getLogger("tinyllm.up")

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_S = 60.0  # healthy this long: the next death starts the back-off over
TICK_S = 0.5


@dataclass
class Supervised:
    """One service under watch: its process and its restart bookkeeping."""

    service: Service
    proc: ServiceProcess
    up: bool = False  # healthy since its last start
    up_since: float = 0.0
    started_at: float = field(default_factory=time.monotonic)
    start_failures: int = 0  # deaths in a row before becoming healthy
    backoff: float = BACKOFF_FIRST_S
    restart_at: float | None = None
    restarts: int = 0

    def start(self) -> None:
        self.proc.start(wait=False)
        self.started_at, self.up, self.restart_at = time.monotonic(), False, None
        log.info("started %s (pid %s)", self.service.name, self.proc.pid)


class GiveUp(Exception):
    """A service keeps dying at start, or never becomes healthy."""


def supervise_once(sups: list[Supervised], max_start_failures: int, start_timeout: float
                   ) -> None:
    """One round of watching: note who became healthy, restart the dead when due."""
    now = time.monotonic()
    for sup in sups:
        name = sup.service.name
        if sup.restart_at is not None:
            if now >= sup.restart_at:
                sup.restarts += 1
                sup.start()
            continue
        if sup.proc.alive():
            if not sup.up and sup.proc.healthy():
                sup.up, sup.up_since, sup.start_failures = True, now, 0
                log.info("%s ready at %s", name, sup.proc.url)
            elif not sup.up and now - sup.started_at > start_timeout:
                raise GiveUp(f"{name} did not become healthy in {start_timeout:.0f} s")
            elif sup.up and now - sup.up_since >= STABLE_S:
                sup.backoff = BACKOFF_FIRST_S
            continue
        reason = describe_exit(sup.proc.returncode)
        if not sup.up:
            sup.start_failures += 1
            if sup.start_failures >= max_start_failures:
                raise GiveUp(f"{name} keeps dying at start ({sup.start_failures} times in a "
                             f"row, last {reason})")
        log.warning("%s %s%s; restarting in %.0f s", name, reason,
                    "" if sup.up else " before it was ready", sup.backoff)
        sup.restart_at, sup.up = now + sup.backoff, False
        sup.backoff = min(sup.backoff * 2, BACKOFF_MAX_S)


def main(argv: list[str] | None = None) -> int:
    services = [s for s in http_services() if s.installed()]
    parser = argparse.ArgumentParser(prog="tinyllm up", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=[s.name for s in services],
                        help="run only this service (repeatable)")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds a service may take to become healthy after a start")
    parser.add_argument("--max-start-failures", type=int, default=5,
                        help="give up when a service dies this many times in a row before "
                             "becoming healthy")
    args = parser.parse_args(argv)
    setup_logging("info", "tinyllm")
    chosen = [s for s in services if not args.only or s.name in args.only]
    if not chosen:
        log.error("no service to start")
        return 1

    def _on_sigterm(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_sigterm)
    sups: list[Supervised] = []
    try:
        for svc in chosen:
            settings = svc.settings()
            # Own process group: the terminal's Ctrl-C reaches only us; we stop them all.
            proc = ServiceProcess(svc.name, svc.prefix, port=settings.port, host=settings.host,
                                  inherit_output=True, new_session=True)
            sup = Supervised(svc, proc)
            sups.append(sup)
            sup.start()
        announced = False
        while True:
            supervise_once(sups, args.max_start_failures, args.timeout)
            if not announced and all(s.up for s in sups):
                announced = True
                lines = [f"  {s.service.name:<10} {s.proc.url}" for s in sups]
                # The user's answer, not a log line: always on stdout, whatever the log level.
                sys.stdout.write("TinyLLM is up:\n" + "\n".join(lines) +
                                 "\nPress Ctrl-C to stop.\n")
                sys.stdout.flush()
            time.sleep(TICK_S)
    except GiveUp as exc:
        log.error("%s; stopping the stack", exc)
        return 1
    except KeyboardInterrupt:
        log.info("stopping")
        return 0
    finally:
        stop_all([s.proc for s in sups])
        log.info("stopped")

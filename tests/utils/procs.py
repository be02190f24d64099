"""Tests start services with the shared process helper (also used by the benchmarks)."""

from tinyllm.procs import ServiceProcess, free_port

__all__ = ["ServiceProcess", "free_port"]

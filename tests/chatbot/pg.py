"""A throwaway PostgreSQL server (Debian's postgresql package) for the chatbot's tests.

initdb refuses to run as root: as root, the server runs as the `postgres` system user (or
`nobody`) in a temporary folder it owns, on a free loopback port.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.utils.procs import free_port


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(found[0]).parent if found else None


def _as_user() -> tuple[list[str], int | None, int | None]:
    if os.geteuid() != 0:
        return [], None, None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"], entry.pw_uid, entry.pw_gid
    raise RuntimeError("no unprivileged user to run PostgreSQL as")


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server; yield a SQLAlchemy URL of an empty database; stop and delete it."""
    bindir = pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed: run scripts/setup.sh --test")
    prefix, uid, gid = _as_user()
    root = Path(tempfile.mkdtemp(prefix="tinyllm-pg-"))
    data, port = root / "data", free_port()
    if uid is not None:
        os.chown(root, uid, gid or -1)
    try:
        subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "tinyllm",
                        "-A", "trust", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True)
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options,
                        "-l", str(root / "log"), "-w", "-t", "60", "start"],
                       check=True, capture_output=True)
        try:
            subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                            "-U", "tinyllm", "chatbot"], check=True, capture_output=True)
            yield f"postgresql://tinyllm@127.0.0.1:{port}/chatbot"
        finally:
            subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast",
                            "-w", "stop"], capture_output=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def reset(url: str) -> None:
    """Drop every table, so a test starts from migrations on an empty database."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()

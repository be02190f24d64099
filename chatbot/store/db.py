"""The engine, migrations at start, and `Database.run` to call repositories off the event loop.

One code path for SQLite (default, under data/) and PostgreSQL (CHATBOT_DATABASE_URL).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

log = logging.getLogger(__name__)
T = TypeVar("T")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK = 5_000_001  # PostgreSQL advisory lock id: replicas migrate one at a time


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        memory = parsed.database in (None, "", ":memory:")
        if not memory:
            Path(parsed.database or "").parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               poolclass=StaticPool if memory else None)

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            if not memory:
                # WAL: readers never wait for the writer; NORMAL: a commit survives a crash
                # of the process (not of the machine) without an fsync per commit.
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (Alembic), whoever else starts at once."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


class Database:
    """The engine and a session factory; repositories run in a worker thread.

    SQLite has one writer at a time: its work goes through one thread, so transactions in this
    process never fight over the file lock. PostgreSQL gets a pool of threads.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.executor = ThreadPoolExecutor(1 if self.is_sqlite else 8,
                                           thread_name_prefix="chatbot-db")

    def migrate(self) -> None:
        migrate(self.engine)

    def call(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in one transaction (committed unless it raises)."""
        with self.sessions.begin() as session:
            return fn(session)

    async def run(self, fn: Callable[[Session], T]) -> T:
        """`call` in the database's worker thread, without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.call, fn)

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.engine.dispose()

"""Per-session conversation memory, with caps, idle expiry and token-based trimming."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from services.errors import APIError

# (messages) -> (token count, n_ctx)
Counter = Callable[[list[dict]], Awaitable[tuple[int, int]]]


@dataclass
class Session:
    id: str
    messages: list[dict] = field(default_factory=list)
    model: str | None = None
    collection: str | None = None
    last_used: float = field(default_factory=time.monotonic)
    # One answer at a time per session, so turns never interleave.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SessionStore:
    """In-memory sessions keyed by an unguessable cookie value (sticky per replica)."""

    def __init__(self, ttl_s: float, max_sessions: int) -> None:
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        self.sessions: dict[str, Session] = {}

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.ttl_s
        for sid in [s.id for s in self.sessions.values()
                    if s.last_used < cutoff and not s.lock.locked()]:
            del self.sessions[sid]

    def get(self, sid: str | None) -> Session | None:
        self._expire()
        session = self.sessions.get(sid or "")
        if session is not None:
            session.last_used = time.monotonic()
        return session

    def create(self) -> Session:
        self._expire()
        if len(self.sessions) >= self.max_sessions:
            raise APIError(503, "Too many chat sessions are open; try again later.",
                           code="too_many_sessions", headers={"Retry-After": "60"})
        session = Session(secrets.token_urlsafe(24))
        self.sessions[session.id] = session
        return session


async def trim(system: dict, history: list[dict], count: Counter,
               reserve: int) -> tuple[list[dict], int, int]:
    """Drop the oldest turns until system + history fit n_ctx minus `reserve` tokens.

    The system message and the last (user) message are never dropped.

    Returns:
        (messages to send, how many history messages were dropped, tokens of what is sent)
    """
    kept = list(history)
    dropped = 0
    while True:
        messages = [system, *kept]
        tokens, n_ctx = await count(messages)
        budget = n_ctx - min(reserve, n_ctx // 2)
        if tokens <= budget:
            return messages, dropped, tokens
        if len(kept) <= 1:
            raise APIError(400, f"The message needs {tokens} tokens but the model's context "
                                f"leaves room for {budget}; shorten it.",
                           code="context_length_exceeded", param="message")
        # Drop a whole turn (user + answer) so the model never sees an answer without its question.
        step = 2 if len(kept) > 2 and kept[0]["role"] == "user" else 1
        kept = kept[step:]
        dropped += step

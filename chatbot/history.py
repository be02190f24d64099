"""Fitting a conversation into the model's context: drop the oldest turns, with one token
count in the common case and two when turns are dropped."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.errors import APIError

# (messages) -> (token count, n_ctx)
Counter = Callable[[list[dict]], Awaitable[tuple[int, int]]]
TEMPLATE_CHARS = 16  # role markers and separators a chat template adds per message


async def trim(system: dict, history: list[dict], count: Counter,
               reserve: int) -> tuple[list[dict], int, int]:
    """Drop the oldest turns until system + history fit n_ctx minus `reserve` tokens.

    The system message and the last (user) message are never dropped. One count of the whole
    gives the tokens per character; each message's cost is estimated from its length at that
    rate, and what is kept is counted once for real (again only if the estimate was low).

    Returns:
        (messages to send, how many history messages were dropped, tokens of what is sent)
    """
    tokens, n_ctx = await count([system, *history])
    budget = n_ctx - min(reserve, n_ctx // 2)
    if tokens <= budget:
        return [system, *history], 0, tokens
    sizes = [_chars(m) for m in history]
    per_char = tokens / (_chars(system) + sum(sizes))
    dropped = 0
    while True:
        estimate = tokens
        while estimate > budget and len(history) - dropped > 1:
            # Drop a whole turn (user + answer): the model never sees an answer without its
            # question.
            kept = history[dropped:]
            step = 2 if len(kept) > 2 and kept[0]["role"] == "user" else 1
            estimate -= per_char * sum(sizes[dropped:dropped + step])
            dropped += step
        messages = [system, *history[dropped:]]
        tokens, _ = await count(messages)  # the template may join messages: check for real
        if tokens <= budget:
            return messages, dropped, tokens
        if len(history) - dropped <= 1:
            raise APIError(400, f"The message needs {tokens} tokens but the model's context "
                                f"leaves room for {budget}; shorten it.",
                           code="context_length_exceeded", param="message")


def _chars(message: dict) -> int:
    """A message's length for the estimate: its text plus the template's few marks."""
    return len(str(message.get("content") or "")) + TEMPLATE_CHARS

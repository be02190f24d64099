"""Stream chunks back into one completion, as OpenAI's own non-streamed answer has it: every
choice (`n`), tool calls merged from their deltas, logprobs joined, each finish reason."""

from __future__ import annotations

from typing import Any

from services.thinking import reasoning_of


class Choices:
    """Feed it chat or text completion chunks; `build` gives the `choices` list."""

    def __init__(self, chat: bool) -> None:
        self.chat = chat
        self.by_index: dict[int, dict[str, Any]] = {}

    def feed(self, chunk: dict[str, Any]) -> None:
        for choice in chunk.get("choices") or []:
            index = choice.get("index") or 0
            state = self.by_index.setdefault(index, {"text": [], "calls": {}, "logprobs": None,
                                                     "finish": None, "reasoning": []})
            delta = choice.get("delta")
            if isinstance(delta, dict):
                state["text"].append(delta.get("content") or "")
                state["reasoning"].append(reasoning_of(delta))
                for call in delta.get("tool_calls") or []:
                    _merge_call(state["calls"], call)
            else:
                state["text"].append(choice.get("text") or "")
            if isinstance(choice.get("logprobs"), dict):
                state["logprobs"] = _join(state["logprobs"], choice["logprobs"])
            state["finish"] = choice.get("finish_reason") or state["finish"]

    def text(self, index: int = 0) -> str:
        state = self.by_index.get(index)
        return "".join(state["text"]) if state else ""

    def build(self, contents: dict[int, str] | None = None) -> list[dict[str, Any]]:
        """The choices in index order; `contents` replaces a choice's text (citations
        checked)."""
        out = []
        for index in sorted(self.by_index) or [0]:
            state = self.by_index.get(index) or {"calls": {}, "logprobs": None, "finish": None}
            text = (contents or {}).get(index, self.text(index))
            choice: dict[str, Any] = {"index": index,
                                      "finish_reason": state["finish"] or "stop",
                                      "logprobs": state["logprobs"]}
            if self.chat:
                message: dict[str, Any] = {"role": "assistant", "content": text}
                if state["calls"]:
                    message["tool_calls"] = [state["calls"][k] for k in sorted(state["calls"])]
                    message["content"] = text or None
                reasoning = "".join(state.get("reasoning") or [])
                if reasoning:  # as the upstream names it: llama-server's field and vLLM's
                    message["reasoning_content"] = message["reasoning"] = reasoning
                choice["message"] = message
            else:
                choice["text"] = text
            out.append(choice)
        return out


def _merge_call(calls: dict[int, dict[str, Any]], delta: dict[str, Any]) -> None:
    """One tool call delta into the call at its index (name and arguments arrive in parts)."""
    call = calls.setdefault(delta.get("index") or 0, {"id": None, "type": "function",
                                                      "function": {"name": "", "arguments": ""}})
    call["id"] = delta.get("id") or call["id"]
    call["type"] = delta.get("type") or call["type"]
    function = delta.get("function") or {}
    call["function"]["name"] += function.get("name") or ""
    call["function"]["arguments"] += function.get("arguments") or ""


def _join(into: dict[str, Any] | None, part: dict[str, Any]) -> dict[str, Any]:
    """Logprobs of one chunk appended to those so far: chat's `content` list, or the text
    completion's parallel lists."""
    if into is None:
        return {k: list(v) if isinstance(v, list) else v for k, v in part.items()}
    for key, value in part.items():
        if isinstance(value, list):
            into.setdefault(key, [])
            into[key] = (into[key] or []) + value
        elif key not in into:
            into[key] = value
    return into

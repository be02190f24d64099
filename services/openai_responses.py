"""OpenAI's Responses API over chat completions, for llmserver and the chatbot alike.

A Responses request becomes a chat completion request (`to_chat`); the answer, whole or as
chat chunks, becomes a Response object or the Responses stream events (`Shaper`). Neither
service runs a second pipeline: both answer through their own chat completion path.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import APIError

# Conversation state kept per response: the chat messages that led to it and its answer.
Messages = list[dict[str, Any]]


class _Loose(BaseModel):
    # Unknown fields (include, reasoning, truncation, user...) are accepted and ignored.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class TextFormat(_Loose):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = Field(None, max_length=64)
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class TextOptions(_Loose):
    format: TextFormat = Field(default_factory=TextFormat)


class FunctionTool(_Loose):
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class NamedFunction(_Loose):
    type: Literal["function"]
    name: str = Field(max_length=64)


class ResponsesRequest(_Loose):
    """The fields of `POST /v1/responses` that a local model can honour."""

    model: str | None = Field(None, max_length=256)
    input: str | list[dict[str, Any]] = Field(
        ..., description="A text, or a list of messages and function call items.")
    instructions: str | None = Field(None, description="A system message put first.")
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    stream: bool = False
    text: TextOptions | None = None
    tools: list[FunctionTool] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedFunction | None = None
    parallel_tool_calls: bool | None = None
    previous_response_id: str | None = Field(None, max_length=64)
    store: bool | None = Field(None, description="Keep the response for previous_response_id "
                               "(default true).")
    metadata: dict[str, str] | None = None


def new_id() -> str:
    return "resp_" + uuid.uuid4().hex + uuid.uuid4().hex[:16]


def _text_of(content: Any, where: str) -> str:
    """The text of a message's content: a string, or parts of input_text/output_text."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise APIError(400, f"{where}.content must be a string or a list of parts.",
                       code="invalid_value", param=f"{where}.content")
    out = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("input_text", "output_text", "text") or \
                not isinstance(part.get("text"), str):
            raise APIError(400, f"{where}.content[{j}]: only text parts are supported "
                           f"(got {kind!r}).", code="invalid_value",
                           param=f"{where}.content[{j}]")
        out.append(part["text"])
    return "".join(out)


def input_messages(req: ResponsesRequest) -> Messages:
    """The request's `input` as chat messages (function calls and their outputs too)."""
    if isinstance(req.input, str):
        return [{"role": "user", "content": req.input}]
    messages: Messages = []
    for i, item in enumerate(req.input):
        where = f"input[{i}]"
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise APIError(400, f"{where}.role must be user, assistant, system or "
                               "developer.", code="invalid_value", param=f"{where}.role")
            messages.append({"role": "system" if role == "developer" else role,
                             "content": _text_of(item.get("content"), where)})
        elif kind == "function_call":
            call = {"id": str(item.get("call_id") or ""), "type": "function",
                    "function": {"name": str(item.get("name") or ""),
                                 "arguments": str(item.get("arguments") or "")}}
            last = messages[-1] if messages else None
            if last and last["role"] == "assistant" and last.get("tool_calls"):
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append({"role": "tool", "tool_call_id": str(item.get("call_id") or ""),
                             "content": output if isinstance(output, str)
                             else _text_of(output, where)})
        elif kind == "reasoning":
            continue  # earlier reasoning never goes back to the model
        else:
            raise APIError(400, f"{where}: items of type {kind!r} are not supported.",
                           code="invalid_value", param=f"{where}.type")
    if not messages:
        raise APIError(400, "'input' holds no message.", code="invalid_value", param="input")
    return messages


def to_chat(req: ResponsesRequest, history: Messages) -> dict[str, Any]:
    """The chat completion body for `req`, after the earlier turns in `history`."""
    # Instructions apply to this response only (as OpenAI's do): never kept in a history.
    messages = ([{"role": "system", "content": req.instructions}] if req.instructions else []) \
        + list(history) + input_messages(req)
    body: dict[str, Any] = {"messages": messages, "stream": req.stream}
    for key, value in (("model", req.model), ("max_tokens", req.max_output_tokens),
                       ("temperature", req.temperature), ("top_p", req.top_p),
                       ("seed", req.seed)):
        if value is not None:
            body[key] = value
    if req.stream:
        body["stream_options"] = {"include_usage": True}
    fmt = req.text.format if req.text else None
    if fmt is not None and fmt.type == "json_object":
        body["response_format"] = {"type": "json_object"}
    elif fmt is not None and fmt.type == "json_schema":
        if fmt.schema_ is None:
            raise APIError(400, "text.format.schema is required for json_schema.",
                           code="invalid_value", param="text.format.schema")
        body["response_format"] = {"type": "json_schema", "json_schema": {
            "name": fmt.name or "response", "schema": fmt.schema_, "strict": fmt.strict}}
    if req.tools:
        body["tools"] = [{"type": "function", "function": {
            "name": t.name, "description": t.description,
            "parameters": t.parameters or {"type": "object"}}} for t in req.tools]
    if isinstance(req.tool_choice, NamedFunction):
        body["tool_choice"] = {"type": "function", "function": {"name": req.tool_choice.name}}
    elif req.tool_choice is not None:
        body["tool_choice"] = req.tool_choice
    return body


def _usage(chat: dict[str, Any] | None) -> dict[str, Any]:
    chat = chat or {}
    prompt = int(chat.get("prompt_tokens") or 0)
    done = int(chat.get("completion_tokens") or 0)
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": done, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + done}


def _reasoning_of(message: dict[str, Any]) -> str:
    return str(message.get("reasoning_content") or message.get("reasoning") or "")


class Shaper:
    """The Response object of one request, built whole or event by event."""

    def __init__(self, req: ResponsesRequest, model: str) -> None:
        self.req = req
        self.id = new_id()
        self.created_at = int(time.time())
        self.model = model
        self.output: list[dict[str, Any]] = []
        self.usage: dict[str, Any] | None = None
        self.finish: str | None = None
        self.seq = 0
        self.open: dict[str, Any] | None = None  # the output item being streamed

    # -- the object ------------------------------------------------------------------
    def response(self, status: str) -> dict[str, Any]:
        req = self.req
        tools = [{"type": "function", "name": t.name, "description": t.description,
                  "parameters": t.parameters or {"type": "object"}, "strict": t.strict}
                 for t in req.tools or []]
        choice = req.tool_choice.model_dump() if isinstance(req.tool_choice, NamedFunction) \
            else (req.tool_choice or "auto")
        fmt = req.text.format.model_dump(by_alias=True, exclude_none=True) if req.text \
            else {"type": "text"}
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        return {"id": self.id, "object": "response", "created_at": self.created_at,
                "status": status, "model": self.model, "output": self.output,
                "output_text": self.output_text(), "error": None,
                "incomplete_details": incomplete, "instructions": req.instructions,
                "max_output_tokens": req.max_output_tokens, "temperature": req.temperature,
                "top_p": req.top_p, "tools": tools, "tool_choice": choice,
                "text": {"format": fmt}, "parallel_tool_calls": req.parallel_tool_calls
                is not False, "previous_response_id": req.previous_response_id,
                "store": req.store is not False, "metadata": req.metadata or {},
                "truncation": "disabled", "usage": self.usage}

    def output_text(self) -> str:
        return "".join(part["text"] for item in self.output if item["type"] == "message"
                       for part in item["content"] if part["type"] == "output_text")

    def status(self) -> str:
        return "incomplete" if self.finish == "length" else "completed"

    def whole(self, chat: dict[str, Any]) -> dict[str, Any]:
        """The Response for a whole chat.completion."""
        choice = (chat.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        self.finish = choice.get("finish_reason")
        thought = _reasoning_of(message)
        if thought:
            self.output.append(self._reasoning(thought))
        if message.get("content"):
            self.output.append(self._message(str(message["content"]), "completed"))
        for call in message.get("tool_calls") or []:
            self.output.append(self._call(call, "completed"))
        self.usage = _usage(chat.get("usage"))
        return self.response(self.status())

    def messages(self) -> Messages:
        """The answer as chat messages, for the next turn's history."""
        text = self.output_text()
        calls = [{"id": i["call_id"], "type": "function",
                  "function": {"name": i["name"], "arguments": i["arguments"]}}
                 for i in self.output if i["type"] == "function_call"]
        if not text and not calls:
            return []
        return [{"role": "assistant", "content": text or None,
                 **({"tool_calls": calls} if calls else {})}]

    # -- items -----------------------------------------------------------------------
    @staticmethod
    def _message(text: str, status: str) -> dict[str, Any]:
        return {"type": "message", "id": "msg_" + uuid.uuid4().hex, "status": status,
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": [],
                             "logprobs": []}] if text or status != "in_progress" else []}

    @staticmethod
    def _reasoning(text: str) -> dict[str, Any]:
        return {"type": "reasoning", "id": "rs_" + uuid.uuid4().hex, "summary": [],
                "content": [{"type": "reasoning_text", "text": text}]}

    @staticmethod
    def _call(call: dict[str, Any], status: str) -> dict[str, Any]:
        fn = call.get("function") or {}
        args = fn.get("arguments")
        return {"type": "function_call", "id": "fc_" + uuid.uuid4().hex,
                "call_id": call.get("id") or "call_" + uuid.uuid4().hex[:24],
                "name": fn.get("name", ""),
                "arguments": args if isinstance(args, str) else json.dumps(args or {}),
                "status": status}

    # -- streaming -------------------------------------------------------------------
    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        self.seq += 1
        return {"type": kind, "sequence_number": self.seq - 1, **fields}

    async def events(self, chunks: AsyncIterator[dict[str, Any]]
                     ) -> AsyncIterator[dict[str, Any]]:
        """Responses stream events from chat.completion.chunk dicts, ending with
        response.completed (or response.incomplete); an error chunk ends it with an error
        event."""
        yield self.event("response.created", response=self.response("in_progress"))
        yield self.event("response.in_progress", response=self.response("in_progress"))
        async for chunk in chunks:
            if "error" in chunk:
                error = chunk["error"] or {}
                yield self.event("error", code=error.get("code"), message=error.get("message"),
                                 param=error.get("param"))
                return
            if chunk.get("model"):
                self.model = chunk["model"]
            if chunk.get("usage"):
                self.usage = _usage(chunk["usage"])
            for choice in chunk.get("choices") or []:
                if choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta") or {}
                thought = _reasoning_of(delta)
                if thought:
                    for ev in self._stream_text("reasoning", thought):
                        yield ev
                if delta.get("content"):
                    for ev in self._stream_text("message", delta["content"]):
                        yield ev
                for call in delta.get("tool_calls") or []:
                    for ev in self._stream_call(call):
                        yield ev
                if choice.get("finish_reason"):
                    self.finish = choice["finish_reason"]
        for ev in self._close():
            yield ev
        status = self.status()
        yield self.event(f"response.{status}", response=self.response(status))

    def _stream_text(self, kind: str, text: str) -> list[dict[str, Any]]:
        out = []
        if self.open is None or self.open["type"] != kind:
            out += self._close()
            item = self._reasoning("") if kind == "reasoning" else self._message("", "in_progress")
            part = {"type": "reasoning_text", "text": ""} if kind == "reasoning" else \
                {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            self.open = item
            self.output.append(item)
            shown = {**item, "content": []}
            out.append(self.event("response.output_item.added",
                                  output_index=len(self.output) - 1, item=shown))
            out.append(self.event("response.content_part.added", item_id=item["id"],
                                  output_index=len(self.output) - 1, content_index=0,
                                  part=part))
            item["content"] = [dict(part)]
        item = self.open
        item["content"][0]["text"] += text
        name = "response.reasoning_text.delta" if kind == "reasoning" else \
            "response.output_text.delta"
        extra: dict[str, Any] = {} if kind == "reasoning" else {"logprobs": []}
        out.append(self.event(name, item_id=item["id"], output_index=len(self.output) - 1,
                              content_index=0, delta=text, **extra))
        return out

    def _stream_call(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        out = self._close()
        item = self._call(call, "completed")
        self.output.append(item)
        index = len(self.output) - 1
        out.append(self.event("response.output_item.added", output_index=index,
                              item={**item, "arguments": "", "status": "in_progress"}))
        out.append(self.event("response.function_call_arguments.delta", item_id=item["id"],
                              output_index=index, delta=item["arguments"]))
        out.append(self.event("response.function_call_arguments.done", item_id=item["id"],
                              output_index=index, arguments=item["arguments"],
                              name=item["name"]))
        out.append(self.event("response.output_item.done", output_index=index, item=item))
        return out

    def _close(self) -> list[dict[str, Any]]:
        item, self.open = self.open, None
        if item is None:
            return []
        index = self.output.index(item)
        part = item["content"][0]
        common = {"item_id": item["id"], "output_index": index, "content_index": 0}
        if item["type"] == "reasoning":
            done = self.event("response.reasoning_text.done", text=part["text"], **common)
        else:
            item["status"] = "completed"
            done = self.event("response.output_text.done", text=part["text"], logprobs=[],
                              **common)
        return [done, self.event("response.content_part.done", part=part, **common),
                self.event("response.output_item.done", output_index=index, item=item)]


def sse(event: dict[str, Any]) -> bytes:
    """One Responses stream event as SSE (named, as OpenAI sends them)."""
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()

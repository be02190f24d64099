"""Constrained output: response_format and tools become a grammar; tool calls are parsed
back out of the text. The chat template sees tools and tool results as messages."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from services.errors import APIError

from .grammar_limits import check_grammar, check_schema
from .schemas import ChatCompletionRequest, ChatMessage, Tool

TOOL_PROMPT = (
    "You can call functions. To call one, answer with only a JSON object "
    '{{"name": <function name>, "arguments": <arguments object>}} and nothing else.\n'
    "Functions:\n{functions}")


@dataclass
class Plan:
    """How to prompt and constrain one chat request, and how to read its answer."""

    messages: list[dict[str, Any]]
    grammar: str | None = None
    tools: list[Tool] | None = None  # calls in the answer are parsed (auto) or forced
    forced: bool = False  # tool_choice required/named: the whole answer is a call


def _schema_grammar(schema: dict[str, Any], param: str) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    check_schema(schema, param)
    try:
        grammar = json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:  # the converter raises plain errors on schemas it cannot map
        raise APIError(400, f"The JSON schema cannot be turned into a grammar: {exc}",
                       code="invalid_value", param=param) from exc
    check_grammar(grammar, param)
    return grammar


def _call_schema(tools: list[Tool]) -> dict[str, Any]:
    calls = [{"type": "object",
              "properties": {"name": {"const": t.function.name},
                             "arguments": t.function.parameters or {"type": "object"}},
              "required": ["name", "arguments"]} for t in tools]
    return calls[0] if len(calls) == 1 else {"oneOf": calls}


def _message(m: ChatMessage) -> dict[str, Any]:
    content = m.text()
    if m.tool_calls:  # an earlier call goes back to the model in the form it writes them
        calls = [json.dumps({"name": c.function.name,
                             "arguments": _arguments(c.function.arguments)})
                 for c in m.tool_calls]
        content = "\n".join(([content] if content else []) + calls)
    out: dict[str, Any] = {"role": m.role, "content": content}
    if m.name:
        out["name"] = m.name
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    return out


def _arguments(text: str) -> Any:
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return text


def plan(req: ChatCompletionRequest) -> Plan:
    messages = [_message(m) for m in req.messages]
    result = Plan(messages)
    fmt = req.response_format
    if fmt is not None and fmt.type == "json_object":
        from llama_cpp.llama_grammar import JSON_GBNF

        result.grammar = JSON_GBNF
    elif fmt is not None and fmt.type == "json_schema":
        if fmt.json_schema is None:
            raise APIError(400, "response_format json_schema needs a 'json_schema' object.",
                           code="invalid_value", param="response_format")
        result.grammar = _schema_grammar(fmt.json_schema.schema_ or {"type": "object"},
                                         "response_format")
    choice = req.tool_choice
    tools = req.tools or []
    if not tools or choice == "none":
        if choice not in (None, "none", "auto"):
            raise APIError(400, "tool_choice needs 'tools'.", code="invalid_value",
                           param="tool_choice")
        return result
    if result.grammar is not None and choice is not None and choice != "auto":
        raise APIError(400, "Use either response_format or a forced tool_choice, not both.",
                       code="invalid_value", param="tool_choice")
    if choice is not None and not isinstance(choice, str):
        chosen = [t for t in tools if t.function.name == choice.function.name]
        if not chosen:
            raise APIError(400, f"tool_choice names '{choice.function.name}', which is not "
                           "among the tools.", code="invalid_value", param="tool_choice")
        tools_in_prompt, forced = chosen, True
    else:
        tools_in_prompt, forced = tools, choice == "required"
    result.tools, result.forced = tools_in_prompt, forced
    if forced:
        result.grammar = _schema_grammar(_call_schema(tools_in_prompt), "tools")
    described = "\n".join(json.dumps(t.function.model_dump(exclude_none=True))
                          for t in tools_in_prompt)
    note = TOOL_PROMPT.format(functions=described)
    if messages and messages[0]["role"] == "system":
        messages[0] = {**messages[0], "content": f"{messages[0]['content']}\n\n{note}"}
    else:
        messages.insert(0, {"role": "system", "content": note})
    return result


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)
_TAGGED = re.compile(r"^<tool_call>\s*(.*?)\s*</tool_call>$", re.S)


def parse_call(text: str, tools: list[Tool]) -> dict[str, Any] | None:
    """A well-formed call to one of `tools` in the answer, as an OpenAI tool_call."""
    body = text.strip()
    for pattern in (_FENCE, _TAGGED):
        match = pattern.match(body)
        if match:
            body = match.group(1)
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    if data["name"] not in {t.function.name for t in tools}:
        return None
    args = data.get("arguments", data.get("parameters", {}))
    if not isinstance(args, dict):
        return None
    return {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": data["name"], "arguments": json.dumps(args)}}


def might_be_call(text: str) -> bool:
    """Whether streamed text so far could still turn out to be a tool call (held back)."""
    body = text.lstrip()
    return not body or body[0] in "{`<" and (body[0] != "<" or "<tool_call>".startswith(
        body[:11]) or body.startswith("<tool_call>"))

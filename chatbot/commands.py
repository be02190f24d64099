"""Chat commands typed in the message box (`/model`, `/rag`, ...), answered here, never sent
to the model. The browser chat and the gateway's chat clients (`tinyllm chat`) share them.

A command reads and changes a conversation's `State` (model, collection, chunks per question,
whether a thinking model's reasoning is shown); the caller stores the new state.
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import asdict, dataclass, replace
from typing import Any

from services.errors import APIError

from .llm import LLMClient
from .rag_client import RagClient

COMMANDS: list[tuple[str, str]] = [
    ("/reset", "start a new chat"),
    ("/model [name]", "show the model, or switch to another"),
    ("/rag [collection] [k]", "answer from a document collection (k chunks a question)"),
    ("/rag off", "stop answering from documents"),
    ("/think on|off", "show or hide a thinking model's reasoning"),
    ("/version", "show TinyLLM's version"),
    ("/help", "list the commands"),
]
_COMMAND = re.compile(r"^/([A-Za-z]*)(?:\s+(.*))?$", re.S)
MAX_K = 20


@dataclass
class State:
    model: str
    collection: str | None
    rag_k: int
    think: bool = True

    def view(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Outcome:
    command: str  # the name typed, without the slash ("" for a bare "/")
    text: str  # the reply shown to the user (Markdown)
    state: State
    action: str | None = None  # "reset": the client starts a new chat
    changed: bool = False


def is_command(text: str | None) -> bool:
    """A message whose first character is a slash is a command, known or not."""
    return bool(text) and text.lstrip().startswith("/")  # type: ignore[union-attr]


def help_text(intro: str = "Commands:") -> str:
    return intro + "\n\n" + "\n".join(f"- `{usage}`: {what}" for usage, what in COMMANDS)


def version() -> str:
    try:
        return importlib.metadata.version("tinyllm")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


async def _model_ids(llm: LLMClient) -> list[str]:
    return [str(m.get("id")) for m in (await llm.models()).get("data", [])]


async def _collection_names(rag: RagClient) -> list[str]:
    body = await rag.call("GET", "/collections")
    return [str(c.get("name")) for c in body.get("data", [])
            if not str(c.get("name")).lower().startswith("conv-")]  # conversations' own


async def run(text: str, state: State, llm: LLMClient, rag: RagClient) -> Outcome:
    """Answer one command. Unknown commands and bad arguments answer with help, not errors;
    a service that is down answers with what went wrong."""
    match = _COMMAND.match(text.strip())
    name = (match.group(1) if match else "").lower()
    args = (match.group(2) or "").split() if match else []
    try:
        return await _dispatch(name, args, state, llm, rag)
    except APIError as exc:
        return Outcome(name, f"`/{name}` failed: {exc.message}", state)


async def _dispatch(name: str, args: list[str], state: State, llm: LLMClient,
                    rag: RagClient) -> Outcome:
    if name == "help":
        return Outcome(name, help_text(), state)
    if name == "reset":
        return Outcome(name, "Started a new chat.", state, action="reset")
    if name == "version":
        return Outcome(name, f"TinyLLM {version()}, model `{state.model}`.", state)
    if name == "model":
        return await _model(args, state, llm)
    if name == "rag":
        return await _rag(args, state, rag)
    if name == "think" and len(args) == 1 and args[0].lower() in ("on", "off"):
        on = args[0].lower() == "on"
        return Outcome(name, "Thinking is shown." if on else "Thinking is hidden.",
                       replace(state, think=on), changed=on != state.think)
    if name == "think":
        return Outcome(name, "Usage: `/think on` or `/think off`. Thinking is "
                       f"{'shown' if state.think else 'hidden'} now.", state)
    return Outcome(name, help_text(f"Unknown command `/{name}`." if name else "Commands:"),
                   state)


async def _model(args: list[str], state: State, llm: LLMClient) -> Outcome:
    ids = await _model_ids(llm)
    listed = ", ".join(f"`{i}`" for i in ids) or "none"
    if not args:
        return Outcome("model", f"Model: `{state.model}`. Available: {listed}.", state)
    wanted = args[0]
    if wanted not in ids:
        return Outcome("model", f"No model named `{wanted}`. Available: {listed}.", state)
    return Outcome("model", f"Switched to `{wanted}`.", replace(state, model=wanted),
                   changed=wanted != state.model)


async def _rag(args: list[str], state: State, rag: RagClient) -> Outcome:
    if not args:
        if state.collection:
            return Outcome("rag", f"Answering from `{state.collection}` ({state.rag_k} chunks "
                           "a question). `/rag off` stops.", state)
        names = ", ".join(f"`{n}`" for n in await _collection_names(rag)) or "none yet"
        return Outcome("rag", f"Not answering from documents. Collections: {names}.", state)
    if args[0].lower() == "off" and len(args) == 1:
        return Outcome("rag", "No longer answering from documents.",
                       replace(state, collection=None), changed=state.collection is not None)
    k = state.rag_k
    if len(args) > 2 or (len(args) == 2 and not args[1].isdigit()):
        return Outcome("rag", "Usage: `/rag [collection] [k]` or `/rag off`.", state)
    if len(args) == 2:
        k = int(args[1])
        if not 1 <= k <= MAX_K:
            return Outcome("rag", f"k must be between 1 and {MAX_K}.", state)
    names = await _collection_names(rag)
    if args[0] not in names:
        listed = ", ".join(f"`{n}`" for n in names) or "none yet"
        return Outcome("rag", f"No collection named `{args[0]}`. Collections: {listed}.", state)
    new = replace(state, collection=args[0], rag_k=k)
    return Outcome("rag", f"Answering from `{args[0]}` ({k} chunks a question).", new,
                   changed=new != state)

"""`tinyllm chat`: a terminal chat with any OpenAI-compatible server (the original chat.py).

An empty line quits; Ctrl-C during an answer stops that answer, not the program. Against
TinyLLM's chatbot, chat commands (/help, /model, /rag, /think, /reset, /version) work as in
the browser and the loop guard is on; other servers just ignore the extra fields.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, TextIO

import openai

from services.thinking import ThinkSplitter, reasoning_of

from .controls import ControlFilter, printable

log = logging.getLogger(__name__)
DEFAULT_URL = "http://127.0.0.1:5000/v1"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tinyllm chat", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL", DEFAULT_URL),
                        help="OpenAI-compatible base URL, ending in /v1 (default: %(default)s)")
    parser.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY", "none"),
                        help="bearer key, if the server wants one (env OPENAI_API_KEY)")
    parser.add_argument("--model", default=None, help="model name (default: the server's first)")
    parser.add_argument("--system", default="You are a helpful and concise assistant.",
                        help="system prompt")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature")
    parser.add_argument("--max-tokens", type=int, default=512, help="longest answer in tokens")
    return parser.parse_args(argv)


def error_text(exc: Exception, base_url: str) -> str:
    """A readable one-liner for the usual failures (the server's words made printable)."""
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot reach {base_url} ({exc.__class__.__name__}); is the server running?"
    if isinstance(exc, openai.APIStatusError):
        try:
            message = exc.response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.response.text[:200]
        return f"the server answered {exc.status_code}: {printable(str(message))}"
    return printable(str(exc))


def tools(args: argparse.Namespace) -> dict[str, Any]:
    """The chatbot's extensions: commands, the loop guard, the chosen collection."""
    extra: dict[str, Any] = {"chat_tools": True, "think": args.think}
    if args.collection:
        extra.update(collection=args.collection, rag_k=args.rag_k)
    return extra


def command(client: openai.OpenAI, args: argparse.Namespace, messages: list[Any], line: str,
            out: TextIO) -> None:
    """Send a command to the chatbot and apply what it changed (model, collection, reset)."""
    reply: Any = client.chat.completions.create(
        model=args.model, messages=[*messages, {"role": "user", "content": line}],
        max_tokens=args.max_tokens, extra_body=tools(args))
    done = (reply.model_extra or {}).get("command")
    out.write(printable(reply.choices[0].message.content or "") + "\n")
    if not done:
        out.write("(this server does not know chat commands)\n")
        return
    state = done.get("state") or {}
    args.model = state.get("model") or args.model
    args.collection, args.rag_k = state.get("collection"), state.get("rag_k")
    args.think = bool(state.get("think", True))
    if done.get("action") == "reset":
        del messages[1 if messages and messages[0]["role"] == "system" else 0:]


def answer(client: openai.OpenAI, args: argparse.Namespace, messages: list[Any],
           out: TextIO) -> str:
    """Stream one answer to `out`; Ctrl-C ends it early and keeps what arrived."""
    parts: list[str] = []
    splitter = ThinkSplitter()
    controls = ControlFilter()  # the model's text never drives the terminal
    thoughts = ControlFilter()  # reasoning sent apart is a stream of its own

    def show(pieces: list[tuple[str, str]]) -> None:
        for kind, text in pieces:
            if kind == "answer":
                parts.append(text)
            elif not getattr(args, "think", True):  # /think off
                continue
            out.write(text if kind == "answer" else f"\x1b[2m{text}\x1b[0m")  # reasoning: dim
        out.flush()

    stream: Any = client.chat.completions.create(model=args.model, messages=messages, stream=True,
                                            temperature=args.temperature,
                                            max_tokens=args.max_tokens, extra_body=tools(args))
    try:
        for chunk in stream:
            if (chunk.model_extra or {}).get("stop_reason") == "repetition":
                out.write(" [stopped: the answer started repeating itself]")
            for choice in chunk.choices:
                thought = reasoning_of(choice.delta.model_extra or {})
                show(splitter.thought(thoughts.feed(thought))
                     + splitter.feed(controls.feed(choice.delta.content or "")))
        show(splitter.flush())
    except KeyboardInterrupt:
        out.write(" [stopped]")
    finally:
        stream.close()  # closing the connection frees the model on the server
        out.write("\n")
        out.flush()
    return "".join(parts)  # the answer only: a model's reasoning is not kept in memory


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.collection, args.rag_k, args.think = None, None, True
    out = sys.stdout
    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0,
                           timeout=300)
    if args.model is None:
        try:
            args.model = client.models.list().data[0].id
        except (openai.OpenAIError, IndexError) as exc:
            out.write(f"error: {error_text(exc, args.base_url)}\n")
            return 1
    out.write(f"Chatting with {printable(args.model)} at {args.base_url}. Empty line quits; "
              "Ctrl-C stops an answer; /help lists commands.\n")
    messages: list[Any] = [{"role": "system", "content": args.system}] if args.system else []
    while True:
        try:
            line = input("you> ")
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            return 0
        if not line.strip():
            return 0
        if line.lstrip().startswith("/"):
            try:
                command(client, args, messages, line.strip(), out)
            except openai.OpenAIError as exc:
                out.write(f"error: {error_text(exc, args.base_url)}\n")
            continue
        messages.append({"role": "user", "content": line})
        out.write("bot> ")
        out.flush()
        try:
            text = answer(client, args, messages, out)
        except openai.OpenAIError as exc:
            out.write(f"\nerror: {error_text(exc, args.base_url)}\n")
            messages.pop()  # the question was not answered; do not keep it
            continue
        except KeyboardInterrupt:
            out.write(" [stopped]\n")
            text = ""
        messages.append({"role": "assistant", "content": text})


if __name__ == "__main__":
    sys.exit(main())

"""`tinyllm chat`: a terminal chat with any OpenAI-compatible server (the original chat.py).

An empty line quits; Ctrl-C during an answer stops that answer, not the program.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, TextIO

import openai

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
    """A readable one-liner for the usual failures."""
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot reach {base_url} ({exc.__class__.__name__}); is the server running?"
    if isinstance(exc, openai.APIStatusError):
        try:
            message = exc.response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.response.text[:200]
        return f"the server answered {exc.status_code}: {message}"
    return str(exc)


def answer(client: openai.OpenAI, args: argparse.Namespace, messages: list[Any],
           out: TextIO) -> str:
    """Stream one answer to `out`; Ctrl-C ends it early and keeps what arrived."""
    parts: list[str] = []
    stream: Any = client.chat.completions.create(model=args.model, messages=messages, stream=True,
                                            temperature=args.temperature,
                                            max_tokens=args.max_tokens)
    try:
        for chunk in stream:
            for choice in chunk.choices:
                text = choice.delta.content or ""
                parts.append(text)
                out.write(text)
                out.flush()
    except KeyboardInterrupt:
        out.write(" [stopped]")
    finally:
        stream.close()  # closing the connection frees the model on the server
        out.write("\n")
        out.flush()
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = sys.stdout
    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0,
                           timeout=300)
    if args.model is None:
        try:
            args.model = client.models.list().data[0].id
        except (openai.OpenAIError, IndexError) as exc:
            out.write(f"error: {error_text(exc, args.base_url)}\n")
            return 1
    out.write(f"Chatting with {args.model} at {args.base_url}. Empty line quits; "
              "Ctrl-C stops an answer.\n")
    messages: list[Any] = [{"role": "system", "content": args.system}] if args.system else []
    while True:
        try:
            line = input("you> ")
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            return 0
        if not line.strip():
            return 0
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

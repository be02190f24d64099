"""The shared `/v1/embeddings` through its three front doors, with the real `openai` SDK:
llmserver embeds in process, the chatbot forwards to rag, rag embeds; all give rag's vectors
and token counts for the same texts, and the same errors."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import numpy as np
import openai
import pytest

from tests.chatbot.conftest import chatbot_env
from tests.rag.helpers import ONNX_CACHE
from tests.utils.procs import ServiceProcess
from tinyllm.procs import stop_all

pytestmark = pytest.mark.slow
MODEL = "all-MiniLM-L6-v2"
TEXTS = ["a cat sits on the mat", "a kitten sleeps", "Quarterly revenue grew by 4%."]


@pytest.fixture(scope="module")
def urls(llm_server: ServiceProcess, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[dict[str, str]]:
    """The `/v1` base URLs of rag, of the session's llmserver and of a chatbot in front of
    both. rag and the chatbot start while llmserver loads its embedder on a first request:
    side by side, the three loads take less time on two cores than one after another."""
    data = tmp_path_factory.mktemp("embeddings-rag")
    rag = ServiceProcess("rag", "RAG_", health_timeout=180, env={
        "RAG_DATA_DIR": str(data), "QDRANT_URL": "", "RAG_INGEST_PROCESS": "false",
        "RAG_ONNX_CACHE_DIR": str(ONNX_CACHE)})
    bot = ServiceProcess("chatbot", "CHATBOT_", env=chatbot_env(
        llm_server.url, CHATBOT_RAG_URL=rag.url))
    procs = [rag.start(wait=False), bot.start(wait=False)]
    try:
        sdk(llm_server.url + "/v1").embeddings.create(model=MODEL, input=["load"])
        for proc in procs:
            proc.wait_healthy()
        yield {"rag": rag.url + "/v1", "llmserver": llm_server.url + "/v1",
               "chatbot": bot.url + "/v1"}
    finally:
        stop_all(procs)


def sdk(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)


def vectors_of(result: openai.types.CreateEmbeddingResponse) -> np.ndarray:
    """Rows of float32; base64 strings (what the SDK hands back when asked for) decoded."""
    return np.stack([np.frombuffer(base64.b64decode(d.embedding), dtype=np.float32)
                     if isinstance(d.embedding, str) else np.asarray(d.embedding, np.float32)
                     for d in sorted(result.data, key=lambda d: d.index)])


@pytest.fixture(scope="module")
def expected(urls: dict[str, str]) -> openai.types.CreateEmbeddingResponse:
    """rag's own answer for TEXTS, as floats."""
    return sdk(urls["rag"]).embeddings.create(model=MODEL, input=TEXTS,
                                                  encoding_format="float")


@pytest.mark.parametrize("service", ["llmserver", "chatbot"])
@pytest.mark.parametrize("encoding", [openai.omit, "float", "base64"],
                         ids=["sdk-default", "float", "base64"])
def test_vectors_and_usage_are_rags(urls: dict[str, str], service: str, encoding: Any,
                                    expected: openai.types.CreateEmbeddingResponse) -> None:
    # Left out, the SDK asks for base64 and decodes it to floats itself.
    result = sdk(urls[service]).embeddings.create(model=MODEL, input=TEXTS,
                                                  encoding_format=encoding)
    if encoding == "base64":
        assert all(isinstance(d.embedding, str) for d in result.data)
    got, want = vectors_of(result), vectors_of(expected)
    assert got.shape == want.shape == (len(TEXTS), 384)
    # Same Embedder class, weights and backend (torch) as rag, so the same numbers; the
    # chatbot passes rag's own answer through.
    assert np.allclose(got, want, atol=1e-5)
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-4)
    assert result.model == MODEL and [d.index for d in result.data] == [0, 1, 2]
    assert result.usage.prompt_tokens > len(TEXTS)
    assert result.usage == expected.usage


def test_async_clients_get_the_same_vectors(urls: dict[str, str],
                                           expected: openai.types.CreateEmbeddingResponse
                                           ) -> None:
    async def both() -> list[openai.types.CreateEmbeddingResponse]:
        clients = [openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0,
                                      timeout=120) for url in (urls["llmserver"], urls["chatbot"])]
        try:
            return await asyncio.gather(*(c.embeddings.create(model=MODEL, input=TEXTS)
                                          for c in clients))
        finally:
            await asyncio.gather(*(c.close() for c in clients))

    for result in asyncio.run(both()):
        assert np.allclose(vectors_of(result), vectors_of(expected), atol=1e-5)
        assert result.usage == expected.usage


@pytest.mark.parametrize("service", ["llmserver", "chatbot"])
def test_errors_are_rags(urls: dict[str, str], service: str) -> None:
    """A wrong model is a 404 and an empty list a 400, in the envelope rag answers."""
    cases = [({"model": "text-embedding-3-small", "input": ["x"]}, openai.NotFoundError,
              "model_not_found"),
             ({"model": MODEL, "input": []}, openai.BadRequestError, "invalid_value")]
    for body, error, code in cases:
        with pytest.raises(error) as raised:
            sdk(urls[service]).embeddings.create(**body)  # type: ignore[arg-type]
        with pytest.raises(error) as direct:
            sdk(urls["rag"]).embeddings.create(**body)  # type: ignore[arg-type]
        assert raised.value.code == code
        assert raised.value.body == direct.value.body


def test_a_single_string_and_lower_case_packaged_name(urls: dict[str, str],
                                                      expected: openai.types.CreateEmbeddingResponse
                                                      ) -> None:
    result = sdk(urls["llmserver"]).embeddings.create(model=MODEL.lower(), input=TEXTS[0],
                                                       encoding_format="float")
    assert np.allclose(vectors_of(result)[0], vectors_of(expected)[0], atol=1e-5)
    assert result.model == MODEL.lower()


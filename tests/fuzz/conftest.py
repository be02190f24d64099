"""The three services as real processes for the API fuzzer, one set per session: llmserver
with SmolLM2, rag in embedded mode, and a one-person chatbot in front of both."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.utils.procs import ServiceProcess

from .fuzzing import EXAMPLES, summary


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fuzzer's counts at the end of the run."""
    lines = summary()
    if lines:
        terminalreporter.section(f"API fuzzer ({EXAMPLES} examples per operation)")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def fuzz_llm(models_dir: Path) -> Iterator[ServiceProcess]:
    env = {"LLMSERVER_MODELS_DIR": str(models_dir), "LLMSERVER_PARALLEL": "2",
           "LLMSERVER_N_CTX": "1024", "LLMSERVER_QUEUE_SIZE": "4"}
    with ServiceProcess("llmserver", "LLMSERVER_", env=env) as proc:
        yield proc


@pytest.fixture(scope="session")
def fuzz_rag() -> Iterator[ServiceProcess]:
    data = tempfile.mkdtemp(prefix="fuzz-rag-")
    with ServiceProcess("rag", "RAG_", env={"RAG_DATA_DIR": data, "QDRANT_URL": "",
                                            "RAG_API_KEY": ""},
                        health_timeout=180) as proc:
        yield proc


@pytest.fixture(scope="session")
def fuzz_chatbot(fuzz_llm: ServiceProcess, fuzz_rag: ServiceProcess
                 ) -> Iterator[ServiceProcess]:
    data = tempfile.mkdtemp(prefix="fuzz-chatbot-")
    env = {"CHATBOT_LLM_URLS": fuzz_llm.url + "/v1", "CHATBOT_RAG_URL": fuzz_rag.url,
           "CHATBOT_AUTH": "none", "CHATBOT_ANSWER_TOKENS": "16", "CHATBOT_RETRY_DOWN_S": "1",
           "CHATBOT_DATABASE_URL": f"sqlite:///{data}/c.db", "TINYLLM_DATA_DIR": data}
    with ServiceProcess("chatbot", "CHATBOT_", env=env) as proc:
        yield proc

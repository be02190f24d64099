"""Settings of the chatbot service (env prefix CHATBOT_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.config import ServiceSettings


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Settings(ServiceSettings):
    """Everything the chatbot reads from the environment."""

    model_config = SettingsConfigDict(env_prefix="CHATBOT_", env_file=".env", extra="ignore")

    port: int = Field(5000, ge=1, le=65535, description="TCP port to listen on.")
    llm_urls: str = Field("http://127.0.0.1:8000/v1",
                          description="Comma list of llmserver (OpenAI-compatible) base URLs, "
                                      "each ending in /v1.")
    llm_concurrency: str = Field("1", description="Generations in flight per LLM URL: one number "
                                                  "for all, or a comma list matching LLM_URLS.")
    llm_api_key: SecretStr | None = Field(None, description="Bearer key sent to llmserver.")
    queue_size: int = Field(32, ge=0, le=10_000,
                            description="Requests allowed to wait for a model; 429 beyond.")
    retry_down_s: float = Field(2.0, gt=0, le=300,
                                description="Seconds an unreachable LLM URL is skipped.")
    request_timeout_s: float = Field(300.0, gt=0, description="Upstream read timeout, seconds.")
    default_model: str = Field("smollm2-135m-instruct",
                               description="Model used when a request names none.")
    agent_name: str = Field("Jarvis", min_length=1, max_length=64,
                            description="The assistant's name in the persona prompt.")
    persona: str = Field("You are {name}, a helpful and concise assistant.",
                         description="Persona prompt; {name} becomes AGENT_NAME. The current "
                                     "date and time are appended.")
    timezone: str = Field("", description="IANA time zone for the date in the prompt; "
                                          "empty means the host's.")
    answer_tokens: int = Field(512, ge=16, le=32_768,
                               description="Tokens kept free for the answer when trimming history.")
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature of the UI chat.")
    session_ttl_s: float = Field(3600.0, gt=0, description="Idle seconds before a session expires.")
    max_sessions: int = Field(1000, ge=1, description="Sessions kept at once; 503 beyond.")
    max_message_chars: int = Field(8000, ge=1, description="Longest user message; 413 beyond.")
    max_messages: int = Field(200, ge=2, description="Messages per session; 400 beyond.")
    rag_url: str = Field("http://127.0.0.1:8001", description="Base URL of the rag service.")
    rag_api_key: SecretStr | None = Field(None, description="Bearer key sent to the rag service.")
    rag_k: int = Field(4, ge=1, le=20, description="Chunks retrieved per question.")
    rag_timeout_s: float = Field(10.0, gt=0, description="Timeout of rag searches, seconds.")
    max_upload_bytes: int = Field(50_000_000, ge=1024,
                                  description="Largest document upload proxied to rag (413).")
    vendor_dir: Path | None = Field(None, description="npm's node_modules with the UI's "
                                    "front-end libraries; empty means chatbot/node_modules.")
    cookie_secure: bool = Field(False, description="Mark the session cookie Secure (HTTPS only).")

    def llm_url_list(self) -> list[str]:
        return [url.rstrip("/") for url in _split(self.llm_urls)]

    def llm_concurrency_list(self) -> list[int]:
        """Concurrency per URL: a single value applies to every URL."""
        values = [int(v) for v in _split(self.llm_concurrency)] or [1]
        urls = self.llm_url_list()
        if len(values) == 1:
            return values * len(urls)
        if len(values) != len(urls):
            raise ValueError("CHATBOT_LLM_CONCURRENCY needs one value or one per LLM URL")
        return values

"""Settings of the chatbot service (env prefix CHATBOT_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from services.config import LOOPBACK, ServiceSettings, default_data_dir, split_list

from .loopguard import LoopGuard
from .proxies import Network, parse_networks


class Settings(ServiceSettings):
    """Everything the chatbot reads from the environment."""

    model_config = SettingsConfigDict(env_prefix="CHATBOT_", env_file=".env", extra="ignore")

    port: int = Field(5000, ge=1, le=65535, description="TCP port to listen on.")
    llm_urls: str = Field("http://127.0.0.1:8000/v1",
                          description="Comma list of llmserver (OpenAI-compatible) base URLs, "
                                      "each ending in /v1.")
    llm_concurrency: str = Field("auto", description="Generations in flight per LLM URL: auto "
                                 "(the slots the server advertises in /v1/models, followed "
                                 "every SLOTS_REFRESH_S; 1 where it advertises none), or a "
                                 "number; one value for all, or a comma list matching "
                                 "LLM_URLS.")
    slots_refresh_s: float = Field(15.0, gt=0, description="How often auto concurrency asks "
                                   "each LLM URL for its slots (a restart with other "
                                   "settings is followed).")
    requester_queue: int = Field(16, ge=1, le=10_000, description="Answers one person (an "
                                 "account, an API key, or a client address without "
                                 "accounts) may have running or waiting; 429 beyond. Waiters "
                                 "are served person by person in turn.")
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
    auth: Literal["auto", "accounts", "none"] = Field(
        "auto", description="accounts: users log in (the first one becomes admin); none: one "
                            "local user, no login (a laptop on loopback); auto: accounts unless "
                            "HOST is loopback.")
    admin_user: str | None = Field(None, max_length=64,
                                   description="Admin created at first start (with "
                                               "ADMIN_PASSWORD); unset: the first visitor.")
    admin_password: SecretStr | None = Field(None, description="Password of ADMIN_USER.")
    allow_signup: bool = Field(False, description="Let anyone create an account (the admin "
                                                  "can change it in the page).")
    database_url: str | None = Field(None, description="SQLAlchemy URL of the chat database "
                                     "(postgresql://user:pass@host/db); unset: SQLite under "
                                     "the data folder.")
    session_ttl_s: float = Field(7 * 86400.0, gt=0,
                                 description="Seconds a login lasts without use.")
    login_attempts: int = Field(10, ge=1, description="Failed logins allowed per user name "
                                "(and 5x per client, see TRUSTED_PROXIES) in LOGIN_WINDOW_S; "
                                "429 beyond.")
    login_window_s: float = Field(900.0, gt=0, description="Window of the login rate limit.")
    trusted_proxies: str = Field("", description="Comma list of addresses or networks (CIDR) "
                                 "of the HTTP reverse proxies in front of the chatbot (nginx, "
                                 "Caddy, Traefik), e.g. 172.18.0.0/16: from them, the client is "
                                 "the rightmost address in X-Forwarded-For that is not a "
                                 "trusted proxy, so the login limit tells their clients apart. "
                                 "Empty: the header is never believed and the client is the "
                                 "TCP peer (behind a proxy, or docker-proxy, which sends no "
                                 "header, all clients then share one allowance).")
    answer_lease_s: float = Field(15.0, gt=1, description="Seconds an answer holds its "
                                  "conversation without a heartbeat; a crashed answer shows "
                                  "as interrupted after it.")
    stream_idle_s: float = Field(30.0, gt=0, description="Drop a stream whose client has not "
                                 "read for this many seconds.")
    max_message_chars: int = Field(8000, ge=1, description="Longest user message; 413 beyond.")
    max_messages: int = Field(200, ge=2, description="Messages per conversation; 400 beyond.")
    rag_url: str = Field("http://127.0.0.1:8001", description="Base URL of the rag service.")
    # One stack, one key: unset, rag's own RAG_API_KEY (what `tinyllm up` passes to all).
    rag_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("CHATBOT_RAG_API_KEY", "RAG_API_KEY"),
        description="Bearer key sent to the rag service; unset: RAG_API_KEY.")
    rag_k: int = Field(4, ge=1, le=20, description="Chunks retrieved per question.")
    rag_timeout_s: float = Field(10.0, gt=0, description="Timeout of rag searches, seconds.")
    max_upload_bytes: int = Field(50_000_000, ge=1024,
                                  description="Largest document upload proxied to rag (413).")
    vendor_dir: Path | None = Field(None, description="npm's node_modules with the UI's "
                                    "front-end libraries; empty means chatbot/node_modules.")
    loop_window: int = Field(600, ge=0, le=20_000, description="Characters at the end of an "
                             "answer the loop guard examines (the longest passage it catches "
                             "is LOOP_WINDOW / LOOP_REPEATS).")
    loop_repeats: int = Field(3, ge=0, le=100, description="An answer whose end repeats one "
                              "passage this many times in a row is stopped; 0 turns the loop "
                              "guard off.")
    loop_min_chars: int = Field(48, ge=1, le=20_000, description="Shortest repeated span (passage "
                                "x times) the loop guard acts on, so a short refrain is left "
                                "alone.")
    fetch_allow: str = Field("", description="Comma list of networks (CIDR) a chat link may "
                             "point at although loopback, link-local or private, e.g. "
                             "10.0.0.0/8 for an intranet; empty: public addresses only.")
    fetch_max_bytes: int = Field(2_000_000, ge=1024, description="Largest page a chat link "
                                 "fetches; larger ones are cut off and not summarized.")
    fetch_timeout_s: float = Field(10.0, gt=0, le=120, description="Seconds a chat link's "
                                   "whole fetch may take (every redirect included).")
    fetch_max_redirects: int = Field(5, ge=0, le=20, description="Redirects a chat link "
                                     "may follow.")
    link_max_chars: int = Field(4000, ge=200, description="Characters of a fetched page put "
                                "in the prompt (the rest is left out, and the answer says so).")
    attach_inline_chars: int = Field(3000, ge=0, description="A file attached to a chat with "
                                     "at most this many characters of text goes into the "
                                     "prompt whole; a larger one is indexed in a rag "
                                     "collection of that chat alone.")
    cookie_secure: bool = Field(False, description="Mark the session cookie Secure (HTTPS only).")

    @field_validator("fetch_allow", "trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)  # ValueError: refused at start
        return value

    def loop_guard(self) -> LoopGuard:
        """A fresh loop guard for one answer."""
        return LoopGuard(self.loop_window, self.loop_repeats, self.loop_min_chars)

    def accounts(self) -> bool:
        """Whether users log in (auto: unless the chatbot listens on loopback only)."""
        if self.auth == "auto":
            return self.host not in LOOPBACK
        return self.auth == "accounts"

    def trusted_proxy_networks(self) -> list[Network]:
        return parse_networks(self.trusted_proxies)

    def database(self) -> str:
        return self.database_url or f"sqlite:///{default_data_dir() / 'chatbot' / 'chatbot.db'}"

    def llm_url_list(self) -> list[str]:
        return [url.rstrip("/") for url in split_list(self.llm_urls)]

    def llm_concurrency_list(self) -> list[int | None]:
        """Concurrency per URL (None: auto); a single value applies to every URL."""
        values = [None if v.lower() == "auto" else int(v)
                  for v in split_list(self.llm_concurrency)] or [None]
        if any(v is not None and v < 1 for v in values):
            raise ValueError("CHATBOT_LLM_CONCURRENCY: auto or a number of at least 1")
        urls = self.llm_url_list()
        if len(values) == 1:
            return values * len(urls)
        if len(values) != len(urls):
            raise ValueError("CHATBOT_LLM_CONCURRENCY needs one value or one per LLM URL")
        return values

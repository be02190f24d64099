"""Request bodies of the OpenAI endpoints, validated strictly (bad values are 400s)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Float = Field(default=None, allow_inf_nan=False)


class StrictBase(BaseModel):
    # Unknown OpenAI fields (user, logit_bias...) are accepted and ignored, as OpenAI does.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class ContentPart(StrictBase):
    type: Literal["text"]
    text: str


class ChatMessage(StrictBase):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(StrictBase):
    include_usage: bool = False


class SamplingParams(StrictBase):
    """Parameters shared by chat and text completions."""

    model: str | None = Field(None, max_length=256)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2, allow_inf_nan=False)
    top_p: float | None = Field(None, gt=0, le=1, allow_inf_nan=False)
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    presence_penalty: float | None = Field(None, ge=-2, le=2, allow_inf_nan=False)
    frequency_penalty: float | None = Field(None, ge=-2, le=2, allow_inf_nan=False)
    repeat_penalty: float | None = Field(None, ge=0, le=10, allow_inf_nan=False)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("n")
    @classmethod
    def _only_one_choice(cls, value: int) -> int:
        if value != 1:
            raise ValueError("only n=1 is supported")
        return value

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> list[str] | None:
        if value is None:
            return None
        stops = [value] if isinstance(value, str) else value
        if len(stops) > 4:
            raise ValueError("at most 4 stop sequences")
        return [s for s in stops if s]

    def limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def sampling(self) -> dict[str, Any]:
        """Keyword arguments for llama-cpp-python, only those the client set."""
        keys = ("temperature", "top_p", "top_k", "min_p", "presence_penalty",
                "frequency_penalty", "stop", "seed")
        out = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        if self.repeat_penalty is not None:
            out["repeat_penalty"] = self.repeat_penalty
        return out


class ChatCompletionRequest(SamplingParams):
    messages: list[ChatMessage] = Field(min_length=1)


class CompletionRequest(SamplingParams):
    prompt: str | list[str]

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str:
        if isinstance(value, list):
            if len(value) != 1:
                raise ValueError("exactly one prompt is supported")
            return value[0]
        return value


class TokenizeRequest(StrictBase):
    model: str | None = Field(None, max_length=256)
    content: str | None = None
    messages: list[ChatMessage] | None = None

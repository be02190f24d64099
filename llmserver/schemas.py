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


class FunctionCall(StrictBase):
    name: str = Field(max_length=256)
    arguments: str = ""


class ToolCall(StrictBase):
    id: str = Field("", max_length=256)
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(StrictBase):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = Field(None, max_length=256)

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
    n: int = Field(1, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None
    logit_bias: dict[str, float] | None = None
    keep_alive: float | str | None = Field(
        None, description="How long the model stays loaded after this request (as Ollama's "
                          "API takes it): seconds, or 30s, 5m, 1h; -1 forever, 0 unload now.")

    @field_validator("logit_bias")
    @classmethod
    def _bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        if len(value) > 300:
            raise ValueError("at most 300 logit_bias entries")
        for key, bias in value.items():
            if not key.isdigit() or not -100 <= bias <= 100:
                raise ValueError("logit_bias maps token ids to values in [-100, 100]")
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
        """The sampler settings the client set (the rest keep llama.cpp's defaults)."""
        keys = ("temperature", "top_p", "top_k", "min_p", "presence_penalty",
                "frequency_penalty", "repeat_penalty", "seed")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


class FunctionDef(StrictBase):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class Tool(StrictBase):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(StrictBase):
    name: str


class NamedToolChoice(StrictBase):
    type: Literal["function"]
    function: NamedFunction


class JSONSchemaFormat(StrictBase):
    name: str = Field("response", max_length=64)
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(StrictBase):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class ChatCompletionRequest(SamplingParams):
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[Tool] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    reasoning_format: Literal["none", "auto", "deepseek"] = Field(
        "auto", description="A thinking model's leading <think> block: `none` leaves it "
        "inline in `content`; `auto` and `deepseek` return it as `reasoning_content` (and "
        "`reasoning`), as llama-server does.")


class CompletionRequest(SamplingParams):
    prompt: str | list[str]
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool = False

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

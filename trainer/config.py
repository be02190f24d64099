"""Trainer settings: one config block, every default commented; env TRAINER_*, flags override."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.config import ServiceSettings, default_data_dir


class TrainingInputError(ValueError):
    """Bad input found before any work starts (missing/binary data, impossible shapes)."""


class Settings(ServiceSettings):
    """Everything `tinyllm train` / `python -m trainer` accepts (flag `--x-y` = env TRAINER_X_Y)."""

    model_config = SettingsConfigDict(env_prefix="TRAINER_", env_file=".env", extra="ignore")

    # data
    train_data: Path | None = Field(None, description="UTF-8 text file to train on (.gz ok).")
    val_fraction: float = Field(0.1, gt=0, lt=0.5,
                                description="Tail share held out for validation.")
    vocab_size: int = Field(4096, ge=300, le=65535, description="BPE vocabulary size to train.")
    vocab_model: Path | None = Field(
        None, description="GGUF whose tokenizer to use instead (e.g. the packaged SmolLM2), "
        "so the model shares its vocabulary; --vocab-size is then unused.")
    # model (the original example: --ctx 32 --embd 256 --head 8 --layer 16)
    ctx: int = Field(128, ge=4, le=8192, description="Context length in tokens.")
    embd: int = Field(256, ge=8, le=8192, description="Embedding width.")
    head: int = Field(8, ge=1, le=256, description="Attention heads; must divide --embd.")
    head_kv: int = Field(0, ge=0, le=256, description="Key/value heads for GQA; 0 = --head.")
    layer: int = Field(16, ge=1, le=128, description="Transformer blocks.")
    ffn: int = Field(0, ge=0, description="SwiGLU hidden width; 0 = 8/3 x embd rounded to 32.")
    # optimisation
    batch: int = Field(8, ge=1, le=4096, description="Sequences per optimizer step.")
    iters: int = Field(256, ge=1, description="Optimizer steps in total (resume counts on).")
    more_iters: int = Field(0, ge=0, description="If set, train this many steps on top of "
                            "--checkpoint-in's (so --iters = its step + this).")
    lr: float = Field(1e-3, gt=0, le=1, description="Peak AdamW learning rate.")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="Cosine decay floor as lr share.")
    warmup: int = Field(-1, ge=-1, description="Warm-up steps; -1 = 5% of --iters.")
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay on matrices.")
    grad_clip: float = Field(1.0, ge=0, description="Gradient-norm clip; 0 disables.")
    max_seconds: float = Field(0, ge=0, description="Stop (checkpoint, export) after this "
                               "many seconds of training; 0 = no limit.")
    seed: int = Field(42, description="Seed for init, batches and sampling.")
    # evaluation, checkpoints, outputs
    eval_every: int = Field(100, ge=0, description="Steps between validation passes; 0 = end only.")
    eval_batches: int = Field(8, ge=1, description="Batches per validation pass.")
    checkpoint_in: Path | None = Field(
        None, description="Checkpoint to resume from; when it is --checkpoint-out and does not "
        "exist yet, training starts fresh.")
    checkpoint_out: Path | None = Field(
        None, description="Checkpoint path; ITERATION in the name becomes the step (and LATEST "
        "for a copy of the newest); default beside the model.")
    checkpoint_every: int = Field(0, ge=0, description="Steps between checkpoints; 0 = eval_every.")
    models_dir: Path = Field(default_factory=lambda: default_data_dir() / "models",
                             description="Where GGUF models go (llmserver's models dir).")
    model_out: Path | None = Field(
        None, description="GGUF output; a bare name goes in --models-dir; default tiny-<data>.")
    out_type: Literal["f32", "f16", "q8_0"] = Field("f32", description="GGUF weight type.")
    predict: int = Field(64, ge=0, description="Tokens to sample at the end (0 = none).")
    prompt: str = Field("", description="Prompt for the final sample; default: a val snippet.")
    # hardware
    device: str = Field("auto", description="auto (CUDA when present), cpu, cuda, cuda:N, mps.")
    threads: int = Field(0, ge=0, le=512, description="CPU threads for torch; 0 = all cores.")
    progress: bool = Field(True, description="Show the progress bar.")

    @model_validator(mode="after")
    def _shapes(self) -> Settings:
        if self.embd % self.head:
            raise ValueError(f"--head {self.head} does not divide --embd {self.embd}")
        if (self.embd // self.head) % 2:
            raise ValueError("--embd / --head must be even for rotary embeddings")
        kv = self.head_kv or self.head
        if self.head % kv:
            raise ValueError(f"--head-kv {kv} does not divide --head {self.head}")
        return self

    @property
    def n_kv_head(self) -> int:
        return self.head_kv or self.head

    @property
    def ffn_dim(self) -> int:
        """Llama's SwiGLU width: 2/3 of 4 x embd, rounded up to a multiple of 32."""
        if self.ffn:
            return self.ffn
        return (int(8 * self.embd / 3) + 31) // 32 * 32

    @property
    def warmup_steps(self) -> int:
        return max(1, self.iters // 20) if self.warmup < 0 else self.warmup

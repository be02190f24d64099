"""The training loop: data, schedule, evaluation, checkpoints, export, sample."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from . import checkpoint
from .config import Settings, TrainingInputError
from .data import TokenData, encode, read_text
from .export import export
from .model import Llama, ModelConfig, configure_optimizer
from .tokenizer import BPETokenizer

log = logging.getLogger("trainer")


@dataclass
class Result:
    model_path: Path
    checkpoint_path: Path
    step: int
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, train loss)
    val_losses: list[tuple[int, float]] = field(default_factory=list)
    tokens_per_s: float = 0.0
    sample: str = ""
    interrupted: bool = False


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingInputError("--device cuda asked for, but no CUDA device is available")
    return device


def lr_at(step: int, s: Settings) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio x lr at the last step."""
    warm = s.warmup_steps
    if step < warm:
        return s.lr * (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, s.iters - warm))
    floor = s.lr * s.min_lr_ratio
    return floor + 0.5 * (s.lr - floor) * (1 + math.cos(math.pi * progress))


def output_paths(s: Settings) -> tuple[Path, Path]:
    """The GGUF path and the checkpoint path the settings resolve to."""
    stem = s.train_data.name.split(".")[0] if s.train_data else "model"
    model = s.model_out or Path(f"tiny-{stem}.gguf")
    if model.parent == Path("."):  # a bare name goes into the models folder
        model = s.models_dir / model
    if model.suffix != ".gguf":
        model = model.with_suffix(".gguf")
        if s.model_out is not None:  # e.g. the original's ggml-....bin: say what is written
            log.warning("--model-out %s: writing a GGUF, to %s", s.model_out, model)
    ckpt = s.checkpoint_out or model.parent / "checkpoints" / f"{model.stem}.pt"
    return model, ckpt


@torch.no_grad()
def evaluate(model: Llama, data: TokenData, s: Settings, device: torch.device) -> float:
    """Mean validation loss over a fixed set of windows (the same at every evaluation)."""
    model.eval()
    gen = torch.Generator().manual_seed(s.seed + 1)
    losses = [model(*data.batch("val", s.batch, gen, device))[1].item()  # type: ignore[union-attr]
              for _ in range(s.eval_batches)]
    model.train()
    return sum(losses) / len(losses)


def resume_state(s: Settings, ckpt_out: Path) -> dict[str, Any] | None:
    """The checkpoint to resume from; None when there is none to resume.

    `--checkpoint-in X --checkpoint-out X` is the original's way to train in repeated runs:
    on the first run X does not exist yet, so training starts fresh (and says so).
    """
    if s.checkpoint_in is None:
        return None
    same = {ckpt_out.resolve(), checkpoint.latest(ckpt_out).resolve()}
    first_run = s.checkpoint_in.resolve() in same
    if first_run and not s.checkpoint_in.exists():
        log.warning("checkpoint %s does not exist yet: starting fresh (it is written there)",
                    s.checkpoint_in)
        return None
    return checkpoint.load(s.checkpoint_in)


def prepare(s: Settings, ckpt_out: Path
            ) -> tuple[BPETokenizer, TokenData, dict[str, Any] | None]:
    """Check the input and build tokenizer and data, or resume them from a checkpoint.

    Everything that can be wrong with the input is found here, before training starts.
    """
    state = resume_state(s, ckpt_out)
    text = read_text(s.train_data)
    if state is not None:
        tok = BPETokenizer.from_json(state["tokenizer"], state.get("tokenizer_meta"))
    elif s.vocab_model is not None:
        from .vocab import from_gguf

        tok = from_gguf(s.vocab_model)
        log.info("vocabulary of %s: %d tokens", s.vocab_model, tok.vocab_size)
    else:
        tok = BPETokenizer.train([text], s.vocab_size)
    data = TokenData.split(encode(tok, text), s.ctx, s.val_fraction)
    return tok, data, state


def train(s: Settings) -> Result:
    torch.set_num_threads(s.threads or os.cpu_count() or 1)
    device = pick_device(s.device)
    model_path, ckpt_path = output_paths(s)
    tok, data, state = prepare(s, ckpt_path)
    cfg = ModelConfig(vocab_size=tok.vocab_size, ctx=s.ctx, embd=s.embd, head=s.head,
                      head_kv=s.n_kv_head, layer=s.layer, ffn=s.ffn_dim)
    if state is not None and state["model_config"] != cfg.to_dict():
        raise TrainingInputError("the checkpoint's model shape differs from these options: "
                                 f"{state['model_config']}")
    if s.more_iters:  # -n x --adam-iter: that many steps on top of where the checkpoint is
        s = s.model_copy(update={"iters": (state["step"] if state else 0) + s.more_iters})
    torch.manual_seed(s.seed)
    model = Llama(cfg).to(device)
    opt = configure_optimizer(model, s.lr, s.weight_decay, device.type)
    gen = torch.Generator().manual_seed(s.seed)
    result = Result(model_path, ckpt_path, 0)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        result.step, result.losses, result.val_losses = (
            state["step"], state["losses"], state["val_losses"])
    log.info("config: %s", s.model_dump_json(exclude={"api_key"}))
    log.info("model: %.2fM parameters (%.2fM non-embedding), %d train / %d val tokens, %s",
             model.num_params(False) / 1e6, model.num_params() / 1e6, len(data.train),
             len(data.val), device)

    def save_checkpoint() -> None:
        result.checkpoint_path = checkpoint.save(ckpt_path, {
            "model": model.state_dict(), "optimizer": opt.state_dict(),
            "generator": gen.get_state(), "step": result.step, "losses": result.losses,
            "val_losses": result.val_losses, "model_config": cfg.to_dict(),
            "tokenizer": tok.to_json(), "tokenizer_meta": tok.meta,
            "settings": s.model_dump(mode="json")})

    every_ckpt = s.checkpoint_every or s.eval_every
    tokens_per_step = s.batch * s.ctx
    stop = _StopFlag()
    bar = tqdm(total=s.iters, initial=result.step, disable=not s.progress, unit="step",
               dynamic_ncols=True)
    started, start_step = time.perf_counter(), result.step
    def out_of_time() -> bool:
        return bool(s.max_seconds) and time.perf_counter() - started >= s.max_seconds

    with stop:
        while result.step < s.iters and not stop.asked and not out_of_time():
            for group in opt.param_groups:
                group["lr"] = lr_at(result.step, s)
            x, y = data.batch("train", s.batch, gen, device)
            _, loss = model(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[union-attr]
            if s.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
            opt.step()
            result.step += 1
            result.losses.append((result.step, loss.item()))  # type: ignore[union-attr]
            elapsed = time.perf_counter() - started
            result.tokens_per_s = (result.step - start_step) * tokens_per_step / elapsed
            if s.eval_every and result.step % s.eval_every == 0 and result.step < s.iters:
                result.val_losses.append((result.step, evaluate(model, data, s, device)))
            if every_ckpt and result.step % every_ckpt == 0 and result.step < s.iters:
                save_checkpoint()
            bar.set_postfix(loss=f"{result.losses[-1][1]:.3f}",
                            val=f"{result.val_losses[-1][1]:.3f}" if result.val_losses else "-",
                            tok_s=f"{result.tokens_per_s:,.0f}")
            bar.update(1)
    if stop.asked:
        bar.close()
        save_checkpoint()
        log.warning("interrupted at step %d; checkpoint saved to %s (resume with "
                    "--checkpoint-in)", result.step, result.checkpoint_path)
        result.interrupted = True
        return result
    bar.close()
    result.val_losses.append((result.step, evaluate(model, data, s, device)))
    save_checkpoint()
    export(model, tok, model_path, s.out_type)
    result.sample = sample(model, tok, data, s, device)
    write_report(result, s)
    return result


class _StopFlag:
    """Ctrl-C asks the loop to stop at the next step boundary, so the checkpoint is whole."""

    def __init__(self) -> None:
        self.asked = False
        self.previous: Any = None

    def _handler(self, _signum: int, _frame: Any) -> None:
        if self.asked:  # a second Ctrl-C: the user really wants out
            raise KeyboardInterrupt
        self.asked = True

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def sample(model: Llama, tok: BPETokenizer, data: TokenData, s: Settings,
           device: torch.device) -> str:
    """`--predict` tokens after the prompt (default: the start of the validation text)."""
    if not s.predict:
        return ""
    ids = tok.encode(s.prompt) if s.prompt else data.val[: min(8, s.ctx)].tolist()
    gen = torch.Generator().manual_seed(s.seed)
    model.eval()
    out = model.generate(torch.tensor([ids], device=device), s.predict, generator=gen)
    return tok.decode(out[0].tolist())


def write_report(result: Result, s: Settings) -> None:
    """A JSON log and a loss-curve PNG next to the model."""
    base = result.model_path.with_suffix("")
    log_path = base.parent / f"{base.name}.train.json"
    log_path.write_text(json.dumps({
        "settings": s.model_dump(mode="json"), "step": result.step,
        "losses": result.losses, "val_losses": result.val_losses,
        "tokens_per_s": result.tokens_per_s, "sample": result.sample}, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(*zip(*result.losses, strict=True), label="train", alpha=0.6)
    if result.val_losses:
        ax.plot(*zip(*result.val_losses, strict=True), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(f"{result.model_path.name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(base.parent / f"{base.name}.loss.png", dpi=100)
    plt.close(fig)

"""A llama-architecture transformer whose weights map 1:1 onto llama.cpp's `llama` GGUF.

RMSNorm, rotary embeddings in llama.cpp's "normal" layout (adjacent pairs, as in Meta's
original code, so Q/K need no permutation on export), SwiGLU MLP, optional GQA.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ModelConfig:
    vocab_size: int
    ctx: int  # context length the model is trained for
    embd: int  # residual width
    head: int  # query heads
    head_kv: int  # key/value heads (== head: plain multi-head attention)
    layer: int  # transformer blocks
    ffn: int  # SwiGLU hidden width
    norm_eps: float = 1e-5  # RMSNorm epsilon, written to the GGUF
    rope_base: float = 10000.0  # rotary frequency base, written to the GGUF

    @property
    def head_dim(self) -> int:
        return self.embd // self.head

    def to_dict(self) -> dict:
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(cfg: ModelConfig, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape (length, head_dim/2) for the adjacent-pair rotation."""
    inv = 1.0 / (cfg.rope_base ** (torch.arange(0, cfg.head_dim, 2).float() / cfg.head_dim))
    angles = torch.outer(torch.arange(length).float(), inv)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x0,x1), (x2,x3), ... of x: (batch, heads, time, head_dim)."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        kv_dim = cfg.head_kv * cfg.head_dim
        self.wq = nn.Linear(cfg.embd, cfg.embd, bias=False)
        self.wk = nn.Linear(cfg.embd, kv_dim, bias=False)
        self.wv = nn.Linear(cfg.embd, kv_dim, bias=False)
        self.wo = nn.Linear(cfg.embd, cfg.embd, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        c = self.cfg
        q = self.wq(x).view(b, t, c.head, c.head_dim).transpose(1, 2)
        k = self.wk(x).view(b, t, c.head_kv, c.head_dim).transpose(1, 2)
        v = self.wv(x).view(b, t, c.head_kv, c.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if c.head_kv != c.head:
            k = k.repeat_interleave(c.head // c.head_kv, dim=1)
            v = v.repeat_interleave(c.head // c.head_kv, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.wo(y.transpose(1, 2).reshape(b, t, c.embd))


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gate = nn.Linear(cfg.embd, cfg.ffn, bias=False)
        self.up = nn.Linear(cfg.embd, cfg.ffn, bias=False)
        self.down = nn.Linear(cfg.ffn, cfg.embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.embd, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.embd, cfg.norm_eps)
        self.ffn = FeedForward(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.ffn(self.ffn_norm(x))


class Llama(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.embd)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.layer))
        self.norm = RMSNorm(cfg.embd, cfg.norm_eps)
        self.output = nn.Linear(cfg.embd, cfg.vocab_size, bias=False)
        cos, sin = rope_tables(cfg, cfg.ctx)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init)
        # GPT-2's scaled init of the residual projections keeps early activations bounded.
        for name, p in self.named_parameters():
            if name.endswith(("wo.weight", "down.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.layer))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (batch, time, vocab) and, given targets, the mean cross-entropy."""
        t = idx.shape[1]
        if t > self.cfg.ctx:
            cos, sin = (x.to(idx.device) for x in rope_tables(self.cfg, t))
        else:
            cos, sin = self.rope_cos[:t], self.rope_sin[:t]  # type: ignore[index]
        x = self.tok_embeddings(idx)
        for block in self.layers:
            x = block(x, cos, sin)
        logits = self.output(self.norm(x))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameters; non-embedding leaves out the token table (the output matmul stays)."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.tok_embeddings.weight.numel() if non_embedding else n

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6N plus attention's 12 x layer x embd x ctx (PaLM)."""
        c = self.cfg
        return 6 * self.num_params() + 12 * c.layer * c.embd * c.ctx

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, n: int, temperature: float = 0.8,
                 top_k: int | None = 40, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Sample n tokens after idx (1, T); temperature 0 means greedy."""
        for _ in range(n):
            logits, _ = self(idx[:, -self.cfg.ctx:])
            logits = logits[:, -1, :]
            if temperature <= 0:
                nxt = logits.argmax(-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k:
                    kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                probs = F.softmax(logits.float(), dim=-1)
                nxt = torch.multinomial(probs.cpu(), 1, generator=generator).to(idx.device)
            idx = torch.cat([idx, nxt], dim=1)
        return idx


def configure_optimizer(model: Llama, lr: float, weight_decay: float,
                        device_type: str) -> torch.optim.AdamW:
    """AdamW with decay on matrices only (norm gains are left alone)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    fused = device_type == "cuda"
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), fused=fused)

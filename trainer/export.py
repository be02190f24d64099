"""Write a trained model as a llama.cpp GGUF (architecture `llama`, gpt2-style BPE).

The file is written to a dotted temp name beside the target and renamed into place, so
llmserver (which skips dotfiles) never sees a half-written model.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import gguf
import numpy as np
import torch

from .model import Llama
from .tokenizer import BPETokenizer

log = logging.getLogger(__name__)

# Our parameter names -> llama.cpp's tensor names ({i}: the block index).
NAMES = {
    "tok_embeddings.weight": "token_embd.weight",
    "norm.weight": "output_norm.weight",
    "output.weight": "output.weight",
    "layers.{i}.attn_norm.weight": "blk.{i}.attn_norm.weight",
    "layers.{i}.attn.wq.weight": "blk.{i}.attn_q.weight",
    "layers.{i}.attn.wk.weight": "blk.{i}.attn_k.weight",
    "layers.{i}.attn.wv.weight": "blk.{i}.attn_v.weight",
    "layers.{i}.attn.wo.weight": "blk.{i}.attn_output.weight",
    "layers.{i}.ffn_norm.weight": "blk.{i}.ffn_norm.weight",
    "layers.{i}.ffn.gate.weight": "blk.{i}.ffn_gate.weight",
    "layers.{i}.ffn.up.weight": "blk.{i}.ffn_up.weight",
    "layers.{i}.ffn.down.weight": "blk.{i}.ffn_down.weight",
}
FILE_TYPES = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
              "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}


def gguf_name(param: str) -> str:
    parts = param.split(".")
    if parts[0] == "layers":
        key = ".".join(["layers", "{i}", *parts[2:]])
        return NAMES[key].format(i=parts[1])
    return NAMES[param]


def _tensor(writer: gguf.GGUFWriter, name: str, value: torch.Tensor, out_type: str) -> None:
    data = value.detach().to(torch.float32).cpu().numpy()
    if data.ndim == 1 or out_type == "f32":  # norm gains stay f32, as llama.cpp expects
        writer.add_tensor(name, data)
    elif out_type == "f16":
        writer.add_tensor(name, data.astype(np.float16))
    else:
        qtype = gguf.GGMLQuantizationType.Q8_0
        # the quantized bytes' shape; gguf derives the element shape from it
        writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)


def export(model: Llama, tok: BPETokenizer, path: Path, out_type: str = "f32",
           name: str | None = None) -> Path:
    """Write `model` and `tok` to `path` atomically; returns the final path.

    Args:
        model: the trained network (any device).
        tok: its tokenizer; the vocabulary and merges go into the GGUF.
        path: target file; its folder is created.
        out_type: f32 (exact parity), f16, or q8_0 for the matrices.
        name: `general.name`; defaults to the file stem.
    """
    c = model.cfg
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    writer = gguf.GGUFWriter(str(tmp), "llama")
    writer.add_name(name or path.stem)
    writer.add_file_type(FILE_TYPES[out_type])
    writer.add_context_length(c.ctx)
    writer.add_embedding_length(c.embd)
    writer.add_block_count(c.layer)
    writer.add_feed_forward_length(c.ffn)
    writer.add_head_count(c.head)
    writer.add_head_count_kv(c.head_kv)
    writer.add_layer_norm_rms_eps(c.norm_eps)
    writer.add_rope_dimension_count(c.head_dim)
    writer.add_rope_freq_base(c.rope_base)
    writer.add_vocab_size(c.vocab_size)
    _tokenizer(writer, tok)
    for param, value in model.state_dict().items():
        if param.startswith("rope_"):
            continue
        _tensor(writer, gguf_name(param), value, out_type)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    log.info("wrote %s (%.1f MB, %s)", path, path.stat().st_size / 1e6, out_type)
    return path


def _tokenizer(writer: gguf.GGUFWriter, tok: BPETokenizer) -> None:
    tokens = tok.tokens()
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_merges(tok.merges())
    if tok.meta is not None:  # a vocabulary taken from another GGUF: its fields, unchanged
        _copied_tokenizer(writer, tok.meta)
        return
    types = [gguf.TokenType.NORMAL] * len(tokens)
    types[tok.eos_id] = gguf.TokenType.CONTROL
    writer.add_tokenizer_pre("gpt-2")  # GPT-2's split regex, as our pre-tokenizer uses
    writer.add_token_types(types)
    writer.add_bos_token_id(tok.eos_id)
    writer.add_eos_token_id(tok.eos_id)
    writer.add_add_bos_token(False)


def _copied_tokenizer(writer: gguf.GGUFWriter, meta: dict) -> None:
    writer.add_tokenizer_pre(meta["pre"])
    writer.add_token_types(meta["token_type"])
    ids = {"bos_token_id": writer.add_bos_token_id, "eos_token_id": writer.add_eos_token_id,
           "unknown_token_id": writer.add_unk_token_id,
           "padding_token_id": writer.add_pad_token_id}
    flags = {"add_bos_token": writer.add_add_bos_token, "add_eos_token": writer.add_add_eos_token,
             "add_space_prefix": writer.add_add_space_prefix}
    for key, add in {**ids, **flags}.items():
        if key in meta:
            add(meta[key])
    if meta.get("chat_template"):
        writer.add_chat_template(meta["chat_template"])

"""The embedder on ONNX Runtime: the packaged model exported once, offline, int8-quantised.

Running needs only `onnxruntime`, `tokenizers` and `numpy` (no torch), so an image can ship
without torch given an exported file (`RAG_EMBEDDING_ONNX_FILE`). Exporting needs torch
and transformers: `python -m rag.onnx_backend MODEL_DIR OUT_DIR` writes `model.onnx` and
`model-int8.onnx`; the service does the same into its data folder on first start when no
file is given.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export(model_dir: Path, out_dir: Path, quantize: bool = True) -> Path:
    """Export the transformer of a sentence-transformers folder to ONNX (and int8).

    Returns:
        the file to load: `model-int8.onnx` if quantised, else `model.onnx`.
    """
    import torch
    from transformers import AutoModel

    out_dir.mkdir(parents=True, exist_ok=True)
    bert = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()

    class Hidden(torch.nn.Module):
        """Named inputs in a fixed order, the last hidden state out."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    model = Hidden().eval()
    ones = torch.ones((2, 16), dtype=torch.long)
    sample = (ones, ones, torch.zeros((2, 16), dtype=torch.long))
    plain = out_dir / "model.onnx"
    dynamic = {name: {0: "batch", 1: "sequence"} for name in INPUTS}
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        staged = Path(tmp) / "model.onnx"
        torch.onnx.export(model, sample, str(staged), input_names=list(INPUTS),
                          output_names=["last_hidden_state"],
                          dynamic_axes={**dynamic, "last_hidden_state": {0: "batch",
                                                                         1: "sequence"}},
                          opset_version=17, dynamo=False)
        os.replace(staged, plain)  # atomic: a crash never leaves half a model behind
        if not quantize:
            return plain
        from onnxruntime.quantization import QuantType, quantize_dynamic

        staged_q = Path(tmp) / "model-int8.onnx"
        # Per-channel scales: vectors within ~0.99 cosine of float32 (per-tensor: ~0.95).
        quantize_dynamic(str(plain), str(staged_q), weight_type=QuantType.QInt8,
                         per_channel=True)
        final = out_dir / "model-int8.onnx"
        os.replace(staged_q, final)
    return final


class OnnxEncoder:
    """Mean-pooled, normalised sentence embeddings from an exported transformer."""

    def __init__(self, model_dir: Path, onnx_file: Path, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        config = json.loads((model_dir / "config.json").read_text())
        st_config = model_dir / "sentence_bert_config.json"
        self.max_seq_length = int(json.loads(st_config.read_text())["max_seq_length"]) \
            if st_config.is_file() else int(config.get("max_position_embeddings", 512))
        self.dim = int(config["hidden_size"])
        self.file = onnx_file
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_file), options,
                                            providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_seq_length)
        self.tokenizer.no_padding()

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        # Longest first, as sentence-transformers does: batches of similar lengths pad little.
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for first in range(0, len(order), batch_size):
            idx = order[first:first + batch_size]
            width = max(len(encodings[i].ids) for i in idx)
            feeds = {name: np.zeros((len(idx), width), dtype=np.int64) for name in INPUTS}
            for row, i in enumerate(idx):
                enc = encodings[i]
                n = len(enc.ids)
                feeds["input_ids"][row, :n] = enc.ids
                feeds["attention_mask"][row, :n] = enc.attention_mask
                feeds["token_type_ids"][row, :n] = enc.type_ids
            hidden = self.session.run(None, {k: v for k, v in feeds.items()
                                             if k in self.inputs})[0]
            mask = feeds["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            out[idx] = pooled
        return out


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 2:
        sys.stderr.write("usage: python -m rag.onnx_backend MODEL_DIR OUT_DIR\n")
        return 2
    path = export(Path(args[0]), Path(args[1]))
    sys.stdout.write(f"{path}\n")
    return 0


def load_or_export(model_dir: Path, onnx_file: Path | None, cache_dir: Path,
                   quantize: bool) -> Any:
    """The encoder for `onnx_file`, or for a file exported once into `cache_dir`."""
    if onnx_file is None:
        name = "model-int8.onnx" if quantize else "model.onnx"
        onnx_file = cache_dir / name
        if not onnx_file.is_file():
            log.info("exporting %s to ONNX in %s (once)", model_dir, cache_dir)
            onnx_file = export(model_dir, cache_dir, quantize)
    return OnnxEncoder(model_dir, onnx_file)


if __name__ == "__main__":
    sys.exit(main())

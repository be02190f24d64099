"""Thinking for tests: a conversation that makes SmolLM2 write a <think> block, and a copy of
the packaged SmolLM2 whose chat template opens the block in its generation prompt, as
DeepSeek-R1's and Qwen3's do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmserver.models import DEFAULT_MODEL, packaged_models

OPENS_THINK = "smollm2-opens-think"
SHOTS = [("What is 2 + 3?", "2 plus 3 is 5.", "The answer is 5."),
         ("What is 4 + 4?", "4 plus 4 is 8.", "The answer is 8."),
         ("What is 1 + 6?", "1 plus 6 is 7.", "The answer is 7.")]
# A conversation that shows SmolLM2 how to think: greedy decoding (SmolLM2-135M-Instruct
# Q4_1, and the copy below) answers "<think>3 plus 2 is 5.</think>The answer is 5.".
THINK: list[Any] = [m for q, r, a in SHOTS for m in ({"role": "user", "content": q},
                                          {"role": "assistant",
                                           "content": f"<think>{r}</think>{a}"})]
THINK.append({"role": "user", "content": "What is 3 + 2?"})
REASONING, ANSWER = "3 plus 2 is 5.", "The answer is 5."
# Edits of equal total length: the template's size in the GGUF header stays the same, so the
# copy is the file with these bytes swapped (gguf's metadata rewrite parses the whole
# vocabulary in Python, seconds on a busy machine). The first two only drop Jinja padding.
_EDITS = [(b"'<|im_end|>' + '\n'", b"'<|im_end|>\n'"),
          (b"{{ '<|im_start|>assistant\n' }}", b"{{'<|im_start|>assistant\n<think>'}}")]


def opens_think_model(models_dir: Path) -> str:
    """Write the copy into `models_dir` (once) and return its served name."""
    target = models_dir / f"{OPENS_THINK}.gguf"
    if target.is_file():
        return OPENS_THINK
    data = packaged_models()[DEFAULT_MODEL].read_bytes()
    for old, new in _EDITS:
        assert data.count(old) == 1, old
        data = data.replace(old, new)
    assert sum(len(old) - len(new) for old, new in _EDITS) == 0
    partial = models_dir / f".{OPENS_THINK}.gguf"  # hidden from llmserver until whole
    partial.write_bytes(data)
    partial.rename(target)
    return OPENS_THINK

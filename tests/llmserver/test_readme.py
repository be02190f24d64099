"""The README's Python examples run as written (against a test server's port)."""

from __future__ import annotations

import contextlib
import io
import re

from services.config import REPO_ROOT

MARK = "<!-- tested: tests/llmserver/test_readme.py -->"


def examples() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    return re.findall(re.escape(MARK) + r"\s*```python\n(.*?)```", text, re.S)


def test_readme_has_both_examples() -> None:
    blocks = examples()
    assert len(blocks) == 2
    assert "OpenAI(" in blocks[0] and "Llama(" in blocks[1]


def test_readme_examples_run(llm_server) -> None:
    for block in examples():
        code = block.replace("http://127.0.0.1:8000", llm_server.url)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {})
        assert "Paris" in out.getvalue(), out.getvalue()

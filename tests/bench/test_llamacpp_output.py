"""The benchmark's readers of llama.cpp's tools' output, on what the tools really print.

A smoke run skips llama.cpp's tools where they are not built (CI: building them takes
minutes), so their output is recorded (`python -m bench.llamacpp_tools`) with the version of
llama-cpp-python whose source built them; a new version fails here until it is recorded
again, and where the tools are built their live output is read too."""

from __future__ import annotations

import json
from importlib.metadata import version

import pytest

from bench import llamacpp_tools
from llmserver.models import DEFAULT_MODEL, packaged_models


def check(outputs: dict[str, str]) -> None:
    speeds = llamacpp_tools.parse_batched(outputs["batched"])
    assert set(speeds) == {1, 2} and all(v > 0 for v in speeds.values()), speeds
    assert llamacpp_tools.parse_single(outputs["single"]) > 0


def test_the_recorded_output_is_of_this_llama_cpp_and_reads() -> None:
    recorded = json.loads(llamacpp_tools.RECORDED.read_text())
    assert recorded["llama_cpp_python"] == version("llama-cpp-python"), (
        "llama-cpp-python changed: record its tools' output again with "
        "`python -m bench.llamacpp_tools` (it builds them) and check the readers")
    check(recorded)


def test_readers_refuse_what_is_not_a_result() -> None:
    assert llamacpp_tools.parse_batched("main: n_kv_max = 1024\n") == {}
    with pytest.raises(RuntimeError, match="no result"):
        llamacpp_tools.parse_single("| model | size |\n")


@pytest.mark.slow
def test_the_live_output_reads_where_the_tools_are_built() -> None:
    if not llamacpp_tools.built():
        pytest.skip("llama.cpp's tools are not built here (the recorded output is checked)")
    bins, why = llamacpp_tools.tools()
    assert bins is not None, why
    check(llamacpp_tools.sample_outputs(bins, packaged_models()[DEFAULT_MODEL]))

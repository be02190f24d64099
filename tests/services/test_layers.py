"""The shared layer knows no service: services/ imports none, and tinyllm/ (which may know
them all) repeats none of their ports or env prefixes."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tinyllm.procs import REPO

SERVICES = {"llmserver", "chatbot", "rag", "trainer"}
UPPER = {"tinyllm", "bench", "tests"}
# The one exception, by file: llmserver's /v1/embeddings serves rag's packaged embedder
# in-process, imported lazily (503 where rag's packages are not installed).
ALLOWED = {"llmserver/embedder.py": {"rag"}}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_services_imports_no_service_and_nothing_above_it() -> None:
    for path in sorted((REPO / "services").rglob("*.py")):
        roots = {name.split(".")[0] for name in imported_modules(path)}
        assert not roots & (SERVICES | UPPER), f"{path.name} imports {roots & (SERVICES | UPPER)}"


def test_no_import_module_in_services() -> None:
    for path in sorted((REPO / "services").rglob("*.py")):
        assert "import_module" not in path.read_text(), path.name


def test_no_service_imports_another_or_the_tools() -> None:
    for service in sorted(SERVICES):
        for path in sorted((REPO / service).rglob("*.py")):
            roots = {name.split(".")[0] for name in imported_modules(path)}
            allowed = ALLOWED.get(path.relative_to(REPO).as_posix(), set())
            wrong = roots & ((SERVICES - {service}) | UPPER) - allowed
            assert not wrong, f"{service}/{path.name} imports {wrong}"


def test_tools_repeat_no_port_or_prefix() -> None:
    pattern = re.compile(r"\b(8000|8001|5000|6333)\b|\b(LLMSERVER|CHATBOT|RAG|TRAINER)_[A-Z]")
    for path in sorted((REPO / "tinyllm").rglob("*.py")):
        found = pattern.search(path.read_text())
        assert found is None, f"tinyllm/{path.name} repeats {found.group(0)!r}; read it from " \
                              "the service's Settings"

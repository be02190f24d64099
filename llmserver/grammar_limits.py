"""Bounds on the grammars that JSON schemas and tools become, checked before a grammar is
built: a request can neither overflow llama.cpp's recursive grammar parser (which kills the
process) nor make the event loop write gigabytes of grammar text."""

from __future__ import annotations

import re
from collections import Counter
from itertools import accumulate
from typing import Any

from services.errors import APIError

# Bounds on the grammar a schema becomes. llama-cpp-python's converter writes a count n as
# n nested optional groups, and llama.cpp parses groups recursively: about 18,000 levels
# overflow an 8 MiB stack and kill the process, while its own repetition check already
# refuses the converter's grammars past 1,000. Counts beyond that cannot work; refusing them
# up front keeps the text (n levels of `(char `) from being built at all.
MAX_REPEAT = 1000  # minLength, maxItems, pattern {m,n}...: the most llama.cpp parses
MAX_DEPTH = 64  # nesting of the schema (JSON levels and $ref hops) and of pattern groups
MAX_NODES = 20_000  # schema objects and lists, counted as the converter visits them
MAX_GRAMMAR_CHARS = 1_000_000  # grammar text: parsed per request; ~125 strings of 1,000
MAX_GRAMMAR_DEPTH = 2000  # parentheses in the grammar: a ninth of the overflow depth
_REPEAT_KEYS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties",
                "maxProperties")
# Characters the converter replaces with '-' in rule names (its INVALID_RULE_CHARS_RE).
_RULE_NAME_INVALID = re.compile(r"[^a-zA-Z0-9-]+")
# The parts of a regex that groups and counts are made of: an escape, a class, a paren, a
# {m,n}. Possessive, and an unclosed class or count runs to the end: linear in the pattern.
_PATTERN_TOKENS = re.compile(r"\\.|\[(?:[^\]\\]|\\.)*+\]?|[()]|\{[^}]*\}?", re.S)
# Literals and character classes of a GBNF text, whose parentheses do not nest; unclosed,
# they run to the end, so no start is scanned twice.
_GBNF_QUOTED = re.compile(r'"(?:[^"\\]|\\.?)*+(?:"|\Z)|\[(?:[^\]\\]|\\.?)*+(?:\]|\Z)', re.S)


def _too_large(what: str, param: str) -> APIError:
    return APIError(400, f"The output constraint is too large: {what}.",
                    code="grammar_too_large", param=param)


def _too_deep(what: str, param: str) -> APIError:
    return APIError(400, f"The JSON schema nests too deeply: {what}; at most {MAX_DEPTH} "
                    "levels are supported.", code="schema_too_deep", param=param)


def _repeat(value: Any, where: str, param: str) -> int:
    """A repetition count as the converter will use it (0 when it is not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0  # the converter refuses it (400 invalid_value) or ignores it
    if not value <= MAX_REPEAT:  # NaN too
        raise APIError(400, f"{where} asks for more repetitions than the {MAX_REPEAT} "
                       "supported.", code="repetition_too_large", param=param)
    return int(value) if value > 0 else 0  # -inf too


def _pattern_cost(pattern: str, name: int, param: str) -> int:
    """Grammar text the {m,n} counts of a regex `pattern` add, after checking them and the
    nesting of its groups.

    Args:
        name: length of the rule name a repeated group is referred to by.
    """
    cost, depth = 0, 0
    for token in _PATTERN_TOKENS.finditer(pattern):
        text = token.group()
        if text == "(":
            depth += 1
            if depth > MAX_DEPTH:
                raise _too_deep("groups in 'pattern'", param)
        elif text == ")":
            depth -= 1
        elif text[0] == "{":
            for part in text.strip("{}").split(","):
                try:
                    count = int(part)
                except ValueError:
                    continue  # not a count: the converter refuses the pattern
                cost += _repeat(count, f"'pattern' {{{part.strip()}}}", param) * (name + 16)
    return cost


def _ref_target(root: Any, ref: str) -> Any:
    """What a local `$ref` points at, resolved the way the converter resolves it."""
    target = root
    for part in ref.split("#")[-1].split("/")[1:]:
        if not isinstance(target, dict) or part not in target:
            return None
        target = target[part]
    return target


def _optional_cost(keys: list[str], name: int) -> int:
    """Text the converter builds for optional properties: each one starts a chain through
    all that follow it, so it is quadratic in their number."""
    return len(keys) * sum(name + len(k) + 24 for k in keys) // 2


class _Budget:
    """A schema walked the way the converter walks it, counting the text it would build
    instead of building it: rule names carry the path, a count repeats its item, each $ref
    target is visited once more (an allOf part at every use), optional properties cost
    quadratically, and rule names that escape alike cost a search for a free one."""

    def __init__(self, root: dict[str, Any], param: str) -> None:
        self.root, self.param = root, param
        self.cost = self.nodes = 0
        self.refs: set[str] = set()
        self.names: Counter[int] = Counter()  # rule-name hash -> rules so named
        self.stack: list[tuple[Any, int, int, int]] = []  # node, depth, name length, name

    def add(self, chars: int) -> None:
        self.cost += chars
        if self.cost > MAX_GRAMMAR_CHARS:
            raise _too_large(f"the grammar would exceed {MAX_GRAMMAR_CHARS} characters",
                             self.param)

    def push(self, node: Any, depth: int, name: int, path: int) -> None:
        if not isinstance(node, dict | list):
            self.add(2 * len(node) + 4 if isinstance(node, str) else 24)
            return
        if depth > MAX_DEPTH:
            raise _too_deep(f"more than {MAX_DEPTH} levels", self.param)
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _too_large(f"more than {MAX_NODES} schema objects", self.param)
        self.add(3 * self.names[path])  # the converter's search past rules so named
        self.names[path] += 1
        self.stack.append((node, depth, name, path))

    def child(self, value: Any, key: str, depth: int, name: int, path: int) -> None:
        self.push(value, depth + 1, name + len(key) + 1,
                  hash((path, _RULE_NAME_INVALID.sub("-", key))))

    def walk(self) -> None:
        self.push(self.root, 0, 4, 0)
        while self.stack:
            node, depth, name, path = self.stack.pop()
            if isinstance(node, list):
                for i, item in enumerate(node):
                    self.child(item, f"tuple-{i}", depth, name, path)
                continue
            self.add(4 * (name + 8))
            for key in _REPEAT_KEYS:
                count = _repeat(node.get(key), f"'{key}'", self.param)
                self.add(count * (8 if "Length" in key else name + 20))
            if isinstance(node.get("pattern"), str):
                self.add(2 * len(node["pattern"]))
                self.add(_pattern_cost(node["pattern"], name, self.param))
            if isinstance(node.get("properties"), dict):
                self.object(node, name)
            if isinstance(node.get("allOf"), list):
                self.all_of(node["allOf"], depth, name, path)
            for key, value in node.items():
                self.add(2 * len(key))
                self.child(value, key, depth, name, path)
            ref = node.get("$ref")
            if isinstance(ref, str) and ref not in self.refs:
                self.refs.add(ref)  # pushed last, so expanded here, where first met
                last = ref.split("/")[-1]
                self.push(_ref_target(self.root, ref), depth + 1, len(last) + 4,
                          hash(("$ref", _RULE_NAME_INVALID.sub("-", last))))

    def object(self, node: dict[str, Any], name: int) -> None:
        required = node.get("required")
        needed = {k for k in required if isinstance(k, str)} \
            if isinstance(required, list) else set()
        optional = [k for k in node["properties"] if k not in needed]
        extra = node.get("additionalProperties")
        if extra is True or isinstance(extra, dict):
            optional.append("additional")
        self.add(_optional_cost(optional, name))

    def all_of(self, parts: list[Any], depth: int, name: int, path: int) -> None:
        optional: list[str] = []
        for part in parts:
            anyof = part.get("anyOf") if isinstance(part, dict) else None
            for comp in anyof if isinstance(anyof, list) else [part]:
                ref = comp.get("$ref") if isinstance(comp, dict) else None
                if isinstance(ref, str):  # looked up at every use, not once
                    comp = _ref_target(self.root, ref)
                props = comp.get("properties") if isinstance(comp, dict) else None
                if not isinstance(props, dict):
                    continue
                for key, value in props.items():
                    if isinstance(ref, str):
                        self.child(value, key, depth + 1, name, path)
                    if isinstance(anyof, list):
                        optional.append(key)
        self.add(_optional_cost(optional, name))


def check_schema(schema: dict[str, Any], param: str) -> None:
    """400 unless `schema` becomes a grammar within the bounds above (repetition counts,
    nesting, text), found before any of that text is built."""
    _Budget(schema, param).walk()


def check_grammar(grammar: str, param: str) -> None:
    """400 unless llama.cpp can parse `grammar` without risk to its stack."""
    if len(grammar) > MAX_GRAMMAR_CHARS:
        raise _too_large(f"{len(grammar)} characters of grammar, at most "
                         f"{MAX_GRAMMAR_CHARS}", param)
    parens = [1 if c == "(" else -1 for c in _GBNF_QUOTED.sub("", grammar) if c in "()"]
    if max(accumulate(parens), default=0) > MAX_GRAMMAR_DEPTH:
        raise APIError(400, f"The grammar nests deeper than {MAX_GRAMMAR_DEPTH} levels.",
                       code="grammar_too_deep", param=param)

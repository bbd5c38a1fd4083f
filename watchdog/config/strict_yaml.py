"""Strict YAML reading: core types only, no YAML 1.1 surprises, no duplicate keys, the line of each key."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

Path = tuple[str | int, ...]
MAX_DEPTH = 32  # a config is a few levels deep; more is a mistake (or an attack on the recursion limit)
# No limit, price or port has more digits; Python refuses to convert more than 4,300 (CVE-2020-10735)
# and json.dumps would raise on such an int later, so a longer number is a config error here.
MAX_NUMBER_DIGITS = 30

_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"

# Only these plain scalars become non-strings. `off`, `yes`, `017`, `1e3`, `1:30`, `2026-01-02`,
# `.inf` stay text, so the schema reports them as the wrong type instead of silently converting them.
_PATTERNS = {
    _NULL: re.compile(r"^(?:~|null|Null|NULL|)$"),
    _BOOL: re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    _INT: re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"),
    _FLOAT: re.compile(r"^[-+]?(?:0|[1-9][0-9]*)\.[0-9]+$"),
}


class _StrictResolver(BaseResolver):
    pass


for _tag, _rx in _PATTERNS.items():
    _first = list("~nNtTfF") if _tag in (_NULL, _BOOL) else list("-+0123456789")
    _StrictResolver.add_implicit_resolver(_tag, _rx, _first + ([""] if _tag == _NULL else []))


class _PyLoader(Reader, Scanner, Parser, Composer, _StrictResolver):
    """PyYAML up to the node graph; we convert nodes ourselves to keep lines and refuse surprises."""

    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _StrictResolver.__init__(self)


try:  # libyaml parses ~20x faster (it matters for the property tests, not for the daemon)
    from yaml._yaml import CParser

    class _CLoader(CParser, _StrictResolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _StrictResolver.__init__(self)

    _Loader: type[_PyLoader] | type[_CLoader] = _CLoader
except ImportError:  # pragma: no cover - PyYAML without libyaml
    _Loader = _PyLoader


@dataclass
class YamlDoc:
    """The parsed tree (plain dict/list/str/int/float/bool/None), the line of every path, and problems."""

    data: Any = None
    lines: dict[Path, int] = field(default_factory=dict)
    problems: list[tuple[int | None, Path, str]] = field(default_factory=list)
    refused: set[Path] = field(default_factory=set)  # values dropped (None) for a problem above

    def line_of(self, path: Path) -> int | None:
        """Line of `path`, or of its nearest ancestor written in the file."""
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None


def parse_yaml(text: str) -> YamlDoc:
    """Parse one YAML document strictly. Never raises on bad input: problems are collected in the result."""
    doc = YamlDoc()
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        what = "; ".join(str(p) for p in (e.context, e.problem) if p)
        doc.problems.append((line, (), f"YAML syntax error: {what}"))
        return doc
    except yaml.YAMLError as e:
        doc.problems.append((None, (), f"YAML error: {e}"))
        return doc
    except RecursionError:
        doc.problems.append((None, (), "YAML nested too deeply"))
        return doc
    finally:
        loader.dispose()
    if node is None:
        doc.problems.append((1, (), "the file is empty"))
        return doc
    doc.lines[()] = node.start_mark.line + 1
    doc.data = _Converter(doc).convert(node, (), 0)
    return doc


class _Converter:
    def __init__(self, doc: YamlDoc) -> None:
        self.doc = doc
        self.seen: set[int] = set()

    def problem(self, node: Node, path: Path, message: str) -> None:
        self.doc.problems.append((node.start_mark.line + 1, path, message))

    def convert(self, node: Node, path: Path, depth: int) -> Any:
        if id(node) in self.seen:
            # PyYAML hands an alias back as the very node it points to.
            message = "YAML anchors and aliases (*name) are not supported: write the value out"
            self.doc.problems.append((self.doc.line_of(path), path, message))
            return None
        self.seen.add(id(node))
        if depth > MAX_DEPTH:
            self.problem(node, path, f"nested deeper than {MAX_DEPTH} levels")
            return None
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ:
                self.problem(node, path, f"YAML tag {node.tag!r} is not allowed here")
            items = []
            for i, item in enumerate(node.value):
                self.doc.lines[(*path, i)] = item.start_mark.line + 1
                items.append(self.convert(item, (*path, i), depth + 1))
            return items
        if isinstance(node, MappingNode):
            return self.mapping(node, path, depth)
        self.problem(node, path, "unsupported YAML node")
        return None

    def mapping(self, node: MappingNode, path: Path, depth: int) -> dict[str, Any]:
        if node.tag != _MAP:
            self.problem(node, path, f"YAML tag {node.tag!r} is not allowed here")
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, ScalarNode) or key_node.tag != _STR:
                shown = key_node.value if isinstance(key_node, ScalarNode) else "a list or mapping"
                self.doc.problems.append((line, path, f"keys must be plain names, got: {shown!r}"))
                continue
            key = key_node.value
            if key in out:
                first = self.doc.lines.get((*path, key))
                self.doc.problems.append(
                    (line, (*path, key), f"duplicate key {key!r} (first on line {first})")
                )
                continue
            self.doc.lines[(*path, key)] = line
            out[key] = self.convert(value_node, (*path, key), depth + 1)
        return out

    def scalar(self, node: ScalarNode, path: Path) -> Any:
        text: str = node.value
        tag = node.tag
        if tag == _STR:
            return text
        rx = _PATTERNS.get(tag)
        if rx is None:
            self.problem(node, path, f"YAML tag {tag!r} is not allowed; write a plain value")
            return text
        if not rx.match(text):
            # An explicit `!!int 017` and the like: refuse rather than guess YAML 1.1's meaning.
            self.problem(node, path, f"{text!r} is not a plain {tag.rsplit(':', 1)[-1]}")
            return text
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return text.lower() == "true"
        if _too_long(text):
            self.problem(node, path, f"number too long ({_digits(text)} digits; at most {MAX_NUMBER_DIGITS})")
            self.doc.refused.add(path)
            return None
        if tag == _INT:
            return int(text)
        return float(text)


def _digits(text: str) -> int:
    return sum(c.isdigit() for c in text)


def _too_long(text: str) -> bool:
    return len(text) > MAX_NUMBER_DIGITS and _digits(text) > MAX_NUMBER_DIGITS


def plain_scalar(text: str) -> Any:
    """The value a plain (unquoted) scalar `text` has under the strict rules above.

    A number longer than MAX_NUMBER_DIGITS stays text, so the schema reports it as the wrong type."""
    for tag, rx in _PATTERNS.items():
        if rx.match(text):
            if tag == _NULL:
                return None
            if tag == _BOOL:
                return text.lower() == "true"
            if _too_long(text):
                return text
            return int(text) if tag == _INT else float(text)
    return text

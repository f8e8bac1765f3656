"""One rule file's text, read once, so problems can name the line a key or value sits on.

tomllib reports no positions for valid documents, so the line of a key is found by a small
scan of the text within the lines that belong to the rule (or table) being checked.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processor.classify.model import RuleProblem

_TOML_LINE = re.compile(r"line (\d+)")


@dataclass(frozen=True, slots=True)
class Span:
    """Lines [first, last] of one file that hold one rule or table (1-based, inclusive)."""

    source: Source
    first: int
    last: int

    def line_of(self, key: str, value: str | None = None) -> int:
        """The first line in the span holding `value` (quoted), else `key`, else the span start."""
        lines = self.source.lines[self.first - 1:self.last]
        key_re = re.compile(rf"(?<![\w-]){re.escape(key)}\s*[=.\]]")
        quoted = () if value is None else (
            f'"{value}"', f"'{value}'", f'"{value.replace(chr(92), chr(92) * 2)}"')
        has_key = [bool(key_re.search(text.split("#", 1)[0])) for text in lines]
        has_value = [any(q in text for q in quoted) for text in lines]
        # Best the line with both (category = "x"), then the value alone (inside a list spanning
        # lines), then the key alone.
        for wanted in (list(map(all, zip(has_key, has_value, strict=True))), has_value, has_key):
            if any(wanted):
                return self.first + wanted.index(True)
        return self.first

    def problem(self, message: str, key: str | None = None,
                value: str | None = None) -> RuleProblem:
        line = self.line_of(key, value) if key is not None else self.first
        return RuleProblem(self.source.name, line, message)


@dataclass(frozen=True, slots=True)
class Source:
    path: Path
    name: str
    lines: tuple[str, ...]

    @classmethod
    def read(cls, path: Path) -> tuple[Source, dict[str, Any] | None, RuleProblem | None]:
        """The file's text and its TOML data, or the problem that stopped it being read."""
        name = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return cls(path, name, ()), None, RuleProblem(name, 1, f"cannot read: {exc}")
        source = cls(path, name, tuple(text.splitlines()))
        try:
            return source, tomllib.loads(text), None
        except tomllib.TOMLDecodeError as exc:
            found = _TOML_LINE.search(str(exc))
            line = int(found.group(1)) if found else 1
            return source, None, RuleProblem(name, line, f"not valid TOML: {exc}")

    def whole(self) -> Span:
        return Span(self, 1, max(len(self.lines), 1))

    def table_spans(self, header: str) -> list[Span]:
        """Spans that start at each line equal to `header` (e.g. "[[rule]]") and run to the next."""
        starts = [i + 1 for i, text in enumerate(self.lines) if text.strip() == header]
        ends = [s - 1 for s in starts[1:]] + [len(self.lines)]
        return [Span(self, s, e) for s, e in zip(starts, ends, strict=True)]

    def section_span(self, prefix: str, name: str) -> Span:
        """The span of `[prefix.name]` up to the next `[prefix.` header, or the whole file."""
        pattern = re.compile(rf"^\s*\[\s*{re.escape(prefix)}\.{re.escape(name)}\s*\]")
        for i, text in enumerate(self.lines):
            if pattern.match(text):
                end = next((j for j in range(i + 1, len(self.lines))
                            if self.lines[j].lstrip().startswith(f"[{prefix}.")), len(self.lines))
                return Span(self, i + 1, end)
        return self.whole()

"""Readable plain text from an HTML body, without fetching anything it references."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, Comment, Declaration, Doctype, NavigableString, Tag
from bs4.element import CData, ProcessingInstruction

_DROPPED = frozenset({"script", "style", "head", "title", "noscript", "template", "object",
                      "iframe", "svg", "meta", "link"})
# Paragraph-like blocks leave a blank line around them; the other blocks one line break.
_PARAGRAPHS = frozenset({"blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "ol", "p",
                         "pre", "table", "ul"})
_BLOCKS = frozenset({
    "address", "article", "aside", "center", "dd", "details", "div", "dl", "dt", "fieldset",
    "figcaption", "figure", "footer", "form", "header", "li", "main", "nav", "section",
    "summary", "tbody", "thead", "tfoot", "tr", "body", "html",
})
_PARAGRAPH, _LINE, _BREAK = "\x00", "\n", "\x01"
_BREAK_RUN = re.compile(r" *[\n\x00][\n\x00 ]*")
_CELLS = frozenset({"td", "th"})
_SKIPPED_STRINGS = (Comment, Declaration, Doctype, CData, ProcessingInstruction)
_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0\u200b]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    """Text a person would read: blocks, rows and breaks become line breaks, links keep their text.

    The walk is iterative (an explicit stack), so a million nested <div>s cannot recurse.
    """
    soup = BeautifulSoup(html, "html.parser")
    pieces: list[str] = []
    stack: list[object] = [soup]
    while stack:
        node = stack.pop()
        if isinstance(node, str) and not isinstance(node, NavigableString):
            pieces.append(node)  # a marker pushed below: the line break after a block
            continue
        if isinstance(node, NavigableString):
            if not isinstance(node, _SKIPPED_STRINGS):
                pieces.append(_SPACES.sub(" ", str(node)))
            continue
        if not isinstance(node, Tag):
            continue
        name = node.name
        if name in _DROPPED:
            continue
        if name == "br":
            pieces.append(_BREAK)
            continue
        if name in _PARAGRAPHS or name in _BLOCKS:
            marker = _PARAGRAPH if name in _PARAGRAPHS else _LINE
            pieces.append(marker)
            stack.append(marker)
        elif name in _CELLS:
            stack.append(" ")
        stack.extend(reversed(node.contents))
    return _tidy("".join(pieces))


def _tidy(text: str) -> str:
    # Adjacent block edges collapse to one break, so nested <div>s do not pile up blank lines.
    text = _BREAK_RUN.sub(lambda m: "\n\n" if _PARAGRAPH in m.group() else "\n", text)
    lines = [line.strip() for line in text.replace(_BREAK, "\n").split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()

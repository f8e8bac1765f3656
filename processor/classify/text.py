"""Text folding and keyword patterns shared by conditions and detail extraction."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from processor.mail import fold_for_matching

# Letters and digits of space-separated scripts. CJK characters are deliberately absent: Chinese
# has no spaces between words, so a Chinese keyword matches anywhere inside the text.
_WORD_CHAR = r"0-9a-z\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff"


def fold(text: str) -> str:
    """NFKC + casefold, whitespace runs as one space: the parser's own folding, on purpose."""
    return fold_for_matching(text)


def normalize(text: str) -> str:
    """NFKC only: what regex conditions and detail extraction read (case kept for display)."""
    return unicodedata.normalize("NFKC", text)


def keyword_pattern(keyword: str) -> re.Pattern[str]:
    """A pattern over folded text for one keyword.

    A keyword that starts or ends with a Latin letter or digit must sit at a word edge there
    ("app" does not match "happy"); a trailing `*` lets the word go on ("refund*" matches
    "refunded"). Chinese keywords match anywhere. A space inside a keyword matches spaces or
    hyphens, a hyphen matches a hyphen, a space or nothing.
    """
    folded = fold(keyword).strip()
    prefix = folded.endswith("*")
    folded = folded.rstrip("*").strip()
    # "do not call" also finds "do-not-call", and "re-open" also finds "reopen".
    words = (r"[-\s]?".join(re.escape(p) for p in word.split("-")) for word in folded.split(" "))
    body = r"[-\s]+".join(words)
    word_char = f"[{_WORD_CHAR}]"
    start = f"(?<!{word_char})" if re.match(word_char, folded[:1]) else ""
    end = f"(?!{word_char})" if not prefix and re.match(word_char, folded[-1:]) else ""
    return re.compile(start + body + end)


def keyword_literal(keyword: str) -> str:
    """The longest piece of a keyword that its pattern (keyword_pattern) only ever matches
    verbatim: text without it cannot match, and `in` says so far faster than the pattern."""
    folded = fold(keyword).strip().rstrip("*").strip()
    return max(re.split(r"[-\s]+", folded), key=len)


# --- a fast first step for long alternations -------------------------------------------------
# Python's matcher tries every alternative of a pattern at every position of the text: the
# detail patterns have thirty, and that was a fifth of the time of preparing a mail. A
# lookahead for the characters a match can start with rejects most positions at once. The
# characters are read off the pattern's parse tree (the `re` package's own parser: private,
# so anything it does not recognise leaves the pattern as it was).

class _AnyStart(Exception):
    """A match could start with (almost) any character: no lookahead helps."""


def first_character_guard(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """`pattern` with a lookahead for the characters its matches can start with: the same
    matches at the same places, found faster. Returned unchanged when that set cannot be
    told (or the pattern can match the empty string)."""
    try:
        from re import _constants, _parser  # type: ignore[attr-defined]

        starts, empty = _first_of_sequence(_parser.parse(pattern.pattern, pattern.flags),
                                           _constants)
    except (_AnyStart, ImportError, AttributeError, TypeError, ValueError):
        return pattern
    if empty or not starts:
        return pattern
    try:
        return re.compile(f"(?=[{''.join(sorted(starts))}])(?:{pattern.pattern})",
                          pattern.flags)
    except re.error:  # e.g. a pattern that starts with global flags, "(?i)..."
        return pattern


def _first_of_sequence(items: Iterable[tuple[Any, Any]], c: Any) -> tuple[set[str], bool]:
    """What the first character of a match of `items` can be (as character-class items), and
    whether the sequence can match nothing at all."""
    starts: set[str] = set()
    for op, arg in items:
        more, empty = _first_of_item(op, arg, c)
        starts |= more
        if not empty:
            return starts, False
    return starts, True


def _first_of_item(op: Any, arg: Any, c: Any) -> tuple[set[str], bool]:
    if op is c.LITERAL:
        return {_class_char(arg)}, False
    if op is c.IN:
        return {_class_item(item_op, item_arg, c) for item_op, item_arg in arg}, False
    if op is c.BRANCH:
        starts: set[str] = set()
        empty = False
        for alternative in arg[1]:
            more, may_be_empty = _first_of_sequence(alternative, c)
            starts |= more
            empty = empty or may_be_empty
        return starts, empty
    if op is c.SUBPATTERN:
        _group, add_flags, del_flags, inner = arg
        if add_flags or del_flags:  # (?i:...) and the like: not worth following
            raise _AnyStart
        return _first_of_sequence(inner, c)
    if op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
        least, _most, inner = arg
        starts, empty = _first_of_sequence(inner, c)
        return starts, empty or least == 0
    if op is getattr(c, "ATOMIC_GROUP", None):
        return _first_of_sequence(arg, c)
    if op in (c.AT, c.ASSERT, c.ASSERT_NOT):  # zero-width: look past them
        return set(), True
    raise _AnyStart


def _class_item(op: Any, arg: Any, c: Any) -> str:
    if op is c.LITERAL:
        return _class_char(arg)
    if op is c.RANGE:
        return f"{_class_char(arg[0])}-{_class_char(arg[1])}"
    if op is c.CATEGORY:
        name = {c.CATEGORY_DIGIT: r"\d", c.CATEGORY_SPACE: r"\s", c.CATEGORY_WORD: r"\w"}.get(arg)
        if name:
            return name
    raise _AnyStart  # a negated set or category: nearly anything


def _class_char(code: int) -> str:
    char = chr(code)
    return "\\" + char if char in "\\]^-[" else char

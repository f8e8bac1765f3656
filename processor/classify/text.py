"""Text folding and keyword patterns shared by conditions and detail extraction."""

from __future__ import annotations

import re
import unicodedata

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

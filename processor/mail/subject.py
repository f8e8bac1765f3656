"""Subjects as people and threading compare them: reply and forward prefixes off, forms folded."""

from __future__ import annotations

import re
import unicodedata

# Prefixes real clients write, in the languages our customers use: English, German (AW/WG),
# Nordic (SV/VS), Dutch (Antw/Doorst), French/Italian (TR/RIF/R), Spanish/Portuguese (RV/ENC),
# and Chinese simplified and traditional (回复 答复 转发 回覆 轉寄 轉發).
_WORDS = (r"re|fw|fwd|aw|wg|sv|vs|antw|doorst|tr|rif|r|rv|enc|odp|ynt|"
          r"回复|回覆|答复|答覆|转发|轉寄|轉發|转寄")
# After NFKC, full-width ： and ［］（） are ASCII; 【】 are not, so they are listed.
_PREFIX = (
    rf"(?:(?:{_WORDS})\s*(?:\[\d+\]|\(\d+\))?\s*:"          # Re: / RE[2]: / 回复：
    rf"|[\[【(〔]\s*(?:{_WORDS})\s*(?::\s*)?[\]】)〕]"     # [Fwd] / 【回复】 / (fwd)
    rf"|[\[【]\s*(?:{_WORDS})\s*:"                      # [Fwd: ...]  (closing bracket below)
    rf")\s*"
)
# A whole run of prefixes in one match, so "Re: " a thousand times costs one pass.
_PREFIX_RUN = re.compile(rf"^\s*(?:{_PREFIX})+", re.IGNORECASE)
_OPENED = re.compile(rf"[\[【]\s*(?:{_WORDS})\s*:", re.IGNORECASE)
_TRAILING = re.compile(r"\s*(?:\((?:fwd|fw)\)|\])\s*$", re.IGNORECASE)


def fold_for_matching(text: str) -> str:
    """NFKC (full-width letters, digits, punctuation to ASCII) + casefold + whitespace folded."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def normalize_subject(subject: str) -> str:
    """The subject without any run of reply/forward prefixes, NFKC-normalised, spaces folded.

    Case is kept (it is shown to people); compare with `fold_for_matching` on top.
    """
    text = " ".join(unicodedata.normalize("NFKC", subject).split())
    opened_brackets = 0
    match = _PREFIX_RUN.match(text)
    if match is not None:
        opened_brackets = len(_OPENED.findall(match.group()))
        text = text[match.end():]
    for _ in range(min(opened_brackets, 50)):
        text = _TRAILING.sub("", text)
    text = _TRAILING.sub("", text) if text.lower().endswith("(fwd)") else text
    return text.strip()


def display_subject(subject: str) -> str:
    """The subject as the sender wrote it (full-width punctuation kept), minus the prefix run.

    `normalize_subject` folds with NFKC for matching; a subject shown back to a person, as in
    our acknowledgement, keeps their characters. So find the tail of the original whose folded
    form is the normalised subject; when brackets were unwrapped and none matches, fall back to
    the normalised form.
    """
    folded = " ".join(subject.split())
    target = normalize_subject(folded)
    for start in range(min(len(folded), 400) + 1):
        tail = folded[start:]
        if " ".join(unicodedata.normalize("NFKC", tail).split()) == target:
            return tail.strip()
    return target

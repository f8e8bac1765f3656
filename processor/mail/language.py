"""A cheap guess at the language of a mail from the scripts its letters are written in."""

from __future__ import annotations

import re

_HAN = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_SAMPLE = 4000  # characters; a complaint declares its language in its first lines


def detect_language(subject: str, text: str) -> str:
    """"zh", "ja", "ko", "ru" or "en"; Chinese wins over Latin at a far lower count, since one
    Chinese character carries about a word."""
    sample = f"{subject}\n{text[:_SAMPLE]}"
    kana = len(_KANA.findall(sample))
    han = len(_HAN.findall(sample))
    hangul = len(_HANGUL.findall(sample))
    latin_words = len(re.findall(r"[A-Za-z\u00c0-\u024f]{2,}", sample))
    if kana >= 2 and kana * 5 >= han:
        return "ja"
    if hangul >= 3 and hangul * 2 >= latin_words:
        return "ko"
    if han >= 2 and han * 2 >= latin_words:
        return "zh"
    cyrillic = len(_CYRILLIC.findall(sample))
    if cyrillic > len(_LATIN.findall(sample)):
        return "ru"
    return "en"

"""Turning bytes in a declared, missing or wrong charset into text, and counting what was lost."""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

# Chinese clients label GBK text as gb2312 (a strict subset), so decode the superset;
# Big5 from Hong Kong carries HKSCS characters that plain big5 rejects.
_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "ms936": "gb18030",
    "windows-936": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "gb_2312-80": "gb18030",
    "chinese": "gb18030",
    "csgb2312": "gb18030",
    "big5": "big5hkscs",
    "x-big5": "big5hkscs",
    "big-5": "big5hkscs",
    "cn-big5": "big5hkscs",
    "cp950": "big5hkscs",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "sjis": "cp932",
    "windows-31j": "cp932",
    "iso-2022-jp": "iso2022_jp_ext",
    "us-ascii": "ascii",
    "ansi_x3.4-1968": "ascii",
    "unicode-1-1-utf-7": "utf-7",
    "utf8": "utf-8",
    "x-unknown": "",
    "unknown-8bit": "",
    "unknown": "",
    "default": "",
    "x-user-defined": "",
}

# A CJK character wedged inside a Latin word ("Forma玢o") is Latin-1 read as GBK or Big5.
_LATIN_IN_DISGUISE = re.compile(r"[A-Za-z][\u3400-\u9fff\uac00-\ud7af\ue000-\uf8ff][A-Za-z]")

# Charsets written in 7-bit bytes that are not ASCII text.
_SEVEN_BIT = ("iso2022", "utf-7", "hz")
_HIGH_BYTES = bytes(range(128, 256))
_DETECT_MIN_BYTES = 24

# Codecs that never fail, so a failed strict decode cannot reveal a wrong label.
_PERMISSIVE = {"ascii", "latin-1", "iso8859-1", "cp1252"}


def codec_for(charset: str | None) -> str | None:
    """The Python codec for a MIME charset label, or None when the label is missing or unknown."""
    if not charset:
        return None
    label = charset.strip().strip("\"'").lower()
    label = _ALIASES.get(label, label)
    if not label:
        return None
    try:
        name = codecs.lookup(label).name
    except (LookupError, ValueError):
        return None
    if name in {"gb2312", "gbk"}:
        return "gb18030"
    if name == "big5":
        return "big5hkscs"
    # Codecs that turn bytes into bytes (base64, zlib...) are not charsets.
    if name.endswith("_codec") or name in {"rot-13", "undefined"}:
        return None
    return name


def detect_codec(data: bytes, sample_limit: int) -> str | None:
    """Guess the charset of undeclared or mislabelled text from a bounded sample."""
    sample = data[:sample_limit]
    try:
        best = from_bytes(sample).best()
    except Exception:  # noqa: BLE001 - a detector bug must not cost us the mail
        return None
    if best is None:
        return None
    return codec_for(best.encoding)


def decode_text(
    data: bytes, declared: str | None, defects: list[str], *, sample_limit: int = 64 * 1024,
    where: str = "body",
) -> str:
    """Decode text bytes: the declared charset, else detection, else replacement characters."""
    codec = codec_for(declared)
    if data.isascii() and (codec is None or not codec.startswith(_SEVEN_BIT)):
        return data.decode("ascii")
    label = (declared or "").strip()[:40]
    if label and codec is None:
        defects.append(f"{where}: unknown charset {label!r}")
    if codec is not None and codec not in _PERMISSIVE:
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            defects.append(f"{where}: text is not valid {label}")
    # A mislabelled or unlabelled non-ASCII body is most often UTF-8: a cheap, certain check.
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if codec is not None and codec not in ("utf-8", "ascii"):
            defects.append(f"{where}: declared {label} but content is utf-8")
        return text
    if codec in _PERMISSIVE and codec != "ascii":
        return data.decode(codec)
    # Detectors guess wildly on a handful of bytes; then a few replacement characters in the
    # declared charset are the honest answer.
    high = len(data) - len(data.translate(None, _HIGH_BYTES))
    guess = detect_codec(data, sample_limit) if high >= _DETECT_MIN_BYTES or not codec else None
    for candidate in (guess, None if codec else "gb18030"):
        if candidate is None:
            continue
        try:
            text = data.decode(candidate)
        except UnicodeDecodeError:
            continue
        defects.append(f"{where}: charset detected as {candidate}")
        return text
    fallback = codec or guess or "utf-8"
    text = data.decode(fallback, errors="replace")
    lost = text.count("\ufffd")
    defects.append(f"{where}: {lost} undecodable bytes replaced (decoded as {fallback})")
    return text


def decode_8bit_header(value: str, hint: str | None, defects: list[str]) -> str:
    """Re-decode a header value read as latin-1 whose raw bytes were 8-bit (RFC 6532 or worse)."""
    if value.isascii() or max(value) > "\xff":
        return value  # already text, not bytes read as latin-1
    raw = value.encode("latin-1")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared = codec_for(hint)
    for candidate in (declared, "gb18030", "big5hkscs"):
        if candidate is None:
            continue
        try:
            text = raw.decode(candidate)
        except UnicodeDecodeError:
            continue
        if candidate != declared and _LATIN_IN_DISGUISE.search(text):
            continue
        defects.append(f"header: raw 8-bit bytes decoded as {candidate}")
        return text
    defects.append("header: raw 8-bit bytes decoded as cp1252")
    return raw.decode("cp1252", errors="replace")

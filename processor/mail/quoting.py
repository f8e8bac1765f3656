"""What the sender wrote in this mail: a reply without its quoted history and signature.

Lines are matched after NFKC folding, so full-width colons (：) and letters match the ASCII
patterns. Each detector looks at one line (and a few after it) so the work is linear in the
text and a hostile body cannot make a pattern backtrack.
"""

from __future__ import annotations

import re
import unicodedata

# "-----Original Message-----", "-----原始邮件-----", QQ Mail's "------ Original ------",
# Gmail's "---------- Forwarded message ---------", "—— 原始邮件 ——" with em dashes.
_SEPARATOR = re.compile(
    r"^[-—–_=─━~* ]{2,}\s*(?:original message|original|原始邮件|原始郵件|邮件原文|"
    r"forwarded message|转发邮件信息|转发的邮件|轉寄郵件|message d'origine|"
    r"ursprüngliche nachricht|mensaje original|messaggio originale)\s*[-—–_=─━~* ]{2,}$"
)
_FORWARD_INTRO = re.compile(r"^(?:begin forwarded message|下面是被转发的邮件|转发的邮件)\s*:?$")
# Attribution lines; Gmail wraps the English one over two or three lines.
_WROTE = re.compile(
    r"^(?:on\b.{0,300}\bwrote|am\b.{0,300}\bschrieb\b.{0,100}|le\b.{0,300}\ba écrit\s?"
    r"|el\b.{0,300}\bescribió|il\b.{0,300}\bha scritto|op\b.{0,300}\bschreef.{0,100})\s?:$"
)
# 在 2026年11月3日 15:04，某某 写道： / 某某 <a@b> 于2026年11月3日周二 15:04写道：
_WROTE_ZH = re.compile(r"^.{0,300}[0-9@].{0,300}(?:写道|寫道|撰写|來信|来信)\s?:$")
_FROM_KEY = re.compile(r"^[*>\s]*(?:from|发件人|發件人|寄件者|寄件人|von|de|van)\s*\**\s?:")
_OTHER_KEY = re.compile(
    r"^[*>\s]*(?:sent|date|to|subject|cc|发送时间|發送時間|时间|時間|日期|收件人|收件者|主题|主題|"
    r"抄送|副本|寄件日期|主旨|gesendet|datum|an|betreff|envoyé|à|objet|enviado|para|asunto)"
    r"\s*\**\s?:"
)
_RULE = re.compile(r"^[_\-—─]{10,}$")
_SIGNATURE_DELIMITER = re.compile(r"^(?:--|-- |——)$")
_MOBILE = re.compile(
    r"^(?:sent from my\b|sent from (?:mail|outlook|yahoo|samsung|huawei|xiaomi)\b"
    r"|get outlook for\b|sent via\b|sent with\b|发自我的|發自我的|从我的.{0,20}发送|"
    r"來自我的|来自我的|"
    r"发自网易邮箱|来自网易邮箱|发自手机|發自手機|发自 ?(?:iphone|ipad|华为|小米|荣耀|oppo|vivo)|"
    r"von meinem\b|envoyé de mon\b|enviado desde mi\b|inviato da\b)"
)


def _fold(line: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", line).casefold().split())


_BLANKS = re.compile(r"\n{3,}")


def _attribution_length(folded: list[str], index: int) -> int:
    """How many lines an "On ... wrote:" attribution starting here spans (0 if none)."""
    line = folded[index]
    if len(line) < 400 and line.endswith(":") and (_WROTE.match(line) or _WROTE_ZH.match(line)):
        return 1
    if line.startswith(("on ", "在", "am ", "le ")) and len(line) < 300:
        joined = line
        for extra, ahead in enumerate(folded[index + 1:index + 3], start=2):
            joined = f"{joined} {ahead}"
            if _WROTE.match(joined) or _WROTE_ZH.match(joined):
                return extra
    return 0


def _interleaved(lines: list[str], after: int) -> bool:
    """Quoted lines answered in between (Thunderbird, mutt): the answers are new text."""
    seen_quote = False
    for line in lines[after:]:
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(">"):
            seen_quote = True
        elif seen_quote:
            return not _SIGNATURE_DELIMITER.match(line.rstrip("\r"))
        else:
            return False
    return False


def _quote_start(folded: list[str], index: int) -> bool:
    """Does quoted history begin at this line?"""
    line = folded[index]
    if not line:
        return False
    if _SEPARATOR.match(line) or _FORWARD_INTRO.match(line):
        return True
    if _FROM_KEY.match(line):
        return _header_block_follows(folded, index)
    if _RULE.match(line):
        nxt = next((f for f in folded[index + 1:index + 4] if f), "")
        return bool(_FROM_KEY.match(nxt)) and _header_block_follows(
            folded, folded.index(nxt, index + 1))
    return False


def _header_block_follows(folded: list[str], index: int) -> bool:
    seen = 0
    for line in folded[index + 1:index + 9]:
        if not line:
            continue
        if not _OTHER_KEY.match(line):
            break
        seen += 1
    return seen >= 1


def _trailing_quote(lines: list[str], stop: int) -> int:
    """Start of a final block made only of "> " lines (and blanks), or `stop` if none."""
    start = stop
    for index in range(stop - 1, -1, -1):
        stripped = lines[index].strip()
        if not stripped:
            continue
        if stripped.startswith(">"):
            start = index
        else:
            break
    return start


def extract_new_text(text: str) -> str:
    """The part of a reply the sender wrote now: above any quote header, signature or quote."""
    lines = text.split("\n")
    folded = [_fold(line) for line in lines]
    cut = len(lines)
    dropped: set[int] = set()
    for index in range(len(lines)):
        if index in dropped:
            continue
        span = _attribution_length(folded, index) if folded[index] else 0
        if span and _interleaved(lines, index + span):
            dropped.update(range(index, index + span))
            continue
        if span or _quote_start(folded, index):
            cut = index
            break
    for index in range(cut):
        line = folded[index]
        if _SIGNATURE_DELIMITER.match(lines[index].rstrip("\r")) or (
            len(line) <= 80 and _MOBILE.match(line)
        ):
            cut = index
            break
    cut = _trailing_quote(lines, cut)
    kept = [line for index, line in enumerate(lines[:cut]) if index not in dropped]
    if any(line.strip() and not line.lstrip().startswith(">") for line in kept):
        # Interleaved answers: keep what is not quoted.
        kept = [line for line in kept if not line.lstrip().startswith(">")]
    return _BLANKS.sub("\n\n", "\n".join(line.rstrip() for line in kept)).strip("\n")

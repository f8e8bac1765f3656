"""Pull out of a complaint what the team needs: when, how often, where, impact, who, numbers, ask.

Each detail is one table entry (name -> how to find it), read from the subject and the new text
of the mail in both Chinese and English forms, whatever language the mail was detected as,
because complainants mix them ("工号 1234, call dropped at 3pm").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from processor.classify.model import Details
from processor.classify.text import first_character_guard as _guarded
from processor.classify.text import normalize
from processor.mail.model import ParsedMessage

_MAX_ITEMS = 10
_MAX_SENTENCE = 200
_I = re.IGNORECASE

# Each long alternation below is _guarded: the same matches, found two to four times faster
# (see processor.classify.text.first_character_guard).

# --- when -------------------------------------------------------------------------------------
_CN_NUM = r"[0-9一二三四五六七八九十两]{1,3}"
_CN_DAYPART = r"(?:凌晨|早上|早晨|上午|中午|下午|傍晚|晚上|夜里|半夜|今早|昨晚)"
_CN_CLOCK = (rf"{_CN_DAYPART}?\s*(?:{_CN_NUM}\s*[点點时](?:\s*{_CN_NUM}\s*分|\s*半|\s*一刻)?"
             rf"|\d{{1,2}}:\d{{2}})")
_CN_DAY = (r"(?:(?:\d{4}\s*年\s*)?\d{1,2}\s*月\s*\d{1,2}\s*[日号號]"
           r"|大?前天|昨天|今天|今早|昨晚|上个?月|这个月|本月|月初|月底"
           r"|(?:上|本|这)?(?:周|星期|礼拜)[一二三四五六日天])")
_EN_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
             r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_EN_WEEKDAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_EN_DAY = (rf"(?:\b\d{{4}}[-/.]\d{{1,2}}[-/.]\d{{1,2}}\b"
           rf"|\b{_EN_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?\b(?:,?\s+\d{{4}})?"
           rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_EN_MONTH}(?:,?\s+\d{{4}})?"
           rf"|\b(?:yesterday|today|tonight|last night|this (?:morning|afternoon|evening))\b"
           rf"|\b(?:last|this|on|since)\s+(?:{_EN_WEEKDAY}|week|month)\b"
           rf"|\b{_EN_WEEKDAY}\b)")
_EN_CLOCK = r"(?:\b\d{1,2}(?::\d{2})?\s*(?:a\.m\.|p\.m\.|am\b|pm\b)|\b\d{1,2}:\d{2}\b)"
_TIME = _guarded(re.compile(
    rf"{_CN_DAY}\s*{_CN_CLOCK}?|{_CN_DAYPART}\s*{_CN_NUM}\s*[点點时](?:\s*{_CN_NUM}\s*分|\s*半)?"
    rf"|{_EN_DAY}(?:,?\s*(?:at|around|about)?\s*{_EN_CLOCK})?|{_EN_CLOCK}", _I))

# --- how often --------------------------------------------------------------------------------
_FREQUENCY = _guarded(re.compile(
    r"每天|每日|天天|每次|每周|每个月|经常|频繁|屡次|多次|反复|总是|老是|三番五次|不止一次|好几次"
    r"|第?[0-9一二两三四五六七八九十几]+\s*次"
    r"|\bevery\s+(?:single\s+)?(?:day|time|call|week|morning|afternoon|hour)\b|\bdaily\b"
    r"|\b(?:several|many|multiple|numerous|countless|\d+|two|three|four|five|ten)\s+times\b"
    r"|\btwice\b|\bagain and again\b|\bover and over\b|\brepeatedly\b|\bconstantly\b"
    r"|\bfrequently\b|\boften\b|\ball the time\b"
    r"|\bkeeps?\s+(?:happening|dropping|freezing|crashing)",
    _I))

# --- sentences that describe the situation, the impact, the ask, and what was said -------------
_SCENARIO = _guarded(re.compile(
    r"在.{0,24}(?:时|的时候|过程中|期间)|正在|通话中|通话过程|高峰期|使用.{0,12}时"
    r"|\b(?:while|during|whenever|in the middle of)\b|\bwhen\s+(?:i|we|our|my|the|a)\b", _I))
_IMPACT = _guarded(re.compile(
    r"影响|损失|耽误|耽搁|流失|生意|业务|差评|罚款|无法(?:正常)?(?:工作|营业|办公|接单|开展)"
    r"|\bimpact\w*|\baffect\w*|\blos(?:t|ing|s)\b.{0,30}\b(?:customers?|sales?|orders?|business"
    r"|revenue|money|deals?|clients?)\b|\bcost (?:us|me)\b|\brevenue\b"
    r"|\bour (?:customers|clients)\b|\bpenalt\w+", _I))
_RESOLUTION = _guarded(re.compile(
    r"要求|希望|请尽快|尽快|恳请|务必|请(?:你们|贵公司|贵司|立即|马上|及时|相关)"
    r"|给(?:我|个|一个)(?:说法|答复|解释)|退还|退回|赔偿|补偿|道歉"
    r"|\b(?:i|we)\s+(?:expect|want|would like|demand|request|insist|am asking|are asking)\b"
    r"|\b(?:i|we)['’]d like\b|\bplease\s+(?:refund|fix|resolve|call|contact|investigate|cancel"
    r"|remove|delete|stop|reverse|credit|escalate|reply|respond|look into|compensate|reconsider"
    r"|review|restore|send)\b", _I))
_SPEECH_VERB = _guarded(re.compile(
    r"(?:客服|坐席|话务员|接线员|工作人员|他|她|对方).{0,6}(?:说|骂|吼|讲|回答|答复|表示)"
    r"|\b(?:said|told (?:me|us)|shouted|yelled|replied|called me)\b", _I))
_QUOTED = re.compile(r"“([^”]{2,120})”|「([^」]{2,120})」|\"([^\"]{2,120})\"|‘([^’]{2,120})’")

# --- identifiers ------------------------------------------------------------------------------
_AGENT_ID = _guarded(re.compile(
    r"工号\s*(?:为|是)?\s*[:#]?\s*([A-Za-z]{0,3}\d{2,8})(?!\d)"
    r"|(?<!\d)(\d{3,6})\s*号\s*(?:客服|坐席|话务员|接线员)"
    r"|(?:客服|坐席|话务员|接线员)(?:编号|号码)?\s*[:#]?\s*([A-Za-z]{0,3}\d{3,6})(?!\d)"
    r"|\b(?:agent|rep|representative|operator|advisor|adviser|staff|employee)\s*"
    r"(?:id|no\.?|number|#|badge)?\s*[:#]?\s*(?:is\s+|was\s+)?([A-Z]{0,3}-?\d{2,8})\b", _I))
_PHONE = _guarded(re.compile(
    r"(?<![\d-])(?:\+?86[-\s]?)?1[3-9]\d[-\s]?\d{4}[-\s]?\d{4}(?![\d-])"
    r"|(?<![\d-])(?:0\d{2,3}[-\s]?\d{7,8}|[48]00[-\s]?\d{3}[-\s]?\d{4})(?![\d-])"
    r"|\+\d{1,3}[\s-]?(?:\(\d{1,4}\)[\s-]?)?\d{2,4}(?:[\s-]?\d{2,4}){2,3}(?!\d)"
    r"|\(\d{3}\)\s?\d{3}-\d{4}\b|\b\d{3}-\d{3}-\d{4}\b"))
# An identifier has a digit somewhere ("contract terms" names no contract).
_IDENTIFIER = r"((?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{3,})"
_ORDER = _guarded(re.compile(
    r"(?:订单|工单|合同|投诉单|投诉|账单|发票|案件|流水|单)\s*(?:号码|编号|号)\s*(?:为|是)?\s*[:#]?\s*"
    + _IDENTIFIER +
    r"|\b(?:order|ticket|contract|case|invoice|reference|ref|complaint|account)[ \t]*"
    r"(?:number|no\.?|num|id|#)?[ \t]*(?:is[ \t]+)?[:#]?[ \t]*" + _IDENTIFIER, _I))

_SENTENCE_END = re.compile(r"(?<=[。！？!?；;\n])|(?<=\.)\s+")


def extract_details(message: ParsedMessage) -> Details:
    """The details found in the subject and new text of one mail (empty tuples when absent)."""
    text = normalize(f"{message.subject}\n{message.new_text}")
    sentences = _sentences(text)
    return Details(**{name: _unique(find(text, sentences))[:_MAX_ITEMS]
                      for name, find in EXTRACTORS.items()})


def _sentences(text: str) -> tuple[str, ...]:
    parts = (" ".join(p.split()) for p in _SENTENCE_END.split(text))
    return tuple(p[:_MAX_SENTENCE] for p in parts if p)


def _matches(pattern: re.Pattern[str]) -> Callable[[str, tuple[str, ...]], Iterable[str]]:
    return lambda text, _: (" ".join(m.group(0).split()) for m in pattern.finditer(text))


def _groups(pattern: re.Pattern[str]) -> Callable[[str, tuple[str, ...]], Iterable[str]]:
    """The first group that took part in each match: the identifier without its label."""
    return lambda text, _: (next(g for g in m.groups() if g) for m in pattern.finditer(text))


def _sentences_with(pattern: re.Pattern[str]) -> Callable[[str, tuple[str, ...]], Iterable[str]]:
    return lambda _, sentences: (s for s in sentences if pattern.search(s))


def _what_was_said(text: str, sentences: tuple[str, ...]) -> Iterable[str]:
    for match in _QUOTED.finditer(text):
        yield next(g for g in match.groups() if g).strip()
    yield from (s for s in sentences if _SPEECH_VERB.search(s))


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip(" ,，、") for v in values if v.strip(" ,，、")))


# Detail name -> how to find it; the names are Details' fields and the words `missing` uses.
EXTRACTORS: Mapping[str, Callable[[str, tuple[str, ...]], Iterable[str]]] = MappingProxyType({
    "times": _matches(_TIME),
    "frequency": _matches(_FREQUENCY),
    "scenario": _sentences_with(_SCENARIO),
    "impact": _sentences_with(_IMPACT),
    "agent_ids": _groups(_AGENT_ID),
    "phone_numbers": _matches(_PHONE),
    "order_numbers": _groups(_ORDER),
    "expected_resolution": _sentences_with(_RESOLUTION),
    "what_was_said": _what_was_said,
})

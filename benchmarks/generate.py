"""Deterministic corpus of realistic complaint mails for the benchmarks: same seed, same bytes.

The mix, per mail (drawn from one `random.Random(seed, index)`, so any mail can be made alone):
  * language and charset: English (UTF-8 or ASCII), Chinese in UTF-8 (8bit or base64),
    GB2312 / GBK (8bit or base64) and Big5 (base64); a few with raw 8-bit Subject headers;
  * structure: plain text, HTML only, or multipart/alternative; quoted-printable for some;
  * about 20% carry one or two attachments, log-normally sized around a median of 50 KB, a few
    of 2-3 MB (random bytes: screenshots and PDFs do not compress);
  * about 15% are replies to an earlier mail of the corpus (In-Reply-To, References, "Re:",
    quoted history);
  * about 1% are out-of-office auto-replies and 1% delivery-status bounces.
`iter_corpus` yields one mail at a time so a 10,000-mail backlog is never held in memory.
"""

from __future__ import annotations

import base64
import binascii
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime

DESK = "complaints@example.com"
SEED = 2026

ZH_SUBJECTS = ("客服电话一直无法接通", "坐席态度恶劣，工号1024", "重复扣费要求退款", "通话频繁掉线",
               "个人信息被泄露，频繁接到骚扰电话", "宣传的功能根本不存在", "要求解约合同",
               "宽带安装一周仍未上门", "账单金额与套餐不符")
ZH_LINES = ("您好，我从11月3日下午3点开始拨打客服热线，一直无法接通，"
            "已经影响到我们公司的正常业务。",
            "昨天的客服工号1024态度非常差，语气生硬，问题也没有解决。希望尽快给个说法。",
            "我的账户本月被重复扣费两次，请尽快退款。订单号 A2026110300123。",
            "通话过程中每天都会掉线好几次，严重影响我们的呼叫中心运营。",
            "如果三天内得不到答复，我将向工信部投诉。联系电话 13800138000。",
            "附件是扣费截图和合同照片，请核实。")
BIG5_SUBJECTS = ("客服態度很差", "重複扣款要求退費", "網路斷線三天")
BIG5_LINES = ("客服人員態度很差，我要投訴。", "本月帳單被重複扣款兩次，請盡快退費。",
              "網路已經斷線三天，維修人員一直沒有來。")
EN_SUBJECTS = ("Charged twice for November", "Calls keep dropping", "Rude agent on the phone",
               "Cannot reach your support line", "Refund still not received",
               "Cancel my contract", "Installation never happened")
EN_LINES = ("Hello, I was charged twice on my November invoice. I expect a refund within a week.",
            "Our calls drop several times a day since the upgrade; this hurts our business.",
            "The agent (ID 5521) was rude and hung up on me yesterday at 3pm.",
            "I have been trying to reach your support line for three days without success.",
            "Order number A2026110300123, account 88-1234-5678.",
            "If this is not fixed by Friday I will take it to the regulator.")
KINDS = (  # (kind, weight)
    ("en-plain", 22), ("en-qp", 6), ("en-html", 8), ("en-alt", 12),
    ("zh-utf8-8bit", 12), ("zh-utf8-b64", 8), ("zh-utf8-alt", 8), ("zh-gb2312", 6),
    ("zh-gbk-8bit", 8), ("zh-big5", 6), ("zh-raw-header", 4),
)
ATTACHMENT_TYPES = (("image/png", "screenshot.png"), ("image/jpeg", "照片.jpg"),
                    ("application/pdf", "contract.pdf"), ("application/pdf", "账单.pdf"))


def message_id(index: int, seed: int = SEED) -> str:
    return f"<bench-{seed}-{index}@customer.example>"


def sender(index: int) -> str:
    return f"customer{index}@{('mail.example.org', 'qq.com', '163.com')[index % 3]}"


def iter_corpus(count: int, seed: int = SEED, start: int = 0) -> Iterator[bytes]:
    """Mails `start` .. `start + count - 1` of the corpus for `seed`, one at a time."""
    for index in range(start, start + count):
        yield make_mail(index, seed)


def make_mail(index: int, seed: int = SEED) -> bytes:
    rng = random.Random(seed * 1_000_003 + index)
    roll = rng.random()
    if roll < 0.01 and index > 0:
        return _auto_reply(index, seed, rng)
    if roll < 0.02 and index > 0:
        return _bounce(index, seed, rng)
    reply_to = rng.randrange(index) if index > 0 and rng.random() < 0.15 else None
    kind = rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
    who = index if reply_to is None else reply_to
    when = datetime(2026, 11, 1, 8, 0, tzinfo=UTC) + timedelta(seconds=index * 37)
    headers = [f"From: {_display_name(who, kind)} <{sender(who)}>", f"To: {DESK}",
               f"Date: {format_datetime(when)}", f"Message-ID: {message_id(index, seed)}",
               "MIME-Version: 1.0",
               f"Received: from mx{index % 7}.customer.example by mx.example.com; "
               f"{format_datetime(when)}"]
    chinese = kind.startswith("zh")
    subject = _subject(rng, kind, index)
    quoted = ""
    if reply_to is not None:
        prefix = "回覆：" if kind == "zh-big5" else "回复：" if chinese else "Re: "
        subject = prefix + _subject(
            random.Random(seed * 1_000_003 + reply_to), kind, reply_to)
        headers += [f"In-Reply-To: {message_id(reply_to, seed)}",
                    f"References: {message_id(reply_to, seed)}"]
        quoted = _quoted(rng, kind, reply_to)
    text = _body_text(rng, kind) + quoted
    charset = _charset(kind)
    if kind == "zh-raw-header":
        headers.append(f"Subject: {subject}")  # 8-bit UTF-8 straight in the header
    elif chinese:
        headers.append(f"Subject: {Header(subject, charset).encode()}")
    else:
        headers.append(f"Subject: {subject}")
    body = _text_part(kind, text, charset)
    attachments = []
    if rng.random() < 0.20:
        attachments = [_attachment(rng) for _ in range(1 if rng.random() < 0.8 else 2)]
    if attachments:
        boundary = f"=_mix_{index}_{rng.getrandbits(32):08x}"
        parts = [body, *attachments]
        body = (f"Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
                "This is a multi-part message in MIME format.\r\n"
                + "".join(f"--{boundary}\r\n{p}\r\n" for p in parts) + f"--{boundary}--\r\n")
    head = "\r\n".join(headers).encode("utf-8")
    return head + b"\r\n" + body.encode("utf-8", "surrogateescape")


# -- pieces -------------------------------------------------------------------------------------


def _display_name(index: int, kind: str) -> str:
    if kind.startswith("zh"):
        return Header(f"客户{index}", "utf-8").encode()
    return f"Customer {index}"


def _subject(rng: random.Random, kind: str, index: int) -> str:
    if kind == "zh-big5":
        return f"{rng.choice(BIG5_SUBJECTS)} #{index}"
    if kind.startswith("zh"):
        return f"{rng.choice(ZH_SUBJECTS)} #{index}"
    return f"{rng.choice(EN_SUBJECTS)} #{index}"


def _body_text(rng: random.Random, kind: str) -> str:
    lines = BIG5_LINES if kind == "zh-big5" else ZH_LINES if kind.startswith("zh") else EN_LINES
    paragraphs = [rng.choice(lines) for _ in range(rng.randint(2, 6))]
    sign = "\n\n此致\n王先生\n" if kind.startswith("zh") else "\n\nRegards,\nJ. Smith\n"
    return "\n\n".join(paragraphs) + sign


def _quoted(rng: random.Random, kind: str, earlier: int) -> str:
    lines = BIG5_LINES if kind == "zh-big5" else ZH_LINES if kind.startswith("zh") else EN_LINES
    history = [rng.choice(lines) for _ in range(rng.randint(2, 8))]
    intro = (f"\n在 2026年11月1日，客服中心 <{DESK}> 寫道：\n" if kind == "zh-big5"
             else f"\n在 2026年11月1日，客服中心 <{DESK}> 写道：\n" if kind.startswith("zh")
             else f"\nOn 1 Nov 2026, Complaints desk <{DESK}> wrote:\n")
    return intro + "".join(f"> {line}\n" for line in history) + f"> [C-{earlier:06d}]\n"


def _charset(kind: str) -> str:
    return {"zh-gb2312": "gb2312", "zh-gbk-8bit": "gbk", "zh-big5": "big5"}.get(kind, "utf-8")


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def _b64(data: bytes) -> str:
    return base64.encodebytes(data).decode("ascii").replace("\n", "\r\n")


def _text_part(kind: str, text: str, charset: str) -> str:
    """One text entity (headers and body) as a str; 8-bit bytes ride in surrogate escapes."""
    if kind in ("en-html",):
        html = "<html><body>" + "".join(f"<p>{p}</p>" for p in text.split("\n\n")) + \
               "</body></html>"
        return f"Content-Type: text/html; charset=utf-8\r\n\r\n{_crlf(html)}\r\n"
    if kind in ("en-alt", "zh-utf8-alt"):
        html = "<div>" + "".join(f"<p>{p}</p>" for p in text.split("\n\n")) + "</div>"
        boundary = "=_alt_" + str(len(text))
        plain = _encoded_text(text, "utf-8", "8bit" if kind == "zh-utf8-alt" else "7bit")
        rich = (f"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64"
                f"\r\n\r\n{_b64(html.encode('utf-8'))}")
        return (f"Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"
                f"--{boundary}\r\n{plain}\r\n--{boundary}\r\n{rich}\r\n--{boundary}--\r\n")
    if kind == "en-qp":
        text = text.replace("Hello,", "Hello \u2014 \u201cplease\u201d read,")
        return _encoded_text(text, "utf-8", "quoted-printable")
    if kind in ("zh-utf8-b64", "zh-gb2312", "zh-big5"):
        return _encoded_text(text, charset, "base64")
    if kind in ("zh-utf8-8bit", "zh-gbk-8bit", "zh-raw-header"):
        return _encoded_text(text, charset, "8bit")
    return _encoded_text(text, "us-ascii", "7bit")


def _encoded_text(text: str, charset: str, cte: str) -> str:
    data = _crlf(text).encode(charset)
    if cte == "base64":
        payload = _b64(data)
    elif cte == "quoted-printable":
        payload = binascii.b2a_qp(data, istext=True).decode("ascii")
    else:
        payload = data.decode("utf-8", "surrogateescape")
    return (f"Content-Type: text/plain; charset={charset}\r\n"
            f"Content-Transfer-Encoding: {cte}\r\n\r\n{payload}")


def _attachment(rng: random.Random) -> str:
    if rng.random() < 0.015:
        size = rng.randint(2_000_000, 3_000_000)  # the occasional scan or video clip
    else:
        size = min(int(math.exp(rng.gauss(math.log(50_000), 1.0))), 1_500_000)
        size = max(size, 2_000)
    content_type, name = rng.choice(ATTACHMENT_TYPES)
    quoted_name = Header(name, "utf-8").encode() if not name.isascii() else name
    return (f"Content-Type: {content_type}; name=\"{quoted_name}\"\r\n"
            f"Content-Disposition: attachment; filename=\"{quoted_name}\"\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{_b64(rng.randbytes(size))}")


def _auto_reply(index: int, seed: int, rng: random.Random) -> bytes:
    when = datetime(2026, 11, 1, 8, 0, tzinfo=UTC) + timedelta(seconds=index * 37)
    who = sender(index)
    lines = [f"From: Customer {index} <{who}>", f"To: {DESK}", f"Date: {format_datetime(when)}",
             f"Message-ID: {message_id(index, seed)}", "Auto-Submitted: auto-replied",
             "X-Autoreply: yes", "Precedence: auto_reply", "MIME-Version: 1.0",
             f"Subject: {Header('自动回复：我正在休假', 'utf-8').encode()}",
             "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit", "",
             "我正在休假，11月20日回来。", "I am out of the office until 20 November.", ""]
    return "\r\n".join(lines).encode("utf-8")


def _bounce(index: int, seed: int, rng: random.Random) -> bytes:
    when = datetime(2026, 11, 1, 8, 0, tzinfo=UTC) + timedelta(seconds=index * 37)
    original = message_id(max(index - 1, 0), seed)
    boundary = f"=_dsn_{index}"
    lines = [
        "From: Mail Delivery System <MAILER-DAEMON@mx.customer.example>", f"To: {DESK}",
        f"Date: {format_datetime(when)}", f"Message-ID: {message_id(index, seed)}",
        "Subject: Undelivered Mail Returned to Sender", "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"{boundary}\"",
        "", f"--{boundary}", "Content-Type: text/plain; charset=us-ascii", "",
        "This is the mail system at host mx.customer.example.", "",
        f"<{sender(index)}>: host mx.customer.example said: 550 5.1.1 user unknown", "",
        f"--{boundary}", "Content-Type: message/delivery-status", "",
        "Reporting-MTA: dns; mx.customer.example", "", f"Final-Recipient: rfc822; {sender(index)}",
        "Action: failed", "Status: 5.1.1", "", f"--{boundary}",
        "Content-Type: text/rfc822-headers", "", f"From: {DESK}", f"To: {sender(index)}",
        f"Message-ID: {original}", "Subject: [C-000001] We received your complaint", "",
        f"--{boundary}--", ""]
    return "\r\n".join(lines).encode("utf-8")


def big_attachment_mail(megabytes: int, seed: int = SEED) -> bytes:
    """One complaint with a single attachment of `megabytes` MB (base64: about 1.37x raw)."""
    rng = random.Random(seed)
    boundary = "=_big_attachment"
    size = megabytes * 1024 * 1024
    text = _encoded_text(_body_text(rng, "en-plain"), "us-ascii", "7bit")
    attachment = ("Content-Type: video/mp4; name=\"recording.mp4\"\r\n"
                  "Content-Disposition: attachment; filename=\"recording.mp4\"\r\n"
                  "Content-Transfer-Encoding: base64\r\n\r\n")
    head = "\r\n".join([
        f"From: Customer big <{sender(999_999)}>", f"To: {DESK}",
        "Date: Sun, 01 Nov 2026 08:00:00 +0000", f"Message-ID: <bench-big-{megabytes}@x.example>",
        "Subject: Recording of the call, please listen", "MIME-Version: 1.0",
        f"Content-Type: multipart/mixed; boundary=\"{boundary}\"", "", f"--{boundary}", text,
        f"--{boundary}", attachment])
    return (head.encode() + base64.encodebytes(rng.randbytes(size)).replace(b"\n", b"\r\n")
            + f"\r\n--{boundary}--\r\n".encode())


def single_complaint(index: int, seed: int = SEED) -> tuple[str, bytes]:
    """A short complaint from a new complainant (so it is answered): (Message-ID, raw bytes).

    Used one at a time by the latency run; alternates English and Chinese (UTF-8 8bit)."""
    rng = random.Random(seed * 7_919 + index)
    mid = f"<latency-{seed}-{index}-{rng.getrandbits(32):08x}@customer.example>"
    chinese = index % 2 == 1
    kind = "zh-utf8-8bit" if chinese else "en-plain"
    subject = _subject(rng, kind, index)
    headers = [f"From: {_display_name(index, kind)} <latency{index}@customer.example>",
               f"To: {DESK}", f"Date: {format_datetime(datetime.now(UTC))}",
               f"Message-ID: {mid}", "MIME-Version: 1.0",
               f"Subject: {Header(subject, 'utf-8').encode() if chinese else subject}"]
    body = _text_part(kind, _body_text(rng, kind), "utf-8")
    return mid, "\r\n".join(headers).encode() + b"\r\n" + body.encode("utf-8", "surrogateescape")

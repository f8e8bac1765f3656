"""Deterministic generator of varied complaint mails for tests (and the benchmarks).

Chinese and English; UTF-8, GBK and Big5; plain, HTML-only and multipart/alternative; some with
attachments, some without a Message-ID. Same seed, same bytes.
"""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime

ZH_SUBJECTS = [
    "客服电话一直无法接通",
    "坐席态度恶劣，工号1024",
    "重复扣费要求退款",
    "通话频繁掉线",
    "个人信息被泄露，频繁接到骚扰电话",
    "宣传的功能根本不存在",
    "要求解约合同",
]
ZH_BODIES = [
    "您好，我从11月3日下午3点开始拨打客服热线，一直无法接通，已经影响到我们公司的正常业务。",
    "昨天的客服工号1024态度非常差，语气生硬，问题也没有解决。希望尽快给个说法。",
    "我的账户本月被重复扣费两次，请尽快退款。订单号 A2026110300123。",
    "通话过程中每天都会掉线好几次，严重影响我们的呼叫中心运营。",
]
EN_SUBJECTS = [
    "Charged twice for November",
    "Calls keep dropping",
    "Rude agent on the phone",
    "Cannot reach your support line",
    "Refund still not received",
    "Cancel my contract",
]
EN_BODIES = [
    "Hello, I was charged twice on my November invoice. I expect a refund within a week.",
    "Our calls drop several times a day since the upgrade; this hurts our business.",
    "The agent (ID 5521) was rude and hung up on me yesterday at 3pm.",
    "I have been trying to reach your support line for three days without success.",
]


def _encoded_subject(text: str, charset: str) -> str:
    return Header(text, charset).encode()


def make_mail(
    index: int, *, seed: int = 7, domain: str = "example.com", to: str = "complaints@example.com"
) -> bytes:
    rng = random.Random(seed * 1_000_003 + index)
    kind = rng.choice(["en-plain", "zh-utf8", "zh-gbk", "zh-big5", "en-html", "en-alt"])
    when = datetime(2026, 11, 1, 8, 0, tzinfo=UTC) + timedelta(minutes=index * 7)
    sender = f"customer{index % 97}@{rng.choice(['mail.example.org', 'qq.com', '163.com'])}"
    headers = [f"From: Customer {index} <{sender}>", f"To: {to}", f"Date: {format_datetime(when)}"]
    if index % 11 != 5:  # every eleventh-ish mail has no Message-ID, as some phones send
        headers.append(f"Message-ID: <gen-{seed}-{index}@{domain}>")
    attach = index % 5 == 0
    if kind.startswith("zh"):
        charset = {"zh-utf8": "utf-8", "zh-gbk": "gbk", "zh-big5": "big5"}[kind]
        subject = f"{rng.choice(ZH_SUBJECTS)} #{index}"
        body = rng.choice(ZH_BODIES)
        if charset == "big5":
            subject, body = "客服態度很差 #" + str(index), "客服人員態度很差，我要投訴。"
        headers.append(f"Subject: {_encoded_subject(subject, charset)}")
        part = (
            f"Content-Type: text/plain; charset={charset}\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(body.encode(charset)).decode("ascii").replace("\n", "\r\n")
        )
    else:
        subject = f"{rng.choice(EN_SUBJECTS)} #{index}"
        body = rng.choice(EN_BODIES)
        headers.append(f"Subject: {subject}")
        if kind == "en-html":
            part = (
                "Content-Type: text/html; charset=utf-8\r\n\r\n"
                f"<html><body><p>{body}</p><p>Regards</p></body></html>\r\n"
            )
        elif kind == "en-alt":
            part = (
                "Content-Type: multipart/alternative; boundary=alt\r\n\r\n--alt\r\n"
                f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n--alt\r\n"
                f"Content-Type: text/html; charset=utf-8\r\n\r\n<p>{body}</p>\r\n--alt--\r\n"
            )
        else:
            part = f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    headers.append("MIME-Version: 1.0")
    if not attach:
        return ("\r\n".join(headers) + "\r\n" + part).encode("ascii")
    payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(200, 3000)))
    encoded = base64.encodebytes(payload).decode("ascii").replace("\n", "\r\n")
    mixed = (
        "Content-Type: multipart/mixed; boundary=mix\r\n\r\n--mix\r\n"
        + part
        + '\r\n--mix\r\nContent-Type: image/png; name="screenshot.png"\r\n'
        'Content-Disposition: attachment; filename="screenshot.png"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--mix--\r\n"
    )
    return ("\r\n".join(headers) + "\r\n" + mixed).encode("ascii")


def make_mails(count: int, **kwargs: object) -> list[bytes]:
    return [make_mail(i, **kwargs) for i in range(count)]  # type: ignore[arg-type]

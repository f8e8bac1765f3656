"""Mail through the real pipeline (Dovecot, `poll --once`), exported, and read back from the ZIP:
every mail byte-identical to what the server holds, every attachment matching, the timeline
complete, and the page showing every mail. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import zipfile
from pathlib import Path

import sqlalchemy as sa

from processor.db import open_database
from processor.mail import parse_message
from tests.deployment import Deployment
from tests.export.helpers import export, read_page, sha256, verify
from tests.servers import ImapAccount

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _b(text: str) -> bytes:
    return b"=?GBK?B?" + base64.b64encode(text.encode("gbk")) + b"?="


def gbk_mail_with_chinese_attachment() -> bytes:
    """As a GBK client writes it: 8-bit GBK body, RFC 2047 GBK subject, sender and file name."""
    body = "您好，我的宽带从11月12日起断网，工号8127的客服态度恶劣。镕\r\n".encode("gbk")
    log = "通话时间 2026-11-12 10:00 无人接听\r\n".encode("gbk")
    return (b"From: " + _b("李娜") + b" <lina@example.cn>\r\n"
            b"To: complaints@example.com\r\n"
            b"Subject: " + _b("宽带断网投诉（第二次）") + b"\r\n"
            b"Date: Sat, 14 Nov 2026 17:30:00 +0800\r\n"
            b"Message-ID: <gbk-attachment-1@example.cn>\r\n"
            b"MIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="part"\r\n\r\n'
            b"--part\r\nContent-Type: text/plain; charset=GBK\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body +
            b'--part\r\nContent-Type: text/plain; name="' + _b("投诉材料.txt") + b'"\r\n'
            b'Content-Disposition: attachment; filename="' + _b("投诉材料.txt") + b'"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(log) +
            b"\r\n--part--\r\n")


def test_exported_mails_are_the_servers_bytes(deployment: Deployment, imap_account: ImapAccount,
                                              tmp_path: Path) -> None:
    password = imap_account.password
    raws = [p.read_bytes() for p in sorted(EXAMPLES.glob("*.eml"))]
    raws.append(gbk_mail_with_chinese_attachment())
    assert imap_account.append("INBOX", raws) == len(raws)
    deployment.command(["poll", "--once"], password)
    on_server = imap_account.fetch_all("Processed")
    assert sorted(on_server) == sorted(raws)  # Dovecot keeps exactly what was appended

    engine = open_database(deployment.db_url)
    with engine.connect() as conn:
        references = list(conn.execute(sa.text("SELECT reference FROM cases ORDER BY id"))
                          .scalars())
        counts: dict[str, int] = dict(conn.execute(sa.text(
            "SELECT c.reference, count(m.id) FROM cases c JOIN messages m ON m.case_id = c.id "
            "GROUP BY c.reference")).all())
    engine.dispose()
    assert references

    exported_in: list[bytes] = []
    chinese_seen = False
    for reference in references:
        shown = json.loads(deployment.command(["case", "show", reference, "--json"],
                                              password).stdout)
        bundle = export(deployment, reference, tmp_path / f"{reference}.zip")
        with zipfile.ZipFile(bundle) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            timeline = json.loads(zf.read("timeline.json"))
            page = read_page(zf.read("timeline.html"))
            mails = [e for e in manifest["files"] if e["kind"] == "mail"]
            attachments = [e for e in manifest["files"] if e["kind"] == "attachment"]
            for mail in mails:
                raw = zf.read(mail["path"])
                assert sha256(raw) == mail["sha256"]
                if mail["direction"] != "in":
                    continue
                exported_in.append(raw)
                # Every attachment the mail carries is in the bundle, byte for byte.
                expected = sorted((a.filename, a.sha256) for a in parse_message(raw).attachments)
                found = sorted((a["filename"], a["sha256"]) for a in attachments
                               if a["message_index"] == mail["index"])
                assert found == expected
                for a in attachments:
                    assert sha256(zf.read(a["path"])) == a["sha256"]

        # The timeline is complete: the same as `case show --json`, one entry per message.
        assert {k: timeline[k] for k in ("case", "timeline")} == shown
        messages = [e for e in timeline["timeline"] if e["kind"] == "message"]
        assert len(messages) == counts[reference]
        # The page shows every mail of the case, received and sent.
        assert len(page.messages) == len(mails)
        assert [int(str(m["data-index"])) for m in page.messages] == sorted(
            m["index"] for m in mails)
        text = "".join(page.text)
        for entry in messages:
            assert entry["subject"] in text
        if any(a["filename"] == "投诉材料.txt" for a in attachments):
            chinese_seen = True
            assert "宽带断网投诉（第二次）" in text and "投诉材料.txt" in text and "李娜" in text
            assert "工号8127的客服态度恶劣。镕" in text
            assert verify(deployment, bundle)[0] == 0

    assert chinese_seen
    # Every mail the server holds was exported exactly once, byte for byte.
    assert sorted(exported_in) == sorted(on_server)

"""Staff notification of new cases, the Sent folder copy, and `templates preview`."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

from tests.acknowledge.conftest import make_desk
from tests.servers import DovecotServer, SmtpSink

COMPLAINT = ("From: Zhang San <zhangsan@customer.example>\r\nTo: complaints@example.com\r\n"
             "Subject: =?utf-8?b?5a6i5pyN5oCB5bqm5beu?=\r\nMessage-ID: <st-1@customer.example>\r\n"
             "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
             "Content-Type: text/plain; charset=utf-8\r\n\r\n"
             "工号 1024 的客服态度很差，11月3日下午3点的电话里直接挂断。希望道歉。\r\n--b\r\n"
             "Content-Type: image/png\r\nContent-Disposition: attachment; filename=shot.png\r\n"
             "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--b--\r\n").encode()


def test_new_case_notifies_staff_and_keeps_a_sent_copy(tmp_path: Path, sqlite_url: str,
                                                       dovecot: DovecotServer,
                                                       smtp_delivering: SmtpSink) -> None:
    staff_user = dovecot.new_user("staff")
    desk = make_desk(tmp_path, sqlite_url, dovecot, smtp_delivering)
    desk.deployment.sections["staff"] = {"notify": [f"{staff_user}@desk.example.com"]}
    desk.deployment.sections["smtp"]["sent_folder"] = "Sent"
    desk.deployment.write()
    desk.runtime.settings = desk.deployment.settings(desk.desk_account.password)
    desk.deliver(COMPLAINT)
    desk.poll()
    assert desk.send().sent == 2  # the acknowledgement and the staff notice
    notices = [m for m in desk.outbox() if m.kind == "staff-notify"]
    assert len(notices) == 1 and notices[0].status == "sent"
    [notice] = [message_from_bytes(r, policy=policy.default)
                for r in dovecot.account(staff_user).fetch_all("INBOX")]
    text = notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "C-000001" in notice["Subject"]
    assert "工号 1024" in text  # staff see the complaint itself
    assert "shot.png" in text  # and the attachment list
    sent_copies = desk.desk_account.fetch_all("Sent")
    assert len(sent_copies) == 2  # the acknowledgement and the notice
    desk.runtime.engine.dispose()


def test_templates_preview_renders_a_case(tmp_path: Path, sqlite_url: str,
                                          dovecot: DovecotServer, smtp_server: SmtpSink) -> None:
    desk = make_desk(tmp_path, sqlite_url, dovecot, smtp_server)
    desk.deliver(COMPLAINT)
    desk.poll()
    password = desk.desk_account.password
    shown = desk.deployment.command(["templates", "preview", "ack-default", "--case", "C-000001",
                                     "--lang", "zh"], password).stdout
    assert "C-000001" in shown and "您好" in shown
    override = tmp_path / "my-templates"
    override.mkdir()
    (override / "ack-default.zh.txt.j2").write_text("您好 {{ case_ref }}\n{{ broken(\n",
                                                     encoding="utf-8")
    desk.deployment.processing["templates_dir"] = str(override)
    desk.deployment.write()
    broken = desk.deployment.command(["templates", "preview", "ack-default", "--case",
                                      "C-000001", "--lang", "zh"], password, check=False)
    assert broken.returncode != 0
    assert "ack-default.zh.txt.j2:2:" in broken.stderr  # file and line
    assert "Traceback" not in broken.stderr
    desk.runtime.engine.dispose()

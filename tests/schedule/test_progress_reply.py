"""A progress question on an existing case, through Dovecot and the real SMTP server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

import processor.classify
from processor.cli.case_status import case_status_command
from processor.db import session_scope
from processor.db.models import Case
from processor.db.store import add_event, case_by_reference
from tests.schedule.helpers import Scene


def test_progress_question_answered_once_without_internal_detail(scene: Scene) -> None:
    s = scene
    s.round(s.mail("宽带总是断线", "家里宽带每天晚上都断线，严重影响工作。",
                   msgid="<p1@customer.example>"))
    [(ack, _)] = s.texts_to(s.complainant)
    # Staff take the case and leave an internal note; neither may reach the complainant.
    s.set_case("C-000001", assignee=s.agent, status="open")
    with session_scope(s.desk.runtime.engine) as session:
        case = case_by_reference(session, "C-000001")
        assert case is not None
        add_event(session, case, "note", at=datetime.now(UTC), actor=s.agent,
                  text="INTERNAL: customer is on the watch list")
    s.round(s.mail("回复：" + ack["Subject"], "请问我的投诉处理到哪了？有进度吗？",
                   msgid="<p2@customer.example>", in_reply_to=ack["Message-ID"]))
    replies = [(m, t) for m, t in s.texts_to(s.complainant) if m["Message-ID"] != ack["Message-ID"]]
    assert len(replies) == 1
    reply, text = replies[0]
    assert reply["Subject"].startswith("[C-000001]")
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["In-Reply-To"] == "<p2@customer.example>"
    assert "C-000001" in text and "正在处理中" in text  # status "open" in plain words
    assert "最近处理" in text and "答复时限" in text and "按计划" in text
    for internal in (s.agent, s.agent.split("@")[0], "INTERNAL", "watch list", s.team):
        assert internal not in reply.as_string()
    kinds = s.kinds("C-000001")
    assert "progress-reply" in kinds and "mail-filed" in kinds
    # The mail still reaches the assignee.
    assert any("处理到哪了" in t for _, t in s.texts_to(s.agent))
    # A second question within 24 hours: recorded, passed on, not answered.
    s.round(s.mail("回复：" + ack["Subject"], "有结果了吗？", msgid="<p3@customer.example>",
                   in_reply_to=reply["Message-ID"]))
    assert len(s.texts_to(s.complainant)) == 2
    events = s.desk.events("C-000001")
    skipped = [d for k, d in events if k == "progress-reply-skipped"]
    assert skipped and skipped[-1]["reasons"] == ["case-rate-limit:1-per-24h"]
    assert sum(1 for _, t in s.texts_to(s.agent) if "有结果了吗" in t) == 1
    assert [k for k in s.kinds("C-000001") if k == "progress-reply"] == ["progress-reply"]


def test_ordinary_follow_up_gets_no_progress_reply(scene: Scene) -> None:
    s = scene
    s.round(s.mail("Wrong bill", "I was charged twice in March.", msgid="<o1@customer.example>"))
    [(ack, _)] = s.texts_to(s.complainant)
    s.round(s.mail("Re: " + ack["Subject"], "Here is my account number: 1234.",
                   msgid="<o2@customer.example>", in_reply_to=ack["Message-ID"]))
    assert len(s.texts_to(s.complainant)) == 1
    kinds = s.kinds("C-000001")
    assert "progress-reply" not in kinds and "progress-reply-skipped" not in kinds


def test_case_status_command_prints_the_same_summary(scene: Scene) -> None:
    s = scene
    s.round(s.mail("Wrong bill", "I was charged twice in March. Any update?",
                   msgid="<c1@customer.example>"))
    s.set_case("C-000001", status="pending", assignee=s.agent)
    result = CliRunner().invoke(case_status_command, ["c-000001", "--language", "en"],
                                obj={"config_path": str(s.desk.deployment.config_path)},
                                env=s.desk.deployment.env(s.desk.desk_account.password))
    assert result.exit_code == 0, result.output
    assert "C-000001: waiting for information from you [pending]" in result.output
    assert "response target:" in result.output and "on track" in result.output
    assert "waiting for:     your reply" in result.output
    assert s.agent not in result.output
    missing = CliRunner().invoke(case_status_command, ["C-999999"],
                                 obj={"config_path": str(s.desk.deployment.config_path)},
                                 env=s.desk.deployment.env(s.desk.desk_account.password))
    assert missing.exit_code != 0 and "no case C-999999" in missing.output
    with session_scope(s.desk.runtime.engine) as session:
        assert session.get(Case, 1) is not None


def test_a_follow_up_is_classified_once_as_it_is_prepared(
        scene: Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    """The progress question's tag comes from the classification made while the mail was
    prepared; filing it does not classify it again (a spy on the function, not a stand-in:
    the real classification still runs)."""
    s = scene
    s.round(s.mail("宽带总是断线", "家里宽带每天晚上都断线。", msgid="<c1@customer.example>"))
    [(ack, _)] = s.texts_to(s.complainant)
    again: list[str] = []
    real = processor.classify.classify

    def spy(message, *args, **kwargs):  # type: ignore[no-untyped-def]
        again.append(message.message_id)
        return real(message, *args, **kwargs)

    monkeypatch.setattr(processor.classify, "classify", spy)
    s.round(s.mail("回复：" + ack["Subject"], "请问我的投诉处理到哪了？",
                   msgid="<c2@customer.example>", in_reply_to=ack["Message-ID"]))
    assert "progress-reply" in s.kinds("C-000001")
    assert again == []

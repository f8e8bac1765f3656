"""Worked examples for the thread decision: which case, may the sender join, what changes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from processor.authresults import AuthVerdict
from processor.config import LifecycleSettings, StaffSettings
from processor.replyaddr import ReplyTarget
from processor.threading import (
    CaseFacts,
    ThreadDecision,
    ThreadEvidence,
    UnknownSenderPolicy,
    already_reached,
    decide_thread,
    is_staff_address,
    verify_staff,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SETTINGS = LifecycleSettings(reopen_window_days=7)
CUSTOMER = "li.na@customer.example"
STAFF = "zhang.wei@example.com"

CASE = CaseFacts(ref="C-000123", status="open", complainant=CUSTOMER,
                 participants=frozenset({CUSTOMER, "husband@customer.example"}))
OTHER = CaseFacts(ref="C-000999", status="open", complainant="someone@else.example")


def case(**changes: Any) -> CaseFacts:
    return dataclasses.replace(CASE, **changes)


def decide(appeal: bool = False, policy: UnknownSenderPolicy = "new-case",
           **evidence: Any) -> ThreadDecision:
    fields: dict[str, Any] = {"sender": CUSTOMER, **evidence}
    return decide_thread(ThreadEvidence(**fields), NOW, SETTINGS, appeal,
                         unknown_sender_policy=policy)


def staff_evidence(**more: Any) -> dict[str, Any]:
    return {"sender": STAFF, "sender_is_staff": True, "staff_verified": True, **more}


# --- which case


def test_no_evidence_opens_a_new_case() -> None:
    decision = decide()
    assert (decision.action, decision.case_ref, decision.role) == ("new-case", None,
                                                                   "complainant")


def test_subject_tag_joins() -> None:
    decision = decide(tag_ref="C-000123", tag_case=CASE)
    assert (decision.action, decision.case_ref, decision.role) == ("join", "C-000123",
                                                                   "complainant")
    assert "subject tag matches C-000123" in decision.reasons[0]


def test_tag_of_a_case_that_does_not_exist_opens_a_new_case() -> None:
    decision = decide(tag_ref="C-424242")
    assert decision.action == "new-case"
    assert "C-424242 names no existing case" in decision.reasons[0]


def test_references_join_when_there_is_no_tag() -> None:
    decision = decide(reference_case=CASE)
    assert decision.action == "join" and decision.case_ref == "C-000123"
    assert "In-Reply-To/References" in decision.reasons[0]


def test_tag_comes_before_references() -> None:
    other = dataclasses.replace(OTHER, complainant=CUSTOMER)
    decision = decide(tag_ref="C-000999", tag_case=other, reference_case=CASE)
    assert decision.case_ref == "C-000999"


def test_references_come_before_reply_address() -> None:
    other = dataclasses.replace(OTHER, complainant=CUSTOMER)
    assert decide(reference_case=CASE, reply_target_case=other).case_ref == "C-000123"


def test_tag_the_sender_may_not_join_falls_through_to_references() -> None:
    decision = decide(tag_ref="C-000999", tag_case=OTHER, reference_case=CASE)
    assert decision.action == "join" and decision.case_ref == "C-000123"
    assert any("may not join" in r and "C-000999" in r for r in decision.reasons)


def test_participant_may_join() -> None:
    decision = decide(sender="husband@customer.example", tag_ref="C-000123", tag_case=CASE)
    assert decision.action == "join" and decision.role == "participant"


def test_sender_compared_case_insensitively() -> None:
    assert decide(sender="Li.Na@Customer.Example", tag_case=CASE).role == "complainant"


# --- hijack protection


def test_stranger_copying_a_tag_opens_a_new_case_never_relayed() -> None:
    decision = decide(sender="mallory@attacker.example", tag_ref="C-000123", tag_case=CASE)
    assert (decision.action, decision.case_ref, decision.role) == ("new-case", None, "stranger")
    assert not decision.may_relay
    assert "never relayed" in decision.reasons[-1]


def test_stranger_with_copied_references_opens_a_new_case() -> None:
    decision = decide(sender="mallory@attacker.example", reference_case=CASE)
    assert decision.action == "new-case" and decision.role == "stranger"


def test_ticket_trick_service_mail_with_a_tag_is_a_stranger() -> None:
    # Someone signed up to a service with our address; its verification mail quotes our tag.
    decision = decide(sender="noreply@service.example", tag_ref="C-000123", tag_case=CASE,
                      auto_submitted=True)
    assert decision.action == "new-case" and decision.case_ref is None
    assert decision.role == "stranger" and not decision.may_relay


def test_stranger_is_held_when_the_policy_says_hold() -> None:
    decision = decide(policy="hold", sender="mallory@attacker.example", tag_case=CASE)
    assert (decision.action, decision.case_ref) == ("hold", None)
    assert "held for review" in decision.reasons[-1]


def test_hold_policy_does_not_hold_ordinary_new_mail() -> None:
    assert decide(policy="hold", sender="new@customer.example").action == "new-case"


# --- staff


def test_first_verified_staff_reply_opens_a_new_case() -> None:
    decision = decide(**staff_evidence(tag_case=case(status="new"),
                                       reply_target_case=case(status="new")))
    assert (decision.action, decision.role, decision.new_status) == ("join", "staff", "open")
    assert decision.may_relay


def test_later_staff_reply_leaves_status_to_commands() -> None:
    decision = decide(**staff_evidence(reply_target_case=case(status="pending")))
    assert decision.new_status is None and decision.may_relay


def test_verified_staff_may_join_a_case_they_are_not_on() -> None:
    decision = decide(**staff_evidence(reply_target_case=OTHER))
    assert decision.action == "join" and decision.case_ref == "C-000999"


def test_staff_reply_address_for_another_case_is_noted() -> None:
    decision = decide(**staff_evidence(tag_case=CASE, reply_target_case=OTHER))
    assert decision.case_ref == "C-000123"
    assert any("signed reply address was for C-000999" in r for r in decision.reasons)


def test_unverified_staff_mail_on_a_case_is_record_only() -> None:
    decision = decide(sender=STAFF, sender_is_staff=True, staff_verified=False,
                      tag_case=case(status="new"))
    assert (decision.action, decision.case_ref, decision.role) == ("record-only", "C-000123",
                                                                   "unverified-staff")
    assert decision.new_status is None and not decision.may_relay
    assert "changes nothing" in decision.reasons[-1]


def test_unverified_staff_already_on_the_case_still_cannot_join() -> None:
    decision = decide(sender=STAFF, sender_is_staff=True,
                      tag_case=case(participants=frozenset({STAFF})))
    assert decision.action == "record-only"


def test_employee_who_is_the_complainant_replies_as_complainant() -> None:
    decision = decide(sender=STAFF, sender_is_staff=True, tag_case=case(complainant=STAFF))
    assert decision.action == "join" and decision.role == "complainant"


def test_unverified_staff_mail_without_a_case_opens_one() -> None:
    decision = decide(sender=STAFF, sender_is_staff=True)
    assert decision.action == "new-case" and decision.role == "unverified-staff"


def test_staff_out_of_office_never_changes_state() -> None:
    decision = decide(**staff_evidence(reply_target_case=case(status="new"),
                                       auto_submitted=True))
    assert (decision.action, decision.new_status, decision.may_relay) == ("join", None, False)


# --- complainant replies and the lifecycle


def test_automatic_mail_joins_without_changing_state() -> None:
    decision = decide(tag_case=case(status="pending"), auto_submitted=True)
    assert (decision.action, decision.new_status) == ("join", None)
    assert "automatic mail never changes" in decision.reasons[-1]


def test_automatic_mail_to_a_closed_case_opens_nothing() -> None:
    assert decide(tag_case=case(status="closed"), auto_submitted=True).action == "join"


def test_reply_to_pending_case_reopens_to_open() -> None:
    decision = decide(tag_case=case(status="pending"))
    assert (decision.action, decision.new_status) == ("join", "open")


def test_participant_reply_to_pending_case_also_opens_it() -> None:
    decision = decide(sender="husband@customer.example", tag_case=case(status="pending"))
    assert decision.new_status == "open"


def test_reply_to_new_or_open_case_changes_nothing() -> None:
    for status in ("new", "open"):
        decision = decide(tag_case=case(status=status))
        assert (decision.action, decision.new_status) == ("join", None), status


def test_reply_to_resolved_case_within_window_reopens() -> None:
    decision = decide(tag_case=case(status="resolved", resolved_at=NOW - timedelta(days=6)))
    assert (decision.action, decision.case_ref, decision.new_status) == ("reopen", "C-000123",
                                                                         "open")


def test_reply_exactly_at_the_end_of_the_window_still_reopens() -> None:
    decision = decide(tag_case=case(status="resolved", resolved_at=NOW - timedelta(days=7)))
    assert decision.action == "reopen"


def test_reply_to_resolved_case_after_window_opens_linked_case() -> None:
    decision = decide(tag_case=case(status="resolved",
                                    resolved_at=NOW - timedelta(days=7, seconds=1)))
    assert (decision.action, decision.case_ref, decision.link_to) == ("new-linked-case", None,
                                                                      "C-000123")


def test_reopen_window_comes_from_settings() -> None:
    facts = case(status="resolved", resolved_at=NOW - timedelta(days=3))
    decision = decide_thread(ThreadEvidence(sender=CUSTOMER, tag_case=facts), NOW,
                             LifecycleSettings(reopen_window_days=2))
    assert decision.action == "new-linked-case"


def test_resolved_without_a_resolution_time_reopens() -> None:
    assert decide(tag_case=case(status="resolved")).action == "reopen"


def test_reply_to_closed_case_opens_linked_case() -> None:
    decision = decide(tag_case=case(status="closed", closed_at=NOW - timedelta(hours=1)))
    assert (decision.action, decision.link_to) == ("new-linked-case", "C-000123")


def test_appeal_on_resolved_case_opens_linked_appeal_with_raised_priority() -> None:
    decision = decide(appeal=True, tag_case=case(status="resolved", resolved_at=NOW))
    assert (decision.action, decision.case_ref, decision.link_to) == ("appeal", None,
                                                                      "C-000123")
    assert decision.raise_priority and decision.new_status is None
    assert "original resolution stays" in decision.reasons[-1]


def test_appeal_on_closed_case_opens_linked_appeal() -> None:
    assert decide(appeal=True, tag_case=case(status="closed")).action == "appeal"


def test_appeal_words_on_an_open_case_join_and_are_noted() -> None:
    decision = decide(appeal=True, tag_case=case(status="pending"))
    assert (decision.action, decision.new_status, decision.appeal_noted) == ("join", "open",
                                                                             True)


def test_appeal_words_from_a_stranger_change_nothing() -> None:
    decision = decide(appeal=True, sender="mallory@attacker.example",
                      tag_case=case(status="resolved"))
    assert decision.action == "new-case" and not decision.raise_priority


def test_appeal_words_in_a_staff_reply_are_not_an_appeal() -> None:
    decision = decide(appeal=True, **staff_evidence(reply_target_case=case(status="resolved")))
    assert decision.action == "join" and decision.role == "staff"


def test_unknown_status_joins_without_change() -> None:
    decision = decide(tag_case=case(status="archived"))
    assert (decision.action, decision.new_status) == ("join", None)


# --- helpers for the integrator


def test_is_staff_address_by_address_or_exact_domain() -> None:
    staff = StaffSettings(addresses=("boss@partner.example",), domains=("example.com",))
    assert is_staff_address("Zhang.Wei@Example.com", staff)
    assert is_staff_address("boss@partner.example", staff)
    assert not is_staff_address("x@mail.example.com", staff)
    assert not is_staff_address("x@notexample.com", staff)


PASSED = AuthVerdict(True, True, ("dkim=pass",))
FAILED = AuthVerdict(True, False, ("dkim=fail",))
UNCHECKED = AuthVerdict(False, False, ("not checked",))
TARGET = ReplyTarget("C-000123", "complaints@example.com", 0)


def test_verify_staff_needs_signed_address_and_acceptable_auth() -> None:
    assert verify_staff(True, TARGET, PASSED).verified
    assert verify_staff(True, TARGET, UNCHECKED).verified
    assert not verify_staff(True, TARGET, FAILED).verified
    assert not verify_staff(True, None, PASSED).verified
    assert not verify_staff(False, TARGET, PASSED).verified


def test_verify_staff_reports_the_previous_secret() -> None:
    result = verify_staff(True, ReplyTarget("C-000123", "complaints@example.com", 1), PASSED)
    assert result.verified and "previous secret" in result.reasons[0]


def test_reply_all_that_reached_the_complainant() -> None:
    assert already_reached(CUSTOMER, ["complaints@example.com", "<LI.NA@customer.example>"])
    assert not already_reached(CUSTOMER, ["complaints@example.com"])

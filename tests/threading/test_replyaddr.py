"""Worked examples for signed reply addresses: making, checking, rotation and forgery."""

from __future__ import annotations

import pytest

from processor.errors import ConfigError
from processor.replyaddr import (
    InvalidReplyAddress,
    ReplyTarget,
    find_reply_target,
    make_reply_address,
    parse_reply_address,
)

BASE = "complaints@example.com"
CURRENT = b"current-secret-0123456789"
PREVIOUS = b"previous-secret-9876543210"


def test_address_shape_is_local_plus_ref_dot_signature() -> None:
    address = make_reply_address(BASE, "C-000123", CURRENT)
    local, _, domain = address.partition("@")
    assert domain == "example.com"
    assert local.startswith("complaints+C-000123.")
    signature = local.rpartition(".")[2]
    assert len(signature) == 16 and signature == signature.lower()


def test_same_inputs_give_same_address_and_other_cases_differ() -> None:
    assert make_reply_address(BASE, "C-000123", CURRENT) == \
        make_reply_address(BASE, "C-000123", CURRENT)
    assert make_reply_address(BASE, "C-000123", CURRENT) != \
        make_reply_address(BASE, "C-000124", CURRENT)


def test_valid_address_parses_to_case_and_current_secret() -> None:
    address = make_reply_address(BASE, "C-000123", CURRENT)
    assert parse_reply_address(address, [CURRENT, PREVIOUS]) == \
        ReplyTarget("C-000123", BASE, 0)


def test_lower_cased_by_a_mail_server_still_verifies_and_ref_keeps_its_prefix() -> None:
    address = make_reply_address(BASE, "C-000123", CURRENT).lower()
    target = parse_reply_address(address, [CURRENT])
    assert target is not None and target.case_ref == "C-000123"


def test_upper_cased_signature_still_verifies() -> None:
    address = make_reply_address(BASE, "C-000123", CURRENT).upper()
    assert parse_reply_address(address, [CURRENT]) is not None


def test_rotation_previous_secret_still_accepted_and_reported() -> None:
    old = make_reply_address(BASE, "C-000123", PREVIOUS)
    target = parse_reply_address(old, [CURRENT, PREVIOUS])
    assert target is not None and target.secret_index == 1
    assert target.signed_with_previous_secret


def test_rotation_finished_old_signature_refused() -> None:
    old = make_reply_address(BASE, "C-000123", PREVIOUS)
    assert parse_reply_address(old, [CURRENT]) is None


def test_forged_signature_refused() -> None:
    forged = "complaints+C-000123.abcdefghijklmnop@example.com"
    assert parse_reply_address(forged, [CURRENT, PREVIOUS]) is None


def test_signature_copied_to_another_case_refused() -> None:
    # Knowing one case's reply address must not open every other case.
    signature = make_reply_address(BASE, "C-000123", CURRENT).partition("@")[0].rpartition(".")[2]
    assert parse_reply_address(f"complaints+C-000124.{signature}@example.com", [CURRENT]) is None


def test_signature_copied_to_another_domain_refused() -> None:
    local = make_reply_address(BASE, "C-000123", CURRENT).partition("@")[0]
    assert parse_reply_address(f"{local}@evil.example", [CURRENT]) is None


def test_empty_secret_never_verifies() -> None:
    # An unset previous-secret variable reads as b""; an empty key must not accept anything.
    address = "complaints+C-000123.aaaaaaaaaaaaaaaa@example.com"
    assert parse_reply_address(address, [b""]) is None


def test_not_signed_addresses_are_none() -> None:
    for address in ("complaints@example.com", "complaints+urgent@example.com",
                    "complaints+C-000123@example.com", "complaints+C-1.x@example.com",
                    "", "not an address"):
        assert parse_reply_address(address, [CURRENT]) is None, address


def test_angle_brackets_and_spaces_are_tolerated() -> None:
    address = make_reply_address(BASE, "C-000123", CURRENT)
    assert parse_reply_address(f" <{address}> ", [CURRENT]) is not None


def test_empty_secret_cannot_make_an_address() -> None:
    with pytest.raises(ConfigError):
        make_reply_address(BASE, "C-000123", b"")


@pytest.mark.parametrize("base,ref", [("complaints+x@example.com", "C-1"), ("nodomain", "C-1"),
                                      (BASE, "C.1"), (BASE, "C+1"), (BASE, "")])
def test_unusable_base_or_ref_refused(base: str, ref: str) -> None:
    with pytest.raises(InvalidReplyAddress):
        make_reply_address(base, ref, CURRENT)


def test_find_in_recipients_skips_other_addresses() -> None:
    address = make_reply_address(BASE, "C-000042", CURRENT)
    recipients = ["someone@example.org", f"Complaints desk <{address}>, other@example.net"]
    target = find_reply_target(recipients, [BASE], [CURRENT])
    assert target is not None and target.case_ref == "C-000042"


def test_find_in_delivered_to_value() -> None:
    address = make_reply_address(BASE, "C-000042", CURRENT)
    assert find_reply_target([address], ["Complaints@Example.com"], [CURRENT]) is not None


def test_find_ignores_signed_address_of_a_base_that_is_not_ours() -> None:
    other = make_reply_address("support@elsewhere.example", "C-000042", CURRENT)
    assert find_reply_target([other], [BASE], [CURRENT]) is None


def test_find_nothing() -> None:
    assert find_reply_target([BASE, "a@b.example"], [BASE], [CURRENT]) is None

"""Our case tag is found again in whatever form mail clients and IMEs send it back."""

from __future__ import annotations

import pytest

from processor.compose import ack_subject, find_case_ref, format_tag, subject_tag_pattern
from processor.errors import ComplaintsError

PATTERN = subject_tag_pattern("[{ref}]", "C-", 6)


@pytest.mark.parametrize("subject", [
    "[C-000123] My internet is down",
    "Re: [C-000123] My internet is down",
    "RE: RE: Fwd: [C-000123] My internet is down",
    "AW: [C-000123] Mein Internet",
    "SV: [C-000123] x",
    "回复：[C-000123] 网络故障",
    "回复: 转发: [C-000123] 网络故障",
    "答复：【C-000123】网络故障",
    "［C-000123］网络故障",
    "[Ｃ－０００１２３] 全角",
    "〔C-000123〕",
    "[ C-000123 ] spaces inside",
    "[C‐000123] unicode hyphen",
    "Re: My internet is down [C-000123]",
    "[External] Re: [C-000123] tagged by their gateway",
])
def test_variants_are_recognised(subject: str) -> None:
    assert find_case_ref(subject, PATTERN) == "C-000123"


@pytest.mark.parametrize("subject", [
    "My internet is down",
    "[C-00012] too short",
    "[D-000123] other prefix",
    "C-000123 without brackets",
    "[AC-000123] longer prefix",
    "[C-000123x]",
    "",
])
def test_lookalikes_are_not(subject: str) -> None:
    assert find_case_ref(subject, PATTERN) is None


def test_numbers_beyond_the_width_still_match() -> None:
    assert find_case_ref("Re: [C-1234567] big desk", PATTERN) == "C-1234567"


def test_first_tag_wins() -> None:
    assert find_case_ref("Re: [C-000200] Fwd: [C-000100]", PATTERN) == "C-000200"


def test_other_tag_formats_round_trip() -> None:
    for tag_format, prefix in (("(Case {ref})", "CASE-"), ("{ref}:", "T"), ("«{ref}»", "KL-")):
        pattern = subject_tag_pattern(tag_format, prefix, 5)
        subject = ack_subject(format_tag(tag_format, f"{prefix}00042"), "hello")
        assert find_case_ref("Re: " + subject, pattern) == f"{prefix}00042"


def test_the_ack_subject_is_found_again() -> None:
    assert find_case_ref("Re: " + ack_subject("[C-000123]", "网络故障"), PATTERN) == "C-000123"


def test_format_needs_exactly_one_ref() -> None:
    with pytest.raises(ComplaintsError):
        subject_tag_pattern("[case]", "C-", 6)
    with pytest.raises(ComplaintsError):
        format_tag("{ref} {ref}", "C-1")

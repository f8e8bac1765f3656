"""Worked examples for Authentication-Results: only our trusted server's topmost header counts."""

from __future__ import annotations

from processor.authresults import AuthVerdict, parse_auth_results, sender_authenticated

TRUSTED = ("mx.example.com",)
STAFF_DOMAIN = "example.com"


def verdict(*values: str, trusted: tuple[str, ...] = TRUSTED,
            domain: str = STAFF_DOMAIN) -> AuthVerdict:
    return sender_authenticated(values, trusted, domain)


def test_dkim_pass_for_staff_domain_passes() -> None:
    result = verdict("mx.example.com; dkim=pass header.d=example.com header.s=sel1")
    assert result.applicable and result.passed and result.acceptable
    assert "dkim=pass for example.com" in result.reasons[0]


def test_dkim_pass_by_header_i() -> None:
    assert verdict("mx.example.com; dkim=pass header.i=@example.com").passed


def test_dkim_pass_for_subdomain_passes() -> None:
    assert verdict("mx.example.com; dkim=pass header.d=mail.example.com").passed


def test_dkim_pass_for_other_domain_fails() -> None:
    result = verdict("mx.example.com; dkim=pass header.d=mailer.example.net; spf=none")
    assert result.applicable and not result.passed and not result.acceptable
    assert any("mailer.example.net" in r for r in result.reasons)


def test_look_alike_suffix_is_not_the_domain() -> None:
    assert not verdict("mx.example.com; dkim=pass header.d=evilexample.com").passed


def test_dkim_fail_fails() -> None:
    assert not verdict("mx.example.com; dkim=fail header.d=example.com").passed


def test_spf_pass_with_dmarc_pass_passes() -> None:
    assert verdict("mx.example.com; spf=pass smtp.mailfrom=alice@example.com; "
                   "dmarc=pass header.from=example.com").passed


def test_spf_pass_with_dmarc_fail_fails() -> None:
    result = verdict("mx.example.com; spf=pass smtp.mailfrom=example.com; "
                     "dmarc=fail header.from=example.com")
    assert not result.passed
    assert any("no dmarc=pass" in r for r in result.reasons)


def test_spf_pass_alone_fails() -> None:
    assert not verdict("mx.example.com; spf=pass smtp.mailfrom=alice@example.com").passed


def test_dmarc_pass_with_spf_for_another_domain_fails() -> None:
    assert not verdict("mx.example.com; spf=pass smtp.mailfrom=bounce@sender.example.net; "
                       "dmarc=pass header.from=example.com").passed


def test_untrusted_authserv_id_is_ignored() -> None:
    # Written by the sender or an earlier hop: not checked at all, not "passed".
    result = verdict("attacker.example; dkim=pass header.d=example.com")
    assert not result.applicable and not result.passed and result.acceptable


def test_no_header_means_not_checked() -> None:
    result = verdict()
    assert not result.applicable and result.acceptable
    assert "not checked" in result.reasons[0]


def test_no_trusted_ids_configured_means_not_checked() -> None:
    assert not verdict("mx.example.com; dkim=fail", trusted=()).applicable


def test_only_the_topmost_trusted_header_counts() -> None:
    # The lower one claims to be from our server but was in the mail before it arrived.
    result = verdict("mx.example.com; dkim=fail header.d=example.com",
                     "mx.example.com; dkim=pass header.d=example.com")
    assert result.applicable and not result.passed


def test_untrusted_header_above_the_trusted_one_is_skipped() -> None:
    result = verdict("relay.internal.example; dkim=fail",
                     "mx.example.com; dkim=pass header.d=example.com")
    assert result.passed


def test_comments_folding_and_spaces_around_equals() -> None:
    value = ("mx.example.com (Postfix (nested) version);\r\n"
             "\tdkim = pass (2048-bit key; unprotected) header.d=\"example.com\"\r\n"
             "\theader.s=sel1 header.b=AbCd;\r\n spf=neutral")
    assert verdict(value).passed


def test_several_dkim_results_any_pass_for_domain_counts() -> None:
    assert verdict("mx.example.com; dkim=pass header.d=esp.example.net; "
                   "dkim=pass header.d=example.com").passed


def test_authserv_id_with_version_and_case() -> None:
    assert verdict("MX.Example.COM 1; dkim=pass header.d=Example.com").passed


def test_none_result_from_trusted_server_fails() -> None:
    result = verdict("mx.example.com; none")
    assert result.applicable and not result.passed


def test_method_version_is_dropped_and_properties_parsed() -> None:
    parsed = parse_auth_results("mx.example.com; dkim/1=pass reason=\"good sig\" "
                                "header.d=example.com")
    assert parsed is not None
    assert parsed.authserv_id == "mx.example.com"
    (item,) = parsed.results
    assert (item.method, item.result, item.get("header.d")) == ("dkim", "pass", "example.com")


def test_semicolon_inside_quotes_does_not_split() -> None:
    parsed = parse_auth_results('mx.example.com; dkim=pass reason="a;b" header.d=example.com')
    assert parsed is not None and len(parsed.results) == 1


def test_empty_value_has_no_authserv_id() -> None:
    assert parse_auth_results("  (only a comment) ") is None

"""The SMTP edge against a real aiosmtpd server on 127.0.0.1: envelope, TLS, AUTH, failures."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from processor.compose import InvalidAddress, compose_ack, make_message_id
from processor.config import settings_from_mapping
from processor.errors import ConfigError
from processor.mail.model import Address
from processor.outbox import smtp_settings
from processor.render import RenderedBody
from processor.smtp import (
    LoginRefused,
    SendPermanent,
    SendTransient,
    SmtpSettings,
    next_attempt_delay,
    send_message,
)
from tests.ack.helpers import DESK, DOMAIN, INSTALLATION, parsed

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Recorder:
    """An aiosmtpd handler that records envelopes, or answers a fixed failure at one stage."""

    fail_at: str = ""
    failure: str = ""
    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        if self.fail_at == "rcpt" and not address.startswith("ok"):
            return self.failure
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.fail_at == "data":
            return self.failure
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"


@pytest.fixture()
def server() -> Iterator[tuple[Recorder, int]]:
    handler = Recorder()
    port = free_port()
    controller = Controller(handler, hostname=HOST, port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def message() -> EmailMessage:
    return compose_ack(case_ref="C-000123", tag_format="[{ref}]", original=parsed(),
                       from_address=DESK, to=Address("Alice", "alice@example.org"),
                       body=RenderedBody("Thanks\n", None),
                       message_id=make_message_id(DOMAIN, INSTALLATION),
                       loop_header_name="X-Complaints-Loop", loop_header_value=INSTALLATION,
                       date=datetime(2024, 6, 3, tzinfo=UTC))


def plain(port: int, **kwargs: Any) -> SmtpSettings:
    return SmtpSettings(host=HOST, port=port, tls="none", timeout=5, **kwargs)


def test_null_envelope_sender_by_default(server: tuple[Recorder, int]) -> None:
    handler, port = server
    msg = message()
    asyncio.run(send_message(plain(port), msg, ["alice@example.org"]))
    [(mail_from, rcpts, content)] = handler.received
    assert mail_from == "<>"
    assert rcpts == ["alice@example.org"]
    assert msg["Message-ID"].encode() in content


def test_configured_bounce_address(server: tuple[Recorder, int]) -> None:
    handler, port = server
    settings = plain(port, envelope_sender="bounces@desk.example.com")
    asyncio.run(send_message(settings, message(), ["alice@example.org"]))
    assert handler.received[0][0] == "bounces@desk.example.com"


@pytest.mark.parametrize(("stage", "reply"), [("data", "451 try later"),
                                              ("rcpt", "452 mailbox full"),
                                              ("data", "421 shutting down")])
def test_4xx_is_transient(server: tuple[Recorder, int], stage: str, reply: str) -> None:
    handler, port = server
    handler.fail_at, handler.failure = stage, reply
    with pytest.raises(SendTransient, match=reply.split()[0]):
        asyncio.run(send_message(plain(port), message(), ["alice@example.org"]))


@pytest.mark.parametrize("stage", ["data", "rcpt"])
def test_5xx_is_permanent(server: tuple[Recorder, int], stage: str) -> None:
    handler, port = server
    handler.fail_at, handler.failure = stage, "550 no such user"
    with pytest.raises(SendPermanent) as info:
        asyncio.run(send_message(plain(port), message(), ["alice@example.org"]))
    assert info.value.code == 550 and "no such user" in info.value.reason


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_a_relay_that_wants_a_login_is_not_a_permanent_failure(server: tuple[Recorder, int],
                                                              stage: str) -> None:
    handler, port = server
    handler.fail_at, handler.failure = stage, "530 5.7.0 Authentication required"
    with pytest.raises(LoginRefused) as info:
        asyncio.run(send_message(plain(port), message(), ["alice@example.org"]))
    assert info.value.code == 530 and "refused the desk's login" in str(info.value)


def test_partly_refused_recipients_are_not_retried(server: tuple[Recorder, int]) -> None:
    handler, port = server
    handler.fail_at, handler.failure = "rcpt", "550 no such user"
    asyncio.run(send_message(plain(port), message(), ["ok@example.org", "gone@example.org"]))
    assert handler.received[0][1] == ["ok@example.org"]


def test_connection_refused_is_transient() -> None:
    with pytest.raises(SendTransient):
        asyncio.run(send_message(plain(free_port()), message(), ["alice@example.org"]))


def test_recipients_are_validated_before_connecting() -> None:
    with pytest.raises(InvalidAddress):
        asyncio.run(send_message(plain(free_port()), message(), ["a@b.example\r\nRCPT TO:<x>"]))


def test_plain_smtp_only_on_loopback() -> None:
    with pytest.raises(ConfigError, match="loopback|127.0.0.1"):
        SmtpSettings(host="smtp.example.com", port=25, tls="none")
    SmtpSettings(host="localhost", port=25, tls="none")
    SmtpSettings(host="::1", port=25, tls="none")
    SmtpSettings(host="smtp.example.com", port=587, tls="starttls")


def test_password_is_not_in_repr() -> None:
    settings = SmtpSettings(host="smtp.example.com", user="desk", password="hunter2")
    assert "hunter2" not in repr(settings)


# --- TLS and AUTH against the same real server, with a throwaway self-signed certificate


@pytest.fixture(scope="module")
def certificate_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (key, certificate): its own CA file."""
    directory = tmp_path_factory.mktemp("tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return key, cert


@pytest.fixture(scope="module")
def certificate(certificate_files: tuple[Path, Path]) -> ssl.SSLContext:
    key, cert = certificate_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                  auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"desk", b"s3cret")
    return AuthResult(success=ok, handled=False)


def tls_server(context: ssl.SSLContext, implicit: bool) -> tuple[Controller, Recorder, int]:
    handler, port = Recorder(), free_port()
    if implicit:
        # aiosmtpd only knows about TLS it negotiated itself (STARTTLS), so with implicit TLS it
        # would hide AUTH if told to require TLS for it; the whole session is encrypted anyway.
        controller = Controller(handler, hostname=HOST, port=port, ssl_context=context,
                                authenticator=authenticator, auth_require_tls=False)
    else:
        controller = Controller(handler, hostname=HOST, port=port, tls_context=context,
                                require_starttls=True, authenticator=authenticator,
                                auth_require_tls=True)
    controller.start()
    return controller, handler, port


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_tls_and_auth(certificate: ssl.SSLContext, mode: str) -> None:
    controller, handler, port = tls_server(certificate, implicit=mode == "implicit")
    try:
        settings = SmtpSettings(host=HOST, port=port, tls=mode, user="desk", password="s3cret",
                                verify_certificate=False, timeout=5)
        asyncio.run(send_message(settings, message(), ["alice@example.org"]))
        assert handler.received[0][1] == ["alice@example.org"]
        wrong = SmtpSettings(host=HOST, port=port, tls=mode, user="desk", password="nope",
                             verify_certificate=False, timeout=5)
        # A wrong password is the desk's trouble, not the mail's: retried, never failed for good.
        with pytest.raises(LoginRefused) as info:
            asyncio.run(send_message(wrong, message(), ["alice@example.org"]))
        assert info.value.code == 535 and isinstance(info.value, SendTransient)
    finally:
        controller.stop()


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_a_private_ca_is_trusted_through_ca_file(certificate: ssl.SSLContext,
                                                 certificate_files: tuple[Path, Path],
                                                 mode: str) -> None:
    controller, handler, port = tls_server(certificate, implicit=mode == "implicit")
    try:
        # From the configuration file's [smtp] section, as the outbox reads it.
        settings = smtp_settings(settings_from_mapping({"smtp": {
            "host": HOST, "port": port, "tls": mode, "ca_file": str(certificate_files[1]),
            "timeout_seconds": 5}}))
        assert settings.verify_certificate
        asyncio.run(send_message(settings, message(), ["alice@example.org"]))
        assert handler.received[0][1] == ["alice@example.org"]
    finally:
        controller.stop()


def test_unverifiable_certificate_is_transient(certificate: ssl.SSLContext) -> None:
    controller, _handler, port = tls_server(certificate, implicit=False)
    try:
        settings = SmtpSettings(host=HOST, port=port, tls="starttls", timeout=5)
        with pytest.raises(SendTransient):
            asyncio.run(send_message(settings, message(), ["alice@example.org"]))
    finally:
        controller.stop()


# --- backoff


def test_backoff_doubles_up_to_the_cap_with_full_jitter() -> None:
    assert [next_attempt_delay(n, rng=lambda: 1.0) for n in range(1, 10)] == [
        30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert next_attempt_delay(3, rng=lambda: 0.5) == 60
    assert next_attempt_delay(1, rng=lambda: 0.0) == 0
    assert next_attempt_delay(10_000, base=5, cap=100, rng=lambda: 1.0) == 100


def test_backoff_is_spread_between_zero_and_the_ceiling() -> None:
    delays = [next_attempt_delay(4) for _ in range(200)]
    assert all(0 <= d <= 240 for d in delays)
    assert len({round(d) for d in delays}) > 20


# --- OAuth 2.0 (XOAUTH2)


@dataclass
class TokenChecking(Recorder):
    """A submission server that takes AUTH XOAUTH2 (as Office 365's and Gmail's do) for the
    tokens in `good`, each for its user."""

    good: dict[str, str] = field(default_factory=dict)  # token -> user
    offered: list[str] = field(default_factory=list)

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:  # noqa: N802
        blob = args[1] if len(args) > 1 else await server.challenge_auth("", encode_to_b64=False)
        fields = dict(part.split("=", 1) for part in
                      base64.b64decode(blob).decode().split("\x01") if "=" in part)
        token = fields.get("auth", "").removeprefix("Bearer ")
        self.offered.append(token)
        user = self.good.get(token)
        return AuthResult(success=user is not None and user == fields.get("user"), handled=False)


def test_mail_is_sent_with_an_access_token_and_a_refused_one_is_asked_for_again(
    tmp_path: Path
) -> None:
    handler, port = TokenChecking(good={"tok-1": "desk@example.com"}), free_port()
    controller = Controller(handler, hostname=HOST, port=port, auth_require_tls=False)
    controller.start()
    token_file = tmp_path / "token"  # the helper's cache, printed by `cat`
    try:
        settings = smtp_settings(settings_from_mapping({"smtp": {
            "host": HOST, "port": port, "tls": "none", "user": "desk@example.com",
            "auth": "xoauth2", "oauth2_token_command": ["cat", str(token_file)],
            "timeout_seconds": 5}}))
        token_file.write_text("tok-1\n")
        asyncio.run(send_message(settings, message(), ["alice@example.org"]))
        asyncio.run(send_message(settings, message(), ["bob@example.org"]))
        assert [r[1] for r in handler.received] == [["alice@example.org"], ["bob@example.org"]]
        assert handler.offered == ["tok-1", "tok-1"]

        # The provider revoked it; the helper has a new one. The token in hand is refused
        # once (a refused login: the mail waits, see processor.outbox), and the next attempt
        # asks the helper again.
        handler.good = {"tok-2": "desk@example.com"}
        token_file.write_text("tok-2\n")
        with pytest.raises(LoginRefused, match="access token was refused"):
            asyncio.run(send_message(settings, message(), ["carol@example.org"]))
        asyncio.run(send_message(settings, message(), ["carol@example.org"]))
        assert handler.offered[-2:] == ["tok-1", "tok-2"]
        assert handler.received[-1][1] == ["carol@example.org"]

        handler.good = {}
        token_file.unlink()  # and the helper fails: transient too, with what it said
        with pytest.raises(SendTransient):
            asyncio.run(send_message(settings, message(), ["dan@example.org"]))
        with pytest.raises(SendTransient, match="token command exited 1: cat:"):
            asyncio.run(send_message(settings, message(), ["dan@example.org"]))
    finally:
        controller.stop()


def test_xoauth2_for_smtp_needs_a_user_and_a_token_command() -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping({"smtp": {"host": "smtp.office365.com", "auth": "xoauth2",
                                        "user": "desk@example.com"}})
    assert info.value.key == "smtp.oauth2_token_command"

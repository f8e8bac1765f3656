"""Configuration mistakes, CLI errors and refusals: one clear line, the key and the file, no
traceback; every command's help has an example; rules reload on SIGHUP."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from processor import config
from processor.cli import main
from processor.config import Secret, load_settings, settings_from_mapping
from processor.errors import ConfigError
from tests.deployment import Deployment
from tests.servers import ImapAccount


def complaints(*args: str, env: dict[str, str] | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "processor", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, cwd=cwd, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_unknown_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    config = tmp_path / "complaints.toml"
    config.write_text('[mailbox.complaints]\nhots = "imap.example.com"\n', encoding="utf-8")
    result = complaints("-c", str(config), "status")
    assert result.returncode == 2
    assert "mailbox.complaints.hots" in result.stderr and str(config) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("table,key,expected", [
    ({"processing": {"batch_size": "many"}}, "processing.batch_size", "whole number"),
    ({"mailbox": {"m": {"host": "imap.example.com", "addresses": ["a@b.c"], "tls": "none"}}},
     "mailbox.m.tls", "127.0.0.1"),
    ({"mailbox": {"m": {"host": "x", "addresses": ["a@b.c"], "password": "hunter2"}}},
     "mailbox.m.password", "never written"),
    ({"mailbox": {"m": {"host": "x"}}}, "mailbox.m.addresses", "addresses"),
    ({"digest": {"hour": True}}, "digest.hour", "whole number"),
    ({"nonsense": {}}, "nonsense", "unknown section"),
    ({"workers": {"takeover_seconds": 1}}, "workers.takeover_seconds", "at least 3 seconds"),
    ({"mailbox": {"m": {"host": "x", "addresses": ["a@b.c"], "ca_file": "/nowhere/ca.pem"}}},
     "mailbox.m.ca_file", "cannot read the CA file /nowhere/ca.pem"),
    ({"smtp": {"host": "smtp.example.com", "ca_file": "/nowhere/ca.pem"}}, "smtp.ca_file",
     "cannot read the CA file"),
])
def test_each_mistake_is_a_config_error_naming_its_key(table: dict, key: str,  # type: ignore[type-arg]
                                                       expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(table, source="/etc/complaints.toml")
    assert key in str(caught.value) and expected in str(caught.value)
    assert "/etc/complaints.toml" in str(caught.value)


def test_environment_overrides_and_secrets_stay_secret(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[mailbox.brand-two]\nhost = "imap.example.com"\n'
                      'addresses = ["service@brand2.example"]\npassword_env = "PW"\n',
                      encoding="utf-8")
    settings = load_settings(config, environ={
        "COMPLAINTS_DATABASE_URL": "postgresql://u@db/x",
        "COMPLAINTS_MAILBOX_BRAND_TWO_PORT": "1993",
        "COMPLAINTS_ACK_PER_SENDER": "5", "COMPLAINTS_STAFF_DOMAINS": "a.example,b.example"})
    assert settings.database.url == "postgresql://u@db/x"
    assert settings.mailbox("brand-two").port == 1993
    assert settings.ack.per_sender == 5 and settings.staff.domains == ("a.example", "b.example")
    os.environ["PW"] = "s3cret-value"
    secret = settings.mailbox("brand-two").password()
    assert isinstance(secret, Secret) and secret == "s3cret-value"
    assert "s3cret-value" not in repr(settings) and "s3cret-value" not in repr(secret)
    with pytest.raises(ConfigError, match="COMPLAINTS_ACK_PER_SENDER"):
        load_settings(config, environ={"COMPLAINTS_ACK_PER_SENDER": "lots"})


def test_every_command_says_what_it_does_with_an_example() -> None:
    def walk(command: click.Command, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        if isinstance(command, click.Group):
            return [p for name, sub in command.commands.items() for p in walk(sub, (*path, name))]
        return [path]

    leaves = walk(main, ())
    assert len(leaves) >= 20
    for path in leaves:
        command: click.Command = main
        for name in path:
            command = command.commands[name]  # type: ignore[attr-defined]
        assert "Example" in (command.help or ""), path


def test_cli_errors_say_what_to_do_next(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/db.sqlite3"\n', encoding="utf-8")
    result = complaints("-c", str(config), "cases")
    assert result.returncode == 2
    assert "complaints db upgrade" in result.stderr and "Traceback" not in result.stderr
    assert complaints("-c", str(config), "db", "upgrade").returncode == 0
    missing = complaints("-c", str(config), "case", "show", "C-999999")
    assert missing.returncode == 1 and "complaints cases" in missing.stderr
    absent = complaints("-c", str(tmp_path / "nope.toml"), "status")
    assert absent.returncode == 2 and "complaints init" in absent.stderr


def test_init_writes_a_sample_that_loads(tmp_path: Path) -> None:
    result = complaints("init", "-o", str(tmp_path / "complaints.toml"))
    assert result.returncode == 0
    settings = load_settings(tmp_path / "complaints.toml", environ={})
    assert settings.mailbox("complaints").tls == "implicit"
    # Acknowledgements go somewhere once the placeholders are replaced, not to the outbox only.
    assert settings.smtp.host and settings.smtp.tls == "starttls"
    assert settings.smtp.password_env == "COMPLAINTS_SMTP_PASSWORD"
    again = complaints("init", "-o", str(tmp_path / "complaints.toml"))
    assert again.returncode != 0 and "not overwriting" in again.stderr


def test_run_refuses_invalid_rules_then_reloads_them_on_sighup(
        deployment: Deployment, imap_account: ImapAccount, tmp_path: Path) -> None:
    rules = tmp_path / "my-rules"
    rules.mkdir()
    broken = rules / "60-mine.toml"
    broken.write_text('[[rule]]\nname = "bad"\norder = 60\n[[rule.when.any]]\n'
                      'field = "subject"\nregex = "(unclosed"\n[rule.then]\ntags = ["x"]\n',
                      encoding="utf-8")
    deployment.processing["rules_dir"] = str(rules)
    deployment.write()
    refused = deployment.command(["run"], imap_account.password, check=False)
    assert refused.returncode == 2 and "60-mine.toml:" in refused.stderr
    assert "Traceback" not in refused.stderr
    broken.write_text('[[rule]]\nname = "mine"\norder = 60\n[[rule.when.any]]\n'
                      'field = "subject"\ncontains_any = ["hello"]\n[rule.then]\n'
                      'tags = ["mine"]\n', encoding="utf-8")
    log_path = tmp_path / "run.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "processor", "run"],
                                env=deployment.env(imap_account.password), stdout=log,
                                stderr=log, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not deployment.scalar("SELECT count(*) FROM poll_runs"):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        broken.write_text(broken.read_text().replace('"mine"]', '"mine", "reloaded"]'))
        proc.send_signal(signal.SIGHUP)
        while log_path.read_text().count("rules loaded") < 2:  # the reload, as logged
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        imap_account.append("INBOX", [b"From: a@customer.example\r\nTo: complaints@example.com"
                                      b"\r\nSubject: hello\r\nMessage-ID: <hup@x>\r\n\r\nhi\r\n"])
        while deployment.scalar("SELECT count(*) FROM cases") != 1:
            assert time.monotonic() < deadline + 60 and proc.poll() is None
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0, log_path.read_text()
    assert "reloaded" in str(deployment.scalar("SELECT tags FROM cases"))


def test_every_configuration_key_is_in_the_readme_reference() -> None:
    """Each key the loader takes appears in README's reference table, in its section's rows
    (the digest's keys in its own section's sample): a key added without a word there fails
    here."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    rows: dict[str, str] = {}
    section = None
    for line in readme.splitlines():
        cells = line.split("|")
        if not line.startswith("| ") or len(cells) < 4:
            section = None
            continue
        if cells[1].strip():
            section = cells[1].strip().strip("`")
        if section is not None:
            rows[section] = rows.get(section, "") + cells[2]
    digest = readme.split("## The daily digest", 1)[1].split("\n## ", 1)[0]
    sections: dict[str, tuple[type, str]] = {
        name: (cls, digest if name == "digest" else rows.get(name, ""))
        for name, cls in config._SECTIONS.items()}
    sections["mailbox.NAME"] = (config.MailboxSettings, rows.get("mailbox.NAME", ""))
    missing = [f"[{name}] {f.name}" for name, (cls, text) in sections.items()
               for f in dataclasses.fields(cls)
               if f.name != "name" and not re.search(
                   rf"`{re.escape(f.name)}`|^{re.escape(f.name)} = ", text, re.MULTILINE)]
    assert missing == [], missing


def test_every_command_and_option_is_in_the_readme() -> None:
    """`complaints ...` for every command, and each long option somewhere beside it."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")

    def commands(command: click.Command, path: tuple[str, ...]
                 ) -> list[tuple[str, click.Command]]:
        if isinstance(command, click.Group):
            return [found for name, sub in command.commands.items()
                    for found in commands(sub, (*path, name))]
        return [(" ".join(("complaints", *path)), command)]

    missing = [f"{name} {option}".strip() for name, command in commands(main, ())
               for option in ["", *(o for p in command.params for o in p.opts
                                   if o.startswith("--"))]
               if (name not in readme if not option else option not in readme)]
    assert missing == [], missing

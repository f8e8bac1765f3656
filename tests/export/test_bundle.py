"""What goes into a dossier: mails, attachments, outbox mail, timeline, manifest, the event."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from processor import __version__
from tests.deployment import Deployment
from tests.export.helpers import (
    T0,
    CaseBuilder,
    export,
    files_by_kind,
    make_mail,
    manifest,
    read_page,
    sha256,
    sqlite_deployment,
    verify,
)

ATTACHMENTS = [
    ("通话记录.txt", "text/plain", "2026-11-12 拨打10000号 无人接听\n".encode()),
    ("截图.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4),
    ("../../etc/evil name.exe", "application/octet-stream", b"MZ not really"),
    ("no-extension", "application/octet-stream", b"plain bytes"),
    ("report.tar.gz?download=1", "application/gzip", b"\x1f\x8b fake gzip"),
    ("again.txt", "text/plain", "2026-11-12 拨打10000号 无人接听\n".encode()),  # same bytes
]


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    deployment = sqlite_deployment(tmp_path)
    yield deployment
    deployment.close()


@pytest.fixture
def builder(dep: Deployment) -> Iterator[CaseBuilder]:
    b = CaseBuilder(dep)
    yield b
    b.close()


def _full_case(builder: CaseBuilder) -> list[bytes]:
    """C-000001: two mails in (one with attachments), one reply out, one ack still queued."""
    case_id = builder.case("C-000001")
    first = make_mail("宽带又断了", "第二次投诉：宽带断网三天。", message_id="<in1@example.cn>",
                      attachments=ATTACHMENTS)
    second = make_mail("Re: 宽带又断了", "还是没有修好。", message_id="<in2@example.cn>",
                       charset="gbk")
    reply = make_mail("Re: 宽带又断了", "我们已派工程师。", sender="desk@example.com",
                      message_id="<out1@desk.example.com>")
    ack = make_mail("已收到您的投诉 [C-000001]", "您好，我们已收到。", sender="desk@example.com",
                    message_id="<ack1@desk.example.com>")
    builder.message(case_id, first, attachments=ATTACHMENTS, message_id="<in1@example.cn>")
    builder.message(case_id, second, message_id="<in2@example.cn>")
    builder.message(case_id, reply, direction="out", message_id="<out1@desk.example.com>")
    # The reply was sent through the outbox: its row must not appear a second time.
    builder.outbox(case_id, reply, "<out1@desk.example.com>")
    builder.outbox(case_id, ack, "<ack1@desk.example.com>")
    return [first, second, reply, ack]


def test_every_part_of_the_case_is_in_the_bundle(dep: Deployment, builder: CaseBuilder,
                                                 tmp_path: Path) -> None:
    raws = _full_case(builder)
    shown = json.loads(dep.command(["case", "show", "C-000001", "--json"], "").stdout)
    bundle = export(dep, "C-000001", tmp_path / "out.zip")

    with zipfile.ZipFile(bundle) as zf:
        names = zf.namelist()
        mails = sorted(n for n in names if n.startswith("mails/"))
        # Original bytes, in time order, named NNN-<direction>-<date>.eml.
        assert [zf.read(n) for n in mails] == raws
        assert [re.sub(r"\d{8}T\d{6}Z", "DATE", n) for n in mails] == [
            "mails/001-in-DATE.eml", "mails/002-in-DATE.eml", "mails/003-out-DATE.eml",
            "mails/004-out-DATE.eml"]
        timeline = json.loads(zf.read("timeline.json"))
        page = read_page(zf.read("timeline.html"))
        manifest_bytes = zf.read("manifest.json")
        manifest_hash = zf.read("manifest.sha256").decode()
        attachment_bytes = {n: zf.read(n) for n in names if n.startswith("attachments/")}

    # Attachments: safe names, originals in the manifest, hashes matching the payloads.
    listed = files_by_kind(bundle, "attachment")
    assert set(listed) == set(attachment_bytes)
    assert all(re.fullmatch(r"attachments/001-[0-9a-f]{12}(-\d)?(\.[a-z0-9]{1,8})?", n)
               for n in listed), listed
    assert sorted(e["filename"] for e in listed.values()) == sorted(a[0] for a in ATTACHMENTS)
    for filename, content_type, payload in ATTACHMENTS:
        path = next(p for p, e in listed.items() if e["filename"] == filename)
        assert attachment_bytes[path] == payload
        assert listed[path]["sha256"] == sha256(payload)
        assert listed[path]["content_type"] == content_type
        assert listed[path]["message_index"] == 1
    suffixes = {e["filename"]: Path(p).suffix for p, e in listed.items()}
    assert suffixes["通话记录.txt"] == ".txt"
    assert suffixes["../../etc/evil name.exe"] == ".exe"
    assert suffixes["no-extension"] == ""
    assert suffixes["report.tar.gz?download=1"] == ""

    # The timeline is `case show --json`, plus the outgoing mail not yet recorded as a message.
    assert timeline["case"] == shown["case"]
    assert timeline["timeline"] == shown["timeline"]
    assert [o["message_id"] for o in timeline["outbox"]] == ["<ack1@desk.example.com>"]
    assert timeline["outbox"][0]["new_text"].strip() == "您好，我们已收到。"

    # The manifest: every other file, with size and hash, and its own hash beside it.
    data = json.loads(manifest_bytes)
    assert manifest_hash == f"{sha256(manifest_bytes)}  manifest.json\n"
    assert {e["path"] for e in data["files"]} == set(names) - {"manifest.json", "manifest.sha256"}
    with zipfile.ZipFile(bundle) as zf:
        for entry in data["files"]:
            content = zf.read(entry["path"])
            assert (len(content), sha256(content)) == (entry["size"], entry["sha256"])
    assert data["case"] == "C-000001"
    assert data["exported_by"] == "tester"
    assert data["software"] == {"name": "complaint-processor", "version": __version__}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", data["exported_at"])
    sources = [(e["direction"], e["source"]) for e in data["files"] if e["kind"] == "mail"]
    assert sources == [("in", "message"), ("in", "message"), ("out", "message"),
                       ("out", "outbox")]

    # The page: every mail, the Chinese file names, nothing active or remote.
    assert [m["data-index"] for m in page.messages] == ["1", "2", "3", "4"]
    text = "".join(page.text)
    for filename, _, _ in ATTACHMENTS:
        assert filename in text
    assert "网络一直断。" in text  # the new text of each stored message
    assert "您好，我们已收到。" in text
    assert page.charset == "utf-8"
    assert not page.tags & {"script", "link", "iframe", "object", "embed", "img"}
    assert not page.remote
    assert "Noto Sans CJK SC" in text and "url(" not in text

    # The export is on the record, with the manifest's hash.
    event = json.loads(dep.command(["case", "show", "C-000001", "--json"], "").stdout)[
        "timeline"][-1]
    assert event["kind"] == "exported" and event["actor"] == "tester"
    assert event["manifest_sha256"] == sha256(manifest_bytes)
    assert event["file"] == "out.zip" and event["linked"] == []

    code, output = verify(dep, bundle)
    assert code == 0, output
    assert "intact" in output and sha256(manifest_bytes) in output


def test_the_default_name_is_reference_and_time_and_nothing_is_overwritten(
        dep: Deployment, builder: CaseBuilder, tmp_path: Path) -> None:
    builder.message(builder.case("C-000002"), make_mail("x", "y", message_id="<a@b>"))
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = subprocess.run([sys.executable, "-m", "processor", "case", "export", "c-000002"],
                            env=dep.env(""), cwd=workdir, text=True, capture_output=True,
                            check=True)
    [written] = workdir.iterdir()
    assert re.fullmatch(r"C-000002-\d{8}T\d{6}Z\.zip", written.name)
    assert str(written.name) in result.stdout

    existing = tmp_path / "taken.zip"
    existing.write_bytes(b"do not touch")
    refused = dep.command(["case", "export", "C-000002", "--out", str(existing)], "", check=False)
    assert refused.returncode == 1
    assert "never overwrites" in refused.stderr and "Traceback" not in refused.stderr
    assert existing.read_bytes() == b"do not touch"
    assert dep.scalar("SELECT count(*) FROM events WHERE kind = 'exported'") == 1


def test_an_unknown_case_is_a_clear_error(dep: Deployment, tmp_path: Path) -> None:
    result = dep.command(["case", "export", "C-999999", "--out", str(tmp_path / "x.zip")], "",
                         check=False)
    assert result.returncode == 1
    assert "error: no case C-999999" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.zip").exists()


def test_a_missing_blob_fails_the_export_and_leaves_no_file(dep: Deployment,
                                                            builder: CaseBuilder,
                                                            tmp_path: Path) -> None:
    raw = make_mail("x", "y", message_id="<gone@b>")
    builder.message(builder.case("C-000003"), raw)
    builder.store.path_for(sha256(raw)).unlink()
    result = dep.command(["case", "export", "C-000003", "--out", str(tmp_path / "x.zip")], "",
                         check=False)
    assert result.returncode == 1
    assert "missing" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.zip").exists()
    assert dep.scalar("SELECT count(*) FROM events WHERE kind = 'exported'") == 0


def test_a_damaged_blob_is_refused(dep: Deployment, builder: CaseBuilder,
                                   tmp_path: Path) -> None:
    raw = make_mail("x", "y", message_id="<bad@b>")
    builder.message(builder.case("C-000004"), raw)
    blob = builder.store.path_for(sha256(raw))
    blob.write_bytes(raw.replace(b"y", b"z"))
    result = dep.command(["case", "export", "C-000004", "--out", str(tmp_path / "x.zip")], "",
                         check=False)
    assert result.returncode == 1 and "damaged" in result.stderr
    assert not (tmp_path / "x.zip").exists()


def test_linked_cases_are_listed_and_included_on_request(dep: Deployment, builder: CaseBuilder,
                                                         tmp_path: Path) -> None:
    for reference, parent, kind in [("C-000010", None, None), ("C-000011", "C-000010", "appeal"),
                                    ("C-000012", "C-000011", "follow-up")]:
        case_id = builder.case(reference, parent=parent, link_kind=kind)
        builder.message(case_id, make_mail(reference, "正文", message_id=f"<{reference}@x>"),
                        attachments=[(f"{reference}.txt", "text/plain", reference.encode())])

    listed_only = export(dep, "C-000010", tmp_path / "listed.zip")
    data = manifest(listed_only)
    assert [(c["reference"], c["parent"], c["link_kind"], c["included"])
            for c in data["linked"]] == [("C-000011", "C-000010", "appeal", False),
                                         ("C-000012", "C-000011", "follow-up", False)]
    with zipfile.ZipFile(listed_only) as zf:
        assert not [n for n in zf.namelist() if n.startswith("linked/")]
        assert "C-000011" in zf.read("timeline.html").decode()

    # From the middle of the chain, both neighbours are found.
    middle = manifest(export(dep, "C-000011", tmp_path / "middle.zip"))
    assert [c["reference"] for c in middle["linked"]] == ["C-000010", "C-000012"]

    included = export(dep, "C-000010", tmp_path / "all.zip", "--include-linked")
    with zipfile.ZipFile(included) as zf:
        names = set(zf.namelist())
        for reference in ("C-000011", "C-000012"):
            assert f"linked/{reference}/timeline.json" in names
            assert f"linked/{reference}/timeline.html" in names
            [mail] = [n for n in names if n.startswith(f"linked/{reference}/mails/")]
            assert reference.encode() in zf.read(mail)
            [att] = [n for n in names if n.startswith(f"linked/{reference}/attachments/")]
            assert zf.read(att) == reference.encode()
            assert json.loads(zf.read(f"linked/{reference}/timeline.json"))["case"][
                "reference"] == reference
    assert [c["reference"] for c in manifest(included)["cases"]] == [
        "C-000010", "C-000011", "C-000012"]
    assert verify(dep, included)[0] == 0
    events = dep.command(["case", "show", "C-000010", "--json"], "").stdout
    assert '"linked": [\n        "C-000011",\n        "C-000012"\n      ]' in events


def test_a_case_at_the_same_instant_keeps_messages_before_outbox(dep: Deployment,
                                                                 builder: CaseBuilder,
                                                                 tmp_path: Path) -> None:
    case_id = builder.case("C-000020")
    mail = make_mail("x", "y", message_id="<m@x>")
    ack = make_mail("ack", "y", message_id="<ack@x>")
    builder.outbox(case_id, ack, "<ack@x>", at=T0)
    builder.message(case_id, mail, at=T0)
    with zipfile.ZipFile(export(dep, "C-000020", tmp_path / "x.zip")) as zf:
        mails = sorted(n for n in zf.namelist() if n.startswith("mails/"))
        assert [zf.read(n) for n in mails] == [mail, ack]

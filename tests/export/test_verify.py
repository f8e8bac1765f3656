"""`complaints case verify`: an intact bundle passes; any changed, removed or added file fails."""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.deployment import Deployment
from tests.export.helpers import CaseBuilder, export, make_mail, sqlite_deployment, verify


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, Path]]:
    root = tmp_path_factory.mktemp("verify")
    dep = sqlite_deployment(root)
    builder = CaseBuilder(dep)
    case_id = builder.case("C-000100")
    builder.message(case_id, make_mail("宽带", "断网", message_id="<v1@x>"),
                    attachments=[("合同.pdf", "application/pdf", b"%PDF-1.4 " + b"x" * 5000),
                                 ("录音说明.txt", "text/plain", "说明".encode() * 500)])
    builder.close()
    yield dep, export(dep, "C-000100", root / "bundle.zip")
    dep.close()


def _rewrite(source: Path, target: Path,
             change: Callable[[str, bytes], bytes | None]) -> None:
    """Copy a ZIP entry by entry; `change` returns new content, or None to drop the entry."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            content = change(info.filename, old.read(info))
            if content is not None:
                new.writestr(info, content)


def _first(bundle: Path, prefix: str) -> str:
    with zipfile.ZipFile(bundle) as zf:
        return next(n for n in zf.namelist() if n.startswith(prefix))


def test_an_untouched_bundle_is_intact(exported: tuple[Deployment, Path]) -> None:
    dep, bundle = exported
    code, output = verify(dep, bundle)
    assert code == 0, output
    assert "intact: 5 files match the manifest" in output
    assert "C-000100" in output and "by tester" in output


def test_one_changed_byte_in_a_mail_is_reported(exported: tuple[Deployment, Path],
                                                tmp_path: Path) -> None:
    dep, bundle = exported
    mail = _first(bundle, "mails/")
    changed = tmp_path / "changed.zip"

    def flip(name: str, data: bytes) -> bytes:
        if name != mail:
            return data
        return data[:100] + bytes([data[100] ^ 0x01]) + data[101:]

    _rewrite(bundle, changed, flip)
    code, output = verify(dep, changed)
    assert code == 1
    assert f"ALTERED: {mail}: SHA-256 is" in output
    assert "NOT INTACT: 1 problem(s)" in output


def test_a_changed_byte_in_the_zip_itself_is_reported(exported: tuple[Deployment, Path],
                                                      tmp_path: Path) -> None:
    """A byte flipped inside the stored (uncompressed) PDF, without fixing the ZIP's CRC."""
    dep, bundle = exported
    damaged = tmp_path / "damaged.zip"
    shutil.copy(bundle, damaged)
    data = bytearray(damaged.read_bytes())
    at = data.index(b"%PDF-1.4 ") + 50
    data[at] ^= 0x01
    damaged.write_bytes(bytes(data))
    code, output = verify(dep, damaged)
    assert code == 1
    assert "ALTERED: attachments/001-" in output and ".pdf" in output


def test_a_removed_file_is_reported(exported: tuple[Deployment, Path], tmp_path: Path) -> None:
    dep, bundle = exported
    gone = _first(bundle, "attachments/")
    removed = tmp_path / "removed.zip"
    _rewrite(bundle, removed, lambda name, data: None if name == gone else data)
    code, output = verify(dep, removed)
    assert code == 1
    assert f"MISSING: {gone}: listed in the manifest, not in the ZIP" in output


def test_an_added_file_is_reported(exported: tuple[Deployment, Path], tmp_path: Path) -> None:
    dep, bundle = exported
    added = tmp_path / "added.zip"
    shutil.copy(bundle, added)
    with zipfile.ZipFile(added, "a") as zf:
        zf.writestr("attachments/extra-evidence.txt", "planted")
    code, output = verify(dep, added)
    assert code == 1
    assert "ADDED: attachments/extra-evidence.txt: in the ZIP, not listed in the manifest" in output


def test_a_rewritten_manifest_does_not_match_its_hash(exported: tuple[Deployment, Path],
                                                      tmp_path: Path) -> None:
    dep, bundle = exported
    forged = tmp_path / "forged.zip"
    _rewrite(bundle, forged, lambda name, data: data.replace(b'"tester"', b'"someone"')
             if name == "manifest.json" else data)
    code, output = verify(dep, forged)
    assert code == 1
    assert "ALTERED: manifest.json: SHA-256 is" in output


def test_a_missing_manifest_hash_is_reported(exported: tuple[Deployment, Path],
                                             tmp_path: Path) -> None:
    dep, bundle = exported
    stripped = tmp_path / "stripped.zip"
    _rewrite(bundle, stripped, lambda name, data: None if name == "manifest.sha256" else data)
    code, output = verify(dep, stripped)
    assert code == 1 and "MISSING: manifest.sha256" in output


def test_not_a_zip_and_no_manifest_are_clear_errors(exported: tuple[Deployment, Path],
                                                    tmp_path: Path) -> None:
    dep, _ = exported
    text = tmp_path / "notes.zip"
    text.write_text("not a zip")
    code, output = verify(dep, text)
    assert code == 1 and "error:" in output and "not a readable ZIP file" in output

    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("hello.txt", "hi")
    code, output = verify(dep, plain)
    assert code == 1 and "has no manifest.json: not a case dossier" in output

    code, output = verify(dep, tmp_path / "absent.zip")
    assert code == 1 and "no such file" in output


def test_a_second_copy_of_a_file_under_the_same_name_is_reported(
        exported: tuple[Deployment, Path], tmp_path: Path) -> None:
    dep, bundle = exported
    mail = _first(bundle, "mails/")
    doubled = tmp_path / "doubled.zip"
    shutil.copy(bundle, doubled)
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(doubled, "a") as zf:
        zf.writestr(mail, b"From: someone else\r\n\r\nreplaced\r\n")
    code, output = verify(dep, doubled)
    assert code == 1
    assert f"DUPLICATE: {mail}: appears more than once in the ZIP" in output

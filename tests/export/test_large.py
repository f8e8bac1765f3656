"""A case with 200 MB of attachments exports and verifies with flat memory.

This is a memory bound, not a timing test: the export runs in a child of a small wrapper, and
the wrapper reports its children's peak resident set size (ru_maxrss) when the child ends.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deployment import Deployment
from tests.export.helpers import T0, make_mail, sqlite_deployment

MB = 1 << 20
PART_MB = 100  # two attachments: one deflated (audio/wav), one stored (video/mp4)
PEAK_LIMIT_MB = 120

_MEASURE = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _peak_mb(dep: Deployment, args: list[str]) -> tuple[int, float]:
    """Exit status and peak RSS in MB of `complaints <args>` run as a separate process."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "processor",
                          *args], env=dep.env(""), capture_output=True, text=True, check=True,
                         timeout=600).stdout.split()
    return int(out[0]), int(out[1]) / 1024  # ru_maxrss is in KiB on Linux


def _write_blob(root: Path, seed: int) -> tuple[str, int]:
    """PART_MB of incompressible bytes straight into the blob store, never whole in memory,
    by the older two-level layout (`ab/cd/<sha>`), which the store still reads."""
    block = bytearray(os.urandom(MB))
    digest = hashlib.sha256()
    tmp = root / f".large-{seed}"
    with open(tmp, "wb") as handle:
        for n in range(PART_MB):
            block[:8] = (seed * 1000 + n).to_bytes(8, "big")
            digest.update(block)
            handle.write(block)
    sha = digest.hexdigest()
    target = root / sha[:2] / sha[2:4] / sha
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(target)
    return sha, PART_MB * MB


@pytest.fixture
def large_case(tmp_path: Path) -> Iterator[Deployment]:
    from processor.blobstore import BlobStore
    from processor.db import open_database, session_scope
    from processor.db.models import Attachment, Case, Message

    dep = sqlite_deployment(tmp_path)
    blobs = tmp_path / "data" / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    parts = [("通话录音.wav", "audio/wav", *_write_blob(blobs, 1)),
             ("营业厅监控.mp4", "video/mp4", *_write_blob(blobs, 2))]
    raw = make_mail("录音和视频证据", "见附件。", message_id="<large@example.cn>")
    engine = open_database(dep.db_url)
    store = BlobStore(blobs)
    with session_scope(engine) as session:
        case = Case(reference="C-000500", mailbox="complaints", complainant_address="a@b.cn",
                    subject="录音和视频证据", opened_at=T0, updated_at=T0)
        message = Message(case=case, dedup_key="large", direction="in", author_role="complainant",
                          message_id="<large@example.cn>", received_at=T0, size=len(raw),
                          raw_sha256=store.put(raw))
        message.attachments = [Attachment(filename=name, stored_name=sha, sha256=sha, size=size,
                                          content_type=ctype) for name, ctype, sha, size in parts]
        session.add_all([case, message])
        store.sync()
    engine.dispose()
    try:
        yield dep
    finally:
        dep.close()
        for path in blobs.rglob("*"):
            if path.is_file() and path.stat().st_size > MB:
                path.unlink()


def test_200_mb_of_attachments_export_and_verify_with_flat_memory(large_case: Deployment,
                                                                   tmp_path: Path) -> None:
    bundle = tmp_path / "large.zip"
    try:
        _, baseline = _peak_mb(large_case, ["case", "show", "C-000500"])
        code, export_peak = _peak_mb(large_case, ["case", "export", "C-000500", "--out",
                                                  str(bundle)])
        assert code == 0
        verify_code, verify_peak = _peak_mb(large_case, ["case", "verify", str(bundle)])
        assert verify_code == 0
        print(f"\npeak RSS: case show {baseline:.0f} MB, export {export_peak:.0f} MB, "
              f"verify {verify_peak:.0f} MB for {2 * PART_MB} MB of attachments")
        assert export_peak < PEAK_LIMIT_MB, export_peak
        assert verify_peak < PEAK_LIMIT_MB, verify_peak

        with zipfile.ZipFile(bundle) as zf:
            files = json.loads(zf.read("manifest.json"))["files"]
            infos = {i.filename: i for i in zf.infolist()}
        sizes = sorted((f["filename"], f["size"]) for f in files if f["kind"] == "attachment")
        assert sizes == [("营业厅监控.mp4", PART_MB * MB), ("通话录音.wav", PART_MB * MB)]
        stored = {f["filename"]: infos[f["path"]].compress_type for f in files
                  if f["kind"] == "attachment"}
        assert stored == {"营业厅监控.mp4": zipfile.ZIP_STORED,
                          "通话录音.wav": zipfile.ZIP_DEFLATED}
    finally:
        bundle.unlink(missing_ok=True)

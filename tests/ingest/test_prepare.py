"""Parsing and classifying a batch in worker processes gives exactly what doing it here gives."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import hashlib
import operator
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

import pytest

from processor.ack import AckRequest
from processor.blobstore import BlobStore, StagedFile
from processor.classify import Classification, RuleSet, RulesHolder, builtin_rules_dir
from processor.compose import ack_context
from processor.composing import Composed, NotComposed, compose
from processor.imap import FetchedMail
from processor.mail import Attachment, ParsedMessage, ParseLimits, body, parse_message
from processor.prepare import (
    MIN_PARALLEL_MAILS,
    PIPE_BYTES,
    PREPARE_HERE_BYTES,
    Preparer,
    Recipients,
    _detach_raw,
    _prepare_chunk,
    _share_raw,
)
from processor.render import TemplateRenderer
from tests.mailgen import make_mails

RECIPIENTS = Recipients(frozenset({"complaints@example.com"}), "complaints@example.com")


def _with_large_attachment(payload: bytes = bytes(range(256)) * 600) -> bytes:
    # 150 KiB by default: decoded again on demand, not kept
    encoded = base64.encodebytes(payload).decode("ascii").replace("\n", "\r\n")
    return ("From: a@customer.example\r\nTo: complaints@example.com\r\nSubject: log\r\n"
            "Message-ID: <big@customer.example>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nThe log is attached.\r\n--b\r\n"
            'Content-Type: application/octet-stream; name="call.log"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n" + encoded + "\r\n--b--\r\n").encode()


@pytest.fixture
def batch() -> list[FetchedMail]:
    raws = [*make_mails(MIN_PARALLEL_MAILS * 2), _with_large_attachment()]
    return [FetchedMail(uid, raw, len(raw)) for uid, raw in enumerate(raws, 1)]


@pytest.fixture
def preparer():  # type: ignore[no-untyped-def]
    preparer = Preparer(2)
    yield preparer
    preparer.close()


def test_worker_processes_prepare_exactly_what_this_process_would(
        batch: list[FetchedMail], preparer: Preparer) -> None:
    rules = RulesHolder([builtin_rules_dir()]).current
    here = Preparer(0).submit(batch, ParseLimits(), rules, RECIPIENTS).result()
    there = preparer.submit(batch, ParseLimits(), rules, RECIPIENTS)
    assert there._futures, "the batch was not sent to the worker processes"
    prepared = there.result()
    assert [p.mail.uid for p in prepared] == [m.uid for m in batch]
    assert [(p.message, p.key, p.classification) for p in prepared] == \
        [(p.message, p.key, p.classification) for p in here]
    assert all(p.classification is not None for p in prepared)
    big = prepared[-1].message
    assert not isinstance(big, BaseException)
    assert big.attachments[0].payload == bytes(range(256)) * 600
    # Its lazy attachment decodes from our copy of the mail, not a second one sent back.
    assert big.attachments[0].source.args[0] is batch[-1].raw  # type: ignore[union-attr]


@pytest.mark.parametrize("keep_decoded", [False, True])
def test_a_mail_comes_back_from_a_worker_without_its_raw_bytes(keep_decoded: bool) -> None:
    raw = _with_large_attachment()
    message = parse_message(raw, keep_decoded=keep_decoded)  # kept where a worker stages it
    sent_back = pickle.dumps(_detach_raw(message, raw))
    assert len(pickle.dumps(message)) > len(raw) > 10 * len(sent_back)
    received = _share_raw(pickle.loads(sent_back), raw)
    assert not isinstance(received, BaseException)
    assert received.attachments[0].payload == bytes(range(256)) * 600


def test_a_worker_writes_an_attachment_from_the_bytes_it_decoded_to_hash_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = bytes(range(256)) * 600
    raw = _with_large_attachment(payload)
    decoded_parts: list[str] = []
    def counting(real: Any) -> Any:
        def decode(raw: bytes, part: Any, *args: Any, **kwargs: Any) -> Any:
            decoded_parts.append(part.content_type)
            return real(raw, part, *args, **kwargs)
        return decode

    for name in ("transfer_decode", "transfer_decode_pieces"):
        monkeypatch.setattr(body, name, counting(getattr(body, name)))
    [(message, _key, _classification, staged, _raw_sha256)] = _prepare_chunk(
        [raw], ParseLimits(), None, RECIPIENTS, str(tmp_path / "blobs"))
    assert decoded_parts.count("application/octet-stream") == 1
    files = {item.sha256: Path(item.path).read_bytes() for item in staged}
    assert files[hashlib.sha256(payload).hexdigest()] == payload
    # What goes back does not hold the decoded bytes (nor the raw ones: the test above).
    assert not isinstance(message, BaseException)
    assert message.attachments[0].decoded is None


def test_a_small_batch_is_prepared_here(batch: list[FetchedMail], preparer: Preparer) -> None:
    prepared = preparer.submit(batch[:MIN_PARALLEL_MAILS - 1], ParseLimits(), None, RECIPIENTS)
    assert not prepared._futures
    assert len(prepared.result()) == MIN_PARALLEL_MAILS - 1


def test_only_a_mail_over_the_limit_is_prepared_here(tmp_path: Path,
                                                    preparer: Preparer) -> None:
    """A few large mails prepared in the filing process took a sixth of its time; only one
    too large to hold twice (PREPARE_HERE_BYTES) stays here. What a worker prepared comes
    with its digest, computed there."""
    scan = bytes(range(256)) * (3 * 1024 * 1024 // 256)
    raws = [*make_mails(MIN_PARALLEL_MAILS), _with_large_attachment(scan),
            _with_large_attachment(scan * 3)]
    assert len(raws[-2]) < PREPARE_HERE_BYTES < len(raws[-1])
    batch = [FetchedMail(uid, raw, len(raw)) for uid, raw in enumerate(raws, 1)]
    store = BlobStore(tmp_path / "blobs")
    prepared = preparer.submit(batch, ParseLimits(), None, RECIPIENTS, store).result()
    assert [p.raw_sha256 is not None for p in prepared] == [True] * (len(raws) - 1) + [False]
    assert prepared[-2].raw_sha256 == hashlib.sha256(raws[-2]).hexdigest()
    shipped, here = prepared[-2].message, prepared[-1].message
    assert not isinstance(shipped, BaseException) and not isinstance(here, BaseException)
    assert shipped.attachments[0].payload == scan and here.attachments[0].size == 3 * len(scan)
    store.discard()


def test_a_worker_process_that_dies_loses_nothing(batch: list[FetchedMail],
                                                  preparer: Preparer) -> None:
    """The one fault no real server shows on cue: a worker process killed (OOM) mid-batch."""
    preparer.submit(batch, ParseLimits(), None, RECIPIENTS).result()  # the pool is up
    for pid in list(preparer._pool_of.executor._processes):  # type: ignore[union-attr]
        os.kill(pid, signal.SIGKILL)
    prepared = preparer.submit(batch, ParseLimits(), None, RECIPIENTS).result()
    assert [p.key for p in prepared] == \
        [p.key for p in Preparer(0).submit(batch, ParseLimits(), None, RECIPIENTS).result()]
    assert all(p.key for p in prepared)


def test_files_written_by_the_workers_are_adopted_or_removed(
        batch: list[FetchedMail], preparer: Preparer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = BlobStore(tmp_path / "blobs")
    submitted = preparer.submit(batch, ParseLimits(), None, RECIPIENTS, store)
    prepared = submitted.result()
    staged = list((tmp_path / "blobs").rglob(".tmp-*"))
    # A temporary file is named .tmp-PID-THREAD-N by the process that wrote it. (Compared as
    # a field: the test's pid as a substring also turns up in the workers' pids and threads.)
    assert staged and all(p.name.split("-")[1] != str(os.getpid()) for p in staged), \
        "the workers did not write the files"
    submitted.cancel()  # too late: the files are the store's now, to sync or to discard
    assert sorted((tmp_path / "blobs").rglob(".tmp-*")) == sorted(staged)
    big = prepared[-1].message
    assert not isinstance(big, BaseException)
    # Filing puts them again: nothing is written twice, and sync puts every one in place.
    for mail in batch:
        store.put(mail.raw)
    store.put_stream(big.attachments[0].chunks(), big.attachments[0].sha256,
                     big.attachments[0].size)
    assert sorted(store._pending.values()) == sorted(map(str, staged))
    store.sync()
    assert not list((tmp_path / "blobs").rglob(".tmp-*"))
    assert all(store.get(hashlib.sha256(m.raw).hexdigest()) == m.raw for m in batch)
    assert store.get(big.attachments[0].sha256) == bytes(range(256)) * 600

    # A batch that will not be filed (the service stops) leaves no file behind.
    other = [FetchedMail(m.uid, m.raw + b"\r\nmore\r\n", m.size + 8) for m in batch]
    cancelled = preparer.submit(other, ParseLimits(), None, RECIPIENTS, store)
    cancelled.cancel()
    for future in cancelled._futures.values():
        with contextlib.suppress(Exception):
            future.result()
    preparer.close()  # waits for the callbacks that remove them
    assert not list((tmp_path / "blobs").rglob(".tmp-*"))


def _dataclasses_in(value: object, found: set[type] | None = None) -> set[type]:
    found = set() if found is None else found
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        found.add(type(value))
        for field in dataclasses.fields(value):
            _dataclasses_in(getattr(value, field.name), found)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _dataclasses_in(item, found)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _dataclasses_in(key, found)
            _dataclasses_in(item, found)
    return found


def test_what_crosses_between_the_processes_travels_as_its_fields(
        batch: list[FetchedMail], tmp_path: Path) -> None:
    """Every dataclass in what goes to a worker process and comes back (a batch prepared, its
    files staged, the rule set it was prepared under, an acknowledgement to compose and the
    composed mail) is pickled by crosses_processes, not by the per-object field look-ups of
    dataclasses' own way; and arrives equal."""
    rules = RulesHolder([builtin_rules_dir()]).current
    store = BlobStore(tmp_path / "blobs")
    outcomes = _prepare_chunk([mail.raw for mail in batch], ParseLimits(), rules, RECIPIENTS,
                              str(store.root))
    request = _ack_request(parse_message(batch[0].raw))
    composed = compose(request, TemplateRenderer.with_override(None), store)
    sent = (outcomes, rules, ParseLimits(), RECIPIENTS, request, composed,
            NotComposed("InvalidAddress", "no"))
    found = _dataclasses_in(sent)
    assert {StagedFile, Attachment, RuleSet, Classification, AckRequest, Composed} <= found
    assert found <= set(ForkingPickler._extra_reducers)
    assert pickle.loads(ForkingPickler.dumps(sent)) == sent


def _ack_request(original: ParsedMessage) -> AckRequest:
    assert original.from_ is not None
    return AckRequest(
        template="ack-default", language="en",
        context=ack_context(case_ref="C-000001", subject=original.subject,
                            category_label="Service", first_answer_by="2026-12-01 09:00",
                            sla_hours=48, missing=["times"]),
        case_ref="C-000001", tag_format="[{ref}]", original=original,
        from_address="complaints@example.com", to=original.from_,
        message_id="<ack-1.test@desk.example.com>", loop_header_name="X-Loop",
        loop_header_value="test-desk", date=datetime(2026, 11, 29, tzinfo=UTC),
        max_subject_chars=120)


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="pipe sizes are Linux's")
def test_the_pipes_to_and_from_the_preparing_processes_hold_a_mebibyte() -> None:
    """At 64 KiB a chunk of mails crossed in dozens of writes, each waiting for the
    interpreter lock (processor.prepare.widen_pipes)."""
    preparer = Preparer(1)
    try:
        done = preparer.call(operator.add, 2, 3)
        assert done is not None and done.result(timeout=60) == 5
        executor = preparer._pool().executor
        for end in (executor._call_queue._writer,  # type: ignore[attr-defined]
                    executor._result_queue._writer):  # type: ignore[attr-defined]
            assert fcntl.fcntl(end.fileno(), fcntl.F_GETPIPE_SZ) == PIPE_BYTES
    finally:
        preparer.close()


_CHILDREN_AFTER_OPENING = """
import os, sys, time
from processor.config import load_settings
from processor.runtime import open_runtime
runtime = open_runtime(load_settings(sys.argv[1]), require_current_schema=False,
                       worker=sys.argv[2] == "worker")
children = open(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read().split()
own = open("/proc/self/cmdline", "rb").read()
for pid in children:
    # A child just started may not have run its program yet: its command line is then empty,
    # or ours. Wait for it to (a few milliseconds; a minute at most).
    deadline = time.monotonic() + 60
    cmdline = b""
    while time.monotonic() < deadline:
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
        if cmdline and cmdline != own:
            break
        time.sleep(0.01)
    print(cmdline.replace(b"\\0", b" ").decode())
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc")
def test_a_polling_process_starts_its_workers_server_before_any_batch(tmp_path: Path) -> None:
    """Started while the process gets ready, not when its first batch is fetched: the server
    loads the parsing code, which the first batch would otherwise wait for."""
    config = tmp_path / "complaints.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "d.sqlite3"}"\n'
                      f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
                      "[processing]\nparse_processes = 1\n", encoding="utf-8")

    def children(kind: str) -> str:
        return subprocess.run([sys.executable, "-c", _CHILDREN_AFTER_OPENING, str(config), kind],
                              capture_output=True, text=True, check=True, timeout=60).stdout

    assert "multiprocessing.forkserver" in children("worker")
    assert "processor.prepare" in children("worker")  # what it loads before forking
    assert children("reader") == ""  # a command that only reads starts nothing
    config.write_text(config.read_text().replace("parse_processes = 1", "parse_processes = 0"))
    assert children("worker") == ""  # nor one told to prepare mail itself


def test_a_server_that_cannot_start_early_is_started_when_there_is_work(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting early is never fatal: the pool starts its server with its first work. (The
    failure is injected: no real machine here refuses to start a process on demand.)"""
    import multiprocessing.forkserver

    def refuse() -> None:
        raise RuntimeError("cannot start a process now")

    preparer = Preparer(1)
    try:
        monkeypatch.setattr(multiprocessing.forkserver, "ensure_running", refuse)
        preparer.start_early()  # says so at debug level, and goes on
        monkeypatch.undo()
        future = preparer.call(operator.add, 2, 3)
        assert future is not None and future.result(timeout=60) == 5
    finally:
        preparer.close()


def test_a_process_has_the_next_chunk_waiting_and_urgent_work_goes_before_the_rest(
        tmp_path: Path) -> None:
    preparer = Preparer(1)
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    try:
        pool = preparer._pool()
        running = pool.submit(False, gate.read_bytes)  # blocks until the gate is written
        waiting = pool.submit(False, time.monotonic_ns)  # the next batch's first chunk
        later = pool.submit(False, time.monotonic_ns)  # and its second
        urgent = preparer.call(time.monotonic_ns)  # an acknowledgement, say
        assert urgent is not None
        with gate.open("wb") as writer:  # opening waits for the worker to be reading it
            writer.write(b"go")
        assert running.result(timeout=60) == b"go"
        # The chunk behind the running one was in the pool already, so the process went on
        # with it at once; the urgent call went in before the rest of the later work.
        assert waiting.result(timeout=60) < urgent.result(timeout=60) < later.result(timeout=60)
    finally:
        preparer.close()

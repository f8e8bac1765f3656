"""Parsing and classifying a batch in worker processes gives exactly what doing it here gives."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import pickle
import signal

import pytest

from processor.blobstore import BlobStore
from processor.classify import RulesHolder, builtin_rules_dir
from processor.imap import FetchedMail
from processor.mail import ParseLimits, parse_message
from processor.prepare import (
    MIN_PARALLEL_MAILS,
    Preparer,
    Recipients,
    _detach_raw,
    _share_raw,
)
from tests.mailgen import make_mails

RECIPIENTS = Recipients(frozenset({"complaints@example.com"}), "complaints@example.com")


def _with_large_attachment() -> bytes:
    payload = bytes(range(256)) * 600  # 150 KiB: decoded again on demand, not kept
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
    return [FetchedMail(uid, raw, len(raw), None) for uid, raw in enumerate(raws, 1)]


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


def test_a_mail_comes_back_from_a_worker_without_its_raw_bytes() -> None:
    raw = _with_large_attachment()
    message = parse_message(raw)
    sent_back = pickle.dumps(_detach_raw(message, raw))
    assert len(pickle.dumps(message)) > len(raw) > 10 * len(sent_back)
    received = _share_raw(pickle.loads(sent_back), raw)
    assert not isinstance(received, BaseException)
    assert received.attachments[0].payload == bytes(range(256)) * 600


def test_a_small_batch_is_prepared_here(batch: list[FetchedMail], preparer: Preparer) -> None:
    prepared = preparer.submit(batch[:MIN_PARALLEL_MAILS - 1], ParseLimits(), None, RECIPIENTS)
    assert not prepared._futures
    assert len(prepared.result()) == MIN_PARALLEL_MAILS - 1


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
    assert staged and all(str(os.getpid()) not in p.name for p in staged), \
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
    other = [FetchedMail(m.uid, m.raw + b"\r\nmore\r\n", m.size + 8, None) for m in batch]
    cancelled = preparer.submit(other, ParseLimits(), None, RECIPIENTS, store)
    cancelled.cancel()
    for future in cancelled._futures.values():
        with contextlib.suppress(Exception):
            future.result()
    preparer.close()  # waits for the callbacks that remove them
    assert not list((tmp_path / "blobs").rglob(".tmp-*"))

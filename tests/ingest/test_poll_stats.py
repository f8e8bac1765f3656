"""A poll's statistics are counters: what they hold does not grow with the backlog, however
many mails one poll files."""

from __future__ import annotations

import pickle

from processor.pipeline import MailOutcome
from processor.poller import PollStats


def _after(mails: int) -> PollStats:
    stats = PollStats("desk")
    for uid in range(1, mails + 1):
        stats.count(MailOutcome(uid, "stored", f"C-{uid:06d}"))
    stats.count(MailOutcome(mails + 1, "duplicate", "C-000001"))
    stats.count(MailOutcome(mails + 2, "quarantined", reason="unreadable"))
    return stats


def test_counts_each_outcome() -> None:
    stats = _after(3)
    assert (stats.fetched, stats.stored, stats.duplicates, stats.quarantined) == (5, 3, 1, 1)


def test_holds_nothing_per_mail() -> None:
    small, large = _after(10), _after(50_000)
    assert large.stored == 50_000
    # Only the numbers differ: no list of references, UIDs or outcomes comes along.
    assert len(pickle.dumps(large)) - len(pickle.dumps(small)) < 16

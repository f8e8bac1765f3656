"""The period: the configured hour, local time, elapsed hours across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from processor.digest import parse_period_length, period_ending, today_in
from processor.errors import ComplaintsError, ConfigError

DAY = timedelta(hours=24)


def test_shanghai_eight_oclock_is_midnight_utc() -> None:
    period = period_ending(date(2026, 11, 28), 8, "Asia/Shanghai", DAY)
    assert period.end == datetime(2026, 11, 28, tzinfo=UTC)
    assert period.start == datetime(2026, 11, 27, tzinfo=UTC)


def test_a_daylight_saving_day_counts_elapsed_hours() -> None:
    """New York springs forward on 8 March 2026: 24 h back from 08:00 EDT is 07:00 EST."""
    period = period_ending(date(2026, 3, 8), 8, "America/New_York", DAY)
    assert period.end == datetime(2026, 3, 8, 12, tzinfo=UTC)
    assert period.start == datetime(2026, 3, 7, 12, tzinfo=UTC)
    assert period.local(period.start).hour == 7


def test_today_is_taken_in_the_digest_zone() -> None:
    # 20:00 UTC on the 27th is already the 28th in Shanghai.
    assert today_in("Asia/Shanghai", datetime(2026, 11, 27, 20, tzinfo=UTC)) == date(2026, 11, 28)
    assert today_in("Europe/London", datetime(2026, 11, 27, 20, tzinfo=UTC)) == date(2026, 11, 27)


@pytest.mark.parametrize(("text", "length"), [("24h", DAY), ("7d", timedelta(days=7)),
                                              (" 12h ", timedelta(hours=12))])
def test_period_lengths(text: str, length: timedelta) -> None:
    assert parse_period_length(text) == length


@pytest.mark.parametrize("text", ["", "0h", "24", "1w", "-3h", "h"])
def test_bad_period_lengths_are_refused(text: str) -> None:
    with pytest.raises(ComplaintsError, match="not a period length"):
        parse_period_length(text)


def test_unknown_zone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="digest.timezone"):
        period_ending(date(2026, 11, 28), 8, "Mars/Olympus", DAY)

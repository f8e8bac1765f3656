"""What every command needs: the settings from the context, and a runtime built from them."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from processor.config import Settings, load_settings
from processor.runtime import Runtime, open_runtime


def settings_from(ctx: click.Context) -> Settings:
    root = ctx.find_root()
    cached = root.meta.get("complaints.settings")
    if cached is None:
        cached = load_settings((root.obj or {}).get("config_path"))
        root.meta["complaints.settings"] = cached
    return cached


def runtime_from(ctx: click.Context, *, with_rules: bool = False,
                 worker: bool = False) -> Runtime:
    return open_runtime(settings_from(ctx), with_rules=with_rules, worker=worker)


def parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD or an ISO time") \
            from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def local_time(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else "-"

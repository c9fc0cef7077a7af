"""Offset/limit paging with the `limit + 1` look-ahead (CONTRACT §5)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from spooled_backend.core.errors import ValidationFailed

T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int

    @property
    def fetch(self) -> int:
        """Rows to ask the database for: one more than shown, to learn whether more exist."""
        return self.limit + 1


MAX_OFFSET = 2**31 - 1


def clamp_page(limit: int | None, offset: int | None, *, default: int, maximum: int) -> Page:
    """Clamp `limit` into 1..maximum (default when absent; any integer is accepted, CONTRACT §5).
    `offset` must be 0..MAX_OFFSET: negative or larger → 400 VALIDATION_ERROR (code `range`)."""
    if offset is not None and not 0 <= offset <= MAX_OFFSET:
        raise ValidationFailed("offset", f"must be between 0 and {MAX_OFFSET}", "range")
    lim = default if limit is None else max(1, min(limit, maximum))
    return Page(limit=lim, offset=offset or 0)


def split_page(rows: Sequence[T], page: Page) -> tuple[list[T], bool]:
    """(rows to return, has_more)."""
    return list(rows[: page.limit]), len(rows) > page.limit


def has_more_header(has_more: bool) -> dict[str, str]:
    return {"X-Has-More": "true" if has_more else "false"}

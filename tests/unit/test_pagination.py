"""Offset/limit paging with the `limit + 1` look-ahead (CONTRACT §5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spooled_backend.core.errors import ValidationFailed
from spooled_backend.core.pagination import MAX_OFFSET, Page, clamp_page, has_more_header, split_page


@given(st.one_of(st.none(), st.integers(-(2**80), 2**80)), st.integers(1, 500), st.integers(1, 500))
def test_clamp_page_limit_always_in_range(limit: int | None, default: int, maximum: int) -> None:
    default = min(default, maximum)
    page = clamp_page(limit, 0, default=default, maximum=maximum)
    assert 1 <= page.limit <= maximum
    if limit is None:
        assert page.limit == default
    elif 1 <= limit <= maximum:
        assert page.limit == limit
    assert page.fetch == page.limit + 1


@given(st.integers(-(2**80), 2**80))
def test_clamp_page_offset(offset: int) -> None:
    if 0 <= offset <= MAX_OFFSET:
        assert clamp_page(None, offset, default=50, maximum=100).offset == offset
    else:
        with pytest.raises(ValidationFailed) as exc:
            clamp_page(None, offset, default=50, maximum=100)
        assert exc.value.status == 400 and exc.value.details[0]["field"] == "offset"


def test_clamp_page_defaults() -> None:
    assert clamp_page(None, None, default=50, maximum=100) == Page(limit=50, offset=0)
    assert clamp_page(0, None, default=50, maximum=100).limit == 1
    assert clamp_page(1000, None, default=50, maximum=100).limit == 100


@given(st.integers(0, 300), st.integers(1, 100))
def test_split_page_has_more_iff_extra_row(total: int, limit: int) -> None:
    """Simulates the query: rows fetched are min(total, limit + 1)."""
    page = Page(limit=limit, offset=0)
    fetched = list(range(min(total, page.fetch)))
    shown, has_more = split_page(fetched, page)
    assert shown == list(range(min(total, limit)))
    assert has_more == (total > limit)


@given(st.integers(0, 250), st.integers(1, 40))
def test_walking_pages_visits_every_row_once(total: int, limit: int) -> None:
    rows = list(range(total))
    seen: list[int] = []
    offset = 0
    while True:
        page = clamp_page(limit, offset, default=50, maximum=100)
        shown, more = split_page(rows[page.offset : page.offset + page.fetch], page)
        seen += shown
        if not more:
            break
        offset += page.limit
    assert seen == rows


def test_has_more_header() -> None:
    assert has_more_header(True) == {"X-Has-More": "true"}
    assert has_more_header(False) == {"X-Has-More": "false"}

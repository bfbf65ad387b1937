"""Cursor pagination: validated page requests, opaque cursors, pages built from rows."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldsync.kit.errors import ValidationFailed
from fieldsync.kit.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Page,
    PageOut,
    PageRequest,
    decode_cursor,
    encode_cursor,
)

BIGINT_MAX = (1 << 63) - 1
keys = st.integers(min_value=0, max_value=BIGINT_MAX)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_defaults_to_the_default_limit_and_the_first_page() -> None:
    request = PageRequest.parse(None, None)
    assert request == PageRequest(after_id=None, limit=DEFAULT_LIMIT)


@pytest.mark.parametrize("limit", [1, 17, MAX_LIMIT])
def test_accepts_limits_within_range(limit: int) -> None:
    assert PageRequest.parse(None, limit).limit == limit


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1, 10_000])
def test_rejects_limits_out_of_range(limit: int) -> None:
    with pytest.raises(ValidationFailed) as caught:
        PageRequest.parse(None, limit)
    assert caught.value.status == 422
    assert caught.value.extensions["errors"][0]["loc"] == ["query", "limit"]


def test_a_custom_maximum_is_enforced() -> None:
    assert PageRequest.parse(None, 10, max_limit=10).limit == 10
    with pytest.raises(ValidationFailed, match="between 1 and 10"):
        PageRequest.parse(None, 11, max_limit=10)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "a",
        "%%%%",
        "not a cursor",
        b64(b"not-a-number"),
        b64(b"\xff\xfe\xfd"),  # not UTF-8
        b64(b"12.5"),
        b64(b"-1"),  # keys are never negative
        b64(b" 12"),  # only the exact digits encode_cursor writes
        b64(b"1_000"),
        b64(str(1 << 63).encode()),  # past the bigint range: the database would reject it
        b64(b"9" * 5000),
    ],
)
def test_rejects_garbage_cursors(cursor: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        PageRequest.parse(cursor, 10)
    assert caught.value.status == 422
    assert caught.value.extensions["errors"] == [
        {"loc": ["query", "cursor"], "msg": "invalid cursor"}
    ]


@given(key=keys)
def test_cursors_round_trip(key: int) -> None:
    cursor = encode_cursor(key)
    assert "=" not in cursor
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(cursor) == key
    assert PageRequest.parse(cursor, 5) == PageRequest(after_id=key, limit=5)


@settings(max_examples=300)
@given(
    cursor=st.one_of(
        st.text(), st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij0123456789-_=")
    )
)
def test_any_cursor_is_either_rejected_or_a_key_in_range(cursor: str) -> None:
    try:
        key = decode_cursor(cursor)
    except ValidationFailed:
        return
    assert 0 <= key <= BIGINT_MAX


@given(rows=st.lists(keys, max_size=30, unique=True).map(sorted), limit=st.integers(1, 30))
def test_page_from_rows_has_a_cursor_only_when_more_rows_exist(rows: list[int], limit: int) -> None:
    page = Page.from_rows(rows, limit, key=lambda row: row)
    if len(rows) > limit:
        assert page.items == rows[:limit]
        assert page.next_cursor is not None
        assert decode_cursor(page.next_cursor) == rows[limit - 1]
    else:
        assert page.items == rows
        assert page.next_cursor is None


def test_page_exactly_full_is_the_last_page() -> None:
    assert Page.from_rows([1, 2, 3], 3, key=lambda row: row).next_cursor is None
    assert Page.from_rows([1, 2, 3, 4], 3, key=lambda row: row) == Page(
        items=[1, 2, 3], next_cursor=encode_cursor(3)
    )
    assert Page.from_rows([], 3, key=lambda row: row) == Page(items=[], next_cursor=None)


def test_page_out_is_the_wire_shape() -> None:
    page = Page.from_rows([10, 20, 30], 2, key=lambda row: row)
    wire = PageOut[int](items=page.items, next_cursor=page.next_cursor).model_dump()
    assert wire == {"items": [10, 20], "next_cursor": encode_cursor(20)}

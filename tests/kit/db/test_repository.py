"""The repository base and the entity mixin on a real PostgreSQL, with a test-only entity."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import String, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fieldsync.kit.db.admin import drop_database, ensure_database
from fieldsync.kit.db.engine import Database, new_session
from fieldsync.kit.db.models import EntityMixin, service_metadata
from fieldsync.kit.db.repository import Repository
from fieldsync.kit.errors import Conflict
from fieldsync.kit.ids import SnowflakeGenerator, decompose
from fieldsync.kit.pagination import PageRequest, decode_cursor
from tests import servers

NODE_ID = 7


class WidgetBase(DeclarativeBase):
    metadata = service_metadata()


class Widget(EntityMixin, WidgetBase):
    __tablename__ = "widgets"

    name: Mapped[str] = mapped_column(String(100), unique=True)
    colour: Mapped[str] = mapped_column(String(20), default="red")


class WidgetRepository(Repository[Widget]):
    model = Widget


@pytest.fixture(scope="module")
async def database() -> AsyncIterator[Database]:
    """A fresh database holding only the widgets table."""
    await servers.require_postgres()
    url = servers.database_url_for("repository")
    assert await ensure_database(url)
    database = Database(url, name="widgets", pool_size=4)
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(WidgetBase.metadata.create_all)
        yield database
    finally:
        await database.dispose()
        await drop_database(url)


@pytest.fixture(scope="module")
def ids() -> SnowflakeGenerator:
    return SnowflakeGenerator(NODE_ID)


def unique_name(label: str) -> str:
    return f"{label}-{secrets.token_hex(6)}"


def repo(session: AsyncSession, ids: SnowflakeGenerator) -> WidgetRepository:
    return WidgetRepository(session, ids)


async def add_committed(database: Database, ids: SnowflakeGenerator, name: str) -> Widget:
    async with new_session(database) as session:
        widget = await repo(session, ids).add(Widget(name=name))
        await session.commit()
    return widget


async def test_add_assigns_id_uuid_timestamps_and_version(
    database: Database, ids: SnowflakeGenerator
) -> None:
    name = unique_name("add")
    async with new_session(database) as session:
        before = await session.scalar(select(func.now()))
        widget = await repo(session, ids).add(Widget(name=name))
        # Everything is known right after the flush, before any commit.
        assert isinstance(widget.id, int)
        assert decompose(widget.id).node_id == NODE_ID
        assert type(widget.uuid) is uuid.UUID
        assert widget.uuid.version == 7
        assert widget.version == 1
        assert widget.created_at is not None
        assert widget.created_at.tzinfo is not None
        assert widget.created_at == widget.updated_at == before
        assert widget.deleted_at is None
        assert not widget.is_deleted
        assert widget.colour == "red"
        await session.commit()

    async with new_session(database) as session:
        row = (
            await session.execute(
                text("SELECT id, uuid, version, created_at FROM widgets WHERE name = :name"),
                {"name": name},
            )
        ).one()
    assert tuple(row) == (widget.id, widget.uuid, 1, widget.created_at)


async def test_every_add_gets_a_new_increasing_id_and_uuid(
    database: Database, ids: SnowflakeGenerator
) -> None:
    async with new_session(database) as session:
        widgets = [await repo(session, ids).add(Widget(name=unique_name("many"))) for _ in range(5)]
        await session.commit()
    assert [w.id for w in widgets] == sorted({w.id for w in widgets})
    assert len({w.uuid for w in widgets}) == 5


async def test_update_with_the_current_version_bumps_it(
    database: Database, ids: SnowflakeGenerator
) -> None:
    created = await add_committed(database, ids, unique_name("update"))
    async with new_session(database) as session:
        widget = await repo(session, ids).get(created.id)
        assert widget is not None
        await repo(session, ids).update(widget, expected_version=1, colour="blue")
        assert widget.version == 2
        assert widget.updated_at > created.updated_at
        assert widget.created_at == created.created_at
        await session.commit()

    async with new_session(database) as session:
        reloaded = await repo(session, ids).get(created.id)
    assert reloaded is not None
    assert (reloaded.colour, reloaded.version) == ("blue", 2)
    assert reloaded.updated_at == widget.updated_at


async def test_update_with_a_stale_version_is_a_conflict(
    database: Database, ids: SnowflakeGenerator
) -> None:
    created = await add_committed(database, ids, unique_name("stale"))
    async with new_session(database) as session:
        widget = await repo(session, ids).get(created.id)
        assert widget is not None
        await repo(session, ids).update(widget, expected_version=1, colour="blue")
        await session.commit()

    async with new_session(database) as session:
        widget = await repo(session, ids).get(created.id)
        assert widget is not None
        with pytest.raises(Conflict) as caught:
            await repo(session, ids).update(widget, expected_version=1, colour="green")
        assert caught.value.extensions["current_version"] == 2
        assert caught.value.status == 409
        # Nothing was applied to the entity.
        assert (widget.colour, widget.version) == ("blue", 2)
        assert not session.dirty


async def test_concurrent_writers_the_second_flush_is_a_conflict(
    database: Database, ids: SnowflakeGenerator
) -> None:
    created = await add_committed(database, ids, unique_name("race"))
    async with new_session(database) as first, new_session(database) as second:
        mine = await repo(first, ids).get(created.id)
        theirs = await repo(second, ids).get(created.id)
        assert mine is not None
        assert theirs is not None
        assert mine.version == theirs.version == 1

        await repo(first, ids).update(mine, expected_version=None, colour="blue")
        await first.commit()
        # The second writer's explicit check passes (it skips it), the version guard does not.
        with pytest.raises(Conflict, match="changed by someone else"):
            await repo(second, ids).update(theirs, expected_version=None, colour="green")
        await second.rollback()

    async with new_session(database) as session:
        reloaded = await repo(session, ids).get(created.id)
    assert reloaded is not None
    assert (reloaded.colour, reloaded.version) == ("blue", 2)


async def test_soft_delete_hides_the_entity_unless_asked(
    database: Database, ids: SnowflakeGenerator
) -> None:
    created = await add_committed(database, ids, unique_name("delete"))
    async with new_session(database) as session:
        widget = await repo(session, ids).get(created.id)
        assert widget is not None
        with pytest.raises(Conflict):
            await repo(session, ids).soft_delete(widget, expected_version=5)
        assert widget.deleted_at is None
        await repo(session, ids).soft_delete(widget, expected_version=1)
        assert widget.is_deleted
        assert widget.deleted_at is not None
        assert widget.deleted_at.tzinfo is not None
        assert widget.version == 2
        await session.commit()

    async with new_session(database) as session:
        widgets = repo(session, ids)
        assert await widgets.get(created.id) is None
        assert await widgets.get_by_uuid(created.uuid) is None
        by_id = await widgets.get(created.id, include_deleted=True)
        by_uuid = await widgets.get_by_uuid(created.uuid, include_deleted=True)
        assert by_id is not None
        assert by_id is by_uuid
        assert by_id.deleted_at == widget.deleted_at
        assert by_id.version == 2
        live = (await session.scalars(widgets.select_live().where(Widget.id == created.id))).all()
        assert live == []


async def test_get_and_get_by_uuid_find_live_entities(
    database: Database, ids: SnowflakeGenerator
) -> None:
    created = await add_committed(database, ids, unique_name("get"))
    async with new_session(database) as session:
        widgets = repo(session, ids)
        by_id = await widgets.get(created.id)
        by_uuid = await widgets.get_by_uuid(created.uuid)
        assert by_id is not None
        assert by_id is by_uuid
        assert by_id.name == created.name
        assert await widgets.get(created.id + 1) is None
        assert await widgets.get_by_uuid(uuid.uuid4()) is None


async def test_a_duplicate_unique_name_is_a_conflict(
    database: Database, ids: SnowflakeGenerator
) -> None:
    name = unique_name("dup")
    await add_committed(database, ids, name)
    async with new_session(database) as session:
        with pytest.raises(Conflict) as caught:
            await repo(session, ids).add(Widget(name=name))
        assert caught.value.extensions["constraint"] == "uq_widgets_name"
        await session.rollback()

    async with new_session(database) as session:
        count = await session.scalar(
            select(func.count()).select_from(Widget).where(Widget.name == name)
        )
    assert count == 1


@pytest.mark.parametrize("limit", [1, 4, 5, 19, 20, 21])
async def test_pages_walk_every_live_row_once_in_id_order(
    database: Database, ids: SnowflakeGenerator, limit: int
) -> None:
    prefix = unique_name("page")
    async with new_session(database) as session:
        widgets = repo(session, ids)
        created = [await widgets.add(Widget(name=f"{prefix}-{n:02}")) for n in range(22)]
        # Two soft-deleted rows, one of them the very last: pages skip them.
        for gone in (created[3], created[-1]):
            await widgets.soft_delete(gone, expected_version=1)
        await session.commit()
    expected = [w.id for w in created if not w.is_deleted]
    assert len(expected) == 20

    seen: list[int] = []
    pages = 0
    cursor: str | None = None
    async with new_session(database) as session:
        widgets = repo(session, ids)
        statement = widgets.select_live().where(Widget.name.startswith(prefix))
        while True:
            page = await widgets.page(statement, PageRequest.parse(cursor, limit))
            pages += 1
            assert pages <= len(expected) + 1, "pagination does not end"
            assert len(page.items) <= limit
            seen.extend(w.id for w in page.items)
            if page.next_cursor is None:
                break
            assert len(page.items) == limit
            assert decode_cursor(page.next_cursor) == page.items[-1].id
            cursor = page.next_cursor

    assert seen == expected
    assert pages == max(1, -(-len(expected) // limit))

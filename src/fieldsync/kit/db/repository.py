"""The repository base: every SQL statement of a feature lives in its repository."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Select, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from fieldsync.kit.db.models import EntityMixin
from fieldsync.kit.errors import Conflict
from fieldsync.kit.ids import SnowflakeGenerator
from fieldsync.kit.pagination import Page, PageRequest

EntityT = TypeVar("EntityT", bound=EntityMixin)


def conflict_of(error: IntegrityError) -> Conflict:
    """The Conflict of a violated constraint, naming the constraint."""
    constraint = getattr(getattr(error.orig, "__cause__", None), "constraint_name", None)
    return Conflict("the write conflicts with existing data", constraint=constraint)


class Repository(Generic[EntityT]):
    """CRUD for one entity type, with soft delete and optimistic locking.

    Repositories only flush: the session is committed once, at the edge, when the
    request or message handler succeeds.
    """

    model: ClassVar[type[Any]]

    def __init__(self, session: AsyncSession, ids: SnowflakeGenerator) -> None:
        self.session = session
        self.ids = ids

    def select_live(self) -> Select[EntityT]:
        """SELECT of the entities that are not soft-deleted."""
        return select(self.model).where(self.model.deleted_at.is_(None))

    async def get(self, entity_id: int, *, include_deleted: bool = False) -> EntityT | None:
        """The entity with this snowflake id, or None."""
        entity: EntityT | None = await self.session.get(self.model, entity_id)
        if entity is None or (entity.is_deleted and not include_deleted):
            return None
        return entity

    async def get_by_uuid(
        self, public_id: uuid.UUID, *, include_deleted: bool = False
    ) -> EntityT | None:
        """The entity with this public id, or None."""
        statement = select(self.model).where(self.model.uuid == public_id)
        if not include_deleted:
            statement = statement.where(self.model.deleted_at.is_(None))
        result = await self.session.execute(statement)
        entity: EntityT | None = result.scalar_one_or_none()
        return entity

    async def add(self, entity: EntityT) -> EntityT:
        """Insert a new entity with a fresh snowflake id (a duplicate key is a Conflict)."""
        entity.id = self.ids.next_id()
        self.session.add(entity)
        await self.flush()
        return entity

    async def insert(self, **values: Any) -> EntityT:
        """Insert a new entity with a fresh snowflake id, in one INSERT ... RETURNING.

        The same row as `add`, without the unit of work's per-object bookkeeping; the
        entity comes back persistent (in the session) with its server defaults. A
        duplicate key is a Conflict naming the constraint.
        """
        statement = insert(self.model).values(id=self.ids.next_id(), **values)
        try:
            entity: EntityT = (await self.session.scalars(statement.returning(self.model))).one()
        except IntegrityError as exc:
            raise conflict_of(exc) from None
        return entity

    async def update(
        self, entity: EntityT, *, expected_version: int | None, **changes: Any
    ) -> EntityT:
        """Apply `changes` if the caller saw the current version; stale writes are a Conflict."""
        self.check_version(entity, expected_version)
        for name, value in changes.items():
            setattr(entity, name, value)
        await self.flush()
        return entity

    async def soft_delete(self, entity: EntityT, *, expected_version: int | None) -> EntityT:
        """Mark the entity deleted (a version bump like any other write)."""
        self.check_version(entity, expected_version)
        entity.deleted_at = func.now()
        await self.flush()
        await self.session.refresh(entity, ["deleted_at"])
        return entity

    @staticmethod
    def check_version(entity: EntityT, expected_version: int | None) -> None:
        """Raise Conflict (carrying the current version) when the caller's copy is stale."""
        if expected_version is not None and expected_version != entity.version:
            raise Conflict(
                f"stale version {expected_version}; the current version is {entity.version}",
                current_version=entity.version,
            )

    async def flush(self) -> None:
        """Flush, turning lost races and uniqueness violations into Conflict."""
        try:
            await self.session.flush()
        except StaleDataError:
            raise Conflict("the record was changed by someone else; reload and retry") from None
        except IntegrityError as exc:
            raise conflict_of(exc) from None

    async def page(self, statement: Select[EntityT], request: PageRequest) -> Page[EntityT]:
        """One keyset page (by snowflake id, ascending) of `statement`."""
        if request.after_id is not None:
            statement = statement.where(self.model.id > request.after_id)
        statement = statement.order_by(self.model.id).limit(request.limit + 1)
        rows: Sequence[EntityT] = (await self.session.scalars(statement)).all()
        return Page.from_rows(list(rows), request.limit, key=lambda entity: entity.id)

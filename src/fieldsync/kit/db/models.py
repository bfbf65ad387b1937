"""Declarative building blocks shared by every service's models."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, Uuid, func
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from fieldsync.kit.ids import new_public_id

# Constraint names are deterministic so migrations can drop and alter them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata() -> MetaData:
    """A fresh MetaData with the naming convention, one per service database."""
    return MetaData(naming_convention=NAMING_CONVENTION)


class EntityMixin:
    """Columns every entity has: snowflake id, public uuid, timestamps, soft delete, version.

    `version` is SQLAlchemy's version counter: every UPDATE is guarded by
    `WHERE version = <loaded>` and bumps it, so a concurrent writer is detected even
    between the repository's explicit check and the flush.
    """

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    uuid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=new_public_id)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:  # noqa: N805 - declarative directive
        return {"version_id_col": cls.__table__.c.version, "eager_defaults": True}  # type: ignore[attr-defined]

    @property
    def is_deleted(self) -> bool:
        """True once the entity has been soft-deleted."""
        return self.deleted_at is not None

"""Organizations: the tenant every user and record belongs to."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from fieldsync.api.models import Base
from fieldsync.kit.db.models import EntityMixin


class Organization(EntityMixin, Base):
    """A customer of fieldsync: its users, buildings and workflows."""

    __tablename__ = "organizations"

    name: Mapped[str] = mapped_column(String(200), nullable=False)

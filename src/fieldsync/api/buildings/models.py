"""Buildings and their assignees."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from fieldsync.api.models import Base
from fieldsync.kit.db.models import EntityMixin


class Building(EntityMixin, Base):
    """A building of an organization. `uuid` may come from the client (offline creation)."""

    __tablename__ = "buildings"
    __table_args__ = (
        CheckConstraint("latitude IS NULL OR latitude BETWEEN -90 AND 90", name="latitude_range"),
        CheckConstraint(
            "longitude IS NULL OR longitude BETWEEN -180 AND 180", name="longitude_range"
        ),
        CheckConstraint("floors IS NULL OR floors BETWEEN 0 AND 300", name="floors_range"),
        Index("ix_buildings_organization_id_id", "organization_id", "id"),
        Index("ix_buildings_organization_id_updated_at", "organization_id", "updated_at", "id"),
        Index("ix_buildings_organization_id_name", "organization_id", "name", "id"),
    )

    organization_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    address: Mapped[str | None] = mapped_column(String(500))
    city: Mapped[str | None] = mapped_column(String(120))
    country: Mapped[str | None] = mapped_column(String(2))
    latitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    longitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    floors: Mapped[int | None] = mapped_column(Integer)
    notes: Mapped[str | None] = mapped_column(Text)


class BuildingAssignment(EntityMixin, Base):
    """A technician assigned to a building (soft-deleted when unassigned)."""

    __tablename__ = "building_assignments"
    __table_args__ = (
        UniqueConstraint("building_id", "user_id", name="uq_building_assignments_building_user"),
        Index("ix_building_assignments_user_id", "user_id"),
    )

    organization_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id"), nullable=False
    )
    building_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("buildings.id"), nullable=False)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), nullable=False)

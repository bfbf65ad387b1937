"""Buildings this service has seen deleted.

A building's changes can be handled out of order (a failed message is redelivered
after later ones), so an upsert handled after the delete must not bring a default
workflow back for a building that no longer exists.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from fieldsync.workflows.models import Base


class RetiredBuilding(Base):
    """A deleted building of the api (by public id)."""

    __tablename__ = "retired_buildings"

    organization_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    building_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    retired_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

"""Steps of workflows."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from fieldsync.kit.db.models import EntityMixin
from fieldsync.workflows.models import Base

# Public ids are unique across organizations (named by the metadata's convention).
UUID_CONSTRAINT = "uq_workflow_steps_uuid"


class WorkflowStep(EntityMixin, Base):
    """One thing to do in a workflow; `required` steps gate the workflow's `done`."""

    __tablename__ = "workflow_steps"
    __table_args__ = (
        CheckConstraint("position >= 0", name="position_not_negative"),
        CheckConstraint(
            "(done AND completed_at IS NOT NULL) OR (NOT done AND completed_at IS NULL)",
            name="completed_when_done",
        ),
        Index("ix_workflow_steps_workflow_id_id", "workflow_id", "id"),
    )

    workflow_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("workflows.id"), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    required: Mapped[bool] = mapped_column(Boolean, nullable=False)
    done: Mapped[bool] = mapped_column(Boolean, nullable=False)
    value: Mapped[str | None] = mapped_column(Text)
    completed_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

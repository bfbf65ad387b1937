"""Workflows: owned by organization and building ids from the api (no foreign keys across
databases)."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from fieldsync.contracts.workflows import WorkflowStatus
from fieldsync.kit.db.models import EntityMixin
from fieldsync.workflows.models import Base

IDEMPOTENCY_CONSTRAINT = "uq_workflows_organization_id_idempotency_key"
# Public ids are unique across organizations (named by the metadata's convention).
UUID_CONSTRAINT = "uq_workflows_uuid"


class Workflow(EntityMixin, Base):
    """One piece of work on one building, moving through the status state machine."""

    __tablename__ = "workflows"
    __table_args__ = (
        # Covers deleted workflows too: a key names one creation, forever.
        UniqueConstraint("organization_id", "idempotency_key", name=IDEMPOTENCY_CONSTRAINT),
        CheckConstraint(
            "status IN ('open', 'in_progress', 'done', 'cancelled')", name="status_known"
        ),
        Index("ix_workflows_organization_id_id", "organization_id", "id"),
        Index(
            "ix_workflows_organization_id_building_id_id", "organization_id", "building_id", "id"
        ),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    building_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    template_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("workflow_templates.id"))
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[WorkflowStatus] = mapped_column(String(20), nullable=False)
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    due_date: Mapped[date | None] = mapped_column(Date)
    idempotency_key: Mapped[str] = mapped_column(String(200), nullable=False)

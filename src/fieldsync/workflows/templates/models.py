"""Templates and their steps; each organization has one default template."""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from fieldsync.kit.db.models import EntityMixin
from fieldsync.workflows.models import Base


class WorkflowTemplate(EntityMixin, Base):
    """A named list of steps new workflows copy."""

    __tablename__ = "workflow_templates"
    __table_args__ = (
        # One default per organization: concurrent first uses race on this index.
        Index(
            "uq_workflow_templates_default",
            "organization_id",
            unique=True,
            postgresql_where=text("is_default"),
        ),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False)


class WorkflowTemplateStep(EntityMixin, Base):
    """One step of a template."""

    __tablename__ = "workflow_template_steps"
    __table_args__ = (
        Index("ix_workflow_template_steps_template_id_position", "template_id", "position"),
    )

    template_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workflow_templates.id"), nullable=False
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    required: Mapped[bool] = mapped_column(Boolean, nullable=False)

"""Every model of the workflows database, imported so Alembic and the ORM see them all."""

from fieldsync.workflows.buildings.models import RetiredBuilding
from fieldsync.workflows.models import Base, applied_mutations, node_leases, outbox
from fieldsync.workflows.steps.models import WorkflowStep
from fieldsync.workflows.templates.models import WorkflowTemplate, WorkflowTemplateStep
from fieldsync.workflows.workflows.models import Workflow

__all__ = [
    "Base",
    "RetiredBuilding",
    "Workflow",
    "WorkflowStep",
    "WorkflowTemplate",
    "WorkflowTemplateStep",
    "applied_mutations",
    "node_leases",
    "outbox",
]

"""Alembic environment of the workflows database."""

from fieldsync.kit.db.migrations import run_env
from fieldsync.workflows.schema import Base

run_env(Base.metadata)

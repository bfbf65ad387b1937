"""Alembic environment of the sync database."""

from fieldsync.kit.db.migrations import run_env
from fieldsync.sync.models import metadata

run_env(metadata)

"""Alembic environment of the api database."""

from fieldsync.api.schema import Base
from fieldsync.kit.db.migrations import run_env

run_env(Base.metadata)

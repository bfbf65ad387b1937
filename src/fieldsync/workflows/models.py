"""The workflows database's declarative base and the kit's tables in it."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from fieldsync.kit.db.ledger import mutation_ledger_table
from fieldsync.kit.db.models import service_metadata
from fieldsync.kit.ids.lease import node_lease_table
from fieldsync.kit.outbox import outbox_table


class Base(DeclarativeBase):
    """Base of every table in the workflows database."""

    metadata = service_metadata()


node_leases = node_lease_table(Base.metadata)
outbox = outbox_table(Base.metadata)
# Pushed mutations applied (at most once each), with their results for replays.
applied_mutations = mutation_ledger_table(Base.metadata)

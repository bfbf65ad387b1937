"""Calling the workflows service for an HTTP caller: organization and building scope."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.api.buildings.models import Building, BuildingAssignment
from fieldsync.api.users.repository import UserRepository
from fieldsync.contracts.identity import Caller, Role
from fieldsync.kit.errors import Unauthorized
from fieldsync.kit.runtime import Runtime

ReplyT = TypeVar("ReplyT", bound=BaseModel)


@dataclass
class WorkflowsClient:
    """Sends workflow requests on behalf of the caller of an HTTP request."""

    session: AsyncSession
    runtime: Runtime
    caller: Caller

    async def building_scope(self) -> list[uuid.UUID] | None:
        """None for admins and managers; a technician's assigned buildings otherwise."""
        if self.caller.role != Role.TECHNICIAN:
            return None
        user = await UserRepository(self.session, self.runtime.ids["api"]).get_by_uuid(
            self.caller.user_id
        )
        if user is None:
            raise Unauthorized("the account no longer exists")
        statement = (
            select(Building.uuid)
            .join(BuildingAssignment, BuildingAssignment.building_id == Building.id)
            .where(
                BuildingAssignment.user_id == user.id,
                BuildingAssignment.deleted_at.is_(None),
                Building.deleted_at.is_(None),
            )
        )
        return list((await self.session.scalars(statement)).all())

    async def request(self, subject: str, payload: BaseModel, reply_model: type[ReplyT]) -> ReplyT:
        """Send a request built for this caller and return the typed reply."""
        return await self.runtime.bus.request(subject, payload, reply_model)

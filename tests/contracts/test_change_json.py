"""`change_json` writes the very bytes `change_bytes(new_change(...))` writes."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from asyncpg.pgproto import pgproto
from pydantic import BaseModel

from fieldsync.api.buildings.bulk_repository import building_data
from fieldsync.api.buildings.schemas import BuildingOut
from fieldsync.contracts import workflows as contract
from fieldsync.contracts.changes import (
    Change,
    built_change,
    change_bytes,
    change_json,
    change_subject,
    new_change,
)
from fieldsync.contracts.workflows import WorkflowStatus
from fieldsync.kit.messaging.codec import encode_model
from fieldsync.workflows.workflows.creating import _changes_of

MOMENTS = [
    datetime(2026, 12, 6, 19, 58, 1, 123456, tzinfo=UTC),
    datetime(2026, 12, 6, 19, 58, 1, tzinfo=UTC),  # no microseconds
    datetime(2026, 12, 6, 21, 58, 1, 5, tzinfo=timezone(timedelta(hours=2))),
]


@pytest.mark.parametrize("moment", MOMENTS)
@pytest.mark.parametrize("due_date", [None, date(2027, 1, 31)])
def test_a_workflow_encodes_as_the_model_does(moment: datetime, due_date: date | None) -> None:
    workflow = contract.Workflow(
        id=uuid.uuid4(),
        building_id=uuid.uuid4(),
        name='Quarterly "check" — ünïcode',
        status=WorkflowStatus.OPEN,
        assignee_id=uuid.uuid4() if due_date else None,
        due_date=due_date,
        updated_at=moment,
        version=1,
    )
    organization = uuid.uuid4()
    fields = {
        "collection": contract.WORKFLOWS_COLLECTION,
        "record_id": workflow.id,
        "organization_id": organization,
        "building_id": workflow.building_id,
        "version": 1,
        "occurred_at": moment,
    }

    fast = change_json(**fields, data={**workflow.model_dump(), "status": workflow.status.value})

    assert fast == change_bytes(new_change(**fields, data=workflow.model_dump(mode="json")))
    assert Change.model_validate_json(fast).data == workflow.model_dump(mode="json")


def test_a_step_and_a_delete_encode_as_the_model_does() -> None:
    step = contract.WorkflowStep(
        # The type asyncpg returns for uuid columns: a subclass orjson does not take.
        id=pgproto.UUID(str(uuid.uuid4())),
        workflow_id=uuid.uuid4(),
        title="Check the fire doors",
        position=3,
        done=False,
        value=None,
        completed_by=None,
        completed_at=None,
        required=True,
        version=1,
    )
    fields = {
        "collection": contract.STEPS_COLLECTION,
        "record_id": step.id,
        "organization_id": uuid.uuid4(),
        "building_id": uuid.uuid4(),
        "version": 1,
        "occurred_at": MOMENTS[0],
    }

    assert change_json(**fields, data=step.model_dump()) == change_bytes(
        new_change(**fields, data=step.model_dump(mode="json"))
    )
    assert change_json(**fields, data=None) == change_bytes(new_change(**fields, data=None))


def test_a_default_workflow_and_its_steps_encode_as_their_models_do() -> None:
    moment = MOMENTS[0]
    workflow = contract.Workflow(
        id=uuid.uuid4(),
        building_id=uuid.uuid4(),
        name="Inspection",
        status=WorkflowStatus.OPEN,
        assignee_id=None,
        due_date=None,
        updated_at=moment,
        version=1,
    )
    organization = uuid.uuid4()
    # Rows as `insert_defaults_from_template` returns them (asyncpg's UUID type).
    rows: list[dict[str, Any]] = [
        {
            "step_uuid": pgproto.UUID(str(uuid.uuid4())),
            "step_title": f"Step {position}",
            "step_position": position,
            "step_required": position % 2 == 0,
            "step_updated_at": moment + timedelta(microseconds=position),
        }
        for position in range(1, 4)
    ]

    encoded = _changes_of(organization, workflow, rows)  # type: ignore[arg-type]

    def expected(collection: str, record: BaseModel, occurred_at: datetime) -> tuple[str, bytes]:
        change = new_change(
            collection,
            record_id=record.id,  # type: ignore[attr-defined]
            organization_id=organization,
            building_id=workflow.building_id,
            version=1,
            data=record.model_dump(mode="json"),
            occurred_at=occurred_at,
        )
        return change_subject(organization, collection), change_bytes(change)

    steps = [
        contract.WorkflowStep(
            id=row["step_uuid"],
            workflow_id=workflow.id,
            title=row["step_title"],
            position=row["step_position"],
            done=False,
            value=None,
            completed_by=None,
            completed_at=None,
            required=row["step_required"],
            version=1,
        )
        for row in rows
    ]
    assert encoded == [
        expected(contract.WORKFLOWS_COLLECTION, workflow, moment),
        *(
            expected(contract.STEPS_COLLECTION, step, row["step_updated_at"])
            for step, row in zip(steps, rows, strict=True)
        ),
    ]


@pytest.mark.parametrize("moment", MOMENTS[:2])
def test_a_building_row_builds_the_change_its_model_would(moment: datetime) -> None:
    """The set-based push path reads its changes off the rows it wrote (`building_data`)."""
    public_id = pgproto.UUID(str(uuid.uuid4()))  # what asyncpg returns for a uuid column
    row = {
        "uuid": public_id,
        "name": "Station",
        "address": None,
        "city": "Bern",
        "country": "CH",
        "latitude": Decimal("46.948000"),
        "longitude": None,
        "floors": 2,
        "notes": 'badge "needed"',
        "created_at": moment,
        "updated_at": moment,
        "version": 3,
    }
    model = BuildingOut.model_validate({**row, "id": row["uuid"]})
    fields = {
        "collection": "buildings",
        "record_id": public_id,
        "organization_id": uuid.uuid4(),
        "building_id": public_id,
        "version": 3,
        "occurred_at": moment,
    }

    change, payload = built_change(**fields, data=building_data(row))  # type: ignore[arg-type]

    expected = change_bytes(
        new_change(**fields, data=model.model_dump(mode="json", exclude={"created_at"}))
    )
    assert payload == expected
    assert encode_model(change) == expected  # as the owner's answer carries it
    gone, gone_payload = built_change(**fields, data=None)
    assert gone_payload == encode_model(gone) == change_bytes(new_change(**fields, data=None))

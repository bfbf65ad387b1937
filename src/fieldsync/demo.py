"""Demo data for `fieldsync up`: an organization to click through on first start.

Seeded through the public HTTP API of the running server, so it takes the same path
as any client (validation, authorization, outbox, workflows over NATS). Passwords are
generated per data directory and written there (mode 0600), never into the repository.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import httpx

DEMO_FILE = "demo-logins.json"

BUILDINGS = [
    ("Harbour View Offices", "Kaiserkai 10", "Hamburg", "DE", 53.5413, 9.9841, 12),
    ("Elbe Warehouse 3", "Am Sandtorkai 50", "Hamburg", "DE", 53.5436, 9.9896, 4),
    ("Alster Clinic", "Lohmühlenstraße 5", "Hamburg", "DE", 53.5569, 10.0197, 7),
    ("Canal Lofts", "Prinsengracht 263", "Amsterdam", "NL", 52.3752, 4.8840, 5),
    ("Dam Square Arcade", "Dam 1", "Amsterdam", "NL", 52.3731, 4.8926, 3),
    ("Zuidas Tower", "Gustav Mahlerplein 2", "Amsterdam", "NL", 52.3389, 4.8732, 22),
    ("Old Town School", "Staroměstské nám. 1", "Prague", "CZ", 50.0875, 14.4213, 3),
    ("Vltava Data Centre", "Holešovice 12", "Prague", "CZ", 50.1040, 14.4380, 2),
    ("Riverside Library", "Southbank 4", "London", "GB", 51.5068, -0.1155, 6),
    ("Docklands Depot", "Canary Wharf 9", "London", "GB", 51.5054, -0.0235, 2),
    ("Parc Hospital", "Rue de la Paix 8", "Paris", "FR", 48.8691, 2.3310, 9),
    ("Seine Parking", "Quai de Bercy 40", "Paris", "FR", 48.8357, 2.3820, 5),
]


@dataclass(frozen=True)
class DemoLogin:
    """One demo account."""

    role: str
    email: str
    password: str


def demo_logins(data_dir: Path) -> list[DemoLogin] | None:
    """The demo accounts of a data directory, if it was seeded."""
    path = data_dir / DEMO_FILE
    if not path.exists():
        return None
    return [DemoLogin(**entry) for entry in json.loads(path.read_text())]


async def seed(base_url: str, data_dir: Path) -> list[DemoLogin]:
    """Create the demo organization through the API (once per data directory)."""
    existing = demo_logins(data_dir)
    if existing is not None:
        return existing
    suffix = secrets.token_hex(3)
    logins = [
        DemoLogin(role, f"{role}.{suffix}@demo.example.com", secrets.token_urlsafe(12))
        for role in ("admin", "manager", "technician", "technician")
    ]
    logins[3] = DemoLogin(
        "technician", f"technician2.{suffix}@demo.example.com", logins[3].password
    )
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        admin = logins[0]
        registered = await http.post(
            "/api/v1/auth/register",
            json={
                "email": admin.email,
                "password": admin.password,
                "name": "Avery Admin",
                "organization_name": "Demo Facilities",
            },
        )
        registered.raise_for_status()
        auth = {"Authorization": f"Bearer {registered.json()['access_token']}"}
        user_ids = []
        for login, name in zip(
            logins[1:], ("Morgan Manager", "Taylor Technician", "Jordan Technician"), strict=True
        ):
            created = await http.post(
                "/api/v1/users",
                json={
                    "email": login.email,
                    "password": login.password,
                    "name": name,
                    "role": login.role,
                },
                headers=auth,
            )
            created.raise_for_status()
            user_ids.append(created.json()["id"])
        technicians = user_ids[1:]
        statuses = ["open", "in_progress", "done", "cancelled"]
        for index, (name, address, city, country, lat, lon, floors) in enumerate(BUILDINGS):
            created = await http.post(
                "/api/v1/buildings",
                json={
                    "name": name,
                    "address": address,
                    "city": city,
                    "country": country,
                    "latitude": lat,
                    "longitude": lon,
                    "floors": floors,
                },
                headers=auth,
            )
            created.raise_for_status()
            building = created.json()
            technician = technicians[index % 2]
            assigned = await http.put(
                f"/api/v1/buildings/{building['id']}/assignees/{technician}", headers=auth
            )
            assigned.raise_for_status()
            workflow = building.get("workflow")
            if workflow is not None:
                await _drive(http, auth, workflow["id"], statuses[index % len(statuses)])
    path = data_dir / DEMO_FILE
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump([login.__dict__ for login in logins], handle, indent=2)
    return logins


async def _drive(
    http: httpx.AsyncClient, auth: dict[str, str], workflow_id: str, status: str
) -> None:
    """Move a fresh workflow to `status`, completing its steps on the way to done."""
    if status == "open":
        return
    if status == "cancelled":
        (
            await http.post(
                f"/api/v1/workflows/{workflow_id}/transitions",
                json={"to": "cancelled"},
                headers=auth,
            )
        ).raise_for_status()
        return
    (
        await http.post(
            f"/api/v1/workflows/{workflow_id}/transitions", json={"to": "in_progress"}, headers=auth
        )
    ).raise_for_status()
    if status == "done":
        steps = (
            await http.get(
                f"/api/v1/workflows/{workflow_id}/steps", params={"limit": 200}, headers=auth
            )
        ).json()
        for step in steps["items"]:
            (
                await http.patch(
                    f"/api/v1/workflows/{workflow_id}/steps/{step['id']}",
                    json={"done": True},
                    headers=auth,
                )
            ).raise_for_status()
        (
            await http.post(
                f"/api/v1/workflows/{workflow_id}/transitions", json={"to": "done"}, headers=auth
            )
        ).raise_for_status()

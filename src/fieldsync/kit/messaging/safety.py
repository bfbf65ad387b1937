"""Refuse to run on a NATS server that could lose acknowledged messages.

JetStream acknowledges a publish once it is written; unless the server runs with
`sync_interval: always`, "written" means in the page cache, and a power loss can
drop messages fieldsync already told a client were safe. The check reads the
server's monitoring endpoint (`/varz`), the only place the setting is visible.
"""

from __future__ import annotations

import httpx

from fieldsync.kit.errors import Unavailable
from fieldsync.kit.logging import get_logger
from fieldsync.kit.messaging.jetstream import JetStream

log = get_logger(__name__)

UNSAFE_HINT = "set FIELDSYNC_UNSAFE_NATS=1 to run anyway (development only)"


class UnsafeNats(Exception):
    """The NATS server does not guarantee durability; the message says what to change."""


async def fetch_sync_always(monitor_url: str) -> bool:
    """Whether the server at `monitor_url` syncs JetStream writes to disk before acking."""
    url = monitor_url.rstrip("/") + "/varz"
    try:
        async with httpx.AsyncClient(timeout=3.0) as client:
            response = await client.get(url)
            response.raise_for_status()
            varz = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise Unavailable(f"cannot read NATS monitoring at {url}: {exc}") from None
    config = (varz.get("jetstream") or {}).get("config") or {}
    return bool(config.get("sync_always", False))


async def verify_nats_durability(
    jetstream: JetStream, *, monitor_url: str | None, unsafe: bool
) -> None:
    """Raise UnsafeNats unless JetStream is on and, where visible, syncs always."""
    problems: list[str] = []
    try:
        await jetstream.verify_enabled()
    except Unavailable as exc:
        problems.append(str(exc))
    if monitor_url is None:
        problems.append(
            "cannot verify that NATS syncs JetStream to disk: set FIELDSYNC_NATS_MONITOR_URL "
            "to the server's monitoring address (http://host:8222)"
        )
    elif not problems and not await fetch_sync_always(monitor_url):
        problems.append("the NATS server does not run JetStream with `sync_interval: always`")
    if not problems:
        return
    if unsafe:
        for problem in problems:
            log.warning("FIELDSYNC_UNSAFE_NATS=1: running anyway", problem=problem)
        return
    raise UnsafeNats(f"{'; '.join(problems)}; {UNSAFE_HINT}")

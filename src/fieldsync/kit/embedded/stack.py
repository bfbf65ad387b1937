"""The embedded stack: start whatever servers the environment did not name."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path

from fieldsync.kit.embedded.nats import EmbeddedNats
from fieldsync.kit.embedded.postgres import EmbeddedPostgres
from fieldsync.kit.runtime import Endpoints
from fieldsync.kit.service import ServiceSpec
from fieldsync.kit.settings import Settings


class EmbeddedStack:
    """Real PostgreSQL and NATS under one data directory, for the parts left unconfigured.

    Any URL set in the environment replaces the embedded server for that part.
    """

    def __init__(self, settings: Settings, services: Sequence[ServiceSpec], data_dir: Path) -> None:
        self.settings = settings
        self.services = services
        self.data_dir = data_dir
        self.postgres: EmbeddedPostgres | None = None
        self.nats: EmbeddedNats | None = None

    def start(self) -> Endpoints:
        """Start the missing servers and return every endpoint the runtime needs."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        database_urls: dict[str, str] = {}
        monitor_url: str | None
        for spec in self.services:
            if not spec.has_database:
                continue
            configured = self.settings.database_url(spec.name)
            if configured is None:
                if self.postgres is None:
                    self.postgres = EmbeddedPostgres(self.data_dir)
                    self.postgres.start()
                configured = self.postgres.url(f"fieldsync_{spec.name}")
            database_urls[spec.name] = configured

        if self.settings.nats_url is None:
            self.nats = EmbeddedNats(self.data_dir / "nats")
            started = self.nats.start()
            nats_url, monitor_url = started.url, started.monitor_url
        else:
            nats_url = str(self.settings.nats_url)
            monitor_url = (
                None
                if self.settings.nats_monitor_url is None
                else str(self.settings.nats_monitor_url)
            )
        return Endpoints(
            nats_url=nats_url,
            nats_monitor_url=monitor_url,
            database_urls=database_urls,
            redis_url=None if self.settings.redis_url is None else str(self.settings.redis_url),
        )

    def stop(self) -> None:
        """Stop what this stack started; a second Ctrl-C cannot cut the shutdown short."""
        previous = {
            sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            if self.nats is not None:
                self.nats.stop()
            if self.postgres is not None:
                self.postgres.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

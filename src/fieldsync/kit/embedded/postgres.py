"""PostgreSQL from the `pgserver` wheel, listening on a Unix socket in the data dir.

pgserver initialises the cluster and starts it (as an unprivileged `pgserver` user
when running as root, since PostgreSQL refuses root). It is told not to stop the
server at exit by itself (`cleanup_mode=None`) because fieldsync stops it explicitly,
after the services have closed their connections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class EmbeddedPostgres:
    """A PostgreSQL cluster under `data_dir/postgres`."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "postgres").resolve()
        self._server: Any = None

    def start(self) -> None:
        """Initialise (first time) and start the server; reuse one already running."""
        import pgserver  # heavy import: only when the embedded server is wanted

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        get_server = pgserver.get_server  # type: ignore[attr-defined]
        self._server = get_server(self.pgdata, cleanup_mode=None)

    def url(self, database: str) -> str:
        """Connection URL of `database` on this server."""
        if self._server is None:
            raise RuntimeError("EmbeddedPostgres.start() was not called")
        uri: str = self._server.get_uri(database)
        return uri

    def stop(self) -> None:
        """Fast shutdown: disconnect clients, checkpoint, exit."""
        server, self._server = self._server, None
        if server is None:
            return
        import pgserver

        try:
            pgserver.pg_ctl(  # type: ignore[attr-defined]
                ["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=server.system_user
            )
        except Exception:  # already stopped (e.g. by the terminal's Ctrl-C)
            return

"""PostgreSQL from the `pgserver` wheel, listening on a Unix socket in the data dir.

pgserver initialises the cluster and starts it (as an unprivileged `pgserver` user
when running as root, since PostgreSQL refuses root). It is told not to stop the
server at exit by itself (`cleanup_mode=None`) because fieldsync stops it explicitly,
after the services have closed their connections.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import warnings
from pathlib import Path
from typing import Any

import psutil


class EmbeddedPostgres:
    """A PostgreSQL cluster under `data_dir/postgres`."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "postgres").resolve()
        self._server: Any = None

    def start(self) -> None:
        """Initialise (first time) and start the server; reuse one already running."""
        with warnings.catch_warnings():
            # pgserver picks a lock directory at import; without XDG_RUNTIME_DIR it
            # falls back to /tmp and says so, which is noise for fieldsync users.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
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

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (disconnect clients, checkpoint, exit) and wait until it is gone."""
        server, self._server = self._server, None
        if server is None:
            return
        pid = self._postmaster_pid()
        if pid is None:
            return
        # SIGINT is PostgreSQL's "fast shutdown": what `pg_ctl stop -m fast` sends.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown: crash-safe, WAL replays

    def _postmaster_pid(self) -> int | None:
        pid_file = self.pgdata / "postmaster.pid"
        try:
            return int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

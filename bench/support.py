"""What the benchmark scripts share: child processes and CPU accounting.

Run as `python bench/NAME.py`, a script finds this module next to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu() -> float:
    """Busy CPU seconds of the whole machine, all cores."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def postgres_cpu(marker: bytes) -> dict[int, float]:
    """CPU seconds of each live PostgreSQL backend serving this run's databases.

    A backend's title names its database, so other users' backends on the same server
    are left out. A backend that exits between two samples takes its CPU time along, so
    the PostgreSQL column is a lower bound.
    """
    backends: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker not in (entry / "cmdline").read_bytes():
                continue
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        backends[int(entry.name)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return backends


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


def start_service(
    name: str,
    argv: list[str],
    env: dict[str, str],
    workdir: Path,
    *,
    cwd: Path | None = None,
    preexec: Callable[[], None] | None = None,
) -> Service:
    """Start a child in its own session, its output in `<workdir>/<name>.log`."""
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,
        )
    return Service(name, process, log)


def stop_services(services: list[Service], grace: float = 20.0) -> None:
    """SIGTERM to all at once, then wait for each; SIGKILL what is still up after `grace`."""
    running = [service for service in services if service.process.poll() is None]
    for service in running:
        service.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for service in running:
        try:
            service.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()


async def wait_http_ready(service: Service, url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            if service.process.poll() is not None:
                raise SystemExit(f"{service.name} exited with {service.process.returncode}")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"{service.name} did not become ready")


def run_until_done(bench: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a benchmark; Ctrl-C or SIGTERM cancel it so its clean-up still runs."""

    async def guarded() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await bench()

    started = time.monotonic()
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(guarded())
    print(f"\ntook {time.monotonic() - started:.0f} s, start-up and clean-up included")

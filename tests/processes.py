"""Real fieldsync processes for end-to-end tests: started, watched, stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

FIELDSYNC = str(Path(sys.executable).parent / "fieldsync")
START_TIMEOUT = 90.0


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any FIELDSYNC_* variable, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FIELDSYNC_")}
    env.update(extra)
    return env


class Running:
    """A fieldsync process whose stderr is collected line by line."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [FIELDSYNC, *args],
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        self._seen = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._seen:
                self.lines.append(line.rstrip("\n"))
                self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    def wait_for_line(self, fragment: str, timeout: float = START_TIMEOUT) -> None:
        """Block until a stderr line contains `fragment` (fails if the process exits first)."""
        deadline = time.monotonic() + timeout
        with self._seen:
            while not any(fragment in line for line in self.lines):
                if self.process.poll() is not None and not self._reader.is_alive():
                    pytest.fail(
                        f"fieldsync exited ({self.process.returncode}):\n" + "\n".join(self.lines)
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(
                        f"no line with {fragment!r} within {timeout}s:\n" + "\n".join(self.lines)
                    )
                self._seen.wait(remaining)

    def wait_until_ready(self, base_url: str, timeout: float = START_TIMEOUT) -> None:
        """Block until `/health/ready` answers 200 (fails if the process exits first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._reader.join(5)
                pytest.fail(
                    f"fieldsync exited ({self.process.returncode}):\n" + "\n".join(self.lines)
                )
            try:
                if httpx.get(f"{base_url}/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        pytest.fail(f"{base_url} was not ready within {timeout}s:\n" + "\n".join(self.lines))

    def descendants(self) -> list[psutil.Process]:
        """Every process started under this one."""
        return psutil.Process(self.process.pid).children(recursive=True)

    def stop(self, signum: int, timeout: float = 60.0) -> int:
        """Send `signum` and wait for the exit code."""
        self.process.send_signal(signum)
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

"""The `fieldsync` command: up, run, migrate, version."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import typer

import fieldsync
from fieldsync import serving
from fieldsync.kit.embedded.stack import EmbeddedStack
from fieldsync.kit.logging import configure_logging
from fieldsync.kit.runtime import Endpoints, StartupError
from fieldsync.kit.security.keys import ensure_signing_key
from fieldsync.kit.settings import LogFormat, Settings, SettingsError, load_settings
from fieldsync.services import SERVICES, resolve

app = typer.Typer(
    name="fieldsync",
    help="Self-hosted backend for offline-first field apps.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one line to stderr and exit: configuration errors are not tracebacks."""
    typer.echo(f"fieldsync: {message}", err=True)
    raise typer.Exit(code)


def settings_or_fail(**overrides: object) -> Settings:
    """The process settings, or one line naming the variable that is wrong."""
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        fail(str(exc))


def _terminate_gracefully(signum: int, frame: FrameType | None) -> None:
    # SIGTERM during start-up: unwind through `finally` so started servers are stopped.
    raise KeyboardInterrupt


def banner(settings: Settings, data_dir: Path) -> str:
    """What `fieldsync up` prints once it serves."""
    base = f"http://{settings.http_host}:{settings.http_port}"
    return "\n".join(
        [
            "",
            f"  fieldsync {fieldsync.__version__} is up",
            f"  API docs   {base}/docs",
            f"  health     {base}/health/ready",
            f"  data       {data_dir.resolve()}",
            f"  sign up    POST {base}/api/v1/auth/register (or 'Try it out' in the docs),",
            "             then Authorize in the docs with your email and password",
            "  stop       Ctrl-C",
            "",
        ]
    )


@app.command()
def up(
    data_dir: Annotated[
        Path | None, typer.Option(help="Where embedded servers keep data [default: ./.fieldsync]")
    ] = None,
    host: Annotated[str | None, typer.Option(help="HTTP host [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port [default: 8000]")] = None,
) -> None:
    """Run every service in one process, starting PostgreSQL and NATS where none is configured."""
    overrides: dict[str, object] = {}
    if "FIELDSYNC_LOG_FORMAT" not in os.environ:
        overrides["log_format"] = LogFormat.CONSOLE
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if host is not None:
        overrides["http_host"] = host
    if port is not None:
        overrides["http_port"] = port
    settings = settings_or_fail(**overrides)
    if settings.jwt_private_key_file is None:
        # Embedded mode: a signing key generated once and kept with the data.
        key_file = ensure_signing_key(settings.data_dir / "keys")
        settings = settings.model_copy(update={"jwt_private_key_file": key_file})
    configure_logging(settings.log_format, settings.log_level)
    services = resolve(None)
    signal.signal(signal.SIGTERM, _terminate_gracefully)
    stack = EmbeddedStack(settings, services, settings.data_dir)
    try:
        try:
            endpoints = stack.start()
        except (OSError, RuntimeError) as exc:
            fail(f"cannot start the embedded servers: {exc}", 1)

        async def main() -> None:
            await serving.migrate(services, endpoints, create=True)
            await serving.serve(
                settings,
                endpoints,
                services,
                on_ready=lambda: typer.echo(banner(settings, settings.data_dir), err=True),
            )

        asyncio.run(main())
    except StartupError as exc:
        fail(str(exc), 1)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()


@app.command()
def run(
    service: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICES)}")],
    host: Annotated[str | None, typer.Option(help="HTTP host (health, metrics)")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port")] = None,
) -> None:
    """Run one service against configured servers (run as many replicas as you like)."""
    if service not in SERVICES:
        fail(f"unknown service {service!r}; choose one of: {', '.join(SERVICES)}")
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["http_host"] = host
    if port is not None:
        overrides["http_port"] = port
    settings = settings_or_fail(**overrides)
    configure_logging(settings.log_format, settings.log_level)
    services = resolve([service])
    try:
        endpoints = Endpoints.from_settings(settings, services)
        asyncio.run(serving.serve(settings, endpoints, services))
    except StartupError as exc:
        fail(str(exc), 1)
    except KeyboardInterrupt:
        pass


@app.command()
def migrate(
    service: Annotated[str | None, typer.Argument(help="Only this service's database")] = None,
) -> None:
    """Apply database migrations (all services, or one) against configured databases."""
    if service is not None and service not in SERVICES:
        fail(f"unknown service {service!r}; choose one of: {', '.join(SERVICES)}")
    settings = settings_or_fail()
    configure_logging(settings.log_format, settings.log_level)
    services = [spec for spec in resolve([service] if service else None) if spec.has_database]
    missing = [
        f"FIELDSYNC_{spec.name.upper()}_DATABASE_URL"
        for spec in services
        if settings.database_url(spec.name) is None
    ]
    if missing:
        fail(f"missing configuration: {', '.join(missing)}")
    endpoints = Endpoints(
        nats_url="",
        nats_monitor_url=None,
        database_urls={spec.name: str(settings.database_url(spec.name)) for spec in services},
        redis_url=None,
    )
    try:
        asyncio.run(serving.migrate(services, endpoints, create=False))
    except StartupError as exc:
        fail(str(exc), 1)
    typer.echo(f"migrated: {', '.join(spec.name for spec in services)}")


@app.command()
def version() -> None:
    """Print the fieldsync version."""
    typer.echo(fieldsync.__version__)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="fieldsync")
    sys.exit(0)

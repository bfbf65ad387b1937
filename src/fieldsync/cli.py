"""The `fieldsync` command: up, run, migrate, version."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import httpx
import typer

import fieldsync
from fieldsync import serving
from fieldsync.client import SyncClient, SyncError
from fieldsync.demo import DemoLogin, demo_logins
from fieldsync.demo import seed as seed_demo
from fieldsync.kit.embedded.stack import EmbeddedStack
from fieldsync.kit.logging import configure_logging, get_logger
from fieldsync.kit.runtime import Endpoints, StartupError
from fieldsync.kit.security.keys import ensure_signing_key
from fieldsync.kit.settings import LogFormat, Settings, SettingsError, load_settings
from fieldsync.services import SERVICES, resolve

log = get_logger("fieldsync.cli")

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


def banner(settings: Settings, data_dir: Path, logins: list[DemoLogin] | None) -> str:
    """What `fieldsync up` prints once it serves."""
    base = f"http://{settings.http_host}:{settings.http_port}"
    lines = [
        "",
        f"  fieldsync {fieldsync.__version__} is up",
        f"  API docs   {base}/docs",
        f"  health     {base}/health/ready",
        f"  data       {data_dir.resolve()}",
    ]
    if logins:
        lines.append("  demo logins (Authorize on the docs page with email and password):")
        lines.extend(f"    {login.role:<11} {login.email}  {login.password}" for login in logins)
    else:
        lines.append(
            f"  sign up    POST {base}/api/v1/auth/register, then Authorize on the docs page"
        )
    lines.extend(["  stop       Ctrl-C", ""])
    return "\n".join(lines)


@app.command()
def up(
    data_dir: Annotated[
        Path | None, typer.Option(help="Where embedded servers keep data [default: ./.fieldsync]")
    ] = None,
    host: Annotated[str | None, typer.Option(help="HTTP host [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port [default: 8000]")] = None,
    demo: Annotated[bool, typer.Option(help="Seed a demo organization on first start")] = True,
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

            async def ready() -> None:
                logins = demo_logins(settings.data_dir)
                if demo and logins is None:
                    try:
                        logins = await seed_demo(
                            f"http://127.0.0.1:{settings.http_port}", settings.data_dir
                        )
                    except Exception as exc:  # the server is fine without demo data
                        log.warning("demo data not seeded", error=str(exc))
                typer.echo(banner(settings, settings.data_dir, logins if demo else None), err=True)

            await serving.serve(settings, endpoints, services, on_ready=ready)

        serving.run_forever(main())
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
        serving.run_forever(serving.serve(settings, endpoints, services))
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
def seed(
    url: Annotated[
        str, typer.Option(help="Base URL of a running fieldsync")
    ] = "http://127.0.0.1:8000",
    data_dir: Annotated[Path, typer.Option(help="Where to write the demo logins")] = Path(
        ".fieldsync"
    ),
) -> None:
    """Add the demo organization to a running fieldsync (through its API)."""
    configure_logging(LogFormat.CONSOLE, "warning")
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        logins = asyncio.run(seed_demo(url.rstrip("/"), data_dir))
    except httpx.HTTPError as exc:
        fail(f"cannot seed {url}: {exc}", 1)
    for login in logins:
        typer.echo(f"{login.role:<11} {login.email}  {login.password}")


@app.command()
def pull(
    email: Annotated[str, typer.Option(help="Sign in as this user")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
    url: Annotated[
        str, typer.Option(help="Base URL of a running fieldsync")
    ] = "http://127.0.0.1:8000",
    follow: Annotated[bool, typer.Option(help="Keep pulling at every realtime poke")] = False,
) -> None:
    """Sync a user's scope with the Python client and print what it holds."""
    configure_logging(LogFormat.CONSOLE, "warning")
    try:
        asyncio.run(pull_scope(url.rstrip("/"), email, password, follow=follow))
    except SyncError as exc:
        fail(f"{url} refused: {exc}", 1)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {exc}", 1)


async def pull_scope(url: str, email: str, password: str, *, follow: bool) -> None:
    """Pull everything in scope, print counts per collection; with `follow`, repeat per poke."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        device = SyncClient(http)
        await device.login(email, password)
        received = await device.pull()
        typer.echo(_summary(device, received))
        if follow:
            async for _ in device.pokes():
                typer.echo(_summary(device, await device.pull()))


def _summary(device: SyncClient, received: int) -> str:
    counts = ", ".join(
        f"{name}: {len(device.store.view(name))}"
        for name in ("buildings", "workflows", "workflow_steps")
    )
    return f"{received} change(s) pulled; holding {counts}; checkpoint {device.store.checkpoint}"


@app.command()
def version() -> None:
    """Print the fieldsync version."""
    typer.echo(fieldsync.__version__)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="fieldsync")
    sys.exit(0)

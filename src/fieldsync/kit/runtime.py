"""The Runtime: the connections one process holds for the services it hosts.

Built in the app's lifespan and stored on `app.state.runtime`; nothing here is a
module global. `fieldsync up` hosts every service in one Runtime, `fieldsync run X`
hosts one.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from fieldsync.kit.db.engine import Database
from fieldsync.kit.errors import Unavailable
from fieldsync.kit.ids import SnowflakeGenerator
from fieldsync.kit.ids.lease import LeasedIds
from fieldsync.kit.logging import get_logger
from fieldsync.kit.messaging import Bus
from fieldsync.kit.messaging.safety import UnsafeNats, verify_nats_durability
from fieldsync.kit.ratelimit import RateLimiter
from fieldsync.kit.security.keys import KeyFileError, load_signing_key, load_verification_key
from fieldsync.kit.security.tokens import TokenSettings, TokenSigner, TokenVerifier
from fieldsync.kit.service import ServiceSpec
from fieldsync.kit.settings import Settings

log = get_logger(__name__)

# The bus runs each handler in a copy of the context `Bus.serve` was called in, so a
# handler served by `Runtime.start` finds its runtime here (see `current_runtime`).
_SERVING_RUNTIME: contextvars.ContextVar[Runtime] = contextvars.ContextVar("serving_runtime")


def current_runtime() -> Runtime:
    """The runtime whose `start` served the running NATS handler."""
    try:
        return _SERVING_RUNTIME.get()
    except LookupError:
        raise RuntimeError(
            "no runtime is serving this handler (register its router in a ServiceSpec's "
            "bus_routers, or serve it inside `serving(runtime)`)"
        ) from None


class serving:  # noqa: N801 - used as a context manager, like contextlib's helpers
    """Make `runtime` the one that handlers served inside this block will find."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._token: contextvars.Token[Runtime] | None = None

    def __enter__(self) -> Runtime:
        self._token = _SERVING_RUNTIME.set(self._runtime)
        return self._runtime

    def __exit__(self, *_: object) -> None:
        if self._token is not None:
            _SERVING_RUNTIME.reset(self._token)


class StartupError(Exception):
    """A dependency is missing or misconfigured; the message says which and what to do."""


@dataclass(frozen=True)
class Endpoints:
    """The server addresses a runtime connects to, after embedded servers filled gaps."""

    nats_url: str
    nats_monitor_url: str | None
    database_urls: dict[str, str]
    redis_url: str | None

    @classmethod
    def from_settings(cls, settings: Settings, services: Sequence[ServiceSpec]) -> Endpoints:
        """Endpoints from configuration alone (`fieldsync run`): everything must be set."""
        missing = [
            f"FIELDSYNC_{spec.name.upper()}_DATABASE_URL"
            for spec in services
            if spec.has_database and settings.database_url(spec.name) is None
        ]
        if settings.nats_url is None:
            missing.insert(0, "FIELDSYNC_NATS_URL")
        if missing:
            raise StartupError(
                f"missing configuration: {', '.join(missing)} "
                "(or use `fieldsync up` to start embedded servers)"
            )
        return cls(
            nats_url=str(settings.nats_url),
            nats_monitor_url=None
            if settings.nats_monitor_url is None
            else str(settings.nats_monitor_url),
            database_urls={
                spec.name: str(settings.database_url(spec.name))
                for spec in services
                if spec.has_database
            },
            redis_url=None if settings.redis_url is None else str(settings.redis_url),
        )


class Runtime:
    """Connections and per-service resources of one process."""

    def __init__(
        self, settings: Settings, endpoints: Endpoints, services: Sequence[ServiceSpec]
    ) -> None:
        self.settings = settings
        self.endpoints = endpoints
        self.services = list(services)
        self.databases: dict[str, Database] = {}
        self._leases: dict[str, LeasedIds] = {}
        self.ids: dict[str, SnowflakeGenerator] = {}
        self._bus: Bus | None = None
        self.redis: Redis | None = None
        self._background: list[asyncio.Task[None]] = []
        self.rate_limiter = RateLimiter.create(
            endpoints.redis_url, key_prefix=settings.redis_key_prefix
        )
        # Per-process singletons a service builds lazily (e.g. the api's password hasher).
        self.resources: dict[str, object] = {}
        self.token_signer: TokenSigner | None = None
        self.token_verifier: TokenVerifier | None = None

    @property
    def bus(self) -> Bus:
        """The process's NATS bus (after `start`)."""
        if self._bus is None:
            raise RuntimeError("Runtime.start() was not awaited")
        return self._bus

    def _load_keys(self) -> None:
        settings = self.settings
        token_settings = TokenSettings(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            lifetime_seconds=settings.access_token_minutes * 60,
        )
        needs_signer = any(spec.signs_tokens for spec in self.services)
        try:
            verification_keys = [
                load_verification_key(path) for path in settings.jwt_public_key_files
            ]
            if settings.jwt_private_key_file is not None:
                signing_key = load_signing_key(settings.jwt_private_key_file)
                self.token_signer = TokenSigner(signing_key, token_settings)
                verification_keys.insert(0, signing_key.verification)
        except KeyFileError as exc:
            raise StartupError(
                f"{exc} (check FIELDSYNC_JWT_PRIVATE_KEY_FILE / _PUBLIC_KEY_FILES)"
            ) from None
        if needs_signer and self.token_signer is None:
            raise StartupError(
                "FIELDSYNC_JWT_PRIVATE_KEY_FILE is required: the api service signs access tokens "
                "(an Ed25519 private key in PEM; `fieldsync up` generates one)"
            )
        if verification_keys:
            self.token_verifier = TokenVerifier(verification_keys, token_settings)

    async def start(self) -> None:
        """Connect everything, verify NATS durability, lease node ids, serve handlers."""
        names = ", ".join(spec.name for spec in self.services)
        self._load_keys()
        try:
            self._bus = await Bus.connect(
                self.endpoints.nats_url,
                name=f"fieldsync[{names}]",
                request_timeout=self.settings.nats_request_timeout_seconds,
            )
        except Unavailable as exc:
            raise StartupError(f"{exc} (check FIELDSYNC_NATS_URL)") from None
        try:
            await verify_nats_durability(
                self.bus.jetstream,
                monitor_url=self.endpoints.nats_monitor_url,
                unsafe=self.settings.unsafe_nats,
            )
        except (UnsafeNats, Unavailable) as exc:
            raise StartupError(str(exc)) from None

        for spec in self.services:
            if not spec.has_database:
                continue
            database = Database(
                self.endpoints.database_urls[spec.name],
                name=spec.name,
                pool_size=self.settings.db_pool_size,
            )
            self.databases[spec.name] = database
            try:
                await database.ping()
            except Exception as exc:
                raise StartupError(
                    f"cannot reach the {spec.name} database: {exc} "
                    f"(check FIELDSYNC_{spec.name.upper()}_DATABASE_URL)"
                ) from None
            leased = LeasedIds(database.engine, ttl_seconds=self.settings.node_lease_seconds)
            self._leases[spec.name] = leased
            self.ids[spec.name] = await leased.start()

        if self.endpoints.redis_url is not None:
            self.redis = Redis.from_url(self.endpoints.redis_url)
            try:
                await self.redis.ping()
            except Exception as exc:
                raise StartupError(
                    f"cannot reach Redis: {exc} (check FIELDSYNC_REDIS_URL)"
                ) from None

        for spec in self.services:
            for step in spec.startup:
                await step(self)
        for spec in self.services:
            with serving(self):
                for router in spec.bus_routers:
                    await self.bus.serve(router)
            for task in spec.background:
                self._background.append(
                    asyncio.create_task(task(self), name=f"{spec.name}-background")
                )
        log.info("runtime started", services=names)

    async def stop(self) -> None:
        """Stop handlers and background work, release leases, close connections."""
        for task in self._background:
            task.cancel()
        if self._background:
            # Bounded: a task that ignores cancellation must not hold up the shutdown.
            _, stuck = await asyncio.wait(self._background, timeout=10)
            for task in stuck:
                log.warning("background task did not stop", task=task.get_name())
        if self._bus is not None:
            await self._bus.close()
        for leased in self._leases.values():
            try:
                await leased.stop()
            except Exception as exc:  # the lease expires on its own anyway
                log.warning("could not release node lease", error=str(exc))
        for database in self.databases.values():
            await database.dispose()
        if self.redis is not None:
            await self.redis.aclose()

    async def check_readiness(self) -> dict[str, str]:
        """Status of every dependency: 'ok' or what failed."""
        checks: dict[str, str] = {}

        async def probe(name: str, check: asyncio.Future[object] | object) -> None:
            try:
                await asyncio.wait_for(check, timeout=2.0)  # type: ignore[arg-type]
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"failed: {exc or type(exc).__name__}"

        probes = [probe(f"database:{name}", db.ping()) for name, db in self.databases.items()]
        probes.append(probe("nats", self.bus.ping()))
        if self.redis is not None:
            probes.append(probe("redis", self.redis.ping()))
        await asyncio.gather(*probes)
        return dict(sorted(checks.items()))

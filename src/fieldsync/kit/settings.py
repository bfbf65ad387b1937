"""One settings object per process, read from `FIELDSYNC_*` environment variables."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import AnyUrl, Field, PostgresDsn, UrlConstraints, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "FIELDSYNC_"

NatsDsn = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["nats", "tls", "ws", "wss"])]
RedisDsn = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["redis", "rediss", "unix"])]
HttpUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["http", "https"])]


class LogFormat(StrEnum):
    """How log lines are rendered: JSON lines for machines, console for people."""

    JSON = "json"
    CONSOLE = "console"


class Settings(BaseSettings):
    """Everything a fieldsync process can be configured with.

    Unset server URLs mean "not configured": `fieldsync up` then starts an embedded
    server for that part, while `fieldsync run` refuses to start without them.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    data_dir: Path = Path(".fieldsync")

    api_database_url: PostgresDsn | None = None
    workflows_database_url: PostgresDsn | None = None
    sync_database_url: PostgresDsn | None = None

    nats_url: NatsDsn | None = None
    nats_monitor_url: HttpUrl | None = None
    unsafe_nats: bool = False
    nats_request_timeout_seconds: float = Field(default=5.0, gt=0, le=300)

    redis_url: RedisDsn | None = None
    # Every Redis key fieldsync writes starts with this, so deployments can share a Redis.
    redis_key_prefix: str = Field(default="fieldsync", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")

    log_format: LogFormat = LogFormat.JSON
    log_level: str = "info"

    jwt_private_key_file: Path | None = None
    jwt_public_key_files: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    jwt_issuer: str = Field(default="fieldsync", min_length=1)
    jwt_audience: str = Field(default="fieldsync", min_length=1)
    access_token_minutes: int = Field(default=15, ge=1, le=60)
    refresh_token_days: int = Field(default=30, ge=1, le=365)
    refresh_reuse_grace_seconds: float = Field(default=5, ge=0, le=10)

    # argon2id at OWASP's recommended configuration (19 MiB, 2 passes, 1 lane), which is
    # also the floor: stronger settings are accepted, weaker ones refused. RFC 9106's
    # 64 MiB x 3 x 4 profile measured ~5 s per login at 20 concurrent on 2 cores.
    password_hash_memory_kib: int = Field(default=19456, ge=19456, le=4_194_304)
    password_hash_time_cost: int = Field(default=2, ge=2, le=20)
    password_hash_parallelism: int = Field(default=1, ge=1, le=64)

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rate_limit_per_ip: str = "500/second;20000/minute"
    rate_limit_per_user: str = "500/second;20000/minute"
    rate_limit_auth_per_ip: str = "60/minute"
    rate_limit_failed_logins_per_account: str = "10/minute"

    node_lease_seconds: int = Field(default=30, ge=5, le=3600)
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    db_pool_size: int = Field(default=10, ge=1, le=200)
    # Published outbox rows are kept this long (to look into what was sent), then the
    # relay deletes them: without it each service's outbox grows without bound.
    outbox_retention_hours: float = Field(default=24, gt=0, le=24 * 365)

    # Sync: how long deletes are remembered (older checkpoints get 410 Gone), how long
    # a push waits for its changes to reach the replica, realtime heartbeat and the
    # time a realtime client may take to accept a message before it is dropped.
    sync_tombstone_days: float = Field(default=30, gt=0, le=3650)
    sync_push_wait_seconds: float = Field(default=10, gt=0, le=120)
    sync_heartbeat_seconds: float = Field(default=15, gt=0, le=300)
    sync_slow_client_seconds: float = Field(default=10, gt=0, le=300)

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        levels = {"debug", "info", "warning", "error", "critical"}
        if value.lower() not in levels:
            raise ValueError(f"must be one of {', '.join(sorted(levels))}")
        return value.lower()

    @field_validator("cors_origins", "jwt_public_key_files", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
        return value

    @field_validator(
        "rate_limit_per_ip",
        "rate_limit_per_user",
        "rate_limit_auth_per_ip",
        "rate_limit_failed_logins_per_account",
    )
    @classmethod
    def _rate_limit_syntax(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError("must look like '10/minute' or '5/second;100/hour'") from None
        return value

    def database_url(self, service: str) -> str | None:
        """The configured database URL of `service`, or None when it is not set."""
        url = getattr(self, f"{service}_database_url", None)
        return None if url is None else str(url)


class SettingsError(Exception):
    """Start-up configuration is invalid; the message names the variable and the fix."""


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings, turning pydantic's report into one readable line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """Render a settings validation error as `FIELDSYNC_X: what is wrong (got 'value')`."""
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        variable = f"{ENV_PREFIX}{field.upper()}"
        message = error["msg"]
        given = error.get("input")
        got = f" (got {given!r})" if isinstance(given, str | int | float) else ""
        parts.append(f"{variable}: {message}{got}")
    return "invalid configuration: " + "; ".join(parts)

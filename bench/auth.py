"""Sign-in cost and access-token verification, each against a raw baseline in the same run.

1. Login latency: 20 concurrent `POST /api/v1/auth/login` against a real
   `fieldsync run api` process (real PostgreSQL, NATS from the wheel, production
   argon2id parameters), reported as p50/p95. Baseline: the same number of concurrent
   raw argon2id verifications (pwdlib, same parameters, worker threads) in this
   process. The ratio shows what the HTTP edge, database and session issuing add to
   the unavoidable hashing cost.
2. Token verifications per second: `TokenVerifier.verify` (header pinning, claim
   checks, Caller construction) against a bare `jwt.decode` with the same key.

    python bench/auth.py [--logins N] [--verifications N]

Needs PostgreSQL at FIELDSYNC_BENCH_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/postgres); it creates and drops its own database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import make_url

from fieldsync.contracts.identity import Caller, Role
from fieldsync.kit.db.admin import drop_database, ensure_database
from fieldsync.kit.db.migrations import upgrade_async
from fieldsync.kit.embedded.nats import EmbeddedNats, free_port
from fieldsync.kit.ids import new_public_id
from fieldsync.kit.security.keys import ensure_signing_key, load_signing_key
from fieldsync.kit.security.tokens import TokenSettings, TokenSigner, TokenVerifier
from fieldsync.kit.settings import Settings

CONCURRENCY = 20
PASSWORD = "a bench passphrase that is long enough"  # noqa: S105 - a throwaway account


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def wait_ready(base_url: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            if process.poll() is not None:
                raise SystemExit(f"fieldsync exited with {process.returncode}")
            try:
                if (await client.get(f"{base_url}/health/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("fieldsync did not become ready")


async def concurrent_latencies(call: object, total: int) -> list[float]:
    """Run `total` calls, CONCURRENCY at a time; each call's latency in seconds."""
    latencies: list[float] = []
    queue = iter(range(total))

    async def worker() -> None:
        for _ in queue:
            started = time.perf_counter()
            await call()  # type: ignore[operator]
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return latencies


async def bench_logins(logins: int) -> None:
    settings = Settings()
    admin_url = os.environ.get(
        "FIELDSYNC_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    database_url = (
        make_url(admin_url).set(database=f"fs_bench_{secrets.token_hex(3)}").render_as_string(False)
    )
    await ensure_database(database_url)
    await upgrade_async("fieldsync.api:migrations", database_url)
    workdir = Path(tempfile.mkdtemp(prefix="fs-bench-auth-"))
    nats_server = EmbeddedNats(workdir / "nats")
    nats_endpoints = nats_server.start()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("FIELDSYNC_")}
    env.update(
        FIELDSYNC_API_DATABASE_URL=database_url,
        FIELDSYNC_NATS_URL=nats_endpoints.url,
        FIELDSYNC_NATS_MONITOR_URL=nats_endpoints.monitor_url,
        FIELDSYNC_JWT_PRIVATE_KEY_FILE=str(ensure_signing_key(workdir / "keys")),
        FIELDSYNC_HTTP_PORT=str(port),
        FIELDSYNC_LOG_LEVEL="warning",
        FIELDSYNC_RATE_LIMIT_AUTH_PER_IP="1000000/minute",
        FIELDSYNC_RATE_LIMIT_FAILED_LOGINS_PER_ACCOUNT="1000000/minute",
    )
    fieldsync = str(Path(sys.executable).parent / "fieldsync")
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
        [fieldsync, "run", "api"], env=env, stderr=subprocess.DEVNULL
    )
    try:
        await wait_ready(base_url, process)
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            email = f"bench-{secrets.token_hex(4)}@example.com"
            registered = await client.post(
                "/api/v1/auth/register",
                json={
                    "email": email,
                    "password": PASSWORD,
                    "name": "Bench",
                    "organization_name": "Bench",
                },
            )
            registered.raise_for_status()

            async def login() -> None:
                response = await client.post(
                    "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
                )
                response.raise_for_status()

            await concurrent_latencies(login, CONCURRENCY)  # warm-up
            http_latencies = await concurrent_latencies(login, logins)

        hasher = PasswordHash(
            (
                Argon2Hasher(
                    memory_cost=settings.password_hash_memory_kib,
                    time_cost=settings.password_hash_time_cost,
                    parallelism=settings.password_hash_parallelism,
                ),
            )
        )
        stored = hasher.hash(PASSWORD)

        async def raw_verify() -> None:
            await asyncio.to_thread(hasher.verify, PASSWORD, stored)

        await concurrent_latencies(raw_verify, CONCURRENCY)
        raw_latencies = await concurrent_latencies(raw_verify, logins)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        nats_server.stop()
        await drop_database(database_url)

    print(
        f"argon2id: memory {settings.password_hash_memory_kib} KiB, "
        f"time cost {settings.password_hash_time_cost}, parallelism {settings.password_hash_parallelism}; "
        f"{logins} logins, {CONCURRENCY} concurrent, {os.cpu_count()} cores"
    )
    print(f"{'':28} {'p50 ms':>10} {'p95 ms':>10}")
    for name, values in (
        ("POST /auth/login (HTTP)", http_latencies),
        ("raw argon2id verify", raw_latencies),
    ):
        print(
            f"{name:28} {percentile(values, 0.5) * 1000:10.1f} {percentile(values, 0.95) * 1000:10.1f}"
        )
    ratio = statistics.median(http_latencies) / statistics.median(raw_latencies)
    print(f"login p50 / raw verify p50 = {ratio:.2f}x (1.0x would mean hashing is the whole cost)")


def bench_verifications(count: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="fs-bench-jwt-"))
    key = load_signing_key(ensure_signing_key(workdir))
    token_settings = TokenSettings(issuer="fieldsync", audience="fieldsync", lifetime_seconds=900)
    token = TokenSigner(key, token_settings).issue(
        Caller(
            user_id=new_public_id(),
            organization_id=new_public_id(),
            role=Role.TECHNICIAN,
            session_id=new_public_id(),
        )
    )
    verifier = TokenVerifier([key.verification], token_settings)
    public_key = key.verification.public_key

    def kit() -> None:
        verifier.verify(token)

    def raw() -> None:
        jwt.decode(
            token, public_key, algorithms=["EdDSA"], audience="fieldsync", issuer="fieldsync"
        )

    results: dict[str, list[float]] = {"kit": [], "raw": []}
    for round_number in range(5):
        arms = (
            (("kit", kit), ("raw", raw)) if round_number % 2 == 0 else (("raw", raw), ("kit", kit))
        )
        for name, call in arms:
            started = time.perf_counter()
            for _ in range(count):
                call()
            results[name].append(count / (time.perf_counter() - started))
    kit_rate, raw_rate = statistics.median(results["kit"]), statistics.median(results["raw"])
    print(f"\naccess-token verifications per second (one core, median of 5 rounds of {count})")
    print(f"{'TokenVerifier.verify':28} {kit_rate:12,.0f}")
    print(f"{'raw jwt.decode':28} {raw_rate:12,.0f}")
    print(f"kit / raw = {kit_rate / raw_rate:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--logins", type=int, default=200)
    parser.add_argument("--verifications", type=int, default=5000)
    args = parser.parse_args()
    asyncio.run(bench_logins(args.logins))
    bench_verifications(args.verifications)


if __name__ == "__main__":
    main()

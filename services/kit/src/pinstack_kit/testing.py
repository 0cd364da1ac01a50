"""pytest plugin (entry point `pinstack`): real PostgreSQL, Redis and Kafka for every test worker.

- `pg_database(name, migrations)` creates a fresh database per test worker and migrates it;
- `redis_prefix` is a key namespace unique to the test;
- `kafka_topic(name)` returns a topic name unique to the test worker;
- `spawn_service(...)` runs a real uvicorn server for black-box tests.
A service's conftest defines only `settings` (usually `service_settings(Settings, ...)`); `app`,
`client` and `engine` follow from it, `start`/`worker()` run its worker loops inside the test.
Servers come from `make infra` (scripts/stack.py); the addresses are read from the environment.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from pinstack_kit.migrate import migrate

PG_ADMIN_DSN = os.environ.get("PINSTACK_PG_DSN", "postgresql://postgres@127.0.0.1:55432/postgres")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:56379/0")
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:59092")
SERVICES_DIR = Path(__file__).resolve().parents[3]


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def database_url(name: str) -> str:
    base, _, _ = PG_ADMIN_DSN.rpartition("/")
    return f"{base}/{name}"


def create_database(name: str, migrations: Path) -> str:
    """Drop and recreate `name`, apply the kit's and the service's migrations; returns its URL."""
    try:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.exit(f"PostgreSQL is not reachable at {PG_ADMIN_DSN}: run `make infra` first ({exc})", 3)
    url = database_url(name)
    # A thread of its own: fixtures may call this while an event loop is already running.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, migrate(url, migrations)).result()
    return url


@pytest.fixture(scope="session")
def pg_database() -> Iterator[Callable[[str, Path], str]]:
    """Factory: a migrated database private to this test worker and this run (two runs at once
    must not drop each other's databases), dropped when the run ends."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)[:8]
    made: dict[str, str] = {}

    def make(service: str, migrations: Path) -> str:
        if service not in made:
            made[service] = create_database(f"test_{service}_{worker_id()}_{run}", migrations)
        return made[service]

    yield make
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3) as conn:
        for url in made.values():
            conn.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')


@pytest.fixture
def redis_prefix() -> str:
    return f"test:{worker_id()}:{uuid.uuid4().hex[:8]}:"


@pytest.fixture(scope="session")
def kafka_topic() -> Callable[[str], str]:
    run = uuid.uuid4().hex[:8]

    def name(base: str) -> str:
        return f"test.{worker_id()}.{run}.{base}"

    return name


@asynccontextmanager
async def app_client(app: FastAPI, base_url: str = "http://test") -> AsyncIterator[httpx.AsyncClient]:
    """In-process client that runs the app's lifespan (engine, Redis) like uvicorn would."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


@pytest.fixture
def service_settings(
    pg_database: Callable[[str, Path], str], redis_prefix: str, kafka_topic: Callable[[str], str]
) -> Callable[..., Any]:
    """Factory: a service's `settings_class` on its migrated test database (or one of its own,
    `database`), the test Redis under this test's key prefix and Kafka topics of this run (outbox
    rows never name a running stack's topics, whoever relays them); `overrides` win."""

    def make(settings_class: type[Any], *, database: str | None = None, **overrides: Any) -> Any:
        name = settings_class.model_fields["service_name"].default
        return settings_class(
            **{
                "environment": "test",
                "database_url": pg_database(database or name, SERVICES_DIR / name / "migrations"),
                "redis_url": REDIS_URL,
                "redis_key_prefix": redis_prefix,
                "kafka_bootstrap_servers": KAFKA,
                "kafka_topic_prefix": kafka_topic(""),
                **overrides,
            }
        )

    return make


@pytest.fixture
def app(settings: Any) -> FastAPI:
    """The service's app (`pinstack_<name>.main:create_app`) on the `settings` fixture its conftest defines."""
    return importlib.import_module(f"pinstack_{settings.service_name}.main").create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the `app` fixture (the service's create_app(settings))."""
    async with app_client(app) as client:
        yield client


@pytest.fixture
async def redis() -> AsyncIterator[Any]:
    """A client of the test Redis, for tests that look at what a service stored there."""
    from redis.asyncio import Redis

    connection = Redis.from_url(REDIS_URL)
    yield connection
    await connection.aclose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def spawn_process(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process (a worker, a server) for a black-box test; SIGTERM, then SIGKILL, at the end."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; a process already gone is left alone."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def test_log(name: str, log_dir: Path | None = None) -> Path:
    folder = log_dir or Path(os.environ.get("PINSTACK_TEST_LOGS", "/tmp/pinstack-test-logs"))
    return folder / f"{name}-{uuid.uuid4().hex[:6]}.log"


@contextmanager
def spawn_service(
    app_factory: str, env: dict[str, str], *, port: int | None = None, log_dir: Path | None = None
) -> Iterator[str]:
    """Run `uvicorn --factory app_factory` as a real server; yields its base URL."""
    port = port or free_port()
    log_path = test_log(f"{app_factory.split('.')[0]}-{port}", log_dir)
    args = [sys.executable, "-m", "uvicorn", "--factory", app_factory, "--host", "127.0.0.1", "--port", str(port)]
    # a bounded graceful shutdown, shorter than spawn_process's wait before SIGKILL
    args += ["--no-access-log", "--timeout-graceful-shutdown", "8"]
    with spawn_process(args, env, log_path) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, log_path)
        yield url


@contextmanager
def spawn_worker(module: str, env: dict[str, str], *, log_dir: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run `python -m <module>` (a service's worker) and wait until its loops run (its /healthz
    answers): a test that starts before then shares the CPU with the worker's imports, and on a
    2-core machine starting eight of them stalled requests for seconds."""
    port = free_port()
    log_path = test_log(module.replace(".", "-"), log_dir)
    with spawn_process([sys.executable, "-m", module], {**env, "WORKER_METRICS_PORT": str(port)}, log_path) as proc:
        wait_healthy(f"http://127.0.0.1:{port}", proc, log_path)
        yield proc


def wait_healthy(url: str, proc: subprocess.Popen[Any], log_path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}; see {log_path}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become healthy in {timeout}s; see {log_path}")


async def eventually(check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """The one bounded wait for eventual consistency: retries `check` until it returns truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


# ----------------------------------------------------------------------------- workers in the test
# A service's consumers and relay run as tasks of the test on the shared servers, so a test can
# drive them through Kafka and look at their database without spawning processes.


@pytest.fixture
async def engine(settings: Any) -> AsyncIterator[Any]:
    """An engine on the database of the service's `settings` fixture, for tests that look into it."""
    from pinstack_kit.db import create_engine

    engine = create_engine(settings)
    yield engine
    await engine.dispose()


async def _stop_loops(loops: list[Any], tasks: list[asyncio.Task[None]], timeout: float) -> None:
    for loop in loops:
        loop.stop()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout)


Start = Callable[[Any], None]  # the `start` fixture: run one worker loop inside the test


def start_consumers(start: Start, consumers: Callable[..., Any], engine: Any) -> None:
    """Runs the loops a service worker's `consumers(settings)` factory builds, on `engine`."""
    from pinstack_kit.db import sessionmaker

    for loop in consumers(engine, sessionmaker(engine)):
        start(loop)


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Runs worker loops (relay, consumers) as tasks of the test; stops them at teardown."""
    loops: list[Any] = []
    tasks: list[asyncio.Task[None]] = []

    def run(loop: Any) -> None:
        loops.append(loop)
        tasks.append(asyncio.create_task(loop.run()))

    yield run
    await _stop_loops(loops, tasks, 20)


@asynccontextmanager
async def worker(settings: Any, consumers: Callable[..., list[Any]], *, relay: str | None = None) -> AsyncIterator[Any]:
    """A service's worker while the block runs, as `run_worker` builds it: its `consumers` factory
    and, given a client id, its outbox relay, on an engine of `settings`' database (yielded)."""
    from pinstack_kit.db import create_engine, sessionmaker
    from pinstack_kit.outbox import OutboxRelay, create_producer

    engine = create_engine(settings)
    loops = list(consumers(engine, sessionmaker(engine)))
    if relay:
        loops.append(OutboxRelay(engine, lambda: create_producer(settings.kafka_bootstrap_servers, relay)))
    tasks = [asyncio.create_task(loop.run()) for loop in loops]
    try:
        yield engine
    finally:
        await _stop_loops(loops, tasks, 30)
        await engine.dispose()


async def handle_record(sessions: Callable[[], Any], record: Any, *handlers: Callable[..., Any]) -> None:
    """Hands `record` to consumer handlers in one transaction of its own, then runs the after-commit
    callbacks (the Redis writes), as the consumer runner does (without Kafka or deduplication)."""
    from pinstack_kit.db import run_after_commit

    async with sessions() as session:
        async with session.begin():
            for handle in handlers:
                await handle(session, record)
        await run_after_commit(session)


@asynccontextmanager
async def kafka_producer() -> AsyncIterator[Any]:
    """A started producer on the test Kafka, stopped after the block."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=KAFKA)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


@asynccontextmanager
async def kafka_reader(topic: str) -> AsyncIterator[Any]:
    """A started consumer of `topic` from its start, without a group; a short metadata age so a
    topic created after it is found quickly."""
    from aiokafka import AIOKafkaConsumer

    reader = AIOKafkaConsumer(topic, bootstrap_servers=KAFKA, auto_offset_reset="earliest", metadata_max_age_ms=500)
    await reader.start()
    try:
        yield reader
    finally:
        await reader.stop()


STACK_SERVICES = ("users", "auth", "posts", "relations", "notifications", "feed", "activity", "gateway")


class PrivateStack:
    """PostgreSQL, Redis and Kafka of a test's own (scripts/stack.py with a private state folder
    and ports), for fault tests that stop and restart servers without disturbing other tests.

    `up_all()` also starts every service, its worker and the gateway the way `make up` does (on
    private ports too); `stop("posts")`, `stop("posts-worker")`, `stop("kafka")` and `up()` or
    `up_all()` stop and restart single parts. `env` (e.g. settings for the services) is passed on.
    `down()` stops it for good: its data (also PostgreSQL's, which lands in /var/tmp when the
    state folder is not reachable for the `postgres` user) and its reserved ports are given back;
    the logs stay in the state folder.
    """

    STACK = Path(__file__).resolve().parents[4] / "scripts" / "stack.py"

    def __init__(self, state: Path, env: dict[str, str] | None = None) -> None:
        self.state = state
        self.ports = {name: free_port() for name in ("PG", "REDIS", "KAFKA", "KAFKA_CONTROLLER", "PROM")}
        self.service_ports = {name: free_port() for name in STACK_SERVICES}
        self.env = {
            "PINSTACK_STATE_DIR": str(state),
            **{f"PINSTACK_{k}_PORT": str(v) for k, v in self.ports.items()},
            **{f"PINSTACK_{k.upper()}_PORT": str(v) for k, v in self.service_ports.items()},
            "PINSTACK_SERVE_NODE": "0",  # the node's pods use the main stack, never a test's own
            **(env or {}),
        }

    def run(self, *args: str) -> None:
        done = subprocess.run(
            [sys.executable, str(self.STACK), *args], env={**os.environ, **self.env}, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"stack.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")

    def up(self) -> None:
        self.run("up", "--infra-only")

    def up_all(self) -> None:
        """Start whatever is not running, services and workers included (migrates first)."""
        self.run("up")

    def service_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.service_ports[name]}"

    def service_database(self, name: str) -> str:
        """The database `up_all()` made for a service (plain libpq URL)."""
        return f"postgresql://postgres@127.0.0.1:{self.ports['PG']}/pinstack_{name}"

    def pid(self, component: str) -> int | None:
        """PID of a component started by `up_all()` (`posts`, `posts-worker`, `redis`...), if any."""
        try:
            return int((self.state / "run" / f"{component}.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def log(self, component: str) -> Path:
        return self.state / "logs" / f"{component}.log"

    def stop(self, *components: str) -> None:
        self.run("stop", *components)

    def down(self) -> None:
        """Stop everything and leave nothing on the machine (data, reserved ports) but its logs."""
        self.run("clean", "--keep-logs")

    @property
    def pg_admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.ports['PG']}/postgres"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports['REDIS']}/0"

    @property
    def kafka(self) -> str:
        return f"127.0.0.1:{self.ports['KAFKA']}"

    def database(self, name: str, migrations: Path) -> str:
        """A fresh migrated database on this stack's PostgreSQL."""
        with psycopg.connect(self.pg_admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"postgresql://postgres@127.0.0.1:{self.ports['PG']}/{name}"
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, migrate(url, migrations)).result()
        return url


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    stack = PrivateStack(tmp_path_factory.mktemp("stack"))
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


# ----------------------------------------------------------------------------- cluster tier
# A real Kubernetes control plane (etcd + kube-apiserver, no kubelet: pods never run, no garbage
# collector, namespaces stay Terminating) from scripts/cluster.py, the same one `make cluster`
# starts. The binaries are built once per version by `make cluster-build` and cached in
# ~/.cache/pinstack/bin/v<k8s>/; this fixture never builds them.

import json  # noqa: E402
from dataclasses import dataclass  # noqa: E402

CLUSTER_SCRIPT = Path(__file__).resolve().parents[4] / "scripts" / "cluster.py"
CLUSTER_NOT_BUILT = 3  # exit code of `cluster.py up --no-build` when the binaries are missing


@dataclass(frozen=True)
class KubeCluster:
    """Connection to the local control plane, with kubectl and helm bound to its kubeconfig."""

    kubeconfig: Path
    server: str
    bin_dir: Path
    state_dir: Path

    @property
    def env(self) -> dict[str, str]:
        """Environment for a subprocess that talks to this cluster (KUBECONFIG, PATH, helm homes)."""
        helm = self.state_dir / "helm"
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "HELM_CACHE_HOME": str(helm / "cache"),
            "HELM_CONFIG_HOME": str(helm / "config"),
            "HELM_DATA_HOME": str(helm / "data"),
        }

    def run(
        self, tool: str, *args: str, input: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a cached binary (kubectl, helm, ...); raises with its output when `check` and it fails."""
        done = subprocess.run(
            [str(self.bin_dir / tool), *args],
            input=input,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{tool} {' '.join(args)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, **kwargs)

    def helm(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.run("helm", *args, **kwargs)


@pytest.fixture(scope="session")
def kube_cluster() -> KubeCluster:
    """The control plane of `make cluster`: reused when it runs, started (and left running, like
    `make infra`; `make cluster-down` stops it) when it does not. Skips when the binaries are not
    built, unless PINSTACK_REQUIRE_CLUSTER is set (non-empty, not 0): then it fails."""
    required = os.environ.get("PINSTACK_REQUIRE_CLUSTER", "") not in ("", "0")
    done = subprocess.run(
        [sys.executable, str(CLUSTER_SCRIPT), "up", "--no-build", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode == CLUSTER_NOT_BUILT:
        why = (
            "the Kubernetes binaries (kube-apiserver, etcd, kubectl, helm) are not built: "
            "run `make cluster-build` once (cached in ~/.cache/pinstack/bin)"
        )
        if required:
            pytest.fail(f"{why}; PINSTACK_REQUIRE_CLUSTER is set, so this is an error", pytrace=False)
        pytest.skip(why)
    if done.returncode != 0:
        pytest.fail(f"`scripts/cluster.py up` failed (exit {done.returncode}):\n{done.stderr[-4000:]}", pytrace=False)
    info = json.loads(done.stdout.strip().splitlines()[-1])
    return KubeCluster(
        kubeconfig=Path(info["kubeconfig"]),
        server=info["server"],
        bin_dir=Path(info["bin_dir"]),
        state_dir=Path(info["state_dir"]),
    )


@pytest.fixture(scope="session")
def service_server(pg_database: Callable[[str, Path], str]) -> Iterator[Callable[..., str]]:
    """Factory: a real uvicorn server of `pinstack_<name>` on its own migrated test database,
    one per name and test worker (e.g. the users service other services call over HTTP).
    `upstream` wires it to other such servers: `server("posts", USERS_URL=server("users"))`."""
    with ExitStack() as stack:
        urls: dict[str, str] = {}

        def server(name: str, **upstream: str) -> str:
            if name not in urls:
                env = {
                    "ENVIRONMENT": "test",
                    "DATABASE_URL": pg_database(name, SERVICES_DIR / name / "migrations"),
                    "REDIS_URL": REDIS_URL,
                    "REDIS_KEY_PREFIX": f"test:{uuid.uuid4().hex[:8]}:{name}:",
                    **upstream,
                }
                urls[name] = stack.enter_context(spawn_service(f"pinstack_{name}.main:create_app", env))
            return urls[name]

        yield server


@pytest.fixture(scope="session")
def users_url(service_server: Callable[[str], str]) -> str:
    """A real users server: services reach users over HTTP as in production (fallback lookups)."""
    return service_server("users")


@contextmanager
def sql_statements(engine: Any) -> Iterator[list[str]]:
    """Collects the SQL statements `engine` (an AsyncEngine) sends while the block runs."""
    from sqlalchemy import event

    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)

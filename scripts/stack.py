#!/usr/bin/env python3
"""Pinstack local stack: PostgreSQL, Redis, Kafka, Prometheus and the services on 127.0.0.1.

    stack.py up [--infra-only]   start what is not running (reuses what runs)
    stack.py down                stop everything this tool started (by recorded PID)
    stack.py status              table of components, PIDs, ports and URLs
    stack.py logs [NAME] [-f]    tail the logs (all, or one component)
    stack.py env                 `export ...` lines for tests and shells
    stack.py psql [SVC]          psql into the service's database (or `postgres`)
    stack.py clean               down, then delete the state folder

Standard library only; runs with the system python3. Needs `scripts/bootstrap.sh` first.
State (data, logs, pid files, secrets) lives in $PINSTACK_STATE_DIR (default <repo>/.stack).
When the local Kubernetes node runs (`make cluster`), PostgreSQL, Redis and Kafka also listen on
its bridge address for its pods (Kafka on PINSTACK_KAFKA_NODE_PORT, default Kafka's port + 2);
PINSTACK_SERVE_NODE=0 turns that off (the tests' private stacks do).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import functools
import hashlib
import ipaddress
import os
import secrets
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from string import Template

import registry
from proclib import (
    ScriptError,
    cpu_seconds,
    env_port,
    exit_note,
    file_lock,
    log_size,
    pid_alive,
    port_in_use,
    read_pid,
    running_pid,
    spawn,
    started_alive,
    stop_recorded,
    tail,
    terminate,
    wait_until,
    write_pid,
)

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
PG_BIN = Path(os.environ.get("PINSTACK_PG_BIN", "/usr/lib/postgresql/15/bin"))
DEFAULT_KAFKA_VERSION = "3.9.1"
HOST = "127.0.0.1"

# From the service registry (services/contracts): name, env var for the port, default port
# (start order is START_GROUPS: each group after the services its members call)
SERVICES: list[tuple[str, str, int]] = [(s.name, f"PINSTACK_{s.name.upper()}_PORT", s.port) for s in registry.SERVICES]
START_GROUPS = registry.start_order()
NO_DATABASE = {s.name for s in registry.SERVICES if not s.database}
# A starting server is waited for as long as it lives and works (its CPU time or its log grows),
# up to START_TIMEOUT; one that shows no sign of work for STALL_TIMEOUT is given up on.
START_TIMEOUT = float(os.environ.get("PINSTACK_START_TIMEOUT") or 600)
STALL_TIMEOUT = float(os.environ.get("PINSTACK_START_STALL") or 90)
REPORT_EVERY = 10.0
# SIGTERM, then SIGKILL after this: above the services' bound for the requests in flight
# (pinstack_kit.serve.GRACEFUL_SHUTDOWN_SECONDS, 10 s) plus their lifespan's close
STOP_TIMEOUT = 15.0


# the bridge of the local Kubernetes node (scripts/node.py): when it exists at start, PostgreSQL,
# Redis and Kafka listen on its address too, so the node's pods reach them
NODE_BRIDGE = "cni-pinstack0"


def node_interface() -> ipaddress.IPv4Interface | None:
    """The node bridge's address (e.g. 10.244.0.1/24), or None when there is no node."""
    done = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", NODE_BRIDGE], capture_output=True, text=True)
    fields = done.stdout.split()
    if done.returncode != 0 or "inet" not in fields:
        return None
    return ipaddress.IPv4Interface(fields[fields.index("inet") + 1])


class StackError(ScriptError):
    """A failure of the local stack (main() reports every ScriptError the same way)."""


def say(component: str, message: str) -> None:
    print(f"[stack] {component:<20} {message}", flush=True)


# ----------------------------------------------------------------------------- configuration


class Config:
    def __init__(self) -> None:
        self.state = Path(os.environ.get("PINSTACK_STATE_DIR") or REPO / ".stack").resolve()
        self.data = self.state / "data"
        self.logs = self.state / "logs"
        self.run = self.state / "run"
        self.secrets = self.state / "secrets"
        self.conf = self.state / "conf"
        self.pg_port = env_port("PINSTACK_PG_PORT", 55432)
        self.redis_port = env_port("PINSTACK_REDIS_PORT", 56379)
        self.kafka_port = env_port("PINSTACK_KAFKA_PORT", 59092)
        self.kafka_controller_port = env_port("PINSTACK_KAFKA_CONTROLLER_PORT", 59093)
        # Kafka's listener for the node's pods (one port per listener)
        self.kafka_node_port = env_port("PINSTACK_KAFKA_NODE_PORT", self.kafka_port + 2)
        self.node = node_interface() if os.environ.get("PINSTACK_SERVE_NODE", "1") != "0" else None
        self.prom_port = env_port("PINSTACK_PROM_PORT", 59090)
        self.service_ports = {name: env_port(var, default) for name, var, default in SERVICES}
        # inline (default): each API process runs its service's worker loops too, 8 processes
        # instead of 15 (about 600 MB less); process: one worker process per service, as in a pod
        self.workers = os.environ.get("PINSTACK_WORKERS") or "inline"
        if self.workers not in ("inline", "process"):
            raise StackError(f"PINSTACK_WORKERS={self.workers!r}: use inline (the default) or process")
        self.processes = api_processes(os.environ.get("PINSTACK_PROCESSES", ""), {n for n, _, _ in SERVICES})
        self.kafka_version = os.environ.get("KAFKA_VERSION") or DEFAULT_KAFKA_VERSION
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        self.kafka_jars = cache / "pinstack" / "kafka" / self.kafka_version / "jars"
        self.venv = REPO / ".venv"
        self.jwt_key = self.secrets / "jwt-ed25519.pem"
        self.pg_password_file = self.secrets / "postgres-password"  # for the node's pods

    # addresses
    @property
    def pg_dsn(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.pg_port}/postgres"

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@{HOST}:{self.pg_port}/pinstack_{name}"

    @property
    def redis_url(self) -> str:
        return f"redis://{HOST}:{self.redis_port}/0"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{HOST}:{self.kafka_port}"

    @property
    def prom_url(self) -> str:
        return f"http://{HOST}:{self.prom_port}"

    def service_url(self, name: str) -> str:
        return f"http://{HOST}:{self.service_ports[name]}"

    def pidfile(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def logfile(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def make_dirs(self) -> None:
        for d in (self.data, self.logs, self.run, self.conf):
            d.mkdir(parents=True, exist_ok=True)
        self.secrets.mkdir(parents=True, exist_ok=True, mode=0o700)


# ----------------------------------------------------------------------------- process helpers


def port_open(port: int, timeout: float = 0.3, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


RESERVED_PORTS = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")


def _parse_ports(text: str) -> set[int]:
    ports: set[int] = set()
    for part in filter(None, text.strip().split(",")):
        a, _, b = part.partition("-")
        with contextlib.suppress(ValueError):
            ports.update(range(int(a), int(b or a) + 1))
    return ports


def _format_ports(ports: set[int]) -> str:
    runs: list[list[int]] = []
    for port in sorted(ports):
        if runs and port == runs[-1][1] + 1:
            runs[-1][1] = port
        else:
            runs.append([port, port])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


@contextlib.contextmanager
def reserved_ports() -> Iterator[set[int] | None]:
    """The machine's reserved ports, to change in place: written back when the block changed them.
    None without root. Several stacks may start at once: the flock keeps their changes apart."""
    if os.geteuid() != 0:
        yield None
        return
    try:
        handle = RESERVED_PORTS.open()
    except OSError:
        yield None
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        before = _parse_ports(handle.read())
        ports = set(before)
        yield ports
        if ports != before:
            RESERVED_PORTS.write_text(_format_ports(ports) + "\n")


def reserve_ports(cfg: Config, ports: list[int]) -> None:
    """Keep the kernel from handing our ports out as ephemeral client ports (root only, best effort).

    Adds them to net.ipv4.ip_local_reserved_ports and notes which in the state folder, so that
    `down` gives back exactly those: the machine is left as it was found.
    """
    try:
        low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return
    record = cfg.run / "reserved-ports"
    with reserved_ports() as reserved:
        if reserved is None:
            return
        wanted = {p for p in ports if low <= p <= high and p not in reserved}
        if not wanted:
            return
        reserved |= wanted
        record.write_text(_format_ports(wanted | _parse_ports(record.read_text() if record.exists() else "")) + "\n")
    say(
        "ports",
        f"reserved {_format_ports(wanted)} (net.ipv4.ip_local_reserved_ports) until `stack.py down`: "
        "no client connection gets them as ephemeral port meanwhile",
    )


def release_ports(cfg: Config) -> None:
    """Give back the ports `reserve_ports` added for this state folder."""
    record = cfg.run / "reserved-ports"
    if not record.exists():
        return
    ours = _parse_ports(record.read_text())
    with reserved_ports() as reserved:
        if reserved is not None:
            reserved -= ours
    record.unlink()
    say("ports", f"released {_format_ports(ours)} (net.ipv4.ip_local_reserved_ports)")


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def wait_started(name: str, pid: int, needle: str, what: str, check: Callable[[], bool], log: Path) -> None:
    """Wait for a process we started until `check` (`what`, said every REPORT_EVERY seconds) holds,
    as a person would: while it lives and makes progress, up to START_TIMEOUT. A busy machine
    only makes it slower; an exit or STALL_TIMEOUT without any work is a failure."""
    hint = "fix the cause, then run `stack.py up` again (it starts only what is not running)"
    t0 = time.monotonic()
    last_work, next_report = t0, t0 + REPORT_EVERY
    seen = (cpu_seconds(pid), log_size(log))
    while not check():
        if not started_alive(pid, needle):
            if check():
                break
            raise fail_with_log(f"{name} exited{exit_note(pid)} (pid {pid}) before {what}", log, hint)
        now = time.monotonic()
        work = (cpu_seconds(pid), log_size(log))
        if work != seen:
            seen, last_work = work, now
        if now - last_work >= STALL_TIMEOUT:
            raise fail_with_log(
                f"{name} (pid {pid}) did no work for {STALL_TIMEOUT:.0f}s (no CPU time, no log line) "
                f"and has not {what} after {now - t0:.0f}s",
                log,
                hint,
            )
        if now - t0 >= START_TIMEOUT:
            raise fail_with_log(
                f"{name} (pid {pid}) kept working but has not {what} in {START_TIMEOUT:.0f}s", log, hint
            )
        if now >= next_report:
            say(name, f"waiting until it has {what}: {now - t0:.0f}s, pid {pid} alive, {seen[0] or 0:.1f}s CPU so far")
            next_report += REPORT_EVERY
        time.sleep(0.25)


def fail_with_log(what: str, log: Path, hint: str = "") -> StackError:
    print(f"----- last lines of {log} -----", file=sys.stderr)
    print(tail(log), file=sys.stderr)
    print("-----", file=sys.stderr)
    return StackError(f"{what} (full log: {log}){'; ' + hint if hint else ''}")


def state_lock(cfg: Config) -> contextlib.AbstractContextManager[None]:
    """One `up`/`down` at a time per state folder."""
    return file_lock(cfg.run / "stack.lock", "stack.py up/down", functools.partial(say, "lock"))


def port_taken_error(port: int, var: str, what: str) -> StackError:
    return StackError(
        f"port {port} is taken by another process (not one this tool started), so {what} cannot "
        f"listen there: stop that process or set {var} to a free port "
        f"(`ss -tanp | grep :{port}` shows who holds it)"
    )


# ----------------------------------------------------------------------------- PostgreSQL


def as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


def pg_user_ids() -> tuple[int, int]:
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    import pwd

    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        raise StackError("there is no `postgres` user: install PostgreSQL with scripts/bootstrap.sh") from None
    return pw.pw_uid, pw.pw_gid


def postgres_can_reach(path: Path) -> bool:
    if os.geteuid() != 0:
        return True
    r = subprocess.run(as_postgres(["test", "-x", str(path)]), capture_output=True)
    return r.returncode == 0


def pg_base(cfg: Config) -> Path:
    """Folder (owned by `postgres`) holding data/ and socket/.

    Normally <state>/data/pg. The server runs as user `postgres`, which must be able to traverse
    every parent folder; if it cannot (for example a repo under /root), the data goes to
    /var/tmp/pinstack-pg-<hash of the state path>, and <state>/data/pg.location records where.
    PINSTACK_PG_DATA overrides both.
    """
    if os.environ.get("PINSTACK_PG_DATA"):
        return Path(os.environ["PINSTACK_PG_DATA"]).resolve()
    location = cfg.data / "pg.location"
    if location.exists():
        return Path(location.read_text().strip())
    if postgres_can_reach(cfg.data):
        return cfg.data / "pg"
    digest = hashlib.sha256(str(cfg.state).encode()).hexdigest()[:10]
    base = Path("/var/tmp") / f"pinstack-pg-{digest}"
    say("postgres", f"user postgres cannot reach {cfg.data}; keeping PostgreSQL data in {base}")
    location.write_text(f"{base}\n")
    return base


def pg_paths(cfg: Config) -> tuple[Path, Path, Path]:
    base = pg_base(cfg)
    pgdata = base / "data"
    socket_dir = base / "socket"
    if len(str(socket_dir / f".s.PGSQL.{cfg.pg_port}.lock")) > 100:  # unix socket paths max ~107 bytes
        socket_dir = Path("/tmp")
    return base, pgdata, socket_dir


def pg_prepare_dirs(cfg: Config, base: Path, pgdata: Path, socket_dir: Path, log: Path) -> None:
    uid, gid = pg_user_ids()
    base.mkdir(parents=True, exist_ok=True)
    for d, mode in ((base, 0o755), (pgdata, 0o700), (socket_dir, 0o755)):
        if d == Path("/tmp"):
            continue
        d.mkdir(parents=True, exist_ok=True)
        os.chown(d, uid, gid)
        os.chmod(d, mode)
    if not postgres_can_reach(pgdata):
        raise StackError(
            f"user postgres cannot reach {pgdata}: make its parent folders traversable (chmod o+x) "
            "or set PINSTACK_PG_DATA to a folder it can reach"
        )
    log.touch(exist_ok=True)
    os.chown(log, uid, gid)


def pg_running_pid(pgdata: Path) -> int | None:
    """PID of the postmaster of `pgdata`, if it runs."""
    pid = read_pid(pgdata / "postmaster.pid")
    return pid if pid_alive(pid, "postgres") else None


def pg_start(cfg: Config) -> None:
    t0 = time.monotonic()
    base, pgdata, socket_dir = pg_paths(cfg)
    log = cfg.logfile("postgres")
    if not log.exists() and base != cfg.data / "pg":
        # data outside the state folder: keep the log next to it, linked from logs/
        real_log = base / "postgres.log"
        base.mkdir(parents=True, exist_ok=True)
        real_log.touch(exist_ok=True)
        log.symlink_to(real_log)
    if log.is_symlink():
        log = log.resolve()
    pidfile = cfg.pidfile("postgres")

    pid = pg_running_pid(pgdata)
    if pid:
        if port_open(cfg.pg_port):
            write_pid(pidfile, pid)
            say("postgres", f"already running (pid {pid}) on {HOST}:{cfg.pg_port}")
            if cfg.node:
                pg_admin_password(cfg)
            return
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        other = lines[3] if len(lines) > 3 else "?"
        raise StackError(
            f"PostgreSQL of {pgdata} runs (pid {pid}) on port {other}, not {cfg.pg_port}: "
            f"run `stack.py down` first, or set PINSTACK_PG_PORT={other}"
        )
    if port_in_use(cfg.pg_port):
        raise port_taken_error(cfg.pg_port, "PINSTACK_PG_PORT", "PostgreSQL")

    pg_prepare_dirs(cfg, base, pgdata, socket_dir, log)
    if not (pgdata / "PG_VERSION").exists():
        r = subprocess.run(
            as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--no-locale",
                ]
            ),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        if r.returncode != 0:
            raise StackError(f"initdb failed:\n{r.stdout}{r.stderr}\nremove {pgdata} and retry")
        say("postgres", f"initdb {pgdata} ({time.monotonic() - t0:.1f}s)")

    listen = HOST
    if cfg.node:
        listen = f"{HOST},{cfg.node.ip}"
        pg_allow_node(pgdata, cfg.node)
    opts = (
        f"-p {cfg.pg_port} -k {shlex.quote(str(socket_dir))} -c listen_addresses={listen} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
    )
    r = subprocess.run(
        as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(pgdata), "-l", str(log), "-w", "-t", "60", "-o", opts, "start"]),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    if r.returncode != 0 or not wait_until(lambda: port_open(cfg.pg_port), 10):
        print(r.stdout + r.stderr, file=sys.stderr)
        raise fail_with_log(f"PostgreSQL did not start on port {cfg.pg_port}", log)
    pid = pg_running_pid(pgdata)
    pidfile.write_text(f"{pid}\n")  # postmaster.pid may be gone already: written as read
    say("postgres", f"started (pid {pid}) on {HOST}:{cfg.pg_port} in {time.monotonic() - t0:.1f}s; data {pgdata}")
    if cfg.node:
        pg_admin_password(cfg)


def pg_admin_password(cfg: Config) -> None:
    """The node's pods (the operator among them) sign in with passwords: give `postgres` one, kept
    in the state's secrets (127.0.0.1 still trusts every local client)."""
    if not cfg.pg_password_file.exists():
        cfg.secrets.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(cfg.pg_password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24))
    password = cfg.pg_password_file.read_text().strip()
    # the password is our own token_urlsafe: no quote can be in it
    statement = f"ALTER ROLE postgres PASSWORD '{password}'"
    subprocess.run([*psql_cmd(cfg), "-X", "-q", "-c", statement], check=True, capture_output=True)


def pg_allow_node(pgdata: Path, node: ipaddress.IPv4Interface) -> None:
    """pg_hba lines for the node: the host itself over the bridge as on 127.0.0.1 (trust), the
    pods with the passwords the operator gave their roles."""
    hba = pgdata / "pg_hba.conf"
    lines = [
        "# Pinstack node (scripts/stack.py): the host over the bridge, then the pods",
        f"host all all {node.ip}/32 trust",
        f"host all all {node.network} scram-sha-256",
    ]
    text = hba.read_text()
    if lines[1] not in text:
        hba.write_text(text.rstrip("\n") + "\n" + "\n".join(lines) + "\n")


def pg_stop(cfg: Config) -> None:
    pidfile = cfg.pidfile("postgres")
    location = cfg.data / "pg.location"
    if not (pidfile.exists() or location.exists() or (cfg.data / "pg").exists()):
        return
    _, pgdata, _ = pg_paths(cfg)
    pid = pg_running_pid(pgdata)
    if pid:
        say("postgres", f"stopping pid {pid} (pg_ctl stop -m fast)")
        r = subprocess.run(
            as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "-t", "30", "stop"]),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        if r.returncode != 0:
            print(r.stdout + r.stderr, file=sys.stderr)
            raise StackError(f"pg_ctl stop failed for {pgdata}; see {cfg.logfile('postgres')}")
    pidfile.unlink(missing_ok=True)


def psql_cmd(cfg: Config, dbname: str = "postgres") -> list[str]:
    psql = PG_BIN / "psql"
    return [str(psql) if psql.exists() else "psql", "-h", HOST, "-p", str(cfg.pg_port), "-U", "postgres", "-d", dbname]


def ensure_database(cfg: Config, name: str) -> None:
    db = f"pinstack_{name}"
    base = [*psql_cmd(cfg), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA", "-c"]
    # db is built from a fixed service name, never from user input
    r = subprocess.run(
        [*base, f"SELECT 1 FROM pg_database WHERE datname = '{db}'"],  # noqa: S608
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if r.returncode != 0:
        raise StackError(f"cannot query PostgreSQL on port {cfg.pg_port}: {r.stderr.strip()}")
    if r.stdout.strip() == "1":
        return
    r = subprocess.run([*base, f'CREATE DATABASE "{db}"'], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0 and "already exists" not in r.stderr:
        raise StackError(f"CREATE DATABASE {db} failed: {r.stderr.strip()}")
    say(name, f"created database {db}")


# ----------------------------------------------------------------------------- Redis


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_start(cfg: Config) -> None:
    t0 = time.monotonic()
    pidfile = cfg.pidfile("redis")
    pid = read_pid(pidfile)
    if pid_alive(pid, "redis-server"):
        if wait_until(lambda: redis_ping(cfg.redis_port), 5):
            say("redis", f"already running (pid {pid}) on {HOST}:{cfg.redis_port}")
            return
        raise StackError(
            f"redis pid {pid} runs but does not answer on port {cfg.redis_port}: run `stack.py down` and retry"
        )
    pidfile.unlink(missing_ok=True)
    if port_in_use(cfg.redis_port):
        raise port_taken_error(cfg.redis_port, "PINSTACK_REDIS_PORT", "Redis")
    data = cfg.data / "redis"
    data.mkdir(parents=True, exist_ok=True)
    log = cfg.logfile("redis")
    r = subprocess.run(
        [
            "redis-server",
            "--port",
            str(cfg.redis_port),
            "--bind",
            HOST,
            # on the node's bridge too; protected mode would refuse the pods before their AUTH
            *([str(cfg.node.ip), "--protected-mode", "no"] if cfg.node else []),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data),
            "--daemonize",
            "yes",
            "--pidfile",
            str(pidfile),
            "--logfile",
            str(log),
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    if r.returncode != 0:
        raise StackError(f"redis-server failed to start: {r.stdout}{r.stderr}")
    if not wait_until(lambda: redis_ping(cfg.redis_port), 10):
        raise fail_with_log(f"Redis did not answer PING on port {cfg.redis_port}", log)
    wait_until(lambda: read_pid(pidfile) is not None, 2)
    say("redis", f"started (pid {read_pid(pidfile)}) on {HOST}:{cfg.redis_port} in {time.monotonic() - t0:.1f}s")


def redis_stop(cfg: Config) -> None:
    stop_recorded("redis", cfg.pidfile("redis"), "redis-server", STOP_TIMEOUT, say)


# ----------------------------------------------------------------------------- Kafka


def kafka_metadata_ok(port: int) -> bool:
    """Send a Metadata v4 request (no topics); true once a broker and a controller are listed."""
    client_id = b"pinstack-stack"
    header = struct.pack(">hhih", 3, 4, 7, len(client_id)) + client_id
    body = struct.pack(">ib", 0, 0)  # topics: empty array, allow_auto_topic_creation: false
    request = header + body
    try:
        with socket.create_connection((HOST, port), timeout=2) as sock:
            sock.settimeout(3)
            sock.sendall(struct.pack(">i", len(request)) + request)
            raw = b""
            while len(raw) < 4:
                chunk = sock.recv(4 - len(raw))
                if not chunk:
                    return False
                raw += chunk
            (size,) = struct.unpack(">i", raw)
            data = b""
            while len(data) < size:
                chunk = sock.recv(size - len(data))
                if not chunk:
                    return False
                data += chunk
        # correlation_id, throttle_time_ms, brokers[...]
        corr, _throttle, nbrokers = struct.unpack_from(">iii", data, 0)
        if corr != 7 or nbrokers < 1:
            return False
        off = 12
        for _ in range(nbrokers):
            off += 4  # node_id
            (hlen,) = struct.unpack_from(">h", data, off)
            off += 2 + hlen + 4  # host, port
            (rlen,) = struct.unpack_from(">h", data, off)
            off += 2 + max(rlen, 0)  # rack
        (clen,) = struct.unpack_from(">h", data, off)
        off += 2 + max(clen, 0)  # cluster_id
        (controller,) = struct.unpack_from(">i", data, off)
        return controller >= 0
    except (OSError, struct.error):
        return False


def kafka_java_cmd(cfg: Config, *args: str, heap: tuple[str, str] = ("-Xmx512m", "-Xms256m")) -> list[str]:
    java = shutil.which("java")
    if not java:
        raise StackError("java not found: run scripts/bootstrap.sh (make bootstrap)")
    return [
        java,
        *heap,
        "-Djava.awt.headless=true",
        "-XX:+ExitOnOutOfMemoryError",
        f"-Dlog4j.configuration=file:{SCRIPTS / 'kafka' / 'log4j.properties'}",
        f"-Dkafka.logs.dir={cfg.logs}",
        "-cp",
        f"{cfg.kafka_jars}/*",
        *args,
    ]


def kafka_config(cfg: Config) -> Path:
    text = Template((SCRIPTS / "kafka" / "server.properties.in").read_text()).substitute(
        port=cfg.kafka_port,
        controller_port=cfg.kafka_controller_port,
        log_dirs=cfg.data / "kafka",
        node_listener=f",NODE://{cfg.node.ip}:{cfg.kafka_node_port}" if cfg.node else "",
    )
    path = cfg.conf / "kafka" / "server.properties"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def kafka_cluster_id() -> str:
    """A random cluster id as Kafka makes them (Uuid.randomUuid): 22 URL-safe base64 characters,
    never starting with "-", which the storage tool would read as an option (1 id in 64)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def kafka_spawn(cfg: Config) -> int | None:
    """Start the broker if needed (non-blocking); returns the PID to wait for, None if already ready."""
    pidfile = cfg.pidfile("kafka")
    pid = read_pid(pidfile)
    if pid_alive(pid, "kafka.Kafka"):
        if kafka_metadata_ok(cfg.kafka_port):
            say("kafka", f"already running (pid {pid}) on {cfg.kafka_bootstrap}")
            return None
        return pid  # still starting: wait for it
    pidfile.unlink(missing_ok=True)
    if not (cfg.kafka_jars / ".pinstack-complete").exists():
        raise StackError(
            f"the Kafka {cfg.kafka_version} jars are missing ({cfg.kafka_jars}): "
            "run scripts/bootstrap.sh (make bootstrap)"
        )
    for port, var in (
        (cfg.kafka_port, "PINSTACK_KAFKA_PORT"),
        (cfg.kafka_controller_port, "PINSTACK_KAFKA_CONTROLLER_PORT"),
        *([(cfg.kafka_node_port, "PINSTACK_KAFKA_NODE_PORT")] if cfg.node else []),
    ):
        if port_in_use(port):
            raise port_taken_error(port, var, "Kafka")
    conf = kafka_config(cfg)
    log_dir = cfg.data / "kafka"
    if not (log_dir / "meta.properties").exists():
        t0 = time.monotonic()
        id_file = cfg.data / "kafka-cluster-id"
        if not id_file.exists():
            id_file.write_text(kafka_cluster_id() + "\n")
        cluster_id = id_file.read_text().strip()
        log_dir.mkdir(parents=True, exist_ok=True)
        fmt_log = cfg.logfile("kafka-format")
        with fmt_log.open("w") as out:
            r = subprocess.run(
                kafka_java_cmd(
                    cfg,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(conf),
                    heap=("-Xmx256m", "-Xms64m"),
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        if r.returncode != 0:
            raise fail_with_log("formatting the Kafka storage failed", fmt_log, f"remove {log_dir} and retry")
        say("kafka", f"formatted KRaft storage (cluster id {cluster_id}) in {time.monotonic() - t0:.1f}s")
    pid = spawn(kafka_java_cmd(cfg, "kafka.Kafka", str(conf)), cfg.logfile("kafka"), cwd=REPO, pidfile=pidfile)
    say("kafka", f"starting (pid {pid}), log {cfg.logfile('kafka')}")
    return pid


def kafka_wait(cfg: Config, pid: int, t0: float) -> None:
    wait_started(
        "kafka",
        pid,
        "kafka.Kafka",
        f"a broker and a controller in its metadata on {cfg.kafka_bootstrap}",
        lambda: port_open(cfg.kafka_port) and kafka_metadata_ok(cfg.kafka_port),
        cfg.logfile("kafka"),
    )
    say("kafka", f"ready (pid {pid}) on {cfg.kafka_bootstrap} after {time.monotonic() - t0:.1f}s")


def kafka_stop(cfg: Config) -> None:
    stop_recorded("kafka", cfg.pidfile("kafka"), "kafka.Kafka", STOP_TIMEOUT, say)


# ----------------------------------------------------------------------------- Prometheus


def prometheus_config(cfg: Config, services: list[str]) -> str:
    lines = [
        "# generated by scripts/stack.py: every running Pinstack service, scraped every 5s",
        "global:",
        "  scrape_interval: 5s",
        "  evaluation_interval: 5s",
        "scrape_configs:",
        "  - job_name: prometheus",
        "    static_configs:",
        f"      - targets: ['{HOST}:{cfg.prom_port}']",
    ]
    for name in services:
        jobs = [(name, cfg.service_ports[name])]
        if separate_worker(cfg, name):  # outbox backlog, consumer lag: the worker serves its own /metrics
            jobs.append((f"{name}-worker", worker_metrics_port(cfg, name)))
        for job, port in jobs:
            lines += [
                f"  - job_name: {job}",
                "    metrics_path: /metrics",
                "    static_configs:",
                f"      - targets: ['{HOST}:{port}']",
            ]
    return "\n".join(lines) + "\n"


def worker_metrics_port(cfg: Config, name: str) -> int:
    """A service's worker serves metrics 100 above the API's port (users 8101 -> 8201)."""
    return cfg.service_ports[name] + 100


def running_services(cfg: Config) -> list[str]:
    return [name for name, _, _ in SERVICES if pid_alive(read_pid(cfg.pidfile(name)), f"pinstack_{name}.main")]


def prometheus_write_config(cfg: Config, services: list[str]) -> bool:
    """Write prometheus.yml; returns True if it changed."""
    path = cfg.conf / "prometheus.yml"
    text = prometheus_config(cfg, services)
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def prometheus_start(cfg: Config) -> None:
    t0 = time.monotonic()
    pidfile = cfg.pidfile("prometheus")
    changed = prometheus_write_config(cfg, running_services(cfg))
    pid = read_pid(pidfile)
    ready_url = f"{cfg.prom_url}/-/ready"
    if pid_alive(pid, "prometheus"):
        assert pid is not None
        if changed:
            os.kill(pid, signal.SIGHUP)
        if wait_until(lambda: http_status(ready_url) == 200, 30):
            say("prometheus", f"already running (pid {pid}) on {cfg.prom_url}")
            return
        raise StackError(f"prometheus pid {pid} is not ready at {ready_url}: run `stack.py down` and retry")
    pidfile.unlink(missing_ok=True)
    if port_in_use(cfg.prom_port):
        raise port_taken_error(cfg.prom_port, "PINSTACK_PROM_PORT", "Prometheus")
    binary = shutil.which("prometheus")
    if not binary:
        raise StackError("prometheus not found: run scripts/bootstrap.sh (make bootstrap)")
    data = cfg.data / "prometheus"
    data.mkdir(parents=True, exist_ok=True)
    log = cfg.logfile("prometheus")
    pid = spawn(
        [
            binary,
            f"--config.file={cfg.conf / 'prometheus.yml'}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address={HOST}:{cfg.prom_port}",
            "--storage.tsdb.retention.time=7d",
            "--web.enable-lifecycle",
        ],
        log,
        cwd=REPO,
        pidfile=pidfile,
    )
    wait_started(
        "prometheus", pid, "prometheus", f"answered GET {ready_url} 200", lambda: http_status(ready_url) == 200, log
    )
    say("prometheus", f"started (pid {pid}) on {cfg.prom_url} in {time.monotonic() - t0:.1f}s")


def prometheus_reload(cfg: Config) -> None:
    pid = read_pid(cfg.pidfile("prometheus"))
    if prometheus_write_config(cfg, running_services(cfg)) and pid_alive(pid, "prometheus"):
        assert pid is not None
        os.kill(pid, signal.SIGHUP)
        say("prometheus", "reloaded scrape config (SIGHUP)")


def prometheus_stop(cfg: Config) -> None:
    stop_recorded("prometheus", cfg.pidfile("prometheus"), "prometheus", STOP_TIMEOUT, say)


# ----------------------------------------------------------------------------- services


def service_dir(name: str) -> Path:
    return REPO / "services" / name


def service_exists(name: str) -> bool:
    return (service_dir(name) / "src" / f"pinstack_{name}" / "main.py").exists()


def api_processes(spec: str, names: set[str]) -> dict[str, int]:
    """PINSTACK_PROCESSES=gateway=2,posts=2: API processes of a service on its port (default 1)."""
    found = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, count = item.partition("=")
        if name not in names or not count.isdigit() or int(count) < 1:
            raise StackError(
                f"PINSTACK_PROCESSES: {item!r} is not <service>=<count> (services: {', '.join(sorted(names))})"
            )
        found[name] = int(count)
    return found


def has_worker(name: str) -> bool:
    return registry.BY_NAME[name].worker


def separate_worker(cfg: Config, name: str) -> bool:
    """Whether the service's worker loops run in a process of their own (PINSTACK_WORKERS=process)."""
    return has_worker(name) and cfg.workers == "process"


def ensure_jwt_key(cfg: Config) -> None:
    if cfg.jwt_key.exists():
        return
    cfg.secrets.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = cfg.jwt_key.with_suffix(".tmp")
    r = subprocess.run(
        ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(tmp)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if r.returncode != 0:
        raise StackError(f"openssl genpkey failed: {r.stderr.strip()} (is openssl installed?)")
    os.chmod(tmp, 0o600)
    tmp.rename(cfg.jwt_key)
    say("secrets", f"generated {cfg.jwt_key}")


def service_env(cfg: Config, name: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "ENVIRONMENT": "development",
            "SERVICE_NAME": name,
            "LOG_LEVEL": "INFO",
            "REDIS_URL": cfg.redis_url,
            "KAFKA_BOOTSTRAP_SERVERS": cfg.kafka_bootstrap,
            "JWKS_URL": f"{cfg.service_url('auth')}/.well-known/jwks.json",
            "JWT_PRIVATE_KEY_FILE": str(cfg.jwt_key),
            "PYTHONUNBUFFERED": "1",
            "WORKER_INLINE": "true" if cfg.workers == "inline" else "false",
        }
    )
    for other, _, _ in SERVICES:
        if other != "gateway":
            env[f"{other.upper()}_URL"] = cfg.service_url(other)
    if name == "gateway":
        # Everything on a dev box comes from 127.0.0.1, so a per-IP limit would throttle a whole
        # test suite as one client: off here (production: 60 per minute and 20 failed logins per
        # client IP). Brute force stays limited per account; writes per user get room for bulk
        # test fixtures.
        env.setdefault("RATE_LIMIT_AUTH_PER_MINUTE", "0")
        env.setdefault("RATE_LIMIT_LOGIN_FAILURES_PER_CLIENT", "0")
        env.setdefault("RATE_LIMIT_WRITES_PER_MINUTE", "600")  # RATE_LIMIT_*=0 make up: limits off
    if name in NO_DATABASE:
        env.pop("DATABASE_URL", None)
    else:
        env["DATABASE_URL"] = cfg.database_url(name)
    return env


def service_healthy(cfg: Config, name: str) -> bool:
    return http_status(f"{cfg.service_url(name)}/healthz") == 200


def run_migrations(cfg: Config, name: str, env: dict[str, str]) -> None:
    folder = service_dir(name) / "migrations"
    if not folder.is_dir() or not any(folder.glob("*.sql")):
        return
    log = cfg.logfile(f"{name}-migrate")
    t0 = time.monotonic()
    with log.open("a") as out:
        out.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} migrating {folder}\n")
        out.flush()
        r = subprocess.run(
            [str(cfg.venv / "bin" / "python"), "-m", "pinstack_kit.migrate", str(folder.relative_to(REPO))],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    if r.returncode != 0:
        raise fail_with_log(f"migrations of {name} failed (exit {r.returncode})", log)
    say(name, f"migrations done ({time.monotonic() - t0:.1f}s)")


def service_start(cfg: Config, name: str) -> int | None:
    """Start the API if needed; returns the PID to wait for, or None if it already runs healthy."""
    pidfile = cfg.pidfile(name)
    needle = f"pinstack_{name}.main"
    port = cfg.service_ports[name]
    pid = running_pid(pidfile, needle)
    if pid is not None:
        if wait_until(lambda: service_healthy(cfg, name), 3):
            say(name, f"already running (pid {pid}) on {cfg.service_url(name)}")
            return None
        say(name, f"pid {pid} runs but /healthz does not answer 200: restarting it")
    stop_recorded(name, pidfile, needle, STOP_TIMEOUT, say)
    if port_in_use(port):
        var = next(v for n, v, _ in SERVICES if n == name)
        raise port_taken_error(port, var, f"the {name} service")
    env = service_env(cfg, name)
    if name not in NO_DATABASE:
        ensure_database(cfg, name)
    run_migrations(cfg, name, env)
    # served as everywhere else (python -m pinstack_kit.serve); named by its factory, so that its
    # command line shows `pinstack_<name>.main` like the servers earlier versions started
    cmd = [str(cfg.venv / "bin" / "python"), "-m", "pinstack_kit.serve", f"pinstack_{name}.main:create_app"]
    cmd += ["--host", HOST, "--port", str(port), "--processes", str(cfg.processes.get(name, 1))]
    pid = spawn(cmd, cfg.logfile(name), env=env, cwd=REPO, pidfile=pidfile)
    say(name, f"starting (pid {pid}) on {cfg.service_url(name)}")
    return pid


def service_wait(cfg: Config, name: str, pid: int, t0: float) -> None:
    url = f"{cfg.service_url(name)}/healthz"
    check = functools.partial(service_healthy, cfg, name)
    wait_started(name, pid, f"pinstack_{name}.main", f"answered GET {url} 200", check, cfg.logfile(name))
    say(name, f"healthy on {cfg.service_url(name)} ({time.monotonic() - t0:.1f}s)")


def worker_start(cfg: Config, name: str) -> int | None:
    wname = f"{name}-worker"
    pidfile = cfg.pidfile(wname)
    needle = f"pinstack_{name}.worker"
    pid = running_pid(pidfile, needle)
    if pid is not None:
        say(wname, f"already running (pid {pid})")
        return None
    pidfile.unlink(missing_ok=True)
    pid = spawn(
        [str(cfg.venv / "bin" / "python"), "-m", f"pinstack_{name}.worker"],
        cfg.logfile(wname),
        env={**service_env(cfg, name), "WORKER_METRICS_PORT": str(worker_metrics_port(cfg, name))},
        cwd=REPO,
        pidfile=pidfile,
    )
    say(wname, f"started (pid {pid})")
    return pid


def services_up(cfg: Config) -> None:
    present = [name for name, _, _ in SERVICES if service_exists(name)]
    missing = [name for name, _, _ in SERVICES if name not in present]
    if missing:
        say("services", f"not written yet, skipped: {', '.join(missing)}")
    if not present:
        return
    if not (cfg.venv / "bin" / "python").exists():
        raise StackError(f"{cfg.venv}/bin/python is missing: run scripts/bootstrap.sh (make bootstrap)")
    ensure_jwt_key(cfg)
    workers: list[tuple[str, int]] = []
    for group in START_GROUPS:
        t0 = time.monotonic()
        started = [(name, service_start(cfg, name)) for name in group if name in present]
        for name, pid in started:
            if pid is not None:
                service_wait(cfg, name, pid, t0)
        for name, _ in started:
            if separate_worker(cfg, name):
                wpid = worker_start(cfg, name)
                if wpid is not None:
                    workers.append((name, wpid))
    # a worker that dies at once (bad import, no Kafka) should fail `up`, not go unnoticed
    if workers:
        time.sleep(1.5)
    for name, wpid in workers:
        if not started_alive(wpid, f"pinstack_{name}.worker"):
            raise fail_with_log(
                f"{name}-worker exited right after start{exit_note(wpid)}", cfg.logfile(f"{name}-worker")
            )


# ----------------------------------------------------------------------------- commands


def preflight(cfg: Config) -> None:
    """Fail before starting anything if a port of a component that is not running is taken."""
    pg_pid = None
    if (cfg.data / "pg").exists() or (cfg.data / "pg.location").exists():
        pg_pid = pg_running_pid(pg_paths(cfg)[1])
    checks = [
        (pg_pid is not None, [(cfg.pg_port, "PINSTACK_PG_PORT")], "PostgreSQL"),
        (pid_alive(read_pid(cfg.pidfile("redis")), "redis-server"), [(cfg.redis_port, "PINSTACK_REDIS_PORT")], "Redis"),
        (
            pid_alive(read_pid(cfg.pidfile("kafka")), "kafka.Kafka"),
            [(cfg.kafka_port, "PINSTACK_KAFKA_PORT"), (cfg.kafka_controller_port, "PINSTACK_KAFKA_CONTROLLER_PORT")],
            "Kafka",
        ),
        (
            pid_alive(read_pid(cfg.pidfile("prometheus")), "prometheus"),
            [(cfg.prom_port, "PINSTACK_PROM_PORT")],
            "Prometheus",
        ),
    ]
    problems = [
        str(port_taken_error(port, var, what))
        for running, ports, what in checks
        if not running
        for port, var in ports
        if port_in_use(port)
    ]
    if problems:
        raise StackError("\n  ".join(["nothing was started:", *problems]))


def cmd_up(cfg: Config, infra_only: bool) -> None:
    t_start = time.monotonic()
    cfg.make_dirs()
    with state_lock(cfg):
        reserve_ports(
            cfg,
            [
                cfg.pg_port,
                cfg.redis_port,
                cfg.kafka_port,
                cfg.kafka_controller_port,
                cfg.prom_port,
                *cfg.service_ports.values(),
            ],
        )
        preflight(cfg)
        t_kafka = time.monotonic()
        kafka_pid = kafka_spawn(cfg)  # the JVM is the slowest: start it first, wait for it last
        pg_start(cfg)
        redis_start(cfg)
        prometheus_start(cfg)
        if kafka_pid is not None:
            kafka_wait(cfg, kafka_pid, t_kafka)
        check_node_listeners(cfg)
        if not infra_only:
            services_up(cfg)
            prometheus_reload(cfg)
    print(f"[stack] up in {time.monotonic() - t_start:.1f}s", flush=True)
    print_urls(cfg, infra_only)


def check_node_listeners(cfg: Config) -> None:
    """Servers started before the node do not listen on its bridge: say so instead of letting pods
    time out on them."""
    if cfg.node is None:
        return
    host = str(cfg.node.ip)
    deaf = [
        f"{name} ({host}:{port})"
        for name, port in (("postgres", cfg.pg_port), ("redis", cfg.redis_port), ("kafka", cfg.kafka_node_port))
        if not port_open(port, host=host)
    ]
    if deaf:
        say(
            "node",
            f"not reachable from the node's pods: {', '.join(deaf)}; they started before `make cluster`: "
            "restart them with `make down && make infra`",
        )
    else:
        say("node", f"PostgreSQL, Redis and Kafka also listen on the node's bridge {host} for its pods")


def print_urls(cfg: Config, infra_only: bool) -> None:
    print()
    if not infra_only:
        gw = cfg.service_url("gateway")
        state = "" if service_exists("gateway") else "   (gateway not written yet)"
        print(f"  gateway      {gw}{state}")
        print(f"  API docs     {gw}/docs")
    print(f"  Prometheus   {cfg.prom_url}")
    print(f"  PostgreSQL   {cfg.pg_dsn}   (stack.py psql [SVC])")
    print(f"  Redis        {cfg.redis_url}")
    print(f"  Kafka        {cfg.kafka_bootstrap}")
    print(f"  logs         {cfg.logs}   (stack.py logs [NAME] -f)")
    print()


INFRA_STOPS = {"prometheus": prometheus_stop, "kafka": kafka_stop, "redis": redis_stop, "postgres": pg_stop}


def cmd_stop(cfg: Config, names: list[str]) -> None:
    """Stop single components (fault drills); `up` starts them again."""
    with state_lock(cfg):
        for name in names:
            if name in INFRA_STOPS:
                INFRA_STOPS[name](cfg)
                continue
            service = name.removesuffix("-worker")
            if service not in [s[0] for s in SERVICES]:
                raise StackError(
                    f"unknown component {name!r}: one of {', '.join([*INFRA_STOPS, *(s[0] for s in SERVICES)])}"
                )
            needle = f"pinstack_{service}.worker" if name.endswith("-worker") else f"pinstack_{service}.main"
            stop_recorded(name, cfg.pidfile(name), needle, STOP_TIMEOUT, say)
            say(name, "stopped")


def cmd_down(cfg: Config) -> None:
    if not cfg.state.exists():
        say("stack", f"nothing to stop ({cfg.state} does not exist)")
        return
    with state_lock(cfg):
        order = [name for group in reversed(START_GROUPS) for name in group]
        procs: list[tuple[str, int, str]] = []
        pidfiles: list[Path] = []
        for name in order:
            for comp, needle in ((f"{name}-worker", f"pinstack_{name}.worker"), (name, f"pinstack_{name}.main")):
                pidfile = cfg.pidfile(comp)
                if pidfile.exists():
                    pidfiles.append(pidfile)
                    pid = running_pid(pidfile, needle)
                    if pid is not None:
                        procs.append((comp, pid, needle))
        terminate(procs, STOP_TIMEOUT, say)  # all services at once: they are independent
        for pidfile in pidfiles:
            pidfile.unlink(missing_ok=True)
        prometheus_stop(cfg)
        kafka_stop(cfg)
        redis_stop(cfg)
        pg_stop(cfg)
        release_ports(cfg)
    say("stack", "down")


def component_rows(cfg: Config) -> list[tuple[str, str, str, str, str]]:
    rows: list[tuple[str, str, str, str, str]] = []

    def row(name: str, pid: int | None, needle: str, port: int | None, ready: Callable[[], bool], url: str) -> None:
        alive = pid_alive(pid, needle)
        if alive and (port is None or ready()):
            state = "up"
        elif alive:
            state = "starting"
        elif port is not None and port_in_use(port):
            state = "port busy (not ours)"
        else:
            state = "down"
        rows.append((name, str(pid) if alive else "-", str(port) if port else "-", state, url))

    pg_pid = None
    if (cfg.data / "pg").exists() or (cfg.data / "pg.location").exists():
        pg_pid = pg_running_pid(pg_paths(cfg)[1])
    row("postgres", pg_pid, "postgres", cfg.pg_port, lambda: port_open(cfg.pg_port), cfg.pg_dsn)
    row(
        "redis",
        read_pid(cfg.pidfile("redis")),
        "redis-server",
        cfg.redis_port,
        lambda: redis_ping(cfg.redis_port),
        cfg.redis_url,
    )
    row(
        "kafka",
        read_pid(cfg.pidfile("kafka")),
        "kafka.Kafka",
        cfg.kafka_port,
        lambda: kafka_metadata_ok(cfg.kafka_port),
        cfg.kafka_bootstrap,
    )
    row(
        "prometheus",
        read_pid(cfg.pidfile("prometheus")),
        "prometheus",
        cfg.prom_port,
        lambda: http_status(f"{cfg.prom_url}/-/ready") == 200,
        cfg.prom_url,
    )
    for name, _, _ in SERVICES:
        if not service_exists(name) and not cfg.pidfile(name).exists():
            continue
        row(
            name,
            read_pid(cfg.pidfile(name)),
            f"pinstack_{name}.main",
            cfg.service_ports[name],
            functools.partial(service_healthy, cfg, name),
            cfg.service_url(name),
        )
        if separate_worker(cfg, name) or cfg.pidfile(f"{name}-worker").exists():
            row(
                f"{name}-worker",
                read_pid(cfg.pidfile(f"{name}-worker")),
                f"pinstack_{name}.worker",
                None,
                lambda: True,
                "-",
            )
    return rows


def cmd_status(cfg: Config) -> int:
    rows = component_rows(cfg)
    head = ("COMPONENT", "PID", "PORT", "STATE", "URL")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    print(f"\nstate folder: {cfg.state}")
    return 0


def cmd_logs(cfg: Config, name: str | None, follow: bool, lines: int) -> int:
    files = sorted(cfg.logs.glob("*.log")) if cfg.logs.exists() else []
    if name:
        files = [f for f in files if f.stem == name or f.stem.startswith(name + "-")]
    if not files:
        known = ", ".join(sorted(f.stem for f in cfg.logs.glob("*.log"))) if cfg.logs.exists() else ""
        raise StackError(
            f"no log{' for ' + repr(name) if name else ''} in {cfg.logs}"
            + (f" (have: {known})" if known else " (run `stack.py up` first)")
        )
    prefix_width = max(len(f.stem) for f in files)

    def emit(f: Path, text: str) -> None:
        for line in text.splitlines():
            print(f"{f.stem:<{prefix_width}} | {line}" if len(files) > 1 else line, flush=True)

    positions: dict[Path, int] = {}
    for f in files:
        emit(f, tail(f, lines))
        positions[f] = f.stat().st_size
    if not follow:
        return 0
    try:
        while True:
            for f in files:
                try:
                    size = f.stat().st_size
                except OSError:
                    continue
                if size < positions[f]:  # truncated or recreated
                    positions[f] = 0
                if size > positions[f]:
                    with f.open("rb") as fh:
                        fh.seek(positions[f])
                        chunk = fh.read()
                    # only whole lines; keep a partial last line for the next round
                    cut = chunk.rfind(b"\n") + 1
                    if cut:
                        emit(f, chunk[:cut].decode(errors="replace"))
                        positions[f] += cut
            time.sleep(0.3)
    except KeyboardInterrupt:
        return 0


def cmd_env(cfg: Config) -> int:
    for key, value in (
        ("PINSTACK_PG_DSN", cfg.pg_dsn),
        ("REDIS_URL", cfg.redis_url),
        ("KAFKA_BOOTSTRAP_SERVERS", cfg.kafka_bootstrap),
        ("PINSTACK_PROM_URL", cfg.prom_url),
        ("PINSTACK_GATEWAY_URL", cfg.service_url("gateway")),
        ("PINSTACK_STATE_DIR", str(cfg.state)),
        *(
            [
                ("PINSTACK_NODE_PG", f"{cfg.node.ip}:{cfg.pg_port}"),
                ("PINSTACK_NODE_REDIS", f"{cfg.node.ip}:{cfg.redis_port}"),
                ("PINSTACK_NODE_KAFKA", f"{cfg.node.ip}:{cfg.kafka_node_port}"),
                ("PINSTACK_NODE_PG_PASSWORD_FILE", str(cfg.pg_password_file)),
            ]
            if cfg.node
            else []
        ),
    ):
        print(f"export {key}={shlex.quote(value)}")
    return 0


def cmd_psql(cfg: Config, svc: str | None, extra: list[str]) -> int:
    db = f"pinstack_{svc}" if svc else "postgres"
    cmd = psql_cmd(cfg, db) + extra
    os.execvp(cmd[0], cmd)  # noqa: S606 - replaces this process with psql
    return 0  # not reached


def cmd_clean(cfg: Config, keep_logs: bool = False) -> int:
    """down, then delete the state folder and PostgreSQL data kept outside it (/var/tmp):
    nothing of the stack stays on the machine, but the logs when `keep_logs`."""
    cmd_down(cfg)
    location = cfg.data / "pg.location"
    if location.exists():
        external = Path(location.read_text().strip())
        if external.name.startswith("pinstack-pg-"):
            log = cfg.logfile("postgres")
            if keep_logs and log.is_symlink():  # the log lives with the external data
                real = log.resolve()
                log.unlink()
                with contextlib.suppress(OSError):
                    shutil.copyfile(real, log)
            shutil.rmtree(external, ignore_errors=True)
            say("clean", f"removed {external}")
    if not cfg.state.exists():
        return 0
    if keep_logs:
        for child in cfg.state.iterdir():
            if child == cfg.logs:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        say("clean", f"removed everything in {cfg.state} but the logs")
    else:
        shutil.rmtree(cfg.state)
        say("clean", f"removed {cfg.state}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="stack.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Ports: PINSTACK_PG_PORT=55432 PINSTACK_REDIS_PORT=56379 "
        "PINSTACK_KAFKA_PORT=59092 PINSTACK_KAFKA_CONTROLLER_PORT=59093 "
        "PINSTACK_PROM_PORT=59090 PINSTACK_<SERVICE>_PORT (users 8101 .. "
        "activity 8107, gateway 8080).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the stack (reuses what already runs)")
    up.add_argument("--infra-only", action="store_true", help="only PostgreSQL, Redis, Kafka and Prometheus")
    sub.add_parser("down", help="stop everything this tool started")
    stop = sub.add_parser("stop", help="stop some components (e.g. kafka, notifications-worker); up restarts them")
    stop.add_argument("names", nargs="+")
    sub.add_parser("status", help="show components, PIDs, ports, states and URLs")
    logs = sub.add_parser("logs", help="tail the logs")
    logs.add_argument("name", nargs="?", help="component (postgres, kafka, users, users-worker, ...)")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("-n", "--lines", type=int, default=50)
    sub.add_parser("env", help="print `export` lines for the infra addresses")
    psql = sub.add_parser("psql", help="open psql on a service database (default: postgres)")
    psql.add_argument("svc", nargs="?")
    psql.add_argument("extra", nargs=argparse.REMAINDER, help="more psql arguments")
    clean = sub.add_parser("clean", help="down, then delete the state folder (all local data)")
    clean.add_argument("--keep-logs", action="store_true", help="keep <state>/logs")
    args = parser.parse_args(argv)
    if args.command in ("status", "logs", "env"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `stack.py status | head` ends quietly

    try:
        cfg = Config()
        if args.command == "up":
            cmd_up(cfg, args.infra_only)
            return 0
        if args.command == "down":
            cmd_down(cfg)
            return 0
        if args.command == "stop":
            cmd_stop(cfg, args.names)
            return 0
        if args.command == "status":
            return cmd_status(cfg)
        if args.command == "logs":
            return cmd_logs(cfg, args.name, args.follow, args.lines)
        if args.command == "env":
            return cmd_env(cfg)
        if args.command == "psql":
            return cmd_psql(cfg, args.svc, args.extra)
        if args.command == "clean":
            return cmd_clean(cfg, args.keep_logs)
    except ScriptError as exc:
        print(f"[stack] ERROR: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("[stack] interrupted; what was started keeps running (`stack.py down` stops it)", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())

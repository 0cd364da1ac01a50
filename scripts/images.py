#!/usr/bin/env python3
"""Pinstack container images for the local node, built with podman (no Docker engine, no registry).

    images.py build [--no-cache] [name ...]     build the images (default: all), save OCI archives
    images.py check [name ...]                  build, then smoke-test each image under podman
    images.py import [--address SOCKET] [name ...] import the archives into a containerd (k8s.io;
                                                default: the node of `make cluster`)
    images.py skaffold NAME                     skaffold's custom builder on the node ($IMAGE)
    images.py list                              the last build (images.json) as a table
    images.py json                              images.json

Images (names): the services of the registry (services/contracts: users auth posts relations
notifications feed activity gateway; services/Dockerfile, --build-arg SERVICE=<name>), the Kopf
operator (operator/Dockerfile), the servers of Managed environments postgres, redis and kafka (images/<name>: Debian's
PostgreSQL 15 and Redis 7 packages; Debian's Java 17 and the Kafka jars `make bootstrap` caches
for the local stack), volume-helper (the base alone: the node's local-path provisioner runs it to
create and delete volume folders), and pause, the pod sandbox image (images/pause: a static C program in a
FROM scratch image; give it to containerd as sandbox_image). Each is tagged with a hash of its inputs, the first 12 hex
digits of a sha256 over the files that go into it (Dockerfile, .dockerignore, pyproject.toml
files, uv.lock, the package sources, migrations; pause.c; images/<name>/ and the Kafka jars):

    localhost/pinstack/<name>:<hash>

A tag that podman already has is not built again, so a warm run is instant; podman's layer cache
and a uv cache mount make a rebuild after a code change redo only the code layer. Every image is
saved as ${XDG_CACHE_HOME:-~/.cache}/pinstack/images/<name>-<hash>.tar (OCI archive) and listed
in images.json there: {name: {ref, tag, archive, size_bytes, archive_bytes, build_seconds, built_at}}.

The Python images build on localhost/pinstack-base:bookworm: a Debian bookworm minbase with
python3, python3-venv and ca-certificates made by debootstrap (about a minute, once; the rootfs is
cached in ${XDG_CACHE_HOME:-~/.cache}/pinstack/rootfs/bookworm-py) and imported into podman.
Inside the builds pip and uv fetch from PyPI with the host's /etc/ssl/certs (and /etc/pip.conf).

`check` runs every service image on --network host as uid 10001 and waits for /healthz, runs
the operator image's --help and its default command (which must fail at once without a kube
config), starts each server image as the operator runs it (uid 10001, read-only root, a scratch
data volume, a free port) until it answers, and starts and stops the pause image (exit 0 on
SIGTERM).

`import` runs `ctr -a SOCKET -n k8s.io images import <archive>` for each image the containerd
does not list yet, then checks that `ctr images ls` lists every ref exactly as above (the name
the kubelet asks the CRI for). Pods use these refs with imagePullPolicy IfNotPresent or Never.

Environment:
    XDG_CACHE_HOME       cache root (default ~/.cache)
    PINSTACK_APT_MIRROR  Debian mirror for debootstrap (default: the first URIs: line of
                         /etc/apt/sources.list.d/debian.sources, else deb.debian.org)

Standard library only (and the registry, read from the source tree: registry.py); runs with the
system python3. Needs podman and runc (the base also needs
debootstrap, pause needs gcc and libc6-dev, import needs ctr):
apt-get install -y podman runc debootstrap gcc libc6-dev containerd
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proclib import HOST, ScriptError, cache_root, file_lock, fmt_seconds, fmt_size, free_port
from registry import NAMES as SERVICES
from stack import DEFAULT_KAFKA_VERSION

REPO = Path(__file__).resolve().parent.parent
SERVERS = ("postgres", "redis", "kafka")  # Managed environments' servers (images/<name>)
VOLUME_HELPER = "volume-helper"  # the local-path provisioner's helper pods (images/volume-helper)
FOLDER_IMAGES = (*SERVERS, VOLUME_HELPER)  # built from their own folder under images/
NAMES = (*SERVICES, "operator", *FOLDER_IMAGES, "pause")
REPOSITORY = "localhost/pinstack"
BASE = "localhost/pinstack-base:bookworm"
BASE_SUITE = "bookworm"
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
PAUSE_CFLAGS = ("-static", "-Os", "-Wall", "-Wextra", "-Werror")
TAG_LENGTH = 12
APP_UID = "10001"
# podman runs containers here only with runc and these rlimits; never its default network (10.88.x)
PODMAN = ("podman", "--runtime", "runc")
RUN_FLAGS = ("--network", "host", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
# what .dockerignore keeps out of every build: not part of an image, so not part of its hash
IGNORED_DIRS = frozenset({"__pycache__", ".pytest_cache", "tests"})
HEALTH_TIMEOUT = 30.0
SERVER_TIMEOUT = 90.0  # Kafka's JVM on a busy 2-core machine
NAMESPACE = "k8s.io"


class ImageError(ScriptError):
    """A failure while building, checking or importing images."""


def say(component: str, message: str) -> None:
    print(f"[images] {component:<14} {message}", file=sys.stderr, flush=True)


class Config:
    def __init__(self) -> None:
        cache = cache_root()
        kafka_version = os.environ.get("KAFKA_VERSION") or DEFAULT_KAFKA_VERSION
        self.kafka_jars = cache / "kafka" / kafka_version / "jars"  # what stack.py's bootstrap caches
        self.rootfs = cache / "rootfs" / f"{BASE_SUITE}-py"
        self.dir = cache / "images"
        self.logs = self.dir / "logs"
        self.index = self.dir / "images.json"

    def archive(self, name: str, tag: str) -> Path:
        return self.dir / f"{name}-{tag}.tar"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"


def require(*tools: str, hint: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise ImageError(f"{', '.join(missing)} not found: {hint}")


def run(*args: str, check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, check=False, timeout=timeout)
    if check and proc.returncode != 0:
        out = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise ImageError(f"`{' '.join(args)}` failed ({proc.returncode}): {out}")
    return proc


def podman(*args: str, check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return run(*PODMAN, *args, check=check, timeout=timeout)


def podman_created(ref: str) -> str:
    return podman("image", "inspect", "--format", '{{.Created.Format "2006-01-02T15:04:05-0700"}}', ref).stdout.strip()


def image_exists(ref: str) -> bool:
    return podman("image", "exists", ref, check=False).returncode == 0


# ----------------------------------------------------------------------------- inputs and tags


@dataclass(frozen=True)
class Image:
    name: str
    dockerfile: Path
    tag: str
    build_args: tuple[tuple[str, str], ...] = ()

    @property
    def ref(self) -> str:
        return f"{REPOSITORY}/{self.name}:{self.tag}"

    @property
    def on_base(self) -> bool:
        """Built FROM the local Debian base (everything but pause)."""
        return self.name != "pause"

    @property
    def repo_context(self) -> bool:
        """The Python images build from the repository; the others from a folder of their own."""
        return self.name not in (*FOLDER_IMAGES, "pause")


def content_tag(name: str, recipe: str, files: list[Path]) -> str:
    """sha256 over the recipe and the files' paths and contents, first TAG_LENGTH hex digits."""
    digest = hashlib.sha256(f"{name}\0{recipe}\0".encode())
    for path in sorted(set(files)):
        digest.update(f"{path.relative_to(REPO)}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:TAG_LENGTH]


def tree(*roots: Path) -> list[Path]:
    """Every file below `roots` that a build copies (what .dockerignore excludes left out)."""
    files: list[Path] = []
    for root in roots:
        if root.is_file():
            files.append(root)
            continue
        if not root.is_dir():
            raise ImageError(f"{root.relative_to(REPO)} is missing")
        for folder, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if d not in IGNORED_DIRS]
            files += [Path(folder) / n for n in names if not n.endswith(".pyc")]
    return files


def workspace() -> tuple[str, list[Path]]:
    """What the uv workspace puts into every Python image: the root pyproject.toml's tables that
    uv reads (its [tool.ruff], [tool.pytest...] and the like change no image), and uv.lock,
    .dockerignore and every member's pyproject.toml."""
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    uv = root.get("tool", {}).get("uv", {})
    relevant = {"project": root.get("project"), "dependency-groups": root.get("dependency-groups"), "tool.uv": uv}
    members = [m for pattern in uv.get("workspace", {}).get("members", []) for m in REPO.glob(pattern)]
    files = [REPO / "uv.lock", REPO / ".dockerignore", *(m / "pyproject.toml" for m in members if m.is_dir())]
    return json.dumps(relevant, sort_keys=True), [f for f in files if f.is_file()]


def images() -> dict[str, Image]:
    uv, manifests = workspace()
    recipe = f"debootstrap --variant=minbase --include={BASE_PACKAGES} {BASE_SUITE}\0{uv}"
    kit = tree(REPO / "services" / "kit", REPO / "services" / "contracts")  # what every service image carries
    dockerfile = REPO / "services" / "Dockerfile"
    result = {
        svc: Image(
            svc,
            dockerfile,
            content_tag(svc, recipe, [dockerfile, *manifests, *kit, *tree(REPO / "services" / svc)]),
            (("SERVICE", svc),),
        )
        for svc in SERVICES
    }
    dashboards = tree(REPO / "dashboards" / "json", REPO / "dashboards" / "rules" / "pinstack.rules.yaml")
    operator = [*manifests, *tree(REPO / "operator", REPO / "services" / "contracts"), *dashboards]
    result["operator"] = Image("operator", REPO / "operator" / "Dockerfile", content_tag("operator", recipe, operator))
    base_recipe = recipe.split("\0", 1)[0]
    for server in FOLDER_IMAGES:
        folder = REPO / "images" / server
        # the Kafka jars are named with their versions: their names stand for their contents
        jars = sorted(j.name for j in Config().kafka_jars.glob("*.jar")) if server == "kafka" else []
        tag = content_tag(server, "\0".join([base_recipe, *jars]), tree(folder))
        result[server] = Image(server, folder / "Dockerfile", tag)
    pause = REPO / "images" / "pause"
    pause_files = [pause / "Dockerfile", pause / "pause.c"]
    result["pause"] = Image(
        "pause", pause / "Dockerfile", content_tag("pause", "gcc " + " ".join(PAUSE_CFLAGS), pause_files)
    )
    return result


def select(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ImageError(f"unknown images {unknown}; choose from {list(NAMES)}")
    return [n for n in NAMES if n in names] if names else list(NAMES)


# ----------------------------------------------------------------------------- the base


def apt_mirror() -> str:
    if os.environ.get("PINSTACK_APT_MIRROR", "").strip():
        return os.environ["PINSTACK_APT_MIRROR"].strip()
    try:
        for line in Path("/etc/apt/sources.list.d/debian.sources").read_text().splitlines():
            if line.startswith("URIs:") and line.split()[1:]:
                return line.split()[1]
    except OSError:
        pass
    return "http://deb.debian.org/debian"


def ensure_base(cfg: Config) -> None:
    if image_exists(BASE):
        return
    if not (cfg.rootfs / "usr" / "bin" / "python3").exists():
        require("debootstrap", hint="apt-get install -y debootstrap (makes the Debian base image)")
        tmp = cfg.rootfs.with_name(cfg.rootfs.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        mirror = apt_mirror()
        say("base", f"debootstrap {BASE_SUITE} from {mirror} into {cfg.rootfs} (about a minute, once)")
        t0 = time.monotonic()
        args = ("debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", BASE_SUITE, str(tmp), mirror)
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ImageError(f"debootstrap failed ({proc.returncode}): {(proc.stdout + proc.stderr)[-2000:]}")
        tmp.rename(cfg.rootfs)
        say("base", f"rootfs ready in {fmt_seconds(time.monotonic() - t0)}")
    say("base", f"importing {cfg.rootfs} as {BASE}")
    with subprocess.Popen(("tar", "-C", str(cfg.rootfs), "-c", "."), stdout=subprocess.PIPE) as tar:
        proc = subprocess.run(
            (*PODMAN, "import", "-", BASE), stdin=tar.stdout, capture_output=True, text=True, check=False
        )
    if tar.returncode != 0 or proc.returncode != 0:
        raise ImageError(f"importing the base failed: {proc.stderr.strip()[-2000:]}")


# ----------------------------------------------------------------------------- build


def read_index(cfg: Config) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(cfg.index.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ImageError(f"{cfg.index} is unreadable ({exc}): delete it and run `images.py build`") from None
    return data if isinstance(data, dict) else {}


def write_index(cfg: Config, index: dict[str, dict[str, Any]]) -> None:
    tmp = cfg.index.with_suffix(".tmp")
    tmp.write_text(json.dumps({n: index[n] for n in NAMES if n in index}, indent=2) + "\n")
    tmp.replace(cfg.index)


def build_context(cfg: Config, image: Image, workdir: Path) -> Path:
    """The build context: the repository; for a server its folder (+ the Kafka jars as libs/);
    for pause a folder with the compiled program."""
    if image.repo_context:
        return REPO
    if image.name in FOLDER_IMAGES:
        shutil.copytree(image.dockerfile.parent, workdir, dirs_exist_ok=True)
        if image.name == "kafka":
            if not (cfg.kafka_jars / ".pinstack-complete").exists():
                raise ImageError(f"the Kafka jars are missing ({cfg.kafka_jars}): run `make bootstrap` first")
            # hard links when the cache is on the same file system: 56 MB are not copied
            shutil.copytree(
                cfg.kafka_jars, workdir / "libs", copy_function=link_or_copy, ignore=lambda *_: {".pinstack-complete"}
            )
        return workdir
    require("gcc", hint="apt-get install -y gcc libc6-dev (compiles the pause program)")
    binary = workdir / "pause"
    proc = run("gcc", *PAUSE_CFLAGS, "-o", str(binary), str(image.dockerfile.parent / "pause.c"), check=False)
    if proc.returncode != 0:
        hint = " (static linking needs libc6-dev: apt-get install -y libc6-dev)" if "-lc" in proc.stderr else ""
        raise ImageError(f"compiling pause.c failed{hint}: {proc.stderr.strip()[-2000:]}")
    run("strip", str(binary), check=False)
    return workdir


def podman_build(cfg: Config, image: Image, no_cache: bool) -> float:
    args = [*PODMAN, "build", *RUN_FLAGS, "--pull=never", "--layers", "-f", str(image.dockerfile), "-t", image.ref]
    if image.on_base:
        args += ["--build-arg", f"BASE={BASE}"]
    if image.repo_context:  # pip and uv fetch over TLS with the host's CA store and settings
        args += ["-v", "/etc/ssl/certs:/etc/ssl/certs:ro"]
        if Path("/etc/pip.conf").is_file():
            args += ["-v", "/etc/pip.conf:/etc/pip.conf:ro"]
    for key, value in image.build_args:
        args += ["--build-arg", f"{key}={value}"]
    if no_cache:
        args.append("--no-cache")
    cfg.logs.mkdir(parents=True, exist_ok=True)
    log = cfg.log(image.name)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"pinstack-{image.name}-") as tmp:
        args.append(str(build_context(cfg, image, Path(tmp))))
        with log.open("w") as fh:
            fh.write(f"$ {' '.join(args)}\n")
            fh.flush()
            rc = subprocess.run(args, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode
    if rc != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise ImageError(f"building {image.ref} failed ({rc}); log {log}:\n{tail}")
    return time.monotonic() - t0


def save(cfg: Config, image: Image, fresh: bool) -> Path:
    """The image's OCI archive; written again when `fresh` (the image was just built)."""
    archive = cfg.archive(image.name, image.tag)
    if fresh or not archive.exists():
        tmp = archive.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        podman("save", "--format", "oci-archive", "-o", str(tmp), image.ref)
        tmp.replace(archive)
    for old in cfg.dir.glob(f"{image.name}-*.tar"):
        if old != archive and old.stem.rsplit("-", 1)[0] == image.name:
            old.unlink()
    return archive


def link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def build(cfg: Config, names: list[str], no_cache: bool = False) -> dict[str, dict[str, Any]]:
    require("podman", "runc", hint="apt-get install -y podman runc")
    cfg.dir.mkdir(parents=True, exist_ok=True)
    all_images = images()
    with file_lock(cfg.dir / ".build.lock", "`images.py build`", lambda m: say("lock", m)):
        index = read_index(cfg)
        built: dict[str, str] = {}
        for name in names:
            image = all_images[name]
            previous = index.get(name, {})
            fresh = no_cache or not image_exists(image.ref)
            if not fresh:
                same = previous.get("tag") == image.tag
                seconds = float(previous.get("build_seconds", 0.0)) if same else 0.0
                built_at = previous.get("built_at", "") if same else podman_created(image.ref)
                built[name] = "skipped"
            else:
                if image.on_base:
                    ensure_base(cfg)
                say(name, f"building {image.ref} (log {cfg.log(name)})")
                seconds = podman_build(cfg, image, no_cache)
                built_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                built[name] = f"built in {fmt_seconds(seconds)}"
            archive = save(cfg, image, fresh)
            index[name] = {
                "ref": image.ref,
                "tag": image.tag,
                "archive": str(archive),
                "size_bytes": int(podman("image", "inspect", "--format", "{{.Size}}", image.ref).stdout.strip()),
                "archive_bytes": archive.stat().st_size,
                "build_seconds": round(seconds, 1),
                "built_at": built_at,
            }
            write_index(cfg, index)
    print_table(index, names, built)
    return index


def print_table(index: dict[str, dict[str, Any]], names: list[str], status: dict[str, str] | None = None) -> None:
    print(f"{'NAME':<14} {'REF':<46} {'SIZE':>9} {'ARCHIVE':>9}  BUILD")
    for name in names:
        entry = index.get(name)
        if entry is None:
            print(f"{name:<14} {'(not built)':<46}")
            continue
        seconds = float(entry["build_seconds"])
        note = (status or {}).get(name) or f"{fmt_seconds(seconds) if seconds else '?'} ({entry['built_at'] or '?'})"
        print(
            f"{name:<14} {entry['ref']:<46} {fmt_size(int(entry['size_bytes'])):>9}"
            f" {fmt_size(int(entry.get('archive_bytes', 0))):>9}  {note}"
        )


# ----------------------------------------------------------------------------- smoke checks


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (http://127.0.0.1)
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def running(cid: str) -> bool:
    return podman("inspect", "--format", "{{.State.Running}}", cid, check=False).stdout.strip() == "true"


def check_service(ref: str) -> str:
    port = free_port()
    cid = podman("run", "-d", *RUN_FLAGS, "-e", f"PORT={port}", "-e", "ENVIRONMENT=development", ref).stdout.strip()
    try:
        t0 = time.monotonic()
        deadline = t0 + HEALTH_TIMEOUT
        while not http_ok(f"http://{HOST}:{port}/healthz"):
            if time.monotonic() > deadline or not running(cid):
                logs = podman("logs", "--tail", "20", cid, check=False)
                raise ImageError(
                    f"{ref}: no /healthz on port {port} in {HEALTH_TIMEOUT:.0f}s:\n{logs.stdout}{logs.stderr}"
                )
            time.sleep(0.3)
        ready = time.monotonic() - t0
        uid = podman("exec", cid, "id", "-u").stdout.strip()
    finally:
        podman("rm", "-f", "-t", "2", cid, check=False)
    if uid != APP_UID:
        raise ImageError(f"{ref} runs as uid {uid}, not {APP_UID}")
    return f"/healthz 200 after {fmt_seconds(ready)} on port {port}, uid {uid}"


def check_operator(ref: str) -> str:
    helped = podman("run", "--rm", *RUN_FLAGS, ref, "--help", check=False, timeout=120)
    if helped.returncode != 0 or "Usage:" not in helped.stdout:
        raise ImageError(f"{ref} --help failed ({helped.returncode}): {helped.stdout[-500:]}{helped.stderr[-1500:]}")
    uid = podman("run", "--rm", *RUN_FLAGS, "--entrypoint", "id", ref, "-u").stdout.strip()
    if uid != APP_UID:
        raise ImageError(f"{ref} runs as uid {uid}, not {APP_UID}")
    # no kubeconfig and no service-account token in the container: Kopf must give up at once
    bare = podman("run", "--rm", *RUN_FLAGS, ref, check=False, timeout=120)
    lines = [line for line in (bare.stdout + bare.stderr).splitlines() if line.strip()]
    if bare.returncode == 0:
        raise ImageError(f"{ref} without a kube config exited 0; expected a failure: {lines[-5:]}")
    return f"--help ok, uid {uid}; without a kube config: exit {bare.returncode}, {lines[-1][:110] if lines else ''}"


def check_pause(ref: str) -> str:
    cid = podman("run", "-d", *RUN_FLAGS, ref).stdout.strip()
    try:
        time.sleep(0.5)
        if not running(cid):
            raise ImageError(f"{ref} does not run: {podman('logs', cid, check=False).stderr.strip()[-500:]}")
        t0 = time.monotonic()
        podman("stop", "-t", "10", cid)
        stopped = time.monotonic() - t0
        code = podman("inspect", "--format", "{{.State.ExitCode}}", cid).stdout.strip()
    finally:
        podman("rm", "-f", cid, check=False)
    if code != "0":
        raise ImageError(f"{ref} exited {code} on SIGTERM, not 0")
    return f"running, exit 0 on SIGTERM after {fmt_seconds(stopped)}"


def server_run_args(name: str, port: int, data: Path) -> list[str]:
    """`podman run` arguments that start a server image as the operator's StatefulSet does."""
    common = ["--user", f"{APP_UID}:{APP_UID}", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL"]
    if name == "postgres":
        env = {"POSTGRES_PASSWORD": "check", "PGPORT": str(port)}
        return [*common, *(f"-e={k}={v}" for k, v in env.items()), "-v", f"{data}:/var/lib/postgresql/data"]
    if name == "redis":
        return [*common, "-v", f"{data}:/data"]
    settings = {
        "NODE_ID": "1",
        "PROCESS_ROLES": "broker,controller",
        "LISTENERS": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{port + 1}",
        "CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "CONTROLLER_QUORUM_VOTERS": f"1@{HOST}:{port + 1}",
        "OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "LOG_DIRS": "/var/lib/kafka/data/logs",
    }
    return [*common, *(f"-e=KAFKA_{k}={v}" for k, v in settings.items()), "-v", f"{data}:/var/lib/kafka/data"]


def server_ready(name: str, cid: str, port: int) -> bool:
    if name == "postgres":
        probe = ["pg_isready", "-h", HOST, "-p", str(port), "-U", "postgres"]
    elif name == "redis":
        probe = ["redis-cli", "-p", str(port), "ping"]
    else:
        return port_open(port) and "Kafka Server started" in podman("logs", cid, check=False).stdout
    return podman("exec", cid, *probe, check=False).returncode == 0


def check_server(name: str, ref: str) -> str:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix=f"pinstack-check-{name}-") as data:
        os.chmod(data, 0o777)  # noqa: S103 (as the node's volumes are: any uid may write)
        command = ["redis-server", "--port", str(port), "--dir", "/data"] if name == "redis" else []
        cid = podman("run", "-d", *RUN_FLAGS, *server_run_args(name, port, Path(data)), ref, *command).stdout.strip()
        try:
            t0 = time.monotonic()
            deadline = t0 + SERVER_TIMEOUT
            while not server_ready(name, cid, port):
                if time.monotonic() > deadline or not running(cid):
                    logs = podman("logs", "--tail", "20", cid, check=False)
                    raise ImageError(f"{ref}: not ready in {SERVER_TIMEOUT:.0f}s:\n{logs.stdout}{logs.stderr}")
                time.sleep(0.5)
            return f"ready after {fmt_seconds(time.monotonic() - t0)} on port {port}, uid {APP_UID}, read-only root"
        finally:
            podman("rm", "-f", "-t", "10", cid, check=False)


def check_volume_helper(ref: str) -> str:
    """What the provisioner's setup and teardown scripts run: sh, mkdir -m, rm -rf."""
    script = "mkdir -m 0777 -p /tmp/v/pvc && test -d /tmp/v/pvc && rm -rf /tmp/v/pvc && test ! -e /tmp/v/pvc && echo ok"
    done = podman("run", "--rm", *RUN_FLAGS, ref, "sh", "-c", script, check=False, timeout=60)
    if done.stdout.strip() != "ok":
        raise ImageError(f"{ref}: the volume scripts failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return "sh, mkdir and rm work"


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def check(cfg: Config, names: list[str]) -> None:
    index = build(cfg, names)
    failed = []
    for name in names:
        ref = index[name]["ref"]
        try:
            if name == "pause":
                result = check_pause(ref)
            elif name == "operator":
                result = check_operator(ref)
            elif name in SERVERS:
                result = check_server(name, ref)
            elif name == VOLUME_HELPER:
                result = check_volume_helper(ref)
            else:
                result = check_service(ref)
        except (ImageError, subprocess.TimeoutExpired) as exc:
            failed.append(name)
            say(name, f"FAILED: {exc}")
            continue
        say(name, result)
    if failed:
        raise ImageError(f"smoke check failed for {', '.join(failed)}")


# ----------------------------------------------------------------------------- containerd


def ctr(address: str, *args: str, timeout: float | None = 600) -> subprocess.CompletedProcess[str]:
    return run("ctr", "-a", address, "-n", NAMESPACE, *args, timeout=timeout)


def ctr_images(address: str) -> dict[str, str]:
    """ref -> `ref  type  digest  size ...` line of `ctr images ls`."""
    lines = ctr(address, "images", "ls").stdout.splitlines()[1:]
    return {line.split()[0]: line for line in lines if line.strip()}


def import_images(cfg: Config, address: str, names: list[str]) -> None:
    require("ctr", hint="apt-get install -y containerd (ctr talks to the node's containerd)")
    if not Path(address).is_socket():
        raise ImageError(f"{address} is not a socket: start the node's containerd first (or pass its --address)")
    index = read_index(cfg)
    missing = [n for n in names if n not in index or not Path(index[n]["archive"]).is_file()]
    if missing:
        raise ImageError(
            f"no archive for {', '.join(missing)}: run `scripts/images.py build {' '.join(missing)}` first"
        )
    present = set(ctr(address, "images", "ls", "-q").stdout.split())
    for name in names:
        ref, archive = index[name]["ref"], index[name]["archive"]
        if ref in present:
            say(name, f"{ref} already in {NAMESPACE}")
            continue
        t0 = time.monotonic()
        # podman's OCI archive names the image with its full ref (org.opencontainers.image.ref.name),
        # which ctr keeps; unpacking now saves the first pod the wait
        ctr(address, "images", "import", archive)
        say(name, f"imported {Path(archive).name} in {fmt_seconds(time.monotonic() - t0)}")
    listed = ctr_images(address)
    absent = []
    for name in names:
        ref = index[name]["ref"]
        if ref in listed:
            say(name, f"listed: {' '.join(listed[ref].split()[:3])}")
        else:
            absent.append(ref)
    if absent:
        raise ImageError(f"containerd at {address} does not list {absent} after the import; it lists {sorted(listed)}")


def node_socket() -> str:
    """The containerd socket of the node of `make cluster` (cluster.py: <state>/node/containerd)."""
    state = Path(os.environ.get("PINSTACK_STATE_DIR") or REPO / ".stack").resolve()
    return str(state / "node" / "containerd" / "containerd.sock")


def fully_qualified(ref: str) -> str:
    """The name containerd and the kubelet use: pinstack/users:x -> docker.io/pinstack/users:x."""
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return ref
    return f"docker.io/{ref}" if rest else f"docker.io/library/{ref}"


def skaffold_build(cfg: Config, name: str) -> None:
    """Skaffold's custom builder on the node (skaffold.yaml, profile node): build `name` as
    `make images` does, give it the name skaffold chose ($IMAGE) in podman, where skaffold reads
    its image ID through podman's Docker API, and in the node's containerd under that name and
    under <repository>:<image ID>, the reference skaffold deploys for an image it did not push."""
    target = os.environ.get("IMAGE", "")
    if not target:
        raise ImageError("$IMAGE is not set: skaffold sets it for a custom build (`make dev-node`)")
    ref = build(cfg, [name])[name]["ref"]
    podman("tag", ref, target)
    image_id = podman("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip().removeprefix("sha256:")
    address = node_socket()
    import_images(cfg, address, [name])
    repository = target.rsplit(":", 1)[0] if ":" in target.rsplit("/", 1)[-1] else target
    for alias in (target, f"{repository}:{image_id}"):
        ctr(address, "images", "tag", "--force", ref, fully_qualified(alias))
    say(name, f"{target} and {repository}:{image_id[:12]}... in podman and the node's containerd")


# ----------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_build = sub.add_parser("build", help="build the images (a tag podman has is skipped) and save OCI archives")
    p_build.add_argument("--no-cache", action="store_true", help="rebuild without podman's layer cache")
    p_build.add_argument("names", nargs="*", help=f"only these ({' '.join(NAMES)})")
    p_check = sub.add_parser("check", help="build, then smoke-test each image under podman")
    p_check.add_argument("names", nargs="*")
    p_import = sub.add_parser("import", help=f"import the archives into a containerd's {NAMESPACE} namespace")
    p_import.add_argument("--address", help="the containerd's gRPC socket (default: the node of `make cluster`)")
    p_import.add_argument("names", nargs="*")
    p_skaffold = sub.add_parser("skaffold", help="skaffold's custom builder on the node: build NAME as $IMAGE")
    p_skaffold.add_argument("name", choices=NAMES)
    sub.add_parser("list", help="images.json as a table")
    sub.add_parser("json", help="print images.json")
    args = parser.parse_args()
    try:
        cfg = Config()
        if args.cmd == "build":
            build(cfg, select(args.names), no_cache=args.no_cache)
        elif args.cmd == "check":
            check(cfg, select(args.names))
        elif args.cmd == "import":
            import_images(cfg, args.address or node_socket(), select(args.names))
        elif args.cmd == "skaffold":
            skaffold_build(cfg, args.name)
        elif args.cmd == "list":
            print_table(read_index(cfg), list(NAMES))
        elif args.cmd == "json":
            print(json.dumps(read_index(cfg), indent=2))
        return 0
    except ScriptError as exc:
        print(f"[images] ERROR: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

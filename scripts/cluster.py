#!/usr/bin/env python3
"""Pinstack local Kubernetes control plane: etcd + kube-apiserver on 127.0.0.1, no kubelet.

    cluster.py build [--extra] [--force]   build the binaries once per version (cached)
    cluster.py up [--no-build] [--json]    start etcd and kube-apiserver (reuses a running pair),
                                           wait for /readyz, write the admin kubeconfig
    cluster.py down                        stop both (by recorded PID)
    cluster.py status                      PIDs, ports, readiness
    cluster.py env [--json]                `export KUBECONFIG=...` and PATH lines
    cluster.py clean                       down, then delete the cluster state folder

Binaries come from the Go module proxy only (see /work/shared/infra-recipes.md §1, §3): wrapper
modules under scripts/k8s/*.go.mod.in are filled in from the upstream go.mod files and built with
CGO_ENABLED=0 -trimpath -ldflags "-s -w <version flags>" into
${XDG_CACHE_HOME:-~/.cache}/pinstack/bin/v<k8s version>/: kube-apiserver, kubectl (k8s.io/kubernetes),
etcd (go.etcd.io/etcd/server/v3), helm (helm.sh/helm/v3); with --extra also skaffold and kwok.
A marker file per binary (.<name>.json: version, build seconds, size) makes a warm run instant.
Go's module and build caches live in ${XDG_CACHE_HOME:-~/.cache}/pinstack/go, so rebuilds are
incremental. Versions are pinned in scripts/k8s/versions.env (override with the same env names).

The control plane is envtest-like: no kubelet, no controller-manager, no scheduler. Pods never
run, there is no garbage collection, namespaces stay Terminating, no default ServiceAccount.

Environment:
    PINSTACK_STATE_DIR             state root (default <repo>/.stack); cluster state in ./cluster
    PINSTACK_KUBE_PORT             kube-apiserver secure port (default 56443)
    PINSTACK_ETCD_PORT             etcd client port (default 52379)
    PINSTACK_ETCD_PEER_PORT        etcd peer port (default 52380)
    PINSTACK_SERVICE_CIDR          --service-cluster-ip-range (default 10.96.0.0/16)
    PINSTACK_CLUSTER_START_TIMEOUT seconds to wait for /readyz (default 120)
    PINSTACK_K8S_VERSION, PINSTACK_ETCD_VERSION, PINSTACK_HELM_VERSION, PINSTACK_SKAFFOLD_VERSION,
    PINSTACK_KWOK_VERSION          versions (defaults in scripts/k8s/versions.env)
    XDG_CACHE_HOME                 cache root (default ~/.cache)

Standard library only; runs with the system python3. Needs go >= the go line of the modules
(1.26 for Kubernetes 1.36) and openssl.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

from proclib import ScriptError, env_port, pid_alive, port_in_use

REPO = Path(__file__).resolve().parent.parent
K8S_DIR = REPO / "scripts" / "k8s"
HOST = "127.0.0.1"
STOP_TIMEOUT = 20.0

# exit code of `up --no-build` when the binaries are not built (the pytest fixture skips on it)
EXIT_NOT_BUILT = 3


class ClusterError(ScriptError):
    """A failure of the control plane (main() reports every ScriptError the same way)."""


def say(component: str, message: str) -> None:
    # stderr: stdout is kept for `export ...` lines and --json
    print(f"[cluster] {component:<15} {message}", file=sys.stderr, flush=True)


def fmt_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def fmt_size(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


# ----------------------------------------------------------------------------- configuration


def read_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for line in (K8S_DIR / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            versions[key.strip()] = value.strip()
    for key in versions:
        if os.environ.get(key, "").strip():
            versions[key] = os.environ[key].strip()
    return {k: v.lstrip("v") for k, v in versions.items()}


class Config:
    def __init__(self) -> None:
        v = read_versions()
        self.k8s_version = v["PINSTACK_K8S_VERSION"]
        self.etcd_version = v["PINSTACK_ETCD_VERSION"]
        self.helm_version = v["PINSTACK_HELM_VERSION"]
        self.skaffold_version = v["PINSTACK_SKAFFOLD_VERSION"]
        self.kwok_version = v["PINSTACK_KWOK_VERSION"]
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pinstack"
        self.bin = cache / "bin" / f"v{self.k8s_version}"
        self.go_root = cache / "go"
        self.state = Path(os.environ.get("PINSTACK_STATE_DIR") or REPO / ".stack").resolve() / "cluster"
        self.pki = self.state / "pki"
        self.etcd_data = self.state / "etcd"
        self.logs = self.state / "logs"
        self.run = self.state / "run"
        self.kubeconfig = self.state / "kubeconfig"
        self.kube_port = env_port("PINSTACK_KUBE_PORT", 56443)
        self.etcd_port = env_port("PINSTACK_ETCD_PORT", 52379)
        self.etcd_peer_port = env_port("PINSTACK_ETCD_PEER_PORT", 52380)
        cidr = os.environ.get("PINSTACK_SERVICE_CIDR", "").strip() or "10.96.0.0/16"
        try:
            self.service_cidr = ipaddress.ip_network(cidr)
        except ValueError:
            raise ClusterError(f"PINSTACK_SERVICE_CIDR={cidr!r} is not a CIDR such as 10.96.0.0/16") from None
        raw_timeout = os.environ.get("PINSTACK_CLUSTER_START_TIMEOUT", "").strip() or "120"
        self.start_timeout = float(raw_timeout)

    @property
    def server(self) -> str:
        return f"https://{HOST}:{self.kube_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://{HOST}:{self.etcd_port}"

    def pidfile(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def logfile(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def binary(self, name: str) -> Path:
        return self.bin / name


# ----------------------------------------------------------------------------- build

TOOLS_CORE = ("etcd", "kube-apiserver", "kubectl", "helm")
TOOLS_EXTRA = ("skaffold", "kwok")


@dataclass
class Wrapper:
    """One wrapper module (scripts/k8s/<name>.go.mod.in) around an upstream module."""

    name: str
    module: str
    version: str  # with the leading v
    staging_version: str | None = None  # k8s: published tag of the ./staging/ modules
    # filled by prepare()
    commit: str = ""
    time: str = ""
    prepared: bool = False
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class Tool:
    name: str
    wrapper: str
    package: str
    version: str
    tags: str = ""


def go_env(cfg: Config) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GOTOOLCHAIN="local",
        CGO_ENABLED="0",
        GOFLAGS="-mod=mod",
        GOWORK="off",
        GOMODCACHE=str(cfg.go_root / "mod"),
        GOCACHE=str(cfg.go_root / "build"),
        GOPATH=str(cfg.go_root / "path"),
    )
    return env


def go(cfg: Config, *args: str, cwd: Path | None = None, capture: bool = False) -> str:
    try:
        done = subprocess.run(
            ["go", *args],
            cwd=cwd,
            env=go_env(cfg),
            text=True,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
        )
    except FileNotFoundError:
        raise ClusterError("`go` is not on PATH: install Go >= 1.26 (e.g. /usr/local/go/bin) and retry") from None
    if done.returncode != 0:
        detail = (done.stderr or "").strip()[-3000:] if capture else "(see the output above)"
        hint = ""
        if "verifying" in detail and "checksum" in detail.lower():
            hint = "\nchecksum verification failed: if sum.golang.org is unreachable here, retry with GOSUMDB=off"
        elif "403" in detail or "dial tcp" in detail or "proxyconnect" in detail:
            hint = f"\nthe Go module proxy is not reachable or refused ({go_env(cfg).get('GOPROXY') or 'default'})"
        raise ClusterError(f"`go {' '.join(args)}` failed (exit {done.returncode}):\n{detail}{hint}")
    return done.stdout if capture else ""


def go_version_tuple(text: str) -> tuple[int, ...]:
    nums = []
    for part in text.removeprefix("go").split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        nums.append(int(digits or 0))
    return tuple(nums)


def check_go(cfg: Config, needed: str) -> None:
    have = go(cfg, "env", "GOVERSION", capture=True).strip()
    if go_version_tuple(have) < go_version_tuple(needed):
        raise ClusterError(
            f"{have} is too old: these modules need go >= {needed} (GOTOOLCHAIN=local, no toolchain download); "
            "install a newer Go and retry"
        )


def wrappers(cfg: Config) -> dict[str, Wrapper]:
    k = cfg.k8s_version
    return {
        "kube": Wrapper("kube", "k8s.io/kubernetes", f"v{k}", staging_version="v0." + k.split(".", 1)[1]),
        "etcd": Wrapper("etcd", "go.etcd.io/etcd/server/v3", f"v{cfg.etcd_version}"),
        "helm": Wrapper("helm", "helm.sh/helm/v3", f"v{cfg.helm_version}"),
        "skaffold": Wrapper("skaffold", "github.com/GoogleContainerTools/skaffold/v2", f"v{cfg.skaffold_version}"),
        "kwok": Wrapper("kwok", "sigs.k8s.io/kwok", f"v{cfg.kwok_version}"),
    }


def tools(cfg: Config) -> dict[str, Tool]:
    k = f"v{cfg.k8s_version}"
    return {
        "etcd": Tool("etcd", "etcd", "go.etcd.io/etcd/server/v3", f"v{cfg.etcd_version}"),
        "kube-apiserver": Tool("kube-apiserver", "kube", "k8s.io/kubernetes/cmd/kube-apiserver", k, "selinux,notest"),
        "kubectl": Tool("kubectl", "kube", "k8s.io/kubernetes/cmd/kubectl", k, "selinux,notest"),
        "helm": Tool("helm", "helm", "helm.sh/helm/v3/cmd/helm", f"v{cfg.helm_version}"),
        "skaffold": Tool(
            "skaffold",
            "skaffold",
            "github.com/GoogleContainerTools/skaffold/v2/cmd/skaffold",
            f"v{cfg.skaffold_version}",
            "timetzdata,osusergo,netgo",
        ),
        "kwok": Tool("kwok", "kwok", "sigs.k8s.io/kwok/cmd/kwok", f"v{cfg.kwok_version}"),
    }


def marker_path(cfg: Config, name: str) -> Path:
    return cfg.bin / f".{name}.json"


def read_marker(cfg: Config, tool: Tool) -> dict[str, object] | None:
    """The marker of a built binary, or None when it must be (re)built."""
    try:
        marker = json.loads(marker_path(cfg, tool.name).read_text())
    except (OSError, ValueError):
        return None
    if marker.get("version") != tool.version or not cfg.binary(tool.name).is_file():
        return None
    return marker


def missing_tools(cfg: Config, names: tuple[str, ...] = TOOLS_CORE) -> list[str]:
    all_tools = tools(cfg)
    return [n for n in names if read_marker(cfg, all_tools[n]) is None]


def upstream_gomod(cfg: Config, w: Wrapper, workdir: Path) -> dict[str, Any]:
    """Download the upstream go.mod from the proxy; returns `go mod edit -json` of it."""
    info = json.loads(go(cfg, "mod", "download", "-json", f"{w.module}@{w.version}", cwd=workdir, capture=True))
    if info.get("Error"):
        raise ClusterError(f"{w.module}@{w.version}: {info['Error']}")
    # the .info file has the tag time, and the commit when the proxy recorded the origin
    try:
        meta = json.loads(Path(info["Info"]).read_text())
    except (KeyError, OSError, ValueError):
        meta = {}
    origin = meta.get("Origin") or info.get("Origin") or {}
    w.commit = str(origin.get("Hash") or "")
    w.time = str(meta.get("Time") or info.get("Time") or "")
    return dict(json.loads(go(cfg, "mod", "edit", "-json", str(info["GoMod"]), capture=True)))


def prepare(cfg: Config, w: Wrapper) -> Path:
    """Write the wrapper go.mod (template + lines read from the upstream go.mod) and resolve it."""
    workdir = cfg.go_root / "wrappers" / f"{w.name}-{w.version}"
    workdir.mkdir(parents=True, exist_ok=True)
    # go mod download -json needs a module context that does not drag in anything: a bare go.mod
    probe = cfg.go_root / "wrappers" / ".probe"
    probe.mkdir(parents=True, exist_ok=True)
    (probe / "go.mod").write_text("module pinstack.invalid/probe\n")
    up = upstream_gomod(cfg, w, probe)
    go_line = str(up.get("Go") or "1.22")
    check_go(cfg, go_line)
    godebug = "\n".join(f"godebug {d['Key']}={d['Value']}" for d in (up.get("Godebug") or []))
    text = Template((K8S_DIR / f"{w.name}.go.mod.in").read_text()).substitute(
        GO=go_line, GODEBUG=godebug, VERSION=w.version
    )
    edits: list[str] = []
    for rep in up.get("Replace") or []:
        old, new = rep["Old"], rep["New"]
        if new.get("Version"):  # a versioned replace: data, copied verbatim (skaffold)
            lhs = old["Path"] + (f"@{old['Version']}" if old.get("Version") else "")
            edits.append(f"-replace={lhs}={new['Path']}@{new['Version']}")
        elif w.staging_version and new["Path"].startswith("./staging/"):
            # k/k: ./staging/src/k8s.io/<m> -> the published k8s.io/<m> v0.X.Y
            edits.append(f"-replace={old['Path']}={old['Path']}@{w.staging_version}")
        # other local-path replaces (etcd's ../api ...) are skipped: the requires are real versions
    for exc in up.get("Exclude") or []:
        edits.append(f"-exclude={exc['Path']}@{exc['Version']}")
    stamp = workdir / ".prepared"
    fingerprint = json.dumps({"template": text, "edits": edits})
    if stamp.is_file() and stamp.read_text() == fingerprint and (workdir / "go.sum").is_file():
        w.prepared = True
        return workdir
    (workdir / "go.mod").write_text(text)
    (workdir / "go.sum").unlink(missing_ok=True)
    if edits:
        go(cfg, "mod", "edit", *edits, cwd=workdir)
    staging = sum(1 for e in edits if e.startswith("-replace=k8s.io/"))
    say(
        w.name,
        f"{w.module}@{w.version}: go {go_line}, {len(edits)} replace/exclude lines copied"
        + (f" ({staging} staging modules -> {w.staging_version})" if w.staging_version else ""),
    )
    say(w.name, "go mod tidy (resolve and download the modules) ...")
    t0 = time.monotonic()
    go(cfg, "mod", "tidy", cwd=workdir)
    say(w.name, f"modules ready in {fmt_seconds(time.monotonic() - t0)}")
    stamp.write_text(fingerprint)
    w.prepared = True
    return workdir


def ldflags(cfg: Config, tool: Tool, w: Wrapper, workdir: Path) -> list[str]:
    flags = ["-s", "-w"]

    def x(pkg: str, **kv: str) -> None:
        for key, val in kv.items():
            if val:
                flags.append(f"-X {pkg}.{key}={val}")

    if w.name == "kube":
        major, minor, _ = cfg.k8s_version.split(".", 2)
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
            x(
                pkg,
                gitVersion=tool.version,
                gitMajor=major,
                gitMinor=minor,
                gitCommit=w.commit,
                gitTreeState="clean",
                buildDate=w.time,
            )
    elif w.name == "etcd":
        x("go.etcd.io/etcd/api/v3/version", GitSHA=w.commit[:10] or tool.version)
    elif w.name == "helm":
        # as helm's Makefile: default kube version = (client-go major + 1).(client-go minor)
        cg = go(cfg, "list", "-m", "-f", "{{.Version}}", "k8s.io/client-go", cwd=workdir, capture=True).strip()
        cg_major, cg_minor = cg.lstrip("v").split(".")[:2]
        for pkg in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
            x(pkg, k8sVersionMajor=str(int(cg_major) + 1), k8sVersionMinor=cg_minor)
        x("helm.sh/helm/v3/internal/version", version=tool.version, gitCommit=w.commit, gitTreeState="clean")
    elif w.name == "skaffold":
        x(
            "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version",
            version=tool.version,
            gitCommit=w.commit,
            buildDate=w.time,
            gitTreeState="clean",
        )
    elif w.name == "kwok":
        x("sigs.k8s.io/kwok/pkg/consts", Version=tool.version, KubeVersion=f"v{cfg.k8s_version}")
    return flags


@contextlib.contextmanager
def file_lock(path: Path, what: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("lock", f"waiting for another {what} ({path}) ...")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build(cfg: Config, extra: bool = False, force: bool = False, only: list[str] | None = None) -> None:
    names = list(only or (TOOLS_CORE + (TOOLS_EXTRA if extra else ())))
    all_tools = tools(cfg)
    all_wrappers = wrappers(cfg)
    cfg.bin.mkdir(parents=True, exist_ok=True)
    with file_lock(cfg.bin / ".build.lock", "build"):
        todo = [n for n in names if force or read_marker(cfg, all_tools[n]) is None]
        if todo:
            say("build", f"building {', '.join(todo)} into {cfg.bin}")
            say(
                "build",
                f"Go caches in {cfg.go_root}; cold, on 2 cores: ~13 min and ~5 GB for etcd, kube-apiserver, "
                "kubectl and helm, ~12 min and ~5 GB more for skaffold and kwok",
            )
        t_all = time.monotonic()
        for name in todo:
            tool = all_tools[name]
            w = all_wrappers[tool.wrapper]
            t0 = time.monotonic()
            workdir = prepare(cfg, w)
            t_prep = time.monotonic() - t0
            flags = ldflags(cfg, tool, w, workdir)
            out = cfg.bin / f".{name}.tmp"
            args = ["build", "-trimpath", "-ldflags", " ".join(flags), "-o", str(out)]
            if tool.tags:
                args[1:1] = ["-tags", tool.tags]
            say(name, f"go build {tool.package}@{tool.version} ...")
            t1 = time.monotonic()
            go(cfg, *args, tool.package, cwd=workdir)
            t_build = time.monotonic() - t1
            out.replace(cfg.binary(name))
            size = cfg.binary(name).stat().st_size
            marker = {
                "name": name,
                "module": w.module,
                "version": tool.version,
                "commit": w.commit,
                "package": tool.package,
                "tags": tool.tags,
                "ldflags": " ".join(flags),
                "go": go(cfg, "env", "GOVERSION", capture=True).strip(),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "prepare_seconds": round(t_prep, 1),
                "build_seconds": round(t_build, 1),
                "size_bytes": size,
            }
            marker_path(cfg, name).write_text(json.dumps(marker, indent=2) + "\n")
            say(name, f"built in {fmt_seconds(t_build)} (+{fmt_seconds(t_prep)} modules), {fmt_size(size)}")
        if todo:
            say("build", f"done in {fmt_seconds(time.monotonic() - t_all)}")
    print_build_table(cfg, names)


def print_build_table(cfg: Config, names: list[str]) -> None:
    all_tools = tools(cfg)
    for name in names:
        m = read_marker(cfg, all_tools[name])
        if m is None:
            say(name, "not built")
            continue
        size, build_s, prep_s = (
            int(str(m["size_bytes"])),
            float(str(m["build_seconds"])),
            float(str(m["prepare_seconds"])),
        )
        say(
            name,
            f"{m['version']!s:<9} {fmt_size(size):>9}  built {m['built_at']} in {fmt_seconds(build_s)}"
            f" (+{fmt_seconds(prep_s)} modules)",
        )


# ----------------------------------------------------------------------------- processes


def read_pid(cfg: Config, name: str) -> int | None:
    """The recorded PID if that process is alive and still runs our binary (not a reused PID)."""
    try:
        pid = int(cfg.pidfile(name).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid, needle=f"/{name} ") else None


def spawn(cfg: Config, name: str, args: list[str]) -> int:
    cfg.logs.mkdir(parents=True, exist_ok=True)
    cfg.run.mkdir(parents=True, exist_ok=True)
    log = cfg.logfile(name)
    with log.open("ab") as fh:
        fh.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(args)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, cwd=cfg.state
        )
    cfg.pidfile(name).write_text(f"{proc.pid}\n")
    return proc.pid


def log_tail(cfg: Config, name: str, lines: int = 25) -> str:
    try:
        text = cfg.logfile(name).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def stop_pid(cfg: Config, name: str) -> bool:
    pid = read_pid(cfg, name)
    cfg.pidfile(name).unlink(missing_ok=True)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.1)
    if pid_alive(pid):
        say(name, f"pid {pid} ignored SIGTERM for {STOP_TIMEOUT:.0f}s: SIGKILL")
        os.kill(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.05)
    return True


# ----------------------------------------------------------------------------- control plane


def etcd_healthy(cfg: Config) -> bool:
    try:
        with urllib.request.urlopen(f"{cfg.etcd_url}/health", timeout=2) as resp:  # noqa: S310 (http://127.0.0.1)
            return bool(json.loads(resp.read()).get("health") == "true")
    except (OSError, ValueError):
        return False


def tls_context(cfg: Config) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cfg.pki / "ca.crt"))
    ctx.load_cert_chain(str(cfg.pki / "admin.crt"), str(cfg.pki / "admin.key"))
    return ctx


def apiserver_get(cfg: Config, path: str, timeout: float = 3.0) -> tuple[int, str]:
    try:
        url = f"{cfg.server}{path}"  # https://127.0.0.1:<port>
        with urllib.request.urlopen(url, timeout=timeout, context=tls_context(cfg)) as resp:  # noqa: S310
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (OSError, ssl.SSLError) as exc:
        return 0, str(exc)


def apiserver_ready(cfg: Config) -> bool:
    return apiserver_get(cfg, "/readyz")[0] == 200


def first_service_ip(cfg: Config) -> str:
    return str(next(cfg.service_cidr.hosts()))


def saved_ports(cfg: Config) -> dict[str, int]:
    try:
        return dict(json.loads((cfg.run / "ports.json").read_text()))
    except (OSError, ValueError):
        return {}


def current_ports(cfg: Config) -> dict[str, int]:
    return {"kube": cfg.kube_port, "etcd": cfg.etcd_port, "etcd_peer": cfg.etcd_peer_port}


def preflight_ports(cfg: Config) -> None:
    """Before starting anything: the ports of what is not running yet must be free."""
    checks = []
    if read_pid(cfg, "etcd") is None:
        checks += [
            (cfg.etcd_port, "PINSTACK_ETCD_PORT", "etcd"),
            (cfg.etcd_peer_port, "PINSTACK_ETCD_PEER_PORT", "etcd"),
        ]
    if read_pid(cfg, "kube-apiserver") is None:
        checks.append((cfg.kube_port, "PINSTACK_KUBE_PORT", "kube-apiserver"))
    for port, var, what in checks:
        if port_in_use(port):
            raise ClusterError(
                f"port {port} ({what}) is taken by another process, not ours: stop it, or set {var}=<free port>"
            )


def start_etcd(cfg: Config) -> None:
    if read_pid(cfg, "etcd") is not None:
        if etcd_healthy(cfg):
            say("etcd", f"running (pid {read_pid(cfg, 'etcd')}), reused: {cfg.etcd_url}")
            return
        raise ClusterError(
            f"etcd (pid {read_pid(cfg, 'etcd')}) runs but {cfg.etcd_url}/health does not answer; "
            f"see {cfg.logfile('etcd')}, then `make cluster-down` and `make cluster`"
        )
    for port, var in ((cfg.etcd_port, "PINSTACK_ETCD_PORT"), (cfg.etcd_peer_port, "PINSTACK_ETCD_PEER_PORT")):
        if port_in_use(port):
            raise ClusterError(
                f"port {port} is taken by another process (not our etcd): stop it, or set {var}=<free port>"
            )
    cfg.etcd_data.mkdir(parents=True, exist_ok=True, mode=0o700)
    peer = f"http://{HOST}:{cfg.etcd_peer_port}"
    args = [
        str(cfg.binary("etcd")),
        "--name=pinstack",
        f"--data-dir={cfg.etcd_data}",
        f"--listen-client-urls={cfg.etcd_url}",
        f"--advertise-client-urls={cfg.etcd_url}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=pinstack={peer}",
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]
    t0 = time.monotonic()
    pid = spawn(cfg, "etcd", args)
    deadline = t0 + 60
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            raise ClusterError(f"etcd exited at start; see {cfg.logfile('etcd')}:\n{log_tail(cfg, 'etcd')}")
        if etcd_healthy(cfg):
            say("etcd", f"started (pid {pid}) in {fmt_seconds(time.monotonic() - t0)}: {cfg.etcd_url}")
            return
        time.sleep(0.1)
    raise ClusterError(f"etcd did not become healthy in 60s; see {cfg.logfile('etcd')}:\n{log_tail(cfg, 'etcd')}")


def start_apiserver(cfg: Config) -> None:
    pid = read_pid(cfg, "kube-apiserver")
    if pid is not None:
        if apiserver_ready(cfg):
            say("kube-apiserver", f"running (pid {pid}), reused: {cfg.server}")
            return
        raise ClusterError(
            f"kube-apiserver (pid {pid}) runs but {cfg.server}/readyz is not OK; see "
            f"{cfg.logfile('kube-apiserver')}, then `make cluster-down` and `make cluster`"
        )
    if port_in_use(cfg.kube_port):
        raise ClusterError(
            f"port {cfg.kube_port} is taken by another process (not our kube-apiserver): stop it, "
            "or set PINSTACK_KUBE_PORT=<free port>"
        )
    p = cfg.pki
    args = [
        str(cfg.binary("kube-apiserver")),
        f"--etcd-servers={cfg.etcd_url}",
        f"--bind-address={HOST}",
        # loopback address on any machine (no default route needed); the `kubernetes` Service gets
        # no Endpoints then (a loopback IP is refused there), which nothing in-cluster needs here
        f"--advertise-address={HOST}",
        "--endpoint-reconciler-type=none",
        f"--secure-port={cfg.kube_port}",
        f"--cert-dir={p}",
        f"--tls-cert-file={p / 'apiserver.crt'}",
        f"--tls-private-key-file={p / 'apiserver.key'}",
        f"--client-ca-file={p / 'ca.crt'}",
        "--authorization-mode=RBAC",
        f"--service-cluster-ip-range={cfg.service_cidr}",
        f"--service-account-issuer={cfg.server}",
        f"--service-account-key-file={p / 'sa.pub'}",
        f"--service-account-signing-key-file={p / 'sa.key'}",
        "--allow-privileged=true",
        # no controller-manager: the default ServiceAccount never appears, so Pods would be refused
        "--disable-admission-plugins=ServiceAccount",
        "--profiling=false",
        "--v=0",
    ]
    t0 = time.monotonic()
    pid = spawn(cfg, "kube-apiserver", args)
    deadline = t0 + cfg.start_timeout
    last = ""
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            raise ClusterError(
                f"kube-apiserver exited at start; see {cfg.logfile('kube-apiserver')}:\n{log_tail(cfg, 'kube-apiserver')}"
            )
        status, body = apiserver_get(cfg, "/readyz", timeout=2)
        if status == 200:
            say("kube-apiserver", f"started (pid {pid}), ready in {fmt_seconds(time.monotonic() - t0)}: {cfg.server}")
            return
        last = f"{status} {body.strip()[-300:]}"
        time.sleep(0.25)
    raise ClusterError(
        f"kube-apiserver not ready after {cfg.start_timeout:.0f}s (last /readyz: {last}); see "
        f"{cfg.logfile('kube-apiserver')} (raise PINSTACK_CLUSTER_START_TIMEOUT on a slow machine)"
    )


def write_kubeconfig(cfg: Config) -> None:
    def b64(name: str) -> str:
        return base64.b64encode((cfg.pki / name).read_bytes()).decode()

    # JSON is valid YAML; kubectl, helm and the python kubernetes client all read it
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "pinstack", "cluster": {"server": cfg.server, "certificate-authority-data": b64("ca.crt")}}
        ],
        "users": [
            {
                "name": "pinstack-admin",
                "user": {"client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")},
            }
        ],
        "contexts": [{"name": "pinstack", "context": {"cluster": "pinstack", "user": "pinstack-admin"}}],
        "current-context": "pinstack",
        "preferences": {},
    }
    tmp = cfg.kubeconfig.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    tmp.replace(cfg.kubeconfig)


def env_info(cfg: Config) -> dict[str, str]:
    return {
        "kubeconfig": str(cfg.kubeconfig),
        "server": cfg.server,
        "bin_dir": str(cfg.bin),
        "kubectl": str(cfg.binary("kubectl")),
        "helm": str(cfg.binary("helm")),
        "k8s_version": cfg.k8s_version,
        "state_dir": str(cfg.state),
    }


def print_env(cfg: Config, as_json: bool) -> None:
    if as_json:
        print(json.dumps(env_info(cfg)))
        return
    print(f"export KUBECONFIG={cfg.kubeconfig}")
    print(f"export PATH={cfg.bin}:$PATH  # kubectl, helm (v{cfg.k8s_version})")


def up(cfg: Config, allow_build: bool, as_json: bool) -> int:
    t0 = time.monotonic()
    missing = missing_tools(cfg)
    if missing:
        if not allow_build:
            say(
                "build",
                f"not built: {', '.join(missing)} (in {cfg.bin}); run `make cluster-build` (once, ~13 min cold)",
            )
            return EXIT_NOT_BUILT
        build(cfg)
    if shutil.which("openssl") is None:
        raise ClusterError("openssl is missing: apt-get install openssl (or make bootstrap)")
    cfg.state.mkdir(parents=True, exist_ok=True)
    with file_lock(cfg.state / ".lock", "`cluster.py up`"):
        running = read_pid(cfg, "etcd") or read_pid(cfg, "kube-apiserver")
        saved = saved_ports(cfg)
        if running and saved and saved != current_ports(cfg):
            raise ClusterError(
                f"a control plane from {cfg.state} already runs with ports {saved}, not {current_ports(cfg)}: "
                "`make cluster-down` first, or use another PINSTACK_STATE_DIR"
            )
        subprocess.run(["bash", str(K8S_DIR / "pki.sh"), str(cfg.pki), f"IP:{first_service_ip(cfg)}"], check=True)
        cfg.run.mkdir(parents=True, exist_ok=True)
        (cfg.run / "ports.json").write_text(json.dumps(current_ports(cfg)) + "\n")
        preflight_ports(cfg)
        start_etcd(cfg)
        start_apiserver(cfg)
        write_kubeconfig(cfg)
    say(
        "cluster",
        f"ready in {fmt_seconds(time.monotonic() - t0)}: {cfg.server} (Kubernetes v{cfg.k8s_version}); "
        f"logs in {cfg.logs}; stop with `make cluster-down`",
    )
    print_env(cfg, as_json)
    return 0


def down(cfg: Config) -> None:
    with file_lock(cfg.state / ".lock", "`cluster.py up`"):
        for name in ("kube-apiserver", "etcd"):
            pid = read_pid(cfg, name)
            if stop_pid(cfg, name):
                say(name, f"stopped (pid {pid})")
            else:
                say(name, "not running")


def status(cfg: Config) -> int:
    rc = 0
    for name in ("etcd", "kube-apiserver"):
        pid = read_pid(cfg, name)
        if pid is None:
            say(name, "not running")
            rc = 1
            continue
        ok = etcd_healthy(cfg) if name == "etcd" else apiserver_ready(cfg)
        where = cfg.etcd_url if name == "etcd" else cfg.server
        say(name, f"pid {pid}  {where}  {'ready' if ok else 'NOT READY'}")
        rc = rc or (0 if ok else 1)
    if rc == 0:
        code, body = apiserver_get(cfg, "/version")
        if code == 200:
            say("version", json.loads(body).get("gitVersion", "?"))
        say("kubeconfig", str(cfg.kubeconfig))
    print_build_table(cfg, list(TOOLS_CORE + TOOLS_EXTRA))
    return rc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_build = sub.add_parser("build", help="build the binaries (cached per version)")
    p_build.add_argument("--extra", action="store_true", help="also skaffold and kwok")
    p_build.add_argument("--force", action="store_true", help="rebuild even when the markers say built")
    p_build.add_argument("only", nargs="*", help="only these binaries")
    p_up = sub.add_parser("up", help="start etcd + kube-apiserver (reuses a running pair)")
    p_up.add_argument("--no-build", action="store_true", help=f"exit {EXIT_NOT_BUILT} instead of building")
    p_up.add_argument("--json", action="store_true", help="print the connection details as JSON on stdout")
    sub.add_parser("down", help="stop kube-apiserver and etcd")
    sub.add_parser("status", help="PIDs, ports and readiness")
    p_env = sub.add_parser("env", help="export lines (KUBECONFIG, PATH)")
    p_env.add_argument("--json", action="store_true")
    sub.add_parser("clean", help="down, then delete the cluster state folder (etcd data, pki, kubeconfig)")
    args = parser.parse_args()
    try:
        cfg = Config()
        if args.cmd == "build":
            unknown = [n for n in args.only if n not in TOOLS_CORE + TOOLS_EXTRA]
            if unknown:
                raise ClusterError(f"unknown binaries {unknown}; choose from {list(TOOLS_CORE + TOOLS_EXTRA)}")
            build(cfg, extra=args.extra, force=args.force, only=args.only or None)
            return 0
        if args.cmd == "up":
            return up(cfg, allow_build=not args.no_build, as_json=args.json)
        if args.cmd == "down":
            down(cfg)
            return 0
        if args.cmd == "status":
            return status(cfg)
        if args.cmd == "env":
            print_env(cfg, args.json)
            return 0
        if args.cmd == "clean":
            down(cfg)
            shutil.rmtree(cfg.state, ignore_errors=True)
            say("clean", f"deleted {cfg.state}")
            return 0
    except ScriptError as exc:
        print(f"[cluster] ERROR: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())

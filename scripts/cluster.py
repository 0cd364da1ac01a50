#!/usr/bin/env python3
"""Pinstack's local Kubernetes: a real one-node cluster, or a bare control plane for fast tests.

    cluster.py build [--extra] [--force] [name ...]   build the binaries once per version (cached)
    cluster.py up --node [--no-build] [--json]        the real node (what `make cluster` runs)
    cluster.py up [--no-build] [--json]               etcd + kube-apiserver only, on 127.0.0.1
    cluster.py down [--node|--plane]                  stop them (by recorded PID) and undo every
                                                      machine change the node made
    cluster.py status [--node|--plane]                PIDs and health of every component
    cluster.py env [--node] [--json]                  `export KUBECONFIG=...` and PATH lines
    cluster.py clean [--node|--plane]                 down, then delete the state folders

The real node (state `<root>/node`; scripts/node.py has its network, containerd, kubelet,
kube-proxy and CoreDNS settings): etcd, kube-apiserver on the node's bridge address,
kube-controller-manager, kube-scheduler, a private containerd + runc, the kubelet, kube-proxy
(iptables), CoreDNS and Prometheus (built with Kubernetes discovery only: it finds the pods
through the API server and scrapes what the charts' monitors select). Pods run, Services route, DNS answers the cluster zone,
the platform's dashboards have data. It needs root.
`up` reuses what runs and restarts what stopped; a second `up` of a healthy node takes ~1 s.
The node tier (e2e/node, `make test-node`) runs the platform on it.

The bare control plane (state `<root>/cluster`) is envtest-like: no kubelet, no controllers, so
objects are stored and validated but pods never run. The chart and operator tiers use it: they
check what the API server accepts in seconds, and the operator tests patch object status by hand
(a real controller would overwrite it). `make control-plane` starts it.

Binaries come from the Go module proxy only (see /work/shared/infra-recipes.md §1, §3): wrapper
modules under scripts/k8s/*.go.mod.in are filled in from the upstream go.mod files and built with
CGO_ENABLED=0 -trimpath -ldflags "-s -w <version flags>" into
${XDG_CACHE_HOME:-~/.cache}/pinstack/bin/v<k8s version>/: kube-apiserver, kube-controller-manager,
kube-scheduler, kubelet, kube-proxy, kubectl (k8s.io/kubernetes), etcd (go.etcd.io/etcd/server/v3),
helm (helm.sh/helm/v3), CoreDNS with only the plugins the node uses (scripts/k8s/coredns/main.go),
crictl (sigs.k8s.io/cri-tools); with --extra also skaffold and kwok. A marker file per binary
(.<name>.json: version, build seconds, size) makes a warm run instant. Go's module and build caches
live in ${XDG_CACHE_HOME:-~/.cache}/pinstack/go, so rebuilds are incremental. Versions are pinned
in scripts/k8s/versions.env (override with the same env names).

Environment:
    PINSTACK_STATE_DIR             state root (default <repo>/.stack)
    PINSTACK_KUBE_PORT             control plane: kube-apiserver secure port (default 56443)
    PINSTACK_ETCD_PORT, PINSTACK_ETCD_PEER_PORT              its etcd (default 52379, 52380)
    PINSTACK_NODE_KUBE_PORT        node: kube-apiserver port on the bridge address (default 62443)
    PINSTACK_NODE_ETCD_PORT, PINSTACK_NODE_ETCD_PEER_PORT    its etcd (default 62379, 62380)
    PINSTACK_NODE_*_PORT           the node components' health ports (scripts/node.py PORTS)
    PINSTACK_POD_CIDR              pod range (default 10.244.0.0/16; the node uses its first /24)
    PINSTACK_SERVICE_CIDR          --service-cluster-ip-range (default 10.96.0.0/16)
    PINSTACK_CLUSTER_START_TIMEOUT seconds to wait for /readyz (default 120)
    PINSTACK_K8S_VERSION, PINSTACK_ETCD_VERSION, PINSTACK_HELM_VERSION, PINSTACK_COREDNS_VERSION,
    PINSTACK_CRICTL_VERSION, PINSTACK_SKAFFOLD_VERSION, PINSTACK_KWOK_VERSION, PINSTACK_LOCAL_PATH_VERSION,
    PINSTACK_PROMETHEUS_VERSION
                                   versions (defaults in scripts/k8s/versions.env)
    XDG_CACHE_HOME                 cache root (default ~/.cache)

Standard library only; runs with the system python3. Needs go >= the go line of the modules
(1.26 for Kubernetes 1.36) and openssl; the node needs the Debian packages of node.PACKAGES.
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import node
import proclib
from proclib import (
    ScriptError,
    env_port,
    exit_note,
    file_lock,
    fmt_seconds,
    fmt_size,
    port_in_use,
    running_pid,
    started_alive,
    stop_recorded,
    tail,
)

REPO = Path(__file__).resolve().parent.parent
K8S_DIR = REPO / "scripts" / "k8s"
HOST = "127.0.0.1"
STOP_TIMEOUT = 20.0

# exit code of `up --no-build` when the binaries are not built (the pytest fixture skips on it)
EXIT_NOT_BUILT = 3


def lock(path: Path, what: str) -> contextlib.AbstractContextManager[None]:
    return file_lock(path, what, lambda message: say("lock", message))


class ClusterError(ScriptError):
    """A failure of the control plane (main() reports every ScriptError the same way)."""


def say(component: str, message: str) -> None:
    # stderr: stdout is kept for `export ...` lines and --json
    print(f"[cluster] {component:<15} {message}", file=sys.stderr, flush=True)


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
    """Settings of one cluster: the bare control plane (node=False, state `<root>/cluster`, on
    127.0.0.1) or the real node (node=True, state `<root>/node`, API server on the node's bridge)."""

    def __init__(self, node: bool = False, state: Path | None = None) -> None:
        self.node = node
        v = read_versions()
        self.k8s_version = v["PINSTACK_K8S_VERSION"]
        self.etcd_version = v["PINSTACK_ETCD_VERSION"]
        self.helm_version = v["PINSTACK_HELM_VERSION"]
        self.skaffold_version = v["PINSTACK_SKAFFOLD_VERSION"]
        self.kwok_version = v["PINSTACK_KWOK_VERSION"]
        self.coredns_version = v["PINSTACK_COREDNS_VERSION"]
        self.crictl_version = v["PINSTACK_CRICTL_VERSION"]
        self.local_path_version = v["PINSTACK_LOCAL_PATH_VERSION"]
        self.prometheus_version = v["PINSTACK_PROMETHEUS_VERSION"]
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pinstack"
        self.bin = cache / "bin" / f"v{self.k8s_version}"
        self.go_root = cache / "go"
        self.state = state or Path(os.environ.get("PINSTACK_STATE_DIR") or REPO / ".stack").resolve() / (
            "node" if node else "cluster"
        )
        self.pki = self.state / "pki"
        self.etcd_data = self.state / "etcd"
        self.logs = self.state / "logs"
        self.run = self.state / "run"
        self.kubeconfig = self.state / "kubeconfig"
        self.env_prefix = prefix = "PINSTACK_NODE_" if node else "PINSTACK_"
        self.kube_port = env_port(f"{prefix}KUBE_PORT", 62443 if node else 56443)
        self.etcd_port = env_port(f"{prefix}ETCD_PORT", 62379 if node else 52379)
        self.etcd_peer_port = env_port(f"{prefix}ETCD_PEER_PORT", 62380 if node else 52380)
        self.service_cidr = cidr_setting("PINSTACK_SERVICE_CIDR", "10.96.0.0/16")
        self.pod_cidr = cidr_setting("PINSTACK_POD_CIDR", "10.244.0.0/16")
        # the node's pod subnet is the first /24 of the pod range; its first address is the
        # bridge, where the node's API server, kubelet and DNS listen (nothing on the machine's
        # own interfaces)
        self.node_subnet = next(self.pod_cidr.subnets(new_prefix=24))
        self.api_host = str(next(self.node_subnet.hosts())) if node else HOST
        raw_timeout = os.environ.get("PINSTACK_CLUSTER_START_TIMEOUT", "").strip() or "120"
        self.start_timeout = float(raw_timeout)

    @property
    def server(self) -> str:
        return f"https://{self.api_host}:{self.kube_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://{HOST}:{self.etcd_port}"

    def pidfile(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def logfile(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def binary(self, name: str) -> Path:
        return self.bin / name


def cidr_setting(var: str, default: str) -> ipaddress.IPv4Network:
    raw = os.environ.get(var, "").strip() or default
    try:
        net = ipaddress.ip_network(raw)
    except ValueError:
        raise ClusterError(f"{var}={raw!r} is not a CIDR such as {default}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise ClusterError(f"{var}={raw!r}: only IPv4 ranges are supported")
    return net


# ----------------------------------------------------------------------------- build

TOOLS_CORE = ("etcd", "kube-apiserver", "kubectl", "helm")
# the real node: what `cluster.py up --node` runs on top of the control plane
TOOLS_NODE = (
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "coredns",
    "crictl",
    "local-path-provisioner",
    "prometheus",
)
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
        "coredns": Wrapper("coredns", "github.com/coredns/coredns", f"v{cfg.coredns_version}"),
        "crictl": Wrapper("crictl", "sigs.k8s.io/cri-tools", f"v{cfg.crictl_version}"),
        "local-path-provisioner": Wrapper(
            "local-path-provisioner", "github.com/rancher/local-path-provisioner", f"v{cfg.local_path_version}"
        ),
        # Prometheus 3.x is the Go module's v0.3xx.y
        "prometheus": Wrapper("prometheus", "github.com/prometheus/prometheus", prometheus_module_version(cfg)),
    }


def prometheus_module_version(cfg: Config) -> str:
    major, minor, patch = cfg.prometheus_version.split(".")
    return f"v0.{int(major) * 100 + int(minor)}.{patch}"


def tools(cfg: Config) -> dict[str, Tool]:
    k = f"v{cfg.k8s_version}"
    return {
        "etcd": Tool("etcd", "etcd", "go.etcd.io/etcd/server/v3", f"v{cfg.etcd_version}"),
        "kube-apiserver": Tool("kube-apiserver", "kube", "k8s.io/kubernetes/cmd/kube-apiserver", k, "selinux,notest"),
        "kubectl": Tool("kubectl", "kube", "k8s.io/kubernetes/cmd/kubectl", k, "selinux,notest"),
        **{
            name: Tool(name, "kube", f"k8s.io/kubernetes/cmd/{name}", k, "selinux,notest")
            for name in ("kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")
        },
        "coredns": Tool("coredns", "coredns", "./cmd/coredns", f"v{cfg.coredns_version}"),
        "crictl": Tool("crictl", "crictl", "sigs.k8s.io/cri-tools/cmd/crictl", f"v{cfg.crictl_version}"),
        "local-path-provisioner": Tool(
            "local-path-provisioner",
            "local-path-provisioner",
            "github.com/rancher/local-path-provisioner",
            f"v{cfg.local_path_version}",
        ),
        "helm": Tool("helm", "helm", "helm.sh/helm/v3/cmd/helm", f"v{cfg.helm_version}"),
        "skaffold": Tool(
            "skaffold",
            "skaffold",
            "github.com/GoogleContainerTools/skaffold/v2/cmd/skaffold",
            f"v{cfg.skaffold_version}",
            "timetzdata,osusergo,netgo",
        ),
        "kwok": Tool("kwok", "kwok", "sigs.k8s.io/kwok/cmd/kwok", f"v{cfg.kwok_version}"),
        "prometheus": Tool(
            "prometheus",
            "prometheus",
            "github.com/prometheus/prometheus/cmd/prometheus",
            prometheus_module_version(cfg),
            "remove_all_sd,enable_kubernetes_sd",
        ),
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
    # a wrapper may carry its own main package (scripts/k8s/<name>/*.go -> cmd/<name>/)
    sources = {f.name: f.read_text() for f in sorted((K8S_DIR / w.name).glob("*.go"))}
    stamp = workdir / ".prepared"
    fingerprint = json.dumps({"template": text, "edits": edits, "sources": sources})
    if stamp.is_file() and stamp.read_text() == fingerprint and (workdir / "go.sum").is_file():
        w.prepared = True
        return workdir
    (workdir / "go.mod").write_text(text)
    (workdir / "go.sum").unlink(missing_ok=True)
    for fname, source in sources.items():
        (workdir / "cmd" / w.name).mkdir(parents=True, exist_ok=True)
        (workdir / "cmd" / w.name / fname).write_text(source)
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
    elif w.name == "coredns":
        x("github.com/coredns/coredns/coremain", GitCommit=w.commit[:10] or tool.version)
    elif w.name == "crictl":
        x("sigs.k8s.io/cri-tools/pkg/version", Version=tool.version.lstrip("v"))
    elif w.name == "prometheus":
        x(
            "github.com/prometheus/common/version",
            Version=cfg.prometheus_version,
            Revision=w.commit,
            Branch="HEAD",
            BuildDate=w.time,
        )
    elif w.name == "kwok":
        x("sigs.k8s.io/kwok/pkg/consts", Version=tool.version, KubeVersion=f"v{cfg.k8s_version}")
    return flags


def build(
    cfg: Config, extra: bool = False, force: bool = False, only: list[str] | None = None, with_node: bool = False
) -> None:
    names = list(only or (TOOLS_CORE + (TOOLS_NODE if with_node else ()) + (TOOLS_EXTRA if extra else ())))
    all_tools = tools(cfg)
    all_wrappers = wrappers(cfg)
    cfg.bin.mkdir(parents=True, exist_ok=True)
    with lock(cfg.bin / ".build.lock", "build"):
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


def needle(name: str) -> str:
    """What the command line of a component shows: its binary, `<bin dir>/<name> <args>`."""
    return f"/{name} "


def read_pid(cfg: Config, name: str) -> int | None:
    """The recorded PID if that process is alive and still runs our binary (not a reused PID)."""
    return running_pid(cfg.pidfile(name), needle(name))


def spawn(cfg: Config, name: str, args: list[str]) -> int:
    return proclib.spawn(args, cfg.logfile(name), cwd=cfg.state, pidfile=cfg.pidfile(name))


def log_tail(cfg: Config, name: str, lines: int = 25) -> str:
    return tail(cfg.logfile(name), lines)


def stop_pid(cfg: Config, name: str) -> bool:
    return stop_recorded(name, cfg.pidfile(name), needle(name), STOP_TIMEOUT, say) is not None


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
            (cfg.etcd_port, f"{cfg.env_prefix}ETCD_PORT", "etcd"),
            (cfg.etcd_peer_port, f"{cfg.env_prefix}ETCD_PEER_PORT", "etcd"),
        ]
    if read_pid(cfg, "kube-apiserver") is None:
        checks.append((cfg.kube_port, f"{cfg.env_prefix}KUBE_PORT", "kube-apiserver"))
    for port, var, what in checks:
        if port_in_use(port, cfg.api_host if what == "kube-apiserver" else HOST):
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
        if not started_alive(pid):
            raise ClusterError(
                f"etcd exited at start{exit_note(pid)}; see {cfg.logfile('etcd')}:\n{log_tail(cfg, 'etcd')}"
            )
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
    if port_in_use(cfg.kube_port, cfg.api_host):
        raise ClusterError(
            f"port {cfg.kube_port} is taken by another process (not our kube-apiserver): stop it, "
            "or set PINSTACK_KUBE_PORT=<free port>"
        )
    p = cfg.pki
    args = [
        str(cfg.binary("kube-apiserver")),
        f"--etcd-servers={cfg.etcd_url}",
        f"--bind-address={cfg.api_host}",
        f"--advertise-address={cfg.api_host}",
        f"--secure-port={cfg.kube_port}",
        f"--cert-dir={p}",
        f"--tls-cert-file={p / 'apiserver.crt'}",
        f"--tls-private-key-file={p / 'apiserver.key'}",
        f"--client-ca-file={p / 'ca.crt'}",
        f"--service-cluster-ip-range={cfg.service_cidr}",
        f"--service-account-key-file={p / 'sa.pub'}",
        f"--service-account-signing-key-file={p / 'sa.key'}",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=0",
    ]
    if cfg.node:
        # a real node: the usual admission chain (ServiceAccount included), the `kubernetes`
        # Service's endpoints on the bridge address, the Node authorizer for the kubelet, and
        # the kubelet reached by its InternalIP (its hostname resolves nowhere) over verified TLS
        args += [
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-certificate-authority={p / 'ca.crt'}",
            f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
        ]
    else:
        args += [
            "--authorization-mode=RBAC",
            f"--service-account-issuer={cfg.server}",
            # loopback address on any machine (no default route needed); the `kubernetes` Service
            # gets no Endpoints then (a loopback IP is refused there), which nothing needs here
            "--endpoint-reconciler-type=none",
            # no controller-manager: the default ServiceAccount never appears, so Pods would be refused
            "--disable-admission-plugins=ServiceAccount",
        ]
    t0 = time.monotonic()
    pid = spawn(cfg, "kube-apiserver", args)
    deadline = t0 + cfg.start_timeout
    last = ""
    while time.monotonic() < deadline:
        if not started_alive(pid):
            raise ClusterError(
                f"kube-apiserver exited at start{exit_note(pid)}; see {cfg.logfile('kube-apiserver')}:\n{log_tail(cfg, 'kube-apiserver')}"
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
    node.kubeconfig(cfg, "pinstack-admin", "admin", cfg.kubeconfig)


def env_info(cfg: Config) -> dict[str, str]:
    return {
        "kubeconfig": str(cfg.kubeconfig),
        "server": cfg.server,
        "bin_dir": str(cfg.bin),
        "kubectl": str(cfg.binary("kubectl")),
        "helm": str(cfg.binary("helm")),
        "k8s_version": cfg.k8s_version,
        "state_dir": str(cfg.state),
        "api_host": cfg.api_host,
        **({"prometheus": prometheus_url()} if cfg.node else {}),
    }


def print_env(cfg: Config, as_json: bool) -> None:
    if as_json:
        print(json.dumps(env_info(cfg)))
        return
    print(f"export KUBECONFIG={cfg.kubeconfig}")
    print(f"export PATH={cfg.bin}:$PATH  # kubectl, helm (v{cfg.k8s_version})")
    if cfg.node:
        print(f"export PINSTACK_NODE_PROM_URL={prometheus_url()}  # scrapes the pods of every release")


def ensure_built(cfg: Config, names: tuple[str, ...], allow_build: bool) -> bool:
    missing = missing_tools(cfg, names)
    if missing:
        if not allow_build:
            say(
                "build",
                f"not built: {', '.join(missing)} (in {cfg.bin}); run `make cluster-build` (once, ~20 min cold)",
            )
            return False
        build(cfg, only=missing)
    if shutil.which("openssl") is None:
        raise ClusterError("openssl is missing: apt-get install openssl (or make bootstrap)")
    return True


def start_plane(cfg: Config, sans: list[str]) -> None:
    """etcd + kube-apiserver (reused when they run) and the admin kubeconfig."""
    running = read_pid(cfg, "etcd") or read_pid(cfg, "kube-apiserver")
    saved = saved_ports(cfg)
    if running and saved and saved != current_ports(cfg):
        raise ClusterError(
            f"a control plane from {cfg.state} already runs with ports {saved}, not {current_ports(cfg)}: "
            "`make cluster-down` first, or use another PINSTACK_STATE_DIR"
        )
    env = {**os.environ, **({"NODE": f"{node.NODE_NAME},{cfg.api_host}"} if cfg.node else {})}
    subprocess.run(["bash", str(K8S_DIR / "pki.sh"), str(cfg.pki), *sans], check=True, env=env)
    cfg.run.mkdir(parents=True, exist_ok=True)
    (cfg.run / "ports.json").write_text(json.dumps(current_ports(cfg)) + "\n")
    preflight_ports(cfg)
    start_etcd(cfg)
    start_apiserver(cfg)
    write_kubeconfig(cfg)


def up(cfg: Config, allow_build: bool, as_json: bool) -> int:
    t0 = time.monotonic()
    if not ensure_built(cfg, TOOLS_CORE + (TOOLS_NODE if cfg.node else ()), allow_build):
        return EXIT_NOT_BUILT
    if cfg.node:
        stale = node.stale_node(cfg)
        if stale:
            say("node", f"cleaning a node left behind by processes that are gone (state {stale})")
            down_node(Config(node=True, state=stale))
        node.preflight(cfg)
    cfg.state.mkdir(parents=True, exist_ok=True)
    with lock(cfg.state / ".lock", "`cluster.py up`"):
        if cfg.node:
            start_node(cfg)
        else:
            start_plane(cfg, [f"IP:{first_service_ip(cfg)}"])
    what = "one-node cluster" if cfg.node else "control plane (no kubelet)"
    say(
        "cluster",
        f"{what} ready in {fmt_seconds(time.monotonic() - t0)}: {cfg.server} (Kubernetes v{cfg.k8s_version}); "
        f"logs in {cfg.logs}; stop with `make cluster-down`",
    )
    print_env(cfg, as_json)
    return 0


# ----------------------------------------------------------------------------- the real node


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """GET url -> 200? (https without verification: the components' self-signed health ports)"""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as resp:  # noqa: S310 (127.0.0.1)
            return bool(resp.status == 200)
    except (OSError, ValueError):
        return False


@dataclass
class Component:
    """A node process: how to start it and how to tell it is healthy."""

    name: str
    args: list[str]
    healthy: Any  # () -> bool
    ports: tuple[tuple[str, int], ...] = ()  # (host, port) it listens on: must be free at its start
    timeout: float = 60.0


def control_plane_args(cfg: Config, name: str, kubeconfig: Path, port: int) -> list[str]:
    """What kube-controller-manager and kube-scheduler share: their kubeconfig for everything,
    health and metrics on 127.0.0.1 only, no leader election (one of each)."""
    return [
        str(cfg.binary(name)),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={HOST}",
        f"--secure-port={port}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def node_health(cfg: Config) -> dict[str, Any]:
    """How to tell each node process is healthy (status reads this without writing any config)."""
    return {
        "kube-controller-manager": lambda: http_ok(f"https://{HOST}:{node.port('controller-manager')}/healthz"),
        "kube-scheduler": lambda: http_ok(f"https://{HOST}:{node.port('scheduler')}/healthz"),
        "kubelet": lambda: http_ok(f"http://{HOST}:{node.port('kubelet-healthz')}/healthz"),
        "kube-proxy": lambda: http_ok(f"http://{HOST}:{node.port('kube-proxy-healthz')}/healthz"),
        "coredns": lambda: http_ok(f"http://{HOST}:{node.port('coredns-ready')}/ready"),
        # no health endpoint: its controller says it started (in the log of this run)
        "local-path-provisioner": lambda: (
            "Started provisioner controller" in this_run_log(cfg, "local-path-provisioner")
        ),
        "prometheus": lambda: http_ok(f"{prometheus_url()}/-/ready"),
    }


def prometheus_url() -> str:
    return f"http://{HOST}:{node.port('prometheus')}"


def this_run_log(cfg: Config, name: str) -> str:
    """The log of a component since its last start (spawn() writes a ===== line per start)."""
    try:
        return cfg.logfile(name).read_text(errors="replace").rsplit("\n===== ", 1)[-1]
    except OSError:
        return ""


def node_components(cfg: Config) -> list[Component]:
    p, b, health = cfg.pki, cfg.binary, node_health(cfg)
    cm_kc = node.kubeconfig(cfg, "kube-controller-manager", "controller-manager")
    sched_kc = node.kubeconfig(cfg, "kube-scheduler", "scheduler")
    kubelet_kc = node.kubeconfig(cfg, "kubelet", "kubelet")
    proxy_kc = node.kubeconfig(cfg, "kube-proxy", "kube-proxy")
    dns_kc = node.kubeconfig(cfg, "coredns", "coredns")
    lpp_kc = node.kubeconfig(cfg, "local-path-provisioner", "local-path-provisioner")
    prom_kc = node.kubeconfig(cfg, "prometheus", "prometheus")
    cm_port, sched_port = node.port("controller-manager"), node.port("scheduler")
    return [
        Component(
            "kube-controller-manager",
            [
                *control_plane_args(cfg, "kube-controller-manager", cm_kc, cm_port),
                # each controller acts as its own service account (RBAC as on any cluster)
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={p / 'sa.key'}",
                f"--root-ca-file={p / 'ca.crt'}",
                f"--cluster-signing-cert-file={p / 'ca.crt'}",
                f"--cluster-signing-key-file={p / 'ca.key'}",
                f"--service-cluster-ip-range={cfg.service_cidr}",
                "--controllers=*",
            ],
            health["kube-controller-manager"],
            ((HOST, cm_port),),
        ),
        Component(
            "kube-scheduler",
            control_plane_args(cfg, "kube-scheduler", sched_kc, sched_port),
            health["kube-scheduler"],
            ((HOST, sched_port),),
        ),
        Component(
            "kubelet",
            [
                str(b("kubelet")),
                f"--config={node.kubelet_config(cfg)}",
                f"--kubeconfig={kubelet_kc}",
                f"--root-dir={cfg.state / 'kubelet' / 'root'}",
                f"--node-ip={cfg.api_host}",
                f"--hostname-override={node.NODE_NAME}",
                "--v=0",
            ],
            health["kubelet"],
            ((HOST, node.port("kubelet-healthz")), (cfg.api_host, node.KUBELET_PORT)),
        ),
        Component(
            "kube-proxy",
            [str(b("kube-proxy")), f"--config={node.kube_proxy_config(cfg, proxy_kc)}"],
            health["kube-proxy"],
            ((HOST, node.port("kube-proxy-healthz")), (HOST, node.port("kube-proxy-metrics"))),
        ),
        Component(
            "coredns",
            [str(b("coredns")), f"-conf={node.corefile(cfg, dns_kc)}"],
            health["coredns"],
            (
                (cfg.api_host, 53),
                *((HOST, node.port(p)) for p in ("coredns-health", "coredns-ready", "coredns-metrics")),
            ),
        ),
        Component(
            "local-path-provisioner",
            [
                str(b("local-path-provisioner")),
                "start",
                f"--kubeconfig={lpp_kc}",
                f"--namespace={node.LOCAL_PATH_NAMESPACE}",
                f"--configmap-name={node.LOCAL_PATH_CONFIGMAP}",
                f"--service-account-name={node.LOCAL_PATH_HELPER_SA}",
            ],
            health["local-path-provisioner"],
        ),
        Component(
            "prometheus",
            [
                str(b("prometheus")),
                f"--config.file={node.prometheus_config(cfg, prom_kc)}",
                f"--storage.tsdb.path={cfg.state / 'prometheus' / 'data'}",
                f"--web.listen-address={HOST}:{node.port('prometheus')}",
                "--storage.tsdb.retention.time=2d",
                "--web.enable-lifecycle",
            ],
            health["prometheus"],
            ((HOST, node.port("prometheus")),),
        ),
    ]


def start_component(cfg: Config, c: Component) -> None:
    pid = read_pid(cfg, c.name)
    if pid is not None:
        if c.healthy():
            say(c.name, f"running (pid {pid}), reused")
            return
        say(c.name, f"pid {pid} runs but is not healthy: restarting it")
        stop_pid(cfg, c.name)
    elif cfg.pidfile(c.name).is_file():
        say(c.name, f"had stopped (see {cfg.logfile(c.name)}): restarting it")
    for host, port in c.ports:
        if port_in_use(port, host):
            raise ClusterError(f"{c.name}: {host}:{port} is taken by another process, not ours: stop it first")
    t0 = time.monotonic()
    pid = spawn(cfg, c.name, c.args)
    deadline = t0 + c.timeout
    while time.monotonic() < deadline:
        if not started_alive(pid):
            raise ClusterError(
                f"{c.name} exited at start{exit_note(pid)}; see {cfg.logfile(c.name)}:\n{log_tail(cfg, c.name)}"
            )
        if c.healthy():
            say(c.name, f"started (pid {pid}) in {fmt_seconds(time.monotonic() - t0)}")
            return
        time.sleep(0.2)
    raise ClusterError(
        f"{c.name} (pid {pid}) not healthy after {c.timeout:.0f}s; see {cfg.logfile(c.name)}:\n{log_tail(cfg, c.name)}"
    )


def kubectl(cfg: Config, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [str(cfg.binary("kubectl")), f"--kubeconfig={cfg.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()[-800:]}")
    return done.stdout


def node_ready(cfg: Config, since: float = 0.0) -> tuple[bool, str]:
    """Is the node Ready, with a kubelet heartbeat (its Lease) renewed since `since`? A stored
    Ready condition outlives a stopped kubelet; the Lease is renewed every 10 s."""
    code, body = apiserver_get(cfg, f"/api/v1/nodes/{node.NODE_NAME}")
    if code != 200:
        return False, f"node not registered ({code})"
    ready: dict[str, Any] = next(
        (c for c in json.loads(body).get("status", {}).get("conditions", []) if c.get("type") == "Ready"), {}
    )
    state = f"Ready={ready.get('status', '?')} ({ready.get('reason', 'no condition yet')})"
    code, body = apiserver_get(cfg, f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node.NODE_NAME}")
    renewed = json.loads(body).get("spec", {}).get("renewTime", "") if code == 200 else ""
    if not renewed:
        return False, f"{state}, no kubelet heartbeat yet"
    beat = calendar.timegm(time.strptime(renewed.split(".")[0].rstrip("Z"), "%Y-%m-%dT%H:%M:%S"))
    fresh = beat >= since - 1 and time.time() - beat < 40
    return ready.get("status") == "True" and fresh, f"{state}, kubelet heartbeat {time.time() - beat:.0f}s ago"


def start_node(cfg: Config) -> None:
    since = time.time() - 15  # a heartbeat of the last 15 s counts (a reused kubelet renews every 10 s)
    node.claim(cfg)
    node.record_sysctls(cfg)
    node.record_netns(cfg)
    node.set_sysctls()
    node.setup_network(cfg)
    say(
        "network",
        f"bridge {node.BRIDGE} {cfg.api_host}/{cfg.node_subnet.prefixlen}; pods {cfg.node_subnet}, "
        f"Services {cfg.service_cidr}; unreachable routes for {cfg.pod_cidr} and {cfg.service_cidr}",
    )
    pause_ref = node.image_ref("pause")
    helper_ref = node.image_ref("volume-helper")
    containerd = Component(
        "containerd",
        [
            shutil.which("containerd") or "containerd",
            f"--config={node.containerd_config(cfg, pause_ref)}",
            "--log-level=warn",
        ],
        lambda: node.containerd_ready(cfg),
    )
    start_component(cfg, containerd)
    node.import_images(cfg, ["pause", "volume-helper"])  # the platform's images: `make images`
    start_plane(cfg, [f"IP:{first_service_ip(cfg)}", f"IP:{cfg.api_host}"])
    kubectl(cfg, "apply", "--server-side", "-f", "-", stdin=node.COREDNS_RBAC + "---\n" + node.PROMETHEUS_RBAC)
    kubectl(
        cfg, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=node.local_path_manifest(cfg, helper_ref)
    )
    for c in node_components(cfg):
        start_component(cfg, c)
    t0 = time.monotonic()
    state = ""
    while time.monotonic() - t0 < 120:
        ok, state = node_ready(cfg, since)
        if ok:
            say("node", f"{node.NODE_NAME} Ready in {fmt_seconds(time.monotonic() - t0)}")
            return
        time.sleep(0.5)
    raise ClusterError(f"node {node.NODE_NAME} not Ready after 120s ({state}); see {cfg.logfile('kubelet')}")


NODE_PROCESSES = (
    "prometheus",
    "local-path-provisioner",
    "coredns",
    "kube-proxy",
    "kubelet",
    "kube-scheduler",
    "kube-controller-manager",
)


def down_node(cfg: Config) -> None:
    for name in NODE_PROCESSES:
        pid = read_pid(cfg, name)
        if stop_pid(cfg, name):
            say(name, f"stopped (pid {pid})")
    pods = node.remove_pods(cfg)
    if pods:
        say("pods", f"stopped and removed {pods} pod sandboxes (CNI released their addresses)")
    pid = read_pid(cfg, "containerd")
    if stop_pid(cfg, "containerd"):
        say("containerd", f"stopped (pid {pid})")
    shims = node.leftover_shims(cfg)
    if shims:
        node.kill_pids(shims)
        say("containerd", f"stopped {len(shims)} leftover shims")
    if cfg.binary("kube-proxy").is_file():
        # removes every KUBE-* chain kube-proxy made (iptables, and nftables when present)
        subprocess.run([str(cfg.binary("kube-proxy")), "--cleanup"], capture_output=True, text=True)
    chains = node.remove_kube_chains()  # the kubelet's
    for name in ("kube-apiserver", "etcd"):
        pid = read_pid(cfg, name)
        if stop_pid(cfg, name):
            say(name, f"stopped (pid {pid})")
    unmounted = node.unmount_all(cfg.state)
    cgroups = node.remove_cgroups()
    netns = node.remove_netns(cfg)
    removed = node.teardown_network(cfg)
    restored = node.restore_sysctls(cfg)
    node.release(cfg)
    say(
        "node",
        f"cleaned: {unmounted} mounts, {cgroups} cgroup folders, {len(netns)} network namespaces, "
        f"{chains} KUBE-* chains, "
        f"{', '.join(removed) or 'no network left'}; sysctls restored: {', '.join(restored) or 'none recorded'}",
    )


def down(cfg: Config) -> None:
    if not cfg.state.exists():
        say("cluster", f"nothing in {cfg.state}")
        return
    with lock(cfg.state / ".lock", "`cluster.py up`"):
        if cfg.node:
            down_node(cfg)
            return
        for name in ("kube-apiserver", "etcd"):
            pid = read_pid(cfg, name)
            if stop_pid(cfg, name):
                say(name, f"stopped (pid {pid})")
            else:
                say(name, "not running")


def status(cfg: Config) -> int:
    rc = 0
    names = ("etcd", "kube-apiserver") + (("containerd", *reversed(NODE_PROCESSES)) if cfg.node else ())
    for name in names:
        pid = read_pid(cfg, name)
        if pid is None:
            say(name, "not running" + (" (it had been started: see its log)" if cfg.pidfile(name).is_file() else ""))
            rc = 1
            continue
        if name == "etcd":
            ok, where = etcd_healthy(cfg), cfg.etcd_url
        elif name == "kube-apiserver":
            ok, where = apiserver_ready(cfg), cfg.server
        elif name == "containerd":
            ok, where = node.containerd_ready(cfg), str(node.containerd_socket(cfg))
        else:
            ok, where = node_health(cfg)[name](), str(cfg.logfile(name))
        say(name, f"pid {pid}  {where}  {'ready' if ok else 'NOT READY'}")
        rc = rc or (0 if ok else 1)
    if rc == 0:
        code, body = apiserver_get(cfg, "/version")
        if code == 200:
            say("version", json.loads(body).get("gitVersion", "?"))
        if cfg.node:
            say("node", node_ready(cfg)[1])
        say("kubeconfig", str(cfg.kubeconfig))
    return rc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_build = sub.add_parser("build", help="build the binaries (cached per version)")
    p_build.add_argument("--node", action="store_true", help="also the real node's binaries")
    p_build.add_argument("--extra", action="store_true", help="also skaffold and kwok")
    p_build.add_argument("--force", action="store_true", help="rebuild even when the markers say built")
    p_build.add_argument("only", nargs="*", help="only these binaries")
    p_up = sub.add_parser("up", help="start the cluster (reuses what runs, restarts what stopped)")
    p_up.add_argument("--node", action="store_true", help="the real one-node cluster (default: control plane only)")
    p_up.add_argument("--no-build", action="store_true", help=f"exit {EXIT_NOT_BUILT} instead of building")
    p_up.add_argument("--json", action="store_true", help="print the connection details as JSON on stdout")
    for name, text in (
        ("down", "stop what `up` started and undo its machine changes (default: node and control plane)"),
        ("status", "PIDs and health of every component"),
        ("env", "export lines (KUBECONFIG, PATH)"),
        ("clean", "down, then delete the state folders (etcd data, pki, kubeconfig, containerd)"),
    ):
        p_cmd = sub.add_parser(name, help=text)
        p_cmd.add_argument("--node", action="store_true", help="the real node only")
        p_cmd.add_argument("--plane", action="store_true", help="the control plane only")
        if name == "env":
            p_cmd.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        if args.cmd == "build":
            cfg = Config()
            known = TOOLS_CORE + TOOLS_NODE + TOOLS_EXTRA
            unknown = [n for n in args.only if n not in known]
            if unknown:
                raise ClusterError(f"unknown binaries {unknown}; choose from {list(known)}")
            build(cfg, extra=args.extra, force=args.force, only=args.only or None, with_node=args.node)
            return 0
        if args.cmd == "up":
            return up(Config(node=args.node), allow_build=not args.no_build, as_json=args.json)
        if args.cmd == "env":
            print_env(Config(node=args.node), args.json)
            return 0
        # down, status and clean act on both clusters unless told which
        kinds = [True] if args.node else [False] if args.plane else [True, False]
        rc = 0
        for is_node in kinds:
            cfg = Config(node=is_node)
            if args.cmd == "status":
                say("cluster", "the real node" if is_node else "the control plane (no kubelet)")
                rc = max(rc, status(cfg))
            else:
                down(cfg)
                if args.cmd == "clean":
                    shutil.rmtree(cfg.state, ignore_errors=True)
                    say("clean", f"deleted {cfg.state}")
        if args.cmd == "status":
            print_build_table(Config(), list(TOOLS_CORE + TOOLS_NODE + TOOLS_EXTRA))
        return rc
    except ScriptError as exc:
        print(f"[cluster] ERROR: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())

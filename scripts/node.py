"""The real one-node Kubernetes of `cluster.py up --node` (what kind is on a laptop, without Docker).

On top of cluster.py's etcd + kube-apiserver it runs, as processes of this machine recorded by PID:
kube-controller-manager, kube-scheduler, a private containerd 1.6 + runc (its own config, root,
state and sockets under the node's state folder, never the system's), the kubelet, kube-proxy
(iptables) and CoreDNS (cluster zone only, no forwarding). Pods get addresses on a bridge that this
script creates; nothing of the cluster listens on the machine's own interfaces.

Network safety: the pod and Service ranges exist only on the bridge and in the pods' network
namespaces. `unreachable` routes for both whole ranges make any other address of them fail on this
machine instead of leaving through the default route; a preferred route sends the Service range to
the bridge (kube-proxy's DNAT happens after the route lookup, so host -> ClusterIP needs it); pods
get no default route (the CNI bridge is no default gateway, no masquerading) and a FORWARD guard
drops anything routed from the bridge to another interface. Every machine-wide change (routes,
bridge, iptables chains, the sysctls the kubelet and the bridge change, mounts, cgroups, network
namespaces) is recorded and undone by `cluster.py down --node`.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proclib import ScriptError, env_port, terminate

if TYPE_CHECKING:
    from cluster import Config

NODE_NAME = "pinstack-node"
BRIDGE = "cni-pinstack0"
FORWARD_CHAIN = "PINSTACK-NODE-FORWARD"
# which state folder's node made the bridge; /run is a tmpfs, gone with a reboot like the bridge
OWNER = Path("/run/pinstack/node.json")
CLUSTER_DOMAIN = "cluster.local"
# host ports of the node's components, on 127.0.0.1 (metrics and health only)
PORTS = {
    "kubelet-healthz": ("PINSTACK_NODE_KUBELET_HEALTHZ_PORT", 62248),
    "controller-manager": ("PINSTACK_NODE_CONTROLLER_MANAGER_PORT", 62257),
    "scheduler": ("PINSTACK_NODE_SCHEDULER_PORT", 62259),
    "kube-proxy-healthz": ("PINSTACK_NODE_PROXY_HEALTHZ_PORT", 62256),
    "kube-proxy-metrics": ("PINSTACK_NODE_PROXY_METRICS_PORT", 62249),
    "coredns-health": ("PINSTACK_NODE_DNS_HEALTH_PORT", 62280),
    "coredns-ready": ("PINSTACK_NODE_DNS_READY_PORT", 62281),
    "coredns-metrics": ("PINSTACK_NODE_DNS_METRICS_PORT", 62253),
    "prometheus": ("PINSTACK_NODE_PROMETHEUS_PORT", 62290),
}
KUBELET_PORT = 10250  # on the bridge address only
# sysctls that the kubelet or the bridge set: recorded before the first change, restored by down
SYSCTLS = {
    "net.ipv4.ip_forward": "1",  # the bridge routes pod -> ClusterIP -> pod
    "net.bridge.bridge-nf-call-iptables": "1",  # kube-proxy's rules see bridged replies
    "vm.overcommit_memory": "1",  # the kubelet sets these three itself
    "kernel.panic": "10",
    "kernel.panic_on_oops": "1",
}
# Debian packages of the node, by the command that shows each one is there
PACKAGES = {
    "containerd": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "ip": "iproute2",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "/usr/lib/cni/host-local": "containernetworking-plugins",
    "/usr/lib/cni/portmap": "containernetworking-plugins",
}


class NodeError(ScriptError):
    """A failure of the node (cluster.py reports every ScriptError the same way)."""


def port(name: str) -> int:
    var, default = PORTS[name]
    return env_port(var, default)


def run(*args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), capture_output=True, text=True)
    if check and done.returncode != 0:
        raise NodeError(f"`{' '.join(args)}` failed (exit {done.returncode}): {done.stderr.strip()[-800:]}")
    return done


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    """Write a config only when it changed: kube-proxy exits when its config file is rewritten,
    and a restart must not disturb the components that keep running."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")  # readers never see half a file
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        tmp.replace(path)
    path.chmod(mode)
    return path


# ----------------------------------------------------------------------------- preflight


def preflight(cfg: Config) -> None:
    if os.geteuid() != 0:
        raise NodeError("the node needs root (network namespaces, a bridge, iptables, mounts): run as root")
    missing = sorted(
        {pkg for cmd, pkg in PACKAGES.items() if not (Path(cmd).exists() if cmd.startswith("/") else shutil.which(cmd))}
    )
    if missing:
        raise NodeError(
            f"missing Debian packages for the node: {', '.join(missing)}; install them with "
            f"`apt-get install -y {' '.join(missing)}` (or `make bootstrap`)"
        )
    if not Path("/proc/sys/net/bridge").is_dir():
        run("modprobe", "br_netfilter", check=False)
        if not Path("/proc/sys/net/bridge").is_dir():
            raise NodeError("br_netfilter is not loaded (`modprobe br_netfilter`): kube-proxy needs it")
    check_ranges(cfg)
    if kube_chains() and not ours(cfg):
        raise NodeError(
            "KUBE-* iptables chains exist that this node did not make (another Kubernetes on this "
            "machine? see `iptables-save | grep KUBE`): stop it first"
        )


def ours(cfg: Config) -> bool:
    return (cfg.run / "sysctls.json").is_file()  # written at our start, removed by down


def claim(cfg: Config) -> None:
    OWNER.parent.mkdir(parents=True, exist_ok=True)
    OWNER.write_text(json.dumps({"state": str(cfg.state), "pid": os.getpid()}) + "\n")


def release(cfg: Config) -> None:
    if owner_state() in (cfg.state, None):
        OWNER.unlink(missing_ok=True)


def owner_state() -> Path | None:
    try:
        return Path(json.loads(OWNER.read_text())["state"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def node_processes(state: Path | None) -> list[int]:
    """PIDs of a node's processes: every one names its state folder on its command line (configs,
    data, sockets); for a node of unknown state, any kubelet or kube-proxy of this machine."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        line = b" ".join(args).decode(errors="replace")
        if f"{state}/" in line if state else Path(line.split(" ", 1)[0]).name in ("kubelet", "kube-proxy"):
            found.append(int(proc.name))
    return found


def stale_node(cfg: Config) -> Path | None:
    """The state folder of a node whose processes are gone but whose bridge, namespaces, routes and
    chains are left (a killed session, a crashed machine job), to be cleaned before this start.
    A node that still runs from another state folder is an error: two nodes cannot share the bridge."""
    if not bridge_exists() or ours(cfg):
        return None
    owner = owner_state()
    live = node_processes(owner)
    if live:
        raise NodeError(
            f"the bridge {BRIDGE} belongs to a running node of {owner or 'another state folder'} (pids "
            f"{', '.join(map(str, live[:8]))}): stop it there first (`scripts/cluster.py down --node` with its "
            "PINSTACK_STATE_DIR)"
        )
    return owner or cfg.state


def check_ranges(cfg: Config) -> None:
    """The pod and Service ranges must be used by nothing on this machine but our own bridge."""
    ours = (cfg.pod_cidr, cfg.service_cidr)
    for line in run("ip", "-4", "-o", "addr", "show").stdout.splitlines():
        fields = line.split()
        dev, addr = fields[1], ipaddress.ip_interface(fields[3])
        if dev != BRIDGE and any(addr.network.overlaps(r) for r in ours):
            raise NodeError(
                f"{dev} has {addr}, inside the cluster's ranges (pods {cfg.pod_cidr}, Services "
                f"{cfg.service_cidr}): choose others with PINSTACK_POD_CIDR / PINSTACK_SERVICE_CIDR"
            )
    for line in run("ip", "-4", "route", "show", "table", "all").stdout.splitlines():
        fields = line.split()
        dst = fields[1] if fields[0] in ("unreachable", "local", "broadcast") else fields[0]
        if dst == "default" or ("dev" in fields and fields[fields.index("dev") + 1] == BRIDGE):
            continue
        try:
            net = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if fields[0] == "unreachable" and net in ours:
            continue  # ours, from an earlier start
        if any(net.overlaps(r) for r in ours) and fields[0] not in ("local", "broadcast"):
            raise NodeError(
                f"the route `{line.strip()}` overlaps the cluster's ranges: choose others with "
                "PINSTACK_POD_CIDR / PINSTACK_SERVICE_CIDR"
            )


# ----------------------------------------------------------------------------- network


def sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def record_sysctls(cfg: Config) -> None:
    """Keep the values from before the node's first start (a restart must not record ours)."""
    saved = cfg.run / "sysctls.json"
    if saved.is_file():
        return
    values = {name: sysctl_path(name).read_text().strip() for name in SYSCTLS}
    cfg.run.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(values, indent=2) + "\n")


def set_sysctls() -> None:
    for name, value in SYSCTLS.items():
        sysctl_path(name).write_text(value)


def restore_sysctls(cfg: Config) -> list[str]:
    saved = cfg.run / "sysctls.json"
    try:
        values = json.loads(saved.read_text())
    except (OSError, ValueError):
        return []
    for name, value in values.items():
        sysctl_path(name).write_text(value)
    saved.unlink()
    return [f"{k}={v}" for k, v in values.items()]


def bridge_exists() -> bool:
    return run("ip", "link", "show", BRIDGE, check=False).returncode == 0


def setup_network(cfg: Config) -> None:
    gateway = f"{cfg.api_host}/{cfg.node_subnet.prefixlen}"
    for cidr in (cfg.pod_cidr, cfg.service_cidr):
        route = ("ip", "route", "replace", "unreachable", str(cidr), "metric", "100")
        run(*route)
    if not bridge_exists():
        run("ip", "link", "add", BRIDGE, "type", "bridge")
    if gateway not in run("ip", "-4", "-o", "addr", "show", "dev", BRIDGE).stdout:
        run("ip", "addr", "add", gateway, "dev", BRIDGE)
    run("ip", "link", "set", BRIDGE, "up")
    # an unreachable route is consulted before kube-proxy's OUTPUT DNAT: without this preferred
    # route host -> ClusterIP fails with "No route to host"; an unknown ClusterIP dies on the bridge
    run("ip", "route", "replace", str(cfg.service_cidr), "dev", BRIDGE, "src", cfg.api_host, "metric", "10")
    # nothing routed from the bridge may leave by another interface (pods have no default route,
    # but a pod could still address a packet to the gateway for anywhere)
    if run("iptables", "-w", "-n", "-L", FORWARD_CHAIN, check=False).returncode != 0:
        run("iptables", "-w", "-N", FORWARD_CHAIN)
    run("iptables", "-w", "-F", FORWARD_CHAIN)
    run("iptables", "-w", "-A", FORWARD_CHAIN, "-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP")
    run("iptables", "-w", "-A", FORWARD_CHAIN, "!", "-i", BRIDGE, "-o", BRIDGE, "-j", "DROP")
    if run("iptables", "-w", "-C", "FORWARD", "-j", FORWARD_CHAIN, check=False).returncode != 0:
        run("iptables", "-w", "-I", "FORWARD", "1", "-j", FORWARD_CHAIN)


def teardown_network(cfg: Config) -> list[str]:
    removed = []
    if run("iptables", "-w", "-C", "FORWARD", "-j", FORWARD_CHAIN, check=False).returncode == 0:
        run("iptables", "-w", "-D", "FORWARD", "-j", FORWARD_CHAIN)
    if run("iptables", "-w", "-n", "-L", FORWARD_CHAIN, check=False).returncode == 0:
        run("iptables", "-w", "-F", FORWARD_CHAIN)
        run("iptables", "-w", "-X", FORWARD_CHAIN)
        removed.append(f"iptables chain {FORWARD_CHAIN}")
    if bridge_exists():
        run("ip", "link", "del", BRIDGE)
        removed.append(f"bridge {BRIDGE}")
    for cidr in (cfg.pod_cidr, cfg.service_cidr):
        if run("ip", "route", "del", "unreachable", str(cidr), "metric", "100", check=False).returncode == 0:
            removed.append(f"unreachable {cidr}")
    return removed


def kube_chains() -> dict[tuple[str, str], list[str]]:
    """The KUBE-* chains of kube-proxy and the kubelet, per (iptables binary, table)."""
    found: dict[tuple[str, str], list[str]] = {}
    for binary in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle", "raw"):
            done = run(binary, "-w", "-t", table, "-S", check=False)
            chains = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("-N KUBE-")]
            if chains:
                found[(binary, table)] = chains
    return found


def remove_kube_chains() -> int:
    """kube-proxy --cleanup removes its own chains; the kubelet's (KUBE-FIREWALL, KUBE-KUBELET-CANARY,
    KUBE-IPTABLES-HINT) stay: drop the jumps to every KUBE-* chain, then the chains."""
    count = 0
    for (binary, table), chains in kube_chains().items():
        for line in run(binary, "-w", "-t", table, "-S", check=False).stdout.splitlines():
            fields = shlex.split(line)
            if fields[:1] == ["-A"] and "-j" in fields and fields[fields.index("-j") + 1].startswith("KUBE-"):
                run(binary, "-w", "-t", table, "-D", *fields[1:], check=False)
        for chain in chains:
            run(binary, "-w", "-t", table, "-F", chain, check=False)
        for chain in chains:
            if run(binary, "-w", "-t", table, "-X", chain, check=False).returncode == 0:
                count += 1
    return count


def cni_config(cfg: Config) -> Path:
    conf_dir = cfg.state / "cni" / "net.d"
    conf_dir.mkdir(parents=True, exist_ok=True)
    conflist = {
        "cniVersion": "0.4.0",
        "name": "pinstack",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "isDefaultGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": str(cfg.node_subnet), "gateway": cfg.api_host}]],
                    # pods reach the Services through the bridge and nothing else
                    "routes": [{"dst": str(cfg.service_cidr)}],
                    "dataDir": str(cfg.state / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    write(conf_dir / "10-pinstack.conflist", json.dumps(conflist, indent=2) + "\n")
    return conf_dir


# ----------------------------------------------------------------------------- containerd


def containerd_dir(cfg: Config) -> Path:
    return cfg.state / "containerd"


def containerd_socket(cfg: Config) -> Path:
    return containerd_dir(cfg) / "containerd.sock"


def containerd_config(cfg: Config, pause_ref: str) -> Path:
    d = containerd_dir(cfg)
    conf_dir = cni_config(cfg)
    text = f"""# Written by scripts/node.py: a private containerd for the Pinstack node.
version = 2
root = "{d / "root"}"
state = "{d / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{containerd_socket(cfg)}"

[ttrpc]
  address = "{containerd_socket(cfg)}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d / "opt"}"

[plugins."io.containerd.grpc.v1.cri"]
  # nothing can be pulled here: the pause image is imported before the kubelet starts
  sandbox_image = "{pause_ref}"
  # no CAP_SYS_RESOURCE on this machine: a sandbox asking for -998 would fail to start
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{conf_dir}"
"""
    return write(d / "config.toml", text)


def containerd_ready(cfg: Config) -> bool:
    sock = containerd_socket(cfg)
    if not sock.is_socket():
        return False
    return run("ctr", "-a", str(sock), "version", check=False).returncode == 0


def import_images(cfg: Config, names: list[str] | None = None) -> None:
    """Import the locally built images (scripts/images.py) into the node's containerd."""
    args = ["python3", str(Path(__file__).with_name("images.py")), "import", "--address", str(containerd_socket(cfg))]
    done = subprocess.run([*args, *(names or [])], text=True, capture_output=True)
    if done.returncode != 0:
        raise NodeError(f"importing images failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")


def image_ref(name: str) -> str:
    """The reference of a built image from scripts/images.py's catalogue, building it if needed."""
    script = Path(__file__).with_name("images.py")
    done = subprocess.run(["python3", str(script), "build", name], text=True, capture_output=True)
    if done.returncode != 0:
        raise NodeError(f"building the {name} image failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
    catalogue = subprocess.run(["python3", str(script), "json"], text=True, capture_output=True, check=True)
    return str(json.loads(catalogue.stdout)[name]["ref"])


# ----------------------------------------------------------------------------- configs


def kubeconfig(cfg: Config, name: str, cert: str, path: Path | None = None) -> Path:
    """A kubeconfig for user `name` with the client certificate `cert` of the cluster's PKI (JSON
    is YAML: kubectl, helm and the Python client read it)."""

    def b64(fname: str) -> str:
        return base64.b64encode((cfg.pki / fname).read_bytes()).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "pinstack", "cluster": {"server": cfg.server, "certificate-authority-data": b64("ca.crt")}}
        ],
        "users": [
            {
                "name": name,
                "user": {"client-certificate-data": b64(f"{cert}.crt"), "client-key-data": b64(f"{cert}.key")},
            }
        ],
        "contexts": [{"name": "pinstack", "context": {"cluster": "pinstack", "user": name}}],
        "current-context": "pinstack",
    }
    path = path or cfg.state / "kubeconfigs" / f"{name}.kubeconfig"
    return write(path, json.dumps(doc, indent=2) + "\n", 0o600)


def kubelet_config(cfg: Config) -> Path:
    d = cfg.state / "kubelet"
    (d / "manifests").mkdir(parents=True, exist_ok=True)
    # pods of dnsPolicy Default get this instead of the machine's resolver, which they cannot reach
    write(d / "resolv.conf", "# the node's pods resolve through the cluster DNS only\n")
    doc: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # this machine has cgroup v1 (hybrid): kubelet >= 1.35 refuses it unless told
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        # no CAP_SYS_RESOURCE: the default -999 cannot be applied
        "oomScoreAdj": 0,
        # the kubelet sets vm.overcommit_memory and kernel.panic*; down restores them
        "protectKernelDefaults": False,
        "address": cfg.api_host,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": port("kubelet-healthz"),
        "tlsCertFile": str(cfg.pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(cfg.pki / "kubelet-serving.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(cfg.pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        # imported images are not pinned: the kubelet must never collect them (nothing can be pulled)
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "200Mi", "nodefs.available": "2%", "imagefs.available": "2%"},
        "podCIDR": str(cfg.node_subnet),
        "containerRuntimeEndpoint": f"unix://{containerd_socket(cfg)}",
        "staticPodPath": str(d / "manifests"),
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": [cfg.api_host],
        "resolvConf": str(d / "resolv.conf"),
        "failSwapOn": False,
        "serializeImagePulls": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
    }
    return write(d / "config.json", json.dumps(doc, indent=2) + "\n")


def kube_proxy_config(cfg: Config, kubeconfig_path: Path) -> Path:
    doc = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clusterCIDR": str(cfg.pod_cidr),
        "hostnameOverride": NODE_NAME,
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": f"127.0.0.1:{port('kube-proxy-healthz')}",
        "metricsBindAddress": f"127.0.0.1:{port('kube-proxy-metrics')}",
        # NodePorts answer on the bridge address only, never on the machine's interfaces
        "nodePortAddresses": [f"{cfg.api_host}/32"],
        "iptables": {"localhostNodePorts": False},
        # leave the machine's conntrack sysctls alone
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "clientConnection": {"kubeconfig": str(kubeconfig_path)},
    }
    return write(cfg.state / "kube-proxy" / "config.json", json.dumps(doc, indent=2) + "\n")


def corefile(cfg: Config, kubeconfig_path: Path) -> Path:
    reverse = f"{cfg.service_cidr} {cfg.pod_cidr}"
    # one server block for the cluster zone and the ranges' reverse zones: any other name is
    # answered REFUSED, nothing is forwarded anywhere
    text = f"""{CLUSTER_DOMAIN}:53 {reverse} {{
    bind {cfg.api_host}
    errors
    health 127.0.0.1:{port("coredns-health")}
    ready 127.0.0.1:{port("coredns-ready")}
    prometheus 127.0.0.1:{port("coredns-metrics")}
    kubernetes {CLUSTER_DOMAIN} {reverse} {{
        kubeconfig {kubeconfig_path} pinstack
        pods insecure
        ttl 5
    }}
    cache 5
    loadbalance
}}
"""
    return write(cfg.state / "coredns" / "Corefile", text)


def reader_rbac(user: str, rules: list[tuple[str, list[str]]]) -> str:
    """A ClusterRole that lets the node component `user` (its client certificate's CN) list and
    watch (apiGroup, resources), and its binding; JSON documents (JSON is YAML)."""
    meta = {"name": user, "labels": {"app.kubernetes.io/part-of": "pinstack-node"}}
    group = "rbac.authorization.k8s.io"
    role = {
        "apiVersion": f"{group}/v1",
        "kind": "ClusterRole",
        "metadata": meta,
        "rules": [{"apiGroups": [g], "resources": r, "verbs": ["list", "watch"]} for g, r in rules],
    }
    binding = {
        "apiVersion": f"{group}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": group, "kind": "ClusterRole", "name": user},
        "subjects": [{"apiGroup": group, "kind": "User", "name": user}],
    }
    return "\n---\n".join(json.dumps(doc) for doc in (role, binding)) + "\n"


COREDNS_RBAC = reader_rbac(
    "pinstack:coredns", [("", ["services", "pods", "namespaces"]), ("discovery.k8s.io", ["endpointslices"])]
)


# Prometheus runs on the host like the other components and finds the pods through the API server
# (kubernetes_sd, as pinstack:prometheus, which may only list and watch pods). What it scrapes is
# what the charts' ServiceMonitor and PodMonitors select: a service's API pods on their `http` port,
# its worker pods and the operator's pod on `metrics`; job is the service ("users", "users-worker")
# as in the local stack, so the same dashboards and alert rules serve both.
PROMETHEUS_RBAC = reader_rbac("pinstack:prometheus", [("", ["pods"])])
RULES_DIR = Path(__file__).resolve().parent.parent / "dashboards" / "rules"


def prometheus_config(cfg: Config, kubeconfig_path: Path) -> Path:
    meta = "__meta_kubernetes_pod_"
    label = f"{meta}label_app_kubernetes_io_"
    pods = {
        "job_name": "pods",
        "kubernetes_sd_configs": [{"role": "pod", "kubeconfig_file": str(kubeconfig_path)}],
        "relabel_configs": [
            {"source_labels": [f"{label}part_of"], "regex": "pinstack", "action": "keep"},
            {"source_labels": [f"{meta}phase"], "regex": "Running", "action": "keep"},
            {
                "source_labels": [f"{label}component", f"{meta}container_port_name"],
                "regex": "api;http|(worker|operator);metrics",
                "action": "keep",
            },
            {"source_labels": [f"{label}name"], "target_label": "job"},
            {
                "source_labels": [f"{label}name", f"{label}component"],
                "regex": "(.+);worker",
                "replacement": "${1}-worker",
                "target_label": "job",
            },
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": [f"{meta}name"], "target_label": "pod"},
            {"source_labels": [f"{label}instance"], "target_label": "release"},
        ],
    }
    own = [f"127.0.0.1:{port(p)}" for p in ("coredns-metrics", "kube-proxy-metrics")]
    doc = {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        # the alert rules the operator embeds (its rules ConfigMap holds the same groups)
        "rule_files": [str(RULES_DIR / "*.yaml")],
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port('prometheus')}"]}]},
            {"job_name": "node", "static_configs": [{"targets": own}]},
            pods,
        ],
    }
    return write(cfg.state / "prometheus" / "prometheus.yml", json.dumps(doc, indent=2) + "\n")


# The node's dynamic volumes: Rancher's local-path-provisioner (kind's default StorageClass) runs
# as a host process like the other components; a claim of class local-path gets a folder under
# <state>/volumes, made (0777: any pod's uid may write) and removed by a short helper pod.
LOCAL_PATH_NAMESPACE = "local-path-storage"
LOCAL_PATH_CONFIGMAP = "local-path-config"
LOCAL_PATH_HELPER_SA = "local-path-helper"
STORAGE_CLASS = "local-path"


def volumes_dir(cfg: Config) -> Path:
    return cfg.state / "volumes"


def local_path_manifest(cfg: Config, helper_image: str) -> str:
    """Namespace, RBAC, the provisioner's ConfigMap and the default StorageClass (JSON is YAML)."""
    user = "pinstack:local-path-provisioner"
    meta = {"labels": {"app.kubernetes.io/part-of": "pinstack-node"}}
    config = {"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [str(volumes_dir(cfg))]}]}
    helper_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "helper-pod"},
        "spec": {
            "priorityClassName": "system-node-critical",
            "automountServiceAccountToken": False,
            # root in the helper: it creates and removes folders in a root-owned directory
            "containers": [
                {
                    "name": "helper-pod",
                    "image": helper_image,
                    "imagePullPolicy": "Never",
                    "securityContext": {"runAsUser": 0, "runAsNonRoot": False},
                }
            ],
        },
    }
    objects: list[dict[str, object]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": LOCAL_PATH_NAMESPACE,
                # helper pods mount a hostPath: this namespace alone is privileged
                "labels": {**meta["labels"], "pod-security.kubernetes.io/enforce": "privileged"},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": LOCAL_PATH_HELPER_SA, "namespace": LOCAL_PATH_NAMESPACE, **meta},
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": user, **meta},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["nodes", "persistentvolumeclaims", "configmaps", "pods", "pods/log"],
                    "verbs": ["get", "list", "watch"],
                },
                {
                    "apiGroups": [""],
                    "resources": ["persistentvolumes"],
                    "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
                },
                {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
                {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": user, **meta},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": user},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": user, "namespace": LOCAL_PATH_NAMESPACE, **meta},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["pods"],
                    "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": user, "namespace": LOCAL_PATH_NAMESPACE, **meta},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": LOCAL_PATH_CONFIGMAP, "namespace": LOCAL_PATH_NAMESPACE, **meta},
            "data": {
                "config.json": json.dumps(config),
                "setup": '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n',
                "teardown": '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n',
                "helperPod.yaml": json.dumps(helper_pod),
            },
        },
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                **meta,
            },
            "provisioner": "rancher.io/local-path",
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Delete",
        },
    ]
    return "\n---\n".join(json.dumps(o) for o in objects)


# ----------------------------------------------------------------------------- teardown helpers


def mounts_under(root: Path) -> list[str]:
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1].replace("\\040", " ")
        if target == str(root) or target.startswith(f"{root}/"):
            found.append(target)
    return sorted(set(found), key=len, reverse=True)


def unmount_all(root: Path) -> int:
    count = 0
    for target in mounts_under(root):
        if run("umount", target, check=False).returncode != 0:
            run("umount", "-l", target, check=False)
        count += 1
    return count


def remove_pods(cfg: Config) -> int:
    """Stop and remove every pod sandbox through the CRI: that runs the CNI DEL (addresses,
    host ports, network namespaces) and stops the shims."""
    crictl = str(cfg.binary("crictl"))
    endpoint = f"unix://{containerd_socket(cfg)}"
    if not Path(crictl).is_file() or not containerd_ready(cfg):
        return 0
    base = [crictl, "--runtime-endpoint", endpoint, "--image-endpoint", endpoint, "--timeout", "30s"]
    pods = run(*base, "pods", "-q", check=False).stdout.split()
    for pod in pods:
        run(*base, "stopp", pod, check=False)
        run(*base, "rmp", "-f", pod, check=False)
    return len(pods)


def leftover_shims(cfg: Config) -> list[int]:
    """Shim processes of our containerd (they outlive it by design)."""
    needle = str(containerd_socket(cfg))
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "containerd-shim" in cmd and needle in cmd:
            pids.append(int(proc.name))
    return pids


def remove_cgroups() -> int:
    """The kubelet's QoS cgroups (kubepods*) in every v1 hierarchy, deepest first, once empty."""
    removed = 0
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        for top in sorted(hierarchy.glob("kubepods*")):
            dirs = sorted((p for p in [top, *top.rglob("*")] if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
            for d in dirs:
                try:
                    d.rmdir()
                    removed += 1
                except OSError:
                    pass
    return removed


def record_netns(cfg: Config) -> None:
    """The CNI network namespaces that exist before the node's first start are not ours."""
    saved = cfg.run / "netns-before.json"
    if not saved.is_file():
        cfg.run.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(sorted(list_netns())) + "\n")


def list_netns() -> set[str]:
    return {line.split()[0] for line in run("ip", "netns", "list", check=False).stdout.splitlines() if line.split()}


def remove_netns(cfg: Config) -> list[str]:
    saved = cfg.run / "netns-before.json"
    try:
        before = set(json.loads(saved.read_text()))
    except (OSError, ValueError):
        before = set()
    gone = []
    used = netns_in_use()
    for name in sorted(list_netns() - before):
        if name.startswith("cni-") and netns_inode(name) not in used:
            run("ip", "netns", "delete", name, check=False)
            gone.append(name)
    saved.unlink(missing_ok=True)
    return gone


def netns_inode(name: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except OSError:
        return None


def netns_in_use() -> set[int]:
    """The network namespaces some process lives in (never deleted under it: podman's, or a live pod's)."""
    used = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                used.add(os.stat(proc / "ns" / "net").st_ino)
            except OSError:
                pass
    return used


def kill_pids(pids: list[int], timeout: float = 10) -> None:
    """Stop processes found by their command line (containerd's shims): SIGTERM, then SIGKILL."""
    terminate([("containerd-shim", pid, None) for pid in pids], timeout)

#!/usr/bin/env python3
"""Pinstack on the local node (`make cluster`): the CRDs, the operator and the services, with Helm.

    deploy.py up [--namespace N] [--release R] [--prefix P] [--deletion-policy Retain|Delete] [--json]
    deploy.py up --managed [--namespace N] [--release R] [--deletion-policy Retain|Delete] [--json]
    deploy.py down [--namespace N] [--release R] [--operator]
    deploy.py skaffold dev|run|delete [skaffold flags]   skaffold on the node (profile node)

`up` needs the node (`make cluster`), the local infra listening on the node's bridge (`make infra`
after `make cluster`) and the images (`make images`, which it runs: a warm run is instant). It
installs, each with `helm upgrade --install --wait`:
  1. charts/pinstack-crds       (release pinstack-crds, namespace pinstack-system)
  2. charts/pinstack-operator   (release pinstack-operator, the operator image of `make images`)
  3. charts/pinstack            (release R, default "pinstack", in namespace N, default "pinstack"):
     every service, and the PinstackEnvironment R whose servers are the local infra as the pods
     reach it (the bridge address); the operator writes the connection Secrets, the pods migrate in
     init containers and start once their Secret exists.
With --managed the servers run in the cluster instead (no `make infra` needed): after 1. and 2.
it applies manifests/samples/environment-managed.yaml in namespace N (named R), waits until the
operator has the PostgreSQL, Redis and Kafka StatefulSets ready and the environment Ready, then
installs 3. without an environment of its own; it reports each step's time.
Then it prints the gateway's in-cluster address and the port-forward line for 127.0.0.1.
`down` uninstalls release R (its environment goes with it: with deletionPolicy Delete its
databases, roles, ACL users and topics are dropped) and the namespace; --operator also removes the
operator and the CRDs.

Standard library only (and the registry, read from the source tree: registry.py); runs with the
system python3.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from proclib import ScriptError, cache_root
from registry import NAMES as SERVICES

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
SYSTEM_NAMESPACE = "pinstack-system"
SERVERS = ("postgres", "redis", "kafka")  # a Managed environment's, from `make images`


class PlatformError(ScriptError):
    pass


def say(what: str, message: str) -> None:
    print(f"[deploy] {what:<16} {message}", file=sys.stderr, flush=True)


def script_json(*args: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise PlatformError(f"`{' '.join(args)}` failed:\n{done.stderr[-2000:]}")
    return dict(json.loads(done.stdout))


class Node:
    def __init__(self) -> None:
        info = script_json(str(SCRIPTS / "cluster.py"), "env", "--node", "--json")
        self.bin = Path(str(info["bin_dir"]))
        self.state = Path(str(info["state_dir"]))
        helm_home = self.state / "helm"
        self.env = {
            **os.environ,
            "KUBECONFIG": str(info["kubeconfig"]),
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "HELM_CACHE_HOME": str(helm_home / "cache"),
            "HELM_CONFIG_HOME": str(helm_home / "config"),
            "HELM_DATA_HOME": str(helm_home / "data"),
        }

    def run(self, tool: str, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 900) -> str:
        done = subprocess.run(
            [str(self.bin / tool), *args], input=stdin, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise PlatformError(f"{tool} {' '.join(args)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        return done.stdout

    def apply(self, manifest: dict[str, object]) -> None:
        self.run("kubectl", "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(manifest))


def node_servers() -> dict[str, str]:
    """host:port of PostgreSQL, Redis and Kafka as the node's pods reach them."""
    done = subprocess.run([sys.executable, str(SCRIPTS / "stack.py"), "env"], capture_output=True, text=True)
    found = {}
    for line in done.stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        if key.startswith("PINSTACK_NODE_"):
            found[key.removeprefix("PINSTACK_NODE_").lower()] = value
    if not {"pg", "redis", "kafka", "pg_password_file"} <= set(found):
        raise PlatformError(
            "the local infra does not listen on the node's bridge: `make cluster` first, then `make infra` "
            "(servers started before the node: `make down && make infra`)"
        )
    return found


def images(node: Node) -> dict[str, dict[str, object]]:
    for args in (("build",), ("import", "--address", str(node.state / "containerd" / "containerd.sock"))):
        done = subprocess.run([sys.executable, str(SCRIPTS / "images.py"), *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise PlatformError(f"`images.py {' '.join(args)}` failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
    catalogue = script_json(str(SCRIPTS / "images.py"), "json")
    return {name: dict(entry) for name, entry in catalogue.items() if isinstance(entry, dict)}


def adopt_crds(node: Node) -> None:
    """A CRD applied with kubectl (`make operator`, the operator tests) is refused by `helm install`
    ("invalid ownership metadata"): hand it to the pinstack-crds release, as Helm documents."""
    found = json.loads(node.run("kubectl", "get", "crd", "-l", "!app.kubernetes.io/managed-by", "-o", "json"))
    for crd in found["items"]:
        name = crd["metadata"]["name"]
        if not name.endswith(".pinstack.io"):
            continue
        node.run("kubectl", "label", "crd", name, "app.kubernetes.io/managed-by=Helm", "--overwrite")
        node.run("kubectl", "annotate", "crd", name, "meta.helm.sh/release-name=pinstack-crds",
                 f"meta.helm.sh/release-namespace={SYSTEM_NAMESPACE}", "--overwrite")  # fmt: skip
        say("crds", f"{name} (applied with kubectl) adopted by the pinstack-crds release")


def wait_environment(node: Node, ns: str, name: str, timeout: float = 900) -> dict[str, float]:
    """Seconds from now until the managed servers were ready and until the environment was Ready;
    prints the conditions as they change, fails with them when the bound passes."""
    t0, last = time.monotonic(), ""
    seen: dict[str, float] = {}
    while time.monotonic() - t0 < timeout:
        found = json.loads(node.run("kubectl", "-n", ns, "get", "pinstackenvironment", name, "-o", "json"))
        conditions = {c["type"]: c for c in found.get("status", {}).get("conditions", [])}
        state = ", ".join(f"{t}={c['status']}" + (f" ({c.get('reason')})" if c["status"] != "True" else "")
                          for t, c in sorted(conditions.items()))  # fmt: skip
        if state != last:
            say("environment", f"{time.monotonic() - t0:5.0f}s  {state or 'no status yet'}")
            last = state
        for kind in ("ManagedServersReady", "Ready"):
            if conditions.get(kind, {}).get("status") == "True":
                seen.setdefault(kind, round(time.monotonic() - t0, 1))
        if "Ready" in seen:
            return seen
        time.sleep(2)
    raise PlatformError(
        f"environment {ns}/{name} not Ready after {timeout:.0f}s: {last}\n{node.run('kubectl', '-n', ns, 'get', 'pods,pvc', check=False)}"
    )


def managed_environment(node: Node, ns: str, name: str, deletion_policy: str) -> dict[str, float]:
    """manifests/samples/environment-managed.yaml, as a person applies it (named `name`)."""
    sample = REPO / "manifests" / "samples" / "environment-managed.yaml"
    env = json.loads(node.run("kubectl", "create", "--dry-run=client", "-o", "json", "-f", str(sample)))
    env["metadata"]["name"] = name
    env["metadata"].pop("namespace", None)  # kubectl's client-side parse fills in its default
    env["spec"]["deletionPolicy"] = deletion_policy
    t0 = time.monotonic()
    node.run("kubectl", "-n", ns, "apply", "-f", "-", stdin=json.dumps(env))
    say("environment", f"applied {sample.relative_to(REPO)} as {ns}/{name} (deletionPolicy {deletion_policy})")
    seen = wait_environment(node, ns, name)
    say("environment", f"servers ready {seen.get('ManagedServersReady', '?')}s, Ready {seen['Ready']}s after apply")
    return {"servers_ready_seconds": seen.get("ManagedServersReady", -1.0), "ready_seconds": seen["Ready"],
            "apply_started": t0}  # fmt: skip


def up(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    node = Node()
    servers = {} if args.managed else node_servers()
    built = images(node)
    say("images", f"{len(built)} built and imported in {time.monotonic() - t0:.0f}s")
    subprocess.run([str(SCRIPTS / "chart-deps.sh")], env={**node.env, "HELM": str(node.bin / "helm")}, check=True,
                   capture_output=True)  # fmt: skip
    wait = ["--wait", "--timeout", "10m"]
    adopt_crds(node)
    node.run("helm", "upgrade", "--install", "pinstack-crds", str(REPO / "charts" / "pinstack-crds"),
             "-n", SYSTEM_NAMESPACE, "--create-namespace", *wait)  # fmt: skip
    t1 = time.monotonic()
    node.run("helm", "upgrade", "--install", "pinstack-operator", str(REPO / "charts" / "pinstack-operator"),
             "-n", SYSTEM_NAMESPACE, "--set", "image.registry=localhost",
             "--set", f"image.tag={built['operator']['tag']}",
             *(a for s in SERVERS for a in ("--set", f"managedImages.{s}={built[s]['ref']}")), *wait)  # fmt: skip
    say("operator", f"running in {SYSTEM_NAMESPACE} ({time.monotonic() - t1:.0f}s)")
    ns, release = args.namespace, args.release
    node.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    common = [
        "-f", str(REPO / "charts" / "pinstack" / "ci" / "node-values.yaml"),
        *(a for svc in SERVICES for a in ("--set", f"{svc}.image.tag={built[svc]['tag']}")),
        # the Secrets appear once the operator has provisioned the environment: migrate in the pods
        "--set", "global.migrations.mode=initContainer",
    ]  # fmt: skip
    timings: dict[str, float] = {}
    if args.managed:
        timings = managed_environment(node, ns, release, args.deletion_policy)
        values = [*common, "--set", "environment.create=false"]
    else:
        values = [*common, *external_environment(node, ns, release, servers, args)]
    t2 = time.monotonic()
    node.run("helm", "upgrade", "--install", release, str(REPO / "charts" / "pinstack"), "-n", ns, *values, *wait)
    took = time.monotonic() - t2
    ip = json.loads(node.run("kubectl", "-n", ns, "get", "service", f"{release}-gateway", "-o", "json"))["spec"][
        "clusterIP"
    ]
    serving = wait_serving(f"http://{ip}/healthz")
    if "apply_started" in timings:
        timings["serving_seconds"] = round(time.monotonic() - timings.pop("apply_started"), 1)
        say("pinstack", f"gateway serving {timings['serving_seconds']}s after the environment was applied")
    say(
        "pinstack", f"every Deployment available {took:.0f}s after `helm install` (all in {time.monotonic() - t0:.0f}s)"
    )
    say(
        "gateway",
        f"http://{ip}/api/v1 (from this machine; /healthz answered in {serving:.1f}s), or on 127.0.0.1:8080 with:",
    )
    say("", f"kubectl -n {ns} port-forward svc/{release}-gateway 8080:80")
    if args.json:
        print(json.dumps({"namespace": ns, "release": release, "gateway": f"http://{ip}", "values": values,
                          "images": built, "install_seconds": round(took, 1), **timings}))  # fmt: skip
    return 0


def wait_serving(url: str, timeout: float = 120) -> float:
    t0 = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (the cluster's own Service)
                if resp.status == 200:
                    return time.monotonic() - t0
        except (urllib.error.URLError, OSError) as exc:
            if time.monotonic() - t0 > timeout:
                raise PlatformError(f"{url} did not answer 200 within {timeout:.0f}s ({exc})") from None
        time.sleep(1)


def external_environment(
    node: Node, ns: str, release: str, servers: dict[str, str], args: argparse.Namespace
) -> list[str]:
    """The umbrella chart's own PinstackEnvironment, whose servers are the local infra."""
    pg_password = Path(servers["pg_password_file"]).read_text().strip()
    for name, user, password in (
        ("pinstack-postgres-admin", "postgres", pg_password),
        ("pinstack-redis-admin", "default", ""),  # the local Redis' default user has no password
    ):
        node.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
                    "stringData": {"username": user, "password": password}})  # fmt: skip
    pg_host, pg_port = servers["pg"].rsplit(":", 1)
    redis_host, redis_port = servers["redis"].rsplit(":", 1)
    # not the release's bare name: `make up` keeps its own databases as pinstack_<service>
    prefix = args.prefix or f"node-{release}"
    return [
        "--set", "environment.create=true",
        "--set", f"environment.spec.deletionPolicy={args.deletion_policy}",
        "--set", f"environment.spec.postgres.host={pg_host}", "--set", f"environment.spec.postgres.port={pg_port}",
        "--set", "environment.spec.postgres.sslMode=disable",
        "--set", f"environment.spec.postgres.databasePrefix={prefix.replace('-', '_')}_",
        "--set", f"environment.spec.redis.host={redis_host}", "--set", f"environment.spec.redis.port={redis_port}",
        "--set", f"environment.spec.redis.keyPrefix={prefix}.",
        "--set", f"environment.spec.kafka.bootstrapServers={servers['kafka']}",
        "--set", f"environment.spec.kafka.topicPrefix={prefix}.",
        "--set", "environment.spec.kafka.topicDefaults.partitions=2",
    ]  # fmt: skip


def down(args: argparse.Namespace) -> int:
    node = Node()
    ns, release = args.namespace, args.release
    node.run("helm", "uninstall", release, "-n", ns, "--wait", "--timeout", "5m", check=False)
    # the environment (the release's, or a Managed one applied beside it) goes next; its finalizer
    # runs its deletionPolicy: wait for that before the namespace goes
    node.run("kubectl", "-n", ns, "delete", "pse", release, "--ignore-not-found", "--timeout=180s", check=False)
    node.run("kubectl", "delete", "namespace", ns, "--ignore-not-found", "--timeout=180s", check=False)
    say("pinstack", f"release {release} and namespace {ns} removed")
    if args.operator:
        node.run("helm", "uninstall", "pinstack-operator", "-n", SYSTEM_NAMESPACE, "--wait", check=False)
        node.run("helm", "uninstall", "pinstack-crds", "-n", SYSTEM_NAMESPACE, "--wait", check=False)
        say("operator", "the operator and the CRDs removed")
    return 0


def skaffold_home(state: Path) -> Path:
    """A home of the node's own for skaffold, with its global config: skaffold would otherwise
    write ~/.skaffold, turn usage metrics on at its first run and send them (and its update
    check) to the internet, which nothing here may reach."""
    home = state / "skaffold"
    (home / ".skaffold").mkdir(parents=True, exist_ok=True)
    (home / ".skaffold" / "config").write_text(
        "global:\n  collect-metrics: false\n  update-check: false\n  survey:\n    disable-prompt: true\n"
        "kubeContexts: []\n"
    )
    return home


def skaffold(args: argparse.Namespace) -> int:
    """`skaffold <args> -p node` on the node: skaffold reads the image ID of what it built from a
    Docker API, which podman serves here on a socket of the node's state for as long as skaffold
    runs (scripts/images.py builds and imports each image; skaffold.yaml, profile node)."""
    node = Node()
    binary = node.bin / "skaffold"
    if not binary.is_file():
        raise PlatformError(f"{binary} is not built: run `make cluster-build EXTRA=1` once (~12 min cold)")
    # a SIGTERM (a `timeout`, a stopped job) unwinds like Ctrl-C: the finally below stops podman
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sock = node.state / "podman" / "docker.sock"
    sock.parent.mkdir(parents=True, exist_ok=True)
    sock.unlink(missing_ok=True)
    log = (node.state / "logs" / "podman-service.log").open("a")
    service = subprocess.Popen(
        ["podman", "--runtime", "runc", "system", "service", "--time=0", f"unix://{sock}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not sock.is_socket():
            if service.poll() is not None or time.monotonic() > deadline:
                raise PlatformError(f"podman's API service did not open {sock}; see {log.name}")
            time.sleep(0.2)
        say("skaffold", f"podman's Docker API on {sock} (pid {service.pid})")
        env = {
            **node.env,
            "DOCKER_HOST": f"unix://{sock}",
            "HOME": str(skaffold_home(node.state)),
            "XDG_CACHE_HOME": str(cache_root().parent),  # images.py's caches stay where they are
        }
        flags = ["--profile", "node", "--update-check=false"]
        if args.args[:1] == ["dev"]:
            flags.append("--trigger=polling")  # its inotify watch saw no edit here; polling (1 s) does
        return subprocess.run([str(binary), *args.args, *flags], env=env, cwd=REPO).returncode
    finally:
        service.terminate()
        try:
            service.wait(15)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("up", "down"):
        p = sub.add_parser(name)
        p.add_argument("--namespace", default="pinstack")
        p.add_argument("--release", default="pinstack", help="also the PinstackEnvironment's name")
        if name == "up":
            p.add_argument(
                "--prefix", default="", help="database, Redis key and topic prefix (default: node-<release>)"
            )
            p.add_argument("--deletion-policy", default="Retain", choices=["Retain", "Delete"])
            p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
            p.add_argument(
                "--managed", action="store_true", help="servers in the cluster: the Managed sample environment"
            )
        else:
            p.add_argument("--operator", action="store_true", help="also uninstall the operator and the CRDs")
    p_skaffold = sub.add_parser("skaffold", help="skaffold ARGS with profile node (podman's Docker API for it)")
    p_skaffold.add_argument("args", nargs=argparse.REMAINDER, help="e.g. dev, run, delete")
    args = parser.parse_args()
    try:
        if args.cmd == "skaffold":
            return skaffold(args)
        return up(args) if args.cmd == "up" else down(args)
    except ScriptError as exc:
        print(f"[deploy] ERROR: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

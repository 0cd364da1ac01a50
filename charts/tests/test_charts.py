"""The Helm charts, manifests/ and the PinstackEnvironment CRD, checked by a real API server.

`kube_cluster` (pinstack_testing.cluster) is etcd + kube-apiserver without a kubelet: objects are
stored and validated (OpenAPI schemas, CEL rules, admission, Pod Security warnings) but pods
never run. So `helm install` runs without --wait, and the lifecycle test uses a value set whose
migrations are init containers (a pre-install hook Job would never complete here).

The charts are copied to a temporary folder to build their file:// dependencies: the working
tree is never touched. Tests marked `unit` read files only and need no cluster.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from pinstack_contracts.services import BY_NAME, NAMES
from pinstack_testing.cluster import KubeCluster

REPO = Path(__file__).resolve().parents[2]
CHARTS = REPO / "charts"
MANIFESTS = REPO / "manifests"
UMBRELLA = "pinstack"
RELEASE = "pinstack"
KUBE_VERSION = "1.34.0"
MONITORING_API = "monitoring.coreos.com/v1"
FIELD_MANAGER = "pinstack-tests"
CRD_SOURCES = sorted((CHARTS / "pinstack-crds" / "files").glob("*.yaml"))
SAMPLE = MANIFESTS / "samples" / "environment.yaml"
MANAGED_SAMPLE = MANIFESTS / "samples" / "environment-managed.yaml"
INVALID_SAMPLES = sorted((MANIFESTS / "samples" / "invalid").glob("*.yaml"))
VALUE_SETS = sorted((CHARTS / UMBRELLA / "ci").glob("*.yaml"))
# A value set without migration hooks: installable on a control plane where Jobs never finish.
INSTALLABLE_VALUES = CHARTS / UMBRELLA / "ci" / "all-enabled-with-environment-values.yaml"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def chart_meta(name: str) -> dict[str, Any]:
    meta: dict[str, Any] = load(CHARTS / name / "Chart.yaml")
    return meta


ALL_CHARTS = sorted(p.parent.name for p in CHARTS.glob("*/Chart.yaml"))
APP_CHARTS = [c for c in ALL_CHARTS if chart_meta(c).get("type") != "library"]
LIBRARY_CHARTS = [c for c in ALL_CHARTS if chart_meta(c).get("type") == "library"]
# The thin service charts: their templates are the library's workloads/network entry points.
SERVICE_CHARTS = [
    c
    for c in APP_CHARTS
    if any('include "pinstack.workloads"' in t.read_text() for t in (CHARTS / c / "templates").glob("*.yaml"))
]


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def labels(obj: dict[str, Any]) -> dict[str, str]:
    return obj["metadata"].get("labels") or {}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        spec: dict[str, Any] = obj["spec"]["template"]["spec"]
        return spec
    return None


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def expected_error(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expected error: "), f"{path} must start with '# expected error: <text>'"
    return first.removeprefix("# expected error: ").strip()


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def kube(kube_cluster: KubeCluster) -> KubeCluster:
    return kube_cluster


@pytest.fixture(scope="session")
def helm_env(kube: KubeCluster) -> dict[str, str]:
    """Environment for the repo's scripts: the cluster's helm and kubeconfig."""
    return {**kube.env, "HELM": str(kube.bin_dir / "helm")}


@pytest.fixture(scope="session")
def charts(helm_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of charts/ with every file:// dependency built (scripts/chart-deps.sh)."""
    copy = tmp_path_factory.mktemp("charts") / "charts"
    shutil.copytree(CHARTS, copy, ignore=shutil.ignore_patterns("charts", "tests", "__pycache__"))
    done = subprocess.run(
        [str(REPO / "scripts" / "chart-deps.sh"), str(copy)], env=helm_env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return copy


@pytest.fixture(scope="session")
def crds(kube: KubeCluster) -> None:
    """The CRD of manifests/crd/ (the way a user installs it) and test stand-ins for the
    Prometheus Operator's CRDs, applied for real and established."""
    names = []
    for path in [
        *sorted((MANIFESTS / "crd").glob("*.yaml")),
        Path(__file__).parent / "fixtures" / "monitoring-crds.yaml",
    ]:
        kube.kubectl("apply", "--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}", "-f", str(path))
        names += [f"crd/{d['metadata']['name']}" for d in docs(path.read_text())]
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)


@pytest.fixture
def namespace(kube: KubeCluster) -> Iterator[str]:
    """A fresh namespace that enforces the "restricted" Pod Security Standard (and warns about
    workloads that would violate it). Deleted afterwards (it stays Terminating: no controllers)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube.kubectl("create", "namespace", name)
    kube.kubectl(
        "label",
        "namespace",
        name,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
    )
    yield name
    # Without a namespace controller the objects of a deleted namespace stay: a sample environment
    # left there would claim the sample's topic prefix for good (the operator's conflict check).
    kube.kubectl("delete", "pinstackenvironments", "--all", "-n", name, "--wait=false", check=False)
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


def render(
    kube: KubeCluster,
    charts: Path,
    chart: str,
    *args: str,
    release: str = RELEASE,
    namespace: str = "default",
    monitoring: bool = False,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    cmd = ["template", release, str(charts / chart), "--namespace", namespace, "--kube-version", KUBE_VERSION]
    if monitoring:
        cmd += ["--api-versions", MONITORING_API]
    return kube.helm(*cmd, *args, check=check)


def dry_run(kube: KubeCluster, manifest: str, namespace: str) -> subprocess.CompletedProcess[str]:
    """Server-side apply in dry-run mode: the API server validates and admits, stores nothing."""
    return kube.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "--force-conflicts",
        f"--field-manager={FIELD_MANAGER}",
        "-n",
        namespace,
        "-f",
        "-",
        input=manifest,
    )


def get_json(kube: KubeCluster, *args: str) -> Any:
    return json.loads(kube.kubectl("get", *args, "-o", "json").stdout)


# ------------------------------------------------------------------------ what a render holds


def check_rendered(objects: list[dict[str, Any]], release: str, *, whole_app: bool = True) -> None:
    """What every render of a Pinstack chart must satisfy, whatever the values. `whole_app`: the
    render holds every Service that the *_URL variables point at (the umbrella chart)."""
    seen = set()
    for obj in objects:
        key = (obj["kind"], obj["metadata"]["name"])
        assert key not in seen, f"{key} rendered twice"
        seen.add(key)
        meta = labels(obj)
        assert meta.get("app.kubernetes.io/instance") == release, key
        assert meta.get("app.kubernetes.io/part-of") == "pinstack", key
        assert meta.get("app.kubernetes.io/managed-by") == "Helm", key
        assert len(obj["metadata"]["name"]) <= 63, key

    services = {o["metadata"]["name"] for o in objects if o["kind"] == "Service"}
    for obj in objects:
        spec = pod_spec(obj)
        if spec is None:
            continue
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] == 10001, where
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
        component = labels(obj).get("app.kubernetes.io/component")
        if component != "operator":
            assert spec["automountServiceAccountToken"] is False, where
        for c in containers(spec):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001, where
            assert c["resources"]["requests"] and c["resources"]["limits"], f"{where} {c['name']}: resources"
            names = [e["name"] for e in c.get("env", [])]
            assert len(names) == len(set(names)), f"{where} {c['name']}: duplicate env {names}"
            for name, value in env_of(c).items():
                if whole_app and name.endswith("_URL") and value.startswith("http"):
                    host = urlparse(value).hostname
                    assert host in services, f"{where}: {name}={value} points at no rendered Service"
        if obj["kind"] == "Deployment" and component in ("api", "worker"):
            assert spec["topologySpreadConstraints"], where
            assert spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"], where
            service = labels(obj)["app.kubernetes.io/name"]
            main = spec["containers"][0]
            assert {"secretRef": {"name": f"{release}-{service}-connection"}} in main["envFrom"], where
        if component == "api":
            api = spec["containers"][0]
            assert api["ports"][0]["containerPort"] == 8080, where
            assert api["readinessProbe"]["httpGet"]["path"] == "/readyz", where
            for probe in ("livenessProbe", "startupProbe"):
                if probe in api:
                    assert api[probe]["httpGet"]["path"] == "/healthz", f"{where} {probe}"


def expected_monitors(values_path: Path) -> set[tuple[str, str]]:
    """ServiceMonitors (API) and PodMonitors (worker) a value set asks for."""
    values = load(values_path) or {}
    wanted = set()
    for svc in SERVICE_CHARTS:
        defaults = load(CHARTS / svc / "values.yaml")
        own = values.get(svc) or {}
        if not own.get("enabled", defaults["enabled"]):
            continue
        if not (own.get("serviceMonitor") or {}).get("enabled", defaults["serviceMonitor"]["enabled"]):
            continue
        wanted.add(("ServiceMonitor", f"{RELEASE}-{svc}"))
        if (own.get("worker") or {}).get("enabled", defaults["worker"]["enabled"]):
            wanted.add(("PodMonitor", f"{RELEASE}-{svc}-worker"))
    return wanted


# ------------------------------------------------------------------------------- lint, render

cluster = pytest.mark.cluster


@cluster
@pytest.mark.parametrize("chart", APP_CHARTS)
def test_helm_lint_strict(kube: KubeCluster, charts: Path, chart: str) -> None:
    kube.helm("lint", "--strict", "--with-subcharts", str(charts / chart))


@cluster
@pytest.mark.parametrize("chart", LIBRARY_CHARTS)
def test_helm_lint_strict_library(kube: KubeCluster, charts: Path, chart: str) -> None:
    """A library renders nothing alone: lint it, then lint every chart that includes it."""
    kube.helm("lint", "--strict", str(charts / chart))
    dependents = [c for c in APP_CHARTS if any(d["name"] == chart for d in chart_meta(c).get("dependencies", []))]
    assert dependents
    for dependent in dependents:
        kube.helm("lint", "--strict", str(charts / dependent))


@cluster
@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda p: p.stem)
def test_helm_lint_umbrella_value_sets(kube: KubeCluster, charts: Path, values: Path) -> None:
    kube.helm("lint", "--strict", str(charts / UMBRELLA), "-f", str(values))


@cluster
@pytest.mark.parametrize("monitoring", [False, True], ids=["no-prometheus-operator", "prometheus-operator"])
@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda p: p.stem)
def test_umbrella_renders_and_the_api_server_accepts_it(
    kube: KubeCluster, charts: Path, crds: None, namespace: str, values: Path, monitoring: bool
) -> None:
    text = render(kube, charts, UMBRELLA, "-f", str(values), namespace=namespace, monitoring=monitoring).stdout
    objects = docs(text)
    check_rendered(objects, RELEASE)

    monitors = {(o["kind"], o["metadata"]["name"]) for o in objects if o["kind"] in ("ServiceMonitor", "PodMonitor")}
    assert monitors == (expected_monitors(values) if monitoring else set())

    done = dry_run(kube, text, namespace)
    assert "would violate PodSecurity" not in done.stderr, done.stderr


@cluster
@pytest.mark.parametrize("chart", SERVICE_CHARTS)
def test_service_chart_alone(kube: KubeCluster, charts: Path, crds: None, namespace: str, chart: str) -> None:
    values = load(CHARTS / chart / "values.yaml")
    text = render(kube, charts, chart, namespace=namespace, monitoring=True).stdout
    objects = docs(text)
    check_rendered(objects, RELEASE, whole_app=False)
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    base = f"{RELEASE}-{chart}"
    expected = {
        ("ServiceAccount", base),
        ("Deployment", base),
        ("Service", base),
        ("PodDisruptionBudget", base),
        ("ServiceMonitor", base),
    }
    if values["worker"]["enabled"]:
        expected |= {("Deployment", f"{base}-worker"), ("PodMonitor", f"{base}-worker")}
    if values["migrations"]["enabled"]:
        expected.add(("Job", f"{base}-migrations"))
    assert kinds == expected

    service = next(o for o in objects if o["kind"] == "Service")
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    api = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == base)
    env = env_of(api["spec"]["template"]["spec"]["containers"][0])
    assert env["ENVIRONMENT"] == "production" and env["LOG_LEVEL"] == "INFO"
    for upstream in values["upstreams"]:
        assert env[f"{upstream.upper()}_URL"] == f"http://{RELEASE}-{upstream}:80"
    assert ("JWKS_URL" in env) == values["jwks"]
    if values["worker"]["enabled"]:
        worker = next(o for o in objects if o["metadata"]["name"] == f"{base}-worker" and o["kind"] == "Deployment")
        container = worker["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["python", "-m", f"pinstack_{chart}.worker"]
        assert env_of(container)["WORKER_METRICS_PORT"] == "9090"
        # the kubelet probes the pod's IP, in every environment (dev-values: development)
        assert env_of(container)["WORKER_METRICS_HOST"] == "0.0.0.0"

    done = dry_run(kube, text, namespace)
    assert "would violate PodSecurity" not in done.stderr, done.stderr


@cluster
def test_defaults_probe_every_api_and_spread_replicas(kube: KubeCluster, charts: Path) -> None:
    objects = docs(render(kube, charts, UMBRELLA).stdout)
    apis = [o for o in objects if o["kind"] == "Deployment" and labels(o)["app.kubernetes.io/component"] == "api"]
    assert {labels(o)["app.kubernetes.io/name"] for o in apis} == set(SERVICE_CHARTS)
    for deployment in apis:
        spec = deployment["spec"]
        assert spec["replicas"] == 2
        assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        api = spec["template"]["spec"]["containers"][0]
        assert api["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        keys = {c["topologyKey"] for c in spec["template"]["spec"]["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


@cluster
def test_migrations_run_as_hooks_or_in_init_containers(kube: KubeCluster, charts: Path) -> None:
    migrate = ["python", "-m", "pinstack_kit.migrate", "/app/migrations"]
    with_db = [s for s in SERVICE_CHARTS if load(CHARTS / s / "values.yaml")["migrations"]["enabled"]]

    hooks = docs(render(kube, charts, UMBRELLA).stdout)
    jobs = {o["metadata"]["name"]: o for o in hooks if o["kind"] == "Job"}
    assert set(jobs) == {f"{RELEASE}-{s}-migrations" for s in with_db}
    for job in jobs.values():
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
        spec = job["spec"]["template"]["spec"]
        # Hooks run before the release's ServiceAccount exists: the Job must not name it.
        assert "serviceAccountName" not in spec
        assert spec["containers"][0]["command"] == migrate
    assert all("initContainers" not in o["spec"]["template"]["spec"] for o in hooks if o["kind"] == "Deployment")

    inits = docs(render(kube, charts, UMBRELLA, "--set", "global.migrations.mode=initContainer").stdout)
    assert not [o for o in inits if o["kind"] == "Job"]
    for deployment in (o for o in inits if o["kind"] == "Deployment"):
        service = labels(deployment)["app.kubernetes.io/name"]
        init = deployment["spec"]["template"]["spec"].get("initContainers", [])
        assert [c["command"] for c in init] == ([migrate] if service in with_db else [])


@cluster
@pytest.mark.parametrize(
    ("chart", "bad_value"),
    [
        ("users", "replicaCont=2"),
        ("gateway", "service.type=Ingress"),
        ("posts", "migrations.mode=sometimes"),
        (UMBRELLA, "users.config.logLevel=verbose"),
        (UMBRELLA, "environment.spec.deletionPolicy=Destroy"),
        (UMBRELLA, "billing.enabled=true"),
        ("pinstack-operator", "watch.allNamespaces=false"),
        ("pinstack-crds", "keep=maybe"),
    ],
)
def test_values_schema_rejects_bad_values(kube: KubeCluster, charts: Path, chart: str, bad_value: str) -> None:
    done = render(kube, charts, chart, "--set", bad_value, check=False)
    assert done.returncode != 0
    assert "schema" in done.stderr, done.stderr


@cluster
def test_umbrella_environment_lists_the_enabled_services(kube: KubeCluster, charts: Path) -> None:
    objects = docs(
        render(kube, charts, UMBRELLA, "--set", "environment.create=true", "--set", "posts.enabled=false").stdout
    )
    (environment,) = (o for o in objects if o["kind"] == "PinstackEnvironment")
    assert environment["metadata"]["name"] == RELEASE
    in_umbrella_order = [d["name"] for d in chart_meta(UMBRELLA)["dependencies"] if d.get("condition")]
    assert environment["spec"]["services"] == [s for s in in_umbrella_order if s != "posts"]
    assert not any(o["kind"] == "Deployment" and "posts" in o["metadata"]["name"] for o in objects)


# ------------------------------------------------------------------------------ the operator


# (verb, API group, resource, subresource) the operator needs, cluster-wide.
OPERATOR_PERMISSIONS = [
    ("watch", "pinstack.io", "pinstackenvironments", ""),
    ("patch", "pinstack.io", "pinstackenvironments", ""),
    ("patch", "pinstack.io", "pinstackenvironments", "status"),
    ("update", "pinstack.io", "pinstackenvironments", "finalizers"),
    ("list", "apiextensions.k8s.io", "customresourcedefinitions", ""),
    ("watch", "", "namespaces", ""),
    ("patch", "kopf.dev", "clusterkopfpeerings", ""),
    ("patch", "kopf.dev", "kopfpeerings", ""),
    ("create", "", "events", ""),
    ("create", "events.k8s.io", "events", ""),
    ("create", "", "secrets", ""),
    ("delete", "", "configmaps", ""),
    ("create", "", "services", ""),
    ("update", "apps", "statefulsets", ""),
    ("create", "monitoring.coreos.com", "prometheusrules", ""),
    ("update", "coordination.k8s.io", "leases", ""),
]
# ... and what it must not be able to do.
OPERATOR_FORBIDDEN = [
    ("create", "", "pods", ""),
    ("create", "apps", "deployments", ""),
    ("delete", "", "namespaces", ""),
    ("create", "rbac.authorization.k8s.io", "clusterroles", ""),
    ("update", "pinstack.io", "pinstackenvironments", "scale"),
]


def allowed(kube: KubeCluster, account: str, verb: str, group: str, resource: str, subresource: str) -> bool:
    """A SubjectAccessReview (kubectl auth can-i cannot name the group of a resource whose CRD,
    such as Kopf's peerings, is not installed)."""
    namespace = account.split(":")[2]
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": account,
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
            "resourceAttributes": {"verb": verb, "group": group, "resource": resource, "subresource": subresource},
        },
    }
    done = kube.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(review))
    return bool(json.loads(done.stdout)["status"].get("allowed"))


@cluster
def test_operator_chart_installs_with_the_rbac_it_needs(
    kube: KubeCluster, charts: Path, crds: None, namespace: str
) -> None:
    release = f"op-{namespace}"
    objects = docs(
        render(kube, charts, "pinstack-operator", release=release, namespace=namespace, monitoring=True).stdout
    )
    check_rendered(objects, release)
    (deployment,) = (o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    operator = pod["containers"][0]
    assert operator["command"] == ["python", "-m", "pinstack_operator"]
    assert "--liveness=http://0.0.0.0:8080/healthz" in operator["args"]
    assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {p["name"]: p["containerPort"] for p in operator["ports"]} == {"health": 8080, "metrics": 9090}
    assert {o["kind"] for o in objects} >= {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Service",
        "ServiceMonitor",
    }

    kube.helm("install", release, str(charts / "pinstack-operator"), "-n", namespace)
    try:
        account = f"system:serviceaccount:{namespace}:{release}-pinstack-operator"
        for verb, group, resource, subresource in OPERATOR_PERMISSIONS:
            assert allowed(kube, account, verb, group, resource, subresource), (verb, group, resource, subresource)
        for verb, group, resource, subresource in OPERATOR_FORBIDDEN:
            assert not allowed(kube, account, verb, group, resource, subresource), (verb, group, resource, subresource)
    finally:
        kube.helm("uninstall", release, "-n", namespace)
    assert kube.kubectl("get", "clusterrole", f"{release}-pinstack-operator", check=False).returncode != 0


# -------------------------------------------------------------------- helm install lifecycle


@cluster
def test_umbrella_install_upgrade_uninstall(kube: KubeCluster, charts: Path, crds: None, namespace: str) -> None:
    chart = str(charts / UMBRELLA)
    selector = f"app.kubernetes.io/instance={RELEASE}"

    def deployments() -> dict[str, int]:
        items = get_json(kube, "deployments", "-n", namespace, "-l", selector)["items"]
        return {d["metadata"]["name"]: d["spec"]["replicas"] for d in items}

    kube.helm("install", RELEASE, chart, "-n", namespace, "-f", str(INSTALLABLE_VALUES))
    with_worker = [s for s in SERVICE_CHARTS if load(CHARTS / s / "values.yaml")["worker"]["enabled"]]
    assert set(deployments()) == {f"{RELEASE}-{s}" for s in SERVICE_CHARTS} | {
        f"{RELEASE}-{s}-worker" for s in with_worker
    }
    environment = get_json(kube, "pse", RELEASE, "-n", namespace)
    assert sorted(environment["spec"]["services"]) == sorted(SERVICE_CHARTS)
    assert environment["spec"]["deletionPolicy"] == "Delete"
    assert get_json(kube, "ingress", f"{RELEASE}-gateway", "-n", namespace)["spec"]["ingressClassName"] == "nginx"

    kube.helm(
        "upgrade",
        RELEASE,
        chart,
        "-n",
        namespace,
        "-f",
        str(INSTALLABLE_VALUES),
        "--set",
        "users.replicaCount=3",
        "--set",
        "posts.enabled=false",
        "--set",
        "gateway.ingress.enabled=false",
    )
    after = deployments()
    assert after[f"{RELEASE}-users"] == 3
    assert not [name for name in after if name.startswith(f"{RELEASE}-posts")]
    assert "posts" not in get_json(kube, "pse", RELEASE, "-n", namespace)["spec"]["services"]
    assert kube.kubectl("get", "ingress", f"{RELEASE}-gateway", "-n", namespace, check=False).returncode != 0
    status = json.loads(kube.helm("status", RELEASE, "-n", namespace, "-o", "json").stdout)
    assert status["version"] == 2 and status["info"]["status"] == "deployed"

    kube.helm("uninstall", RELEASE, "-n", namespace)
    assert deployments() == {}
    assert get_json(kube, "services", "-n", namespace, "-l", selector)["items"] == []
    assert kube.kubectl("get", "pse", RELEASE, "-n", namespace, check=False).returncode != 0
    assert json.loads(kube.helm("list", "-n", namespace, "-o", "json").stdout) == []


# ----------------------------------------------------------------------- manifests/ and CRD


@cluster
def test_manifests_are_accepted_by_the_api_server(kube: KubeCluster, crds: None, namespace: str) -> None:
    operator = (MANIFESTS / "operator" / "pinstack-operator.yaml").read_text()
    objects = docs(operator)
    assert objects[0]["kind"] == "Namespace"
    assert {o["kind"] for o in objects} >= {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
    }
    # A dry run creates nothing, so the namespace the operator's objects live in must exist.
    ns = next(o for o in objects if o["kind"] == "Namespace")
    kube.kubectl("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", "-", input=yaml.safe_dump(ns))
    done = dry_run(kube, operator, ns["metadata"]["name"])
    assert "would violate PodSecurity" not in done.stderr, done.stderr
    for path in sorted((MANIFESTS / "crd").glob("*.yaml")):
        dry_run(kube, path.read_text(), namespace)
    dry_run(kube, SAMPLE.read_text(), namespace)


@cluster
def test_sample_environment_is_accepted_with_defaults(kube: KubeCluster, crds: None, namespace: str) -> None:
    kube.kubectl("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-n", namespace, "-f", str(SAMPLE))
    spec = get_json(kube, "pse", "pinstack", "-n", namespace)["spec"]
    assert spec["postgres"]["databasePrefix"] == "pinstack_"
    assert spec["postgres"]["adminSecretRef"] == {
        "name": "pinstack-postgres-admin",
        "key": "password",
        "usernameKey": "username",
    }
    assert spec["redis"]["keyPrefix"] == "" and spec["kafka"]["topicPrefix"] == ""
    assert spec["deletionPolicy"] == "Retain"

    header = kube.kubectl("get", "pinstackenvironments", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "READY", "PHASE", "AGE"]
    wide = kube.kubectl("get", "pse", "-n", namespace, "-o", "wide").stdout.splitlines()[0].split()
    assert wide == ["NAME", "READY", "PHASE", "MODE", "MESSAGE", "AGE"]


@cluster
def test_managed_sample_keeps_its_storage_and_leaves_the_images_to_the_operator(
    kube: KubeCluster, crds: None, namespace: str
) -> None:
    kube.kubectl(
        "apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-n", namespace, "-f", str(MANAGED_SAMPLE)
    )
    spec = get_json(kube, "pse", "pinstack", "-n", namespace)["spec"]
    assert spec["mode"] == "Managed" and spec["managed"]["storage"] == "1Gi"
    # no image default in the CRD: the operator's settings (its chart's managedImages) choose them,
    # so an upgrade of the operator moves every environment that did not pin its own
    assert not spec["managed"].get("images"), spec["managed"]
    done = patch(kube, namespace, {"spec": {"managed": {"storage": "5Gi"}}})
    assert done.returncode != 0 and "spec.managed.storage is immutable" in done.stderr, done.stderr
    done = patch(kube, namespace, {"spec": {"mode": "External"}})
    assert done.returncode != 0 and "spec.mode is immutable" in done.stderr, done.stderr


@cluster
@pytest.mark.parametrize("path", INVALID_SAMPLES, ids=lambda p: p.stem)
def test_invalid_environment_is_rejected(kube: KubeCluster, crds: None, namespace: str, path: Path) -> None:
    done = kube.kubectl("apply", "--server-side", "--dry-run=server", "-n", namespace, "-f", str(path), check=False)
    assert done.returncode != 0
    assert expected_error(path) in done.stderr, done.stderr


def patch(
    kube: KubeCluster, namespace: str, body: Any, *, kind: str = "merge", status: bool = False
) -> subprocess.CompletedProcess[str]:
    args = ["patch", "pse", "pinstack", "-n", namespace, f"--type={kind}", "-p", json.dumps(body)]
    if status:
        args.append("--subresource=status")
    return kube.kubectl(*args, check=False)


@cluster
def test_topic_partitions_never_decrease(kube: KubeCluster, crds: None, namespace: str) -> None:
    kube.kubectl("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-n", namespace, "-f", str(SAMPLE))

    decrease = "partitions cannot decrease (Kafka cannot remove partitions from a topic)"
    done = patch(kube, namespace, {"spec": {"kafka": {"topicDefaults": {"partitions": 3}}}})
    assert done.returncode != 0
    assert f"spec.kafka.topicDefaults.partitions: Invalid value: 3: {decrease}" in done.stderr, done.stderr

    done = patch(
        kube, namespace, [{"op": "replace", "path": "/spec/kafka/topics/0/partitions", "value": 4}], kind="json"
    )
    assert done.returncode != 0
    assert f"spec.kafka.topics[0].partitions: Invalid value: 4: {decrease}" in done.stderr, done.stderr

    done = patch(kube, namespace, [{"op": "remove", "path": "/spec/kafka/topics/0/partitions"}], kind="json")
    assert done.returncode != 0
    assert "partitions cannot be removed from a topic once set" in done.stderr

    assert patch(kube, namespace, {"spec": {"kafka": {"topicDefaults": {"partitions": 8}}}}).returncode == 0
    grow = [{"op": "replace", "path": "/spec/kafka/topics/0/partitions", "value": 24}]
    assert patch(kube, namespace, grow, kind="json").returncode == 0
    kafka = get_json(kube, "pse", "pinstack", "-n", namespace)["spec"]["kafka"]
    assert kafka["topicDefaults"]["partitions"] == 8 and kafka["topics"][0]["partitions"] == 24


@cluster
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"spec": {"kafka": {"topicPrefix": "other."}}}, "spec.kafka.topicPrefix is immutable"),
        ({"spec": {"postgres": {"databasePrefix": "other_"}}}, "spec.postgres.databasePrefix is immutable"),
        ({"spec": {"redis": {"keyPrefix": "other:"}}}, "spec.redis.keyPrefix is immutable"),
        ({"spec": {"mode": "Managed"}}, "spec.mode is immutable"),
        (
            {"spec": {"kafka": {"topics": [{"name": "x", "config": {"retention.ms": "1"}}]}}},
            "set retentionMs and partitions with their own fields",
        ),
    ],
    ids=["topicPrefix", "databasePrefix", "keyPrefix", "mode", "config-retention"],
)
def test_names_are_immutable_and_rules_hold(
    kube: KubeCluster, crds: None, namespace: str, change: dict[str, Any], message: str
) -> None:
    kube.kubectl("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-n", namespace, "-f", str(SAMPLE))
    done = patch(kube, namespace, change)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr


@cluster
def test_status_is_a_subresource_with_conditions(kube: KubeCluster, crds: None, namespace: str) -> None:
    kube.kubectl("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-n", namespace, "-f", str(SAMPLE))
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "Provisioned",
        "message": "every component is ready",
        "lastTransitionTime": "2025-01-01T00:00:00Z",
        "observedGeneration": 1,
    }
    status = {"status": {"phase": "Ready", "observedGeneration": 1, "conditions": [ready]}}
    assert patch(kube, namespace, status, status=True).returncode == 0
    # The main resource ignores status: only the operator, through the subresource, writes it.
    assert patch(kube, namespace, {"status": {"phase": "Failed"}}).returncode == 0
    assert get_json(kube, "pse", "pinstack", "-n", namespace)["status"]["phase"] == "Ready"

    row = kube.kubectl("get", "pse", "pinstack", "-n", namespace, "--no-headers").stdout.split()
    assert row[:3] == ["pinstack", "True", "Ready"]

    bad = {"status": {"conditions": [{**ready, "status": "Maybe"}]}}
    done = patch(kube, namespace, bad, status=True)
    assert done.returncode != 0
    assert 'Unsupported value: "Maybe"' in done.stderr


# --------------------------------------------------------------- one source, generated files


@cluster
def test_generated_files_are_up_to_date(helm_env: dict[str, str]) -> None:
    """manifests/crd/, manifests/operator/ and the service charts' values.schema.json are what
    scripts/render-manifests.sh makes of their sources."""
    done = subprocess.run(
        [str(REPO / "scripts" / "render-manifests.sh"), "--check"],
        env=helm_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


@cluster
def test_crd_chart_renders_its_one_source(kube: KubeCluster, charts: Path) -> None:
    rendered = {d["metadata"]["name"]: d for d in docs(render(kube, charts, "pinstack-crds").stdout)}
    sources = {d["metadata"]["name"]: d for path in CRD_SOURCES for d in docs(path.read_text())}
    assert rendered.keys() == sources.keys()
    for name, source in sources.items():
        assert rendered[name]["spec"] == source["spec"]
        assert rendered[name]["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


@pytest.mark.unit
def test_crd_exists_once() -> None:
    """The chart's templates read the CRD files; manifests/crd/ holds byte-identical copies."""
    assert CRD_SOURCES
    assert sorted(p.name for p in (MANIFESTS / "crd").glob("*.yaml")) == [p.name for p in CRD_SOURCES]
    for source in CRD_SOURCES:
        assert (MANIFESTS / "crd" / source.name).read_bytes() == source.read_bytes()
    for template in (CHARTS / "pinstack-crds" / "templates").iterdir():
        assert "openAPIV3Schema" not in template.read_text(), f"{template} holds a second copy of a CRD"


@pytest.mark.unit
def test_service_charts_share_one_values_schema() -> None:
    source = (CHARTS / "common" / "service.values.schema.json").read_bytes()
    assert SERVICE_CHARTS
    for chart in SERVICE_CHARTS:
        assert (CHARTS / chart / "values.schema.json").read_bytes() == source, (
            f"{chart}: run scripts/render-manifests.sh"
        )


@pytest.mark.unit
def test_service_lists_are_the_registrys() -> None:
    """The lists render-manifests.sh writes from the service registry (scripts/registry.py) are
    current: the CRD's, the values schemas', each chart's upstreams, the samples'."""
    done = subprocess.run(
        ["python3", str(REPO / "scripts" / "registry.py"), "check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"run scripts/render-manifests.sh:\n{done.stderr}"
    (crd,) = docs(CRD_SOURCES[0].read_text())
    services = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["services"]
    assert services["items"]["enum"] == list(NAMES) and services["maxItems"] == len(NAMES)
    for chart in SERVICE_CHARTS:
        assert load(CHARTS / chart / "values.yaml")["upstreams"] == list(BY_NAME[chart].calls), chart


# CI value sets that tune each service (replicas, probes, resources): a new service must be named.
TUNED_FOR_EVERY_SERVICE = {f"{name}-values.yaml" for name in ("debug", "dev", "minimal", "node", "production-like")}


@pytest.mark.unit
def test_hand_written_service_lists_follow_the_registry() -> None:
    """What stays hand-written YAML (each service's settings differ) lists every service."""
    assert sorted(NAMES) == SERVICE_CHARTS, "one chart per service of the registry (charts/<name>/)"
    deps = [d["name"] for d in chart_meta(UMBRELLA)["dependencies"] if d.get("condition")]
    assert deps == list(NAMES), "charts/pinstack/Chart.yaml: the service charts, in the registry's order"
    # A service the umbrella's values do not name is enabled by its own chart (`enabled: true`).
    values = load(CHARTS / UMBRELLA / "values.yaml")
    assert all(values.get(name, {}).get("enabled", True) is True for name in NAMES)
    for path in VALUE_SETS:
        chosen = load(path) or {}
        listed = set(chosen) & set(NAMES)
        if path.name in TUNED_FOR_EVERY_SERVICE:
            assert listed == set(NAMES), f"{path.name}: set every service, missing {set(NAMES) - listed}"
        else:
            assert all(chosen[name].get("enabled", True) for name in listed), f"{path.name} disables a service"


# ----------------------------------------------------------------------- static conventions


@pytest.mark.unit
@pytest.mark.parametrize("chart", ALL_CHARTS)
def test_chart_conventions(chart: str) -> None:
    meta = chart_meta(chart)
    assert meta["apiVersion"] == "v2"
    assert meta["version"] == "0.1.0" and meta["appVersion"] == "0.1.0"
    assert meta["kubeVersion"] == ">=1.29.0-0"
    schema = json.loads((CHARTS / chart / "values.schema.json").read_text())
    assert schema["type"] == "object"
    values_text = (CHARTS / chart / "values.yaml").read_text()
    assert values_text.lstrip().startswith("#"), f"{chart}/values.yaml: document the values"
    for dep in meta.get("dependencies", []):
        assert dep["repository"] == f"file://../{dep['name']}"


@pytest.mark.unit
def test_umbrella_depends_on_every_service_chart() -> None:
    deps = {d["name"]: d for d in chart_meta(UMBRELLA)["dependencies"]}
    assert set(SERVICE_CHARTS) <= set(deps)
    for svc in SERVICE_CHARTS:
        assert deps[svc]["condition"] == f"{svc}.enabled"
    assert set(load(CHARTS / UMBRELLA / "values.yaml")) >= set(SERVICE_CHARTS)


@pytest.mark.unit
def test_kind_cluster_config() -> None:
    config = load(MANIFESTS / "kind" / "cluster.yaml")
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    (node,) = config["nodes"]
    assert node["labels"]["ingress-ready"] == "true"
    assert {(m["containerPort"], m["hostPort"]) for m in node["extraPortMappings"]} == {(80, 80), (443, 443)}


@pytest.mark.unit
def test_skaffold_config() -> None:
    configs = {c["metadata"]["name"]: c for c in yaml.safe_load_all((REPO / "skaffold.yaml").read_text())}
    assert set(configs) == {"pinstack-crds", "pinstack-operator", "pinstack"}
    for config in configs.values():
        assert config["apiVersion"].startswith("skaffold/v4beta") and config["kind"] == "Config"
    assert configs["pinstack"]["requires"] == [{"configs": ["pinstack-operator"]}]
    assert configs["pinstack-operator"]["requires"] == [{"configs": ["pinstack-crds"]}]

    app = configs["pinstack"]
    artifacts = {a["image"]: a for a in app["build"]["artifacts"]}
    assert set(artifacts) == {f"pinstack/{s}" for s in SERVICE_CHARTS}
    for svc in SERVICE_CHARTS:
        artifact = artifacts[f"pinstack/{svc}"]
        assert artifact["docker"]["dockerfile"] == "services/Dockerfile"
        assert artifact["docker"]["buildArgs"] == {"SERVICE": svc}
        assert (REPO / artifact["context"] / "services" / "Dockerfile").exists()
    (release,) = app["deploy"]["helm"]["releases"]
    assert release["chartPath"] == f"charts/{UMBRELLA}"
    token = {s: "pinstack_" + s for s in SERVICE_CHARTS}
    assert release["setValueTemplates"] == {
        **{f"{s}.image.repository": f"{{{{.IMAGE_REPO_{token[s]}}}}}" for s in SERVICE_CHARTS},
        **{f"{s}.image.tag": f"{{{{.IMAGE_TAG_{token[s]}}}}}" for s in SERVICE_CHARTS},
    }
    for hook in app["deploy"]["helm"]["hooks"]["before"]:
        assert (REPO / hook["host"]["command"][0]).stat().st_mode & 0o111

    profiles = {p["name"]: p for p in app["profiles"]}
    assert set(profiles) == {"dev", "e2e", "debug", "node"}
    # the node of `make cluster`: the same images, each built by images.py as `make images` does
    node = profiles["node"]
    assert node["activation"] == [{"kubeContext": "pinstack"}] and node["build"]["local"]["push"] is False
    node_artifacts = {a["image"]: a["custom"] for a in node["build"]["artifacts"]}
    assert set(node_artifacts) == set(artifacts)
    operator_node = next(p for p in configs["pinstack-operator"]["profiles"] if p["name"] == "node")
    node_artifacts.update({a["image"]: a["custom"] for a in operator_node["build"]["artifacts"]})
    for image, custom in node_artifacts.items():
        assert custom["buildCommand"] == f"python3 scripts/images.py skaffold {image.split('/')[1]}", custom
        for path in custom["dependencies"]["paths"]:
            assert (REPO / path).exists(), path
        # a change to any code the image carries rebuilds it (what scripts/images.py hashes)
        name = image.split("/")[1]
        if name in SERVICE_CHARTS:
            carried = {f"services/{name}", "services/kit", "services/contracts", "services/Dockerfile", "uv.lock"}
            assert carried <= set(custom["dependencies"]["paths"]), (image, custom["dependencies"])
    managed = {op["path"].rsplit(".", 1)[1]: op["value"] for op in operator_node["patches"]}
    assert managed == {s: f"{{{{.IMAGE_FULLY_QUALIFIED_pinstack_{s}}}}}" for s in ("postgres", "redis", "kafka")}
    for profile in profiles.values():
        # Skaffold patches the parsed config, where an empty valuesFiles is absent: set it whole.
        (op,) = profile["patches"]
        assert op["op"] == "add" and op["path"] == "/deploy/helm/releases/0/valuesFiles"
        for path in op["value"]:
            assert (REPO / path).exists(), path

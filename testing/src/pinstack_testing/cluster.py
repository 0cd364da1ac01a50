"""pytest plugin `pinstack-cluster`: the cluster tier's Kubernetes control plane.

A real control plane (etcd + kube-apiserver, no kubelet: pods never run, no garbage collector,
namespaces stay Terminating) from scripts/cluster.py, the same one `make cluster` starts. The
binaries are built once per version by `make cluster-build` and cached in
~/.cache/pinstack/bin/v<k8s>/; this fixture never builds them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pinstack_e2e.node import Kube

CLUSTER_SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "cluster.py"
CLUSTER_NOT_BUILT = 3  # exit code of `cluster.py up --no-build` when the binaries are missing


@dataclass
class KubeCluster(Kube):
    """Connection to the local control plane (no node), with kubectl and helm bound to it."""

    server: str = ""


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

#!/usr/bin/env python3
"""The service registry (services/contracts: pinstack_contracts.services) for the scripts, and the
lists of services it writes into files that cannot import it (YAML and JSON of the charts, the
umbrella's dependencies and values, skaffold's images, the CRD, the samples).

    registry.py write DIR     write each file of GENERATED under DIR (same relative path), its
                              service lists from the registry
    registry.py check         exit 1 and name each file of GENERATED whose lists are stale

scripts/render-manifests.sh writes them into the repository (or compares, with --check). The scripts
run with the system python3, where the workspace's packages are not installed: the registry and
the topic names are standard library only, so they are read from the source tree.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_CONTRACTS = str(REPO / "services" / "contracts" / "src")
if _CONTRACTS not in sys.path:
    sys.path.append(_CONTRACTS)  # after site-packages: an installed copy (the .venv's) wins

from pinstack_contracts.services import BY_NAME, NAMES, SERVICES, Service, start_order  # noqa: E402

__all__ = ["BY_NAME", "GENERATED", "NAMES", "SERVICES", "Service", "render", "start_order"]


def _sub_once(pattern: str, replacement: Callable[[re.Match[str]], str], text: str, where: str) -> str:
    """`re.sub` that must match exactly once: a file whose shape changed fails loudly."""
    found = len(re.findall(pattern, text, flags=re.MULTILINE))
    if found != 1:
        raise SystemExit(f"registry.py: {where}: expected one match of {pattern!r}, found {found}")
    return re.sub(pattern, replacement, text, flags=re.MULTILINE)


def _yaml_list(names: tuple[str, ...]) -> str:
    return f"[{', '.join(names)}]"


def _json_list(names: tuple[str, ...]) -> str:
    return "[" + ", ".join(f'"{n}"' for n in names) + "]"


def _crd(text: str, where: str) -> str:
    """spec.services: `maxItems` and the item `enum` of its block (the lines indented below it)."""

    def block(m: re.Match[str]) -> str:
        body = _sub_once(r"^(\s+maxItems: )\d+$", lambda n: f"{n[1]}{len(NAMES)}", m[0], where)
        return _sub_once(r"^(\s+enum: )\[.*\]$", lambda n: n[1] + _yaml_list(NAMES), body, where)

    return _sub_once(r"^( +)services:\n(?:\1  .*\n)+", block, text, where)


def _sample(text: str, where: str) -> str:
    return _sub_once(r"^(\s+services: )\[.*\]$", lambda m: m[1] + _yaml_list(NAMES), text, where)


def _service_schema(text: str, where: str) -> str:
    return _sub_once(r'("serviceName": \{\s*"enum": )\[[^\]]*\]', lambda m: m[1] + _json_list(NAMES), text, where)


_CHART_PROPERTY = '"{}": {{ "$ref": "#/definitions/serviceChart" }},'


def _umbrella_schema(text: str, where: str) -> str:
    # one property per service chart, then the item enum of environment.spec.services
    line = re.escape(_CHART_PROPERTY.format("NAME")).replace("NAME", "[a-z]+")
    charts = rf"^( +){line}\n(?:\1{line}\n)*"
    text = _sub_once(charts, lambda m: "".join(f"{m[1]}{_CHART_PROPERTY.format(n)}\n" for n in NAMES), text, where)
    items = r'("services": \{[^{}]*"items": \{ "enum": )\[[^\]]*\]'
    return _sub_once(items, lambda m: m[1] + _json_list(NAMES), text, where)


def _upstreams(service: str) -> Callable[[str, str], str]:
    """A service chart's `upstreams`: the services it calls (each becomes <SERVICE>_URL)."""
    calls = BY_NAME[service].calls
    return lambda text, where: _sub_once(r"^(upstreams: )\[.*\]$", lambda m: m[1] + _yaml_list(calls), text, where)


def _run(entry: str) -> tuple[str, Callable[[str], str]]:
    """A regex matching a run of `entry` blocks (NAME stands for a service) and a writer of one."""
    pattern = re.escape(entry).replace("NAME", "[a-z]+")
    return rf"^(?:{pattern})+", lambda name: entry.replace("NAME", name)


def _runs(*entries: str) -> Callable[[str, str], str]:
    """Rewrites each run of per-service blocks as one block per service of the registry, in order."""

    def one(text: str, entry: str, where: str) -> str:
        pattern, block = _run(entry)
        blocks = "".join(block(n) for n in NAMES)
        return _sub_once(pattern, lambda _: blocks, text, where)

    def write(text: str, where: str) -> str:
        for entry in entries:
            text = one(text, entry, where)
        return text

    return write


# The umbrella's dependencies (after the library chart) and skaffold's images: one block each.
_UMBRELLA_DEPENDENCY = (
    "  - name: NAME\n    version: 0.1.0\n    repository: file://../NAME\n    condition: NAME.enabled\n"
)
_SKAFFOLD = _runs(
    "    - image: pinstack/NAME\n      context: .\n      docker:\n        dockerfile: services/Dockerfile\n"
    "        buildArgs:\n          SERVICE: NAME\n",
    '          NAME.image.repository: "{{.IMAGE_REPO_pinstack_NAME}}"\n'
    '          NAME.image.tag: "{{.IMAGE_TAG_pinstack_NAME}}"\n',
    "        - image: pinstack/NAME\n          custom:\n            buildCommand: python3 scripts/images.py skaffold NAME\n"
    "            dependencies: {paths: [services/NAME, services/kit, services/contracts, services/Dockerfile,"
    " uv.lock, pyproject.toml]}\n",
)

# repository path -> how its lists are written
GENERATED: dict[str, Callable[[str, str], str]] = {
    "charts/pinstack-crds/files/pinstack.io_pinstackenvironments.yaml": _crd,
    "charts/common/service.values.schema.json": _service_schema,
    "charts/pinstack/values.schema.json": _umbrella_schema,
    "charts/pinstack/Chart.yaml": _runs(_UMBRELLA_DEPENDENCY),
    "charts/pinstack/values.yaml": _runs("NAME:\n  enabled: true\n"),
    "skaffold.yaml": _SKAFFOLD,
    **{f"charts/{name}/values.yaml": _upstreams(name) for name in NAMES},
    "manifests/samples/environment.yaml": _sample,
    "manifests/samples/environment-local.yaml": _sample,
    "manifests/samples/environment-managed.yaml": _sample,
}


def render(path: str) -> str:
    """The file at `path` (relative to the repository) with its service lists from the registry."""
    if not (REPO / path).is_file():
        raise SystemExit(f"registry.py: {path} is missing (every service of the registry has a chart)")
    return GENERATED[path]((REPO / path).read_text(), path)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "write":
        for path in GENERATED:
            out = Path(argv[1]) / path
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(render(path))
        return 0
    if argv == ["check"]:
        stale = [path for path in GENERATED if render(path) != (REPO / path).read_text()]
        for path in stale:
            print(f"stale: {path} (run scripts/render-manifests.sh)", file=sys.stderr)
        return 1 if stale else 0
    print("usage: registry.py write DIR | registry.py check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

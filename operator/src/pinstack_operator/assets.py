"""The generated dashboards (dashboards/json) and alert rules (dashboards/rules) the operator embeds.

Looked up in PINSTACK_ASSETS_DIR, else in the package (the wheel force-includes them), else in the
repository checkout (development: `kopf run` from the working tree).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import yaml


def _root() -> Path:
    candidates = [
        Path(os.environ["PINSTACK_ASSETS_DIR"]) if os.environ.get("PINSTACK_ASSETS_DIR") else None,
        Path(__file__).resolve().parent / "assets",
        Path(__file__).resolve().parents[3] / "dashboards",
    ]
    for path in candidates:
        if path is not None and (path / "json").is_dir():
            return path
    raise FileNotFoundError("dashboards not found: set PINSTACK_ASSETS_DIR to the dashboards/ folder")


@functools.cache
def dashboards() -> dict[str, str]:
    """Dashboard key (overview, red, ...) -> dashboard JSON text."""
    return {p.stem: p.read_text() for p in sorted((_root() / "json").glob("*.json"))}


@functools.cache
def rules() -> dict[str, Any]:
    """The Prometheus rule groups ({"groups": [...]})."""
    groups: list[Any] = []
    for path in sorted((_root() / "rules").glob("*.yaml")):
        groups.extend(yaml.safe_load(path.read_text())["groups"])
    return {"groups": groups}

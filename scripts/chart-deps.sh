#!/usr/bin/env bash
# Builds the local (file://) dependencies of every chart under a charts folder, innermost first:
# the charts that only need charts/common, then the umbrella (charts/pinstack), which packages
# the service charts together with the common chart they carry. `helm dependency build` follows
# one level only, hence this script (skaffold runs it before deploying the umbrella).
#
#   scripts/chart-deps.sh [charts-dir]      (default: <repo>/charts)
#
# Uses the committed Chart.lock files; the packaged dependencies (charts/*/charts/*.tgz) are
# git-ignored. helm: $HELM, else `helm` on PATH, else the one scripts/cluster.py builds.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHARTS="${1:-$REPO_ROOT/charts}"

helm_bin() {
    if [ -n "${HELM:-}" ]; then echo "$HELM"; return; fi
    if command -v helm >/dev/null 2>&1; then command -v helm; return; fi
    local built
    built="$(python3 "$REPO_ROOT/scripts/cluster.py" env --json 2>/dev/null \
        | python3 -c 'import json,sys; print(json.load(sys.stdin).get("helm", ""))' 2>/dev/null || true)"
    if [ -n "$built" ] && [ -x "$built" ]; then echo "$built"; return; fi
    echo "chart-deps: helm not found (set HELM, or build it: python3 scripts/cluster.py build)" >&2
    exit 1
}
HELM_BIN="$(helm_bin)"

# A chart whose dependencies are all leaves (no dependencies of their own) comes first.
has_nested() {
    local chart="$1" dep
    for dep in $(sed -n 's|^ *repository: *file://\.\./\(.*\)$|\1|p' "$chart/Chart.yaml"); do
        if grep -q '^dependencies:' "$CHARTS/$dep/Chart.yaml"; then return 0; fi
    done
    return 1
}

first=() second=()
for chart in "$CHARTS"/*/; do
    chart="${chart%/}"
    [ -f "$chart/Chart.yaml" ] && grep -q '^dependencies:' "$chart/Chart.yaml" || continue
    if has_nested "$chart"; then second+=("$chart"); else first+=("$chart"); fi
done
for chart in "${first[@]}" "${second[@]}"; do
    "$HELM_BIN" dependency build --skip-refresh "$chart" >/dev/null
done

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

# shellcheck source=scripts/helm-bin.sh
source "$REPO_ROOT/scripts/helm-bin.sh"
HELM_BIN="$(helm_bin chart-deps)"

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

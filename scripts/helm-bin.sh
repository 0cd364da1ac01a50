# Sourced by the chart scripts: `helm_bin NAME` prints the helm to use — $HELM, else `helm` on
# PATH, else the one scripts/cluster.py builds — or says how to get one (as NAME) and exits.
helm_bin() {
    if [ -n "${HELM:-}" ]; then echo "$HELM"; return; fi
    if command -v helm >/dev/null 2>&1; then command -v helm; return; fi
    local built
    built="$(python3 "$REPO_ROOT/scripts/cluster.py" env --json 2>/dev/null \
        | python3 -c 'import json,sys; print(json.load(sys.stdin).get("helm", ""))' 2>/dev/null || true)"
    if [ -n "$built" ] && [ -x "$built" ]; then echo "$built"; return; fi
    echo "$1: helm not found (set HELM, or build it: python3 scripts/cluster.py build)" >&2
    exit 1
}

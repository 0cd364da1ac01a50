#!/usr/bin/env bash
# Pinstack: install whatever the local stack and the tests need; fast when all is present.
#
#   scripts/bootstrap.sh            (or: make bootstrap)
#
# Steps (one line each):
#   1. Debian packages: postgresql 15, redis, prometheus, a Java >= 17, maven, curl, jq, openssl;
#      for the node and the images: containerd, runc, CNI plugins, iptables, conntrack, podman,
#      buildah, debootstrap, gcc and the static libc (the pause image)
#   2. uv (pip install uv when it is not on PATH)
#   3. Python deps: uv sync [--frozen] --all-packages  -> .venv
#   4. Kafka broker jars from Maven Central -> ${XDG_CACHE_HOME:-~/.cache}/pinstack/kafka/<ver>/jars
#
# Environment:
#   KAFKA_VERSION=3.9.1     Kafka broker version (the jars folder is keyed by it)
#   SKIP_UV_SYNC=1          skip step 3 (infra only, e.g. while the workspace is being written)
#   XDG_CACHE_HOME          cache root (default ~/.cache)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KAFKA_VERSION="${KAFKA_VERSION:-3.9.1}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/pinstack"
export DEBIAN_FRONTEND=noninteractive
export UV_PYTHON_DOWNLOADS=never
export PATH="$HOME/.local/bin:$PATH"
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '[bootstrap] %-8s %s\n' "$1" "$2"; }
die() { printf '[bootstrap] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
have() { command -v "$1" >/dev/null 2>&1; }
pkg_installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    have sudo && SUDO="sudo" || true
fi

java_major() {
    # prints the major version of `java` on PATH, or 0
    have java || { echo 0; return; }
    java -version 2>&1 | awk -F'"' '/version/ { split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit }'
}

# ---------------------------------------------------------------- 1. Debian packages
t0=$(now)
missing=()
for p in postgresql postgresql-contrib redis-server prometheus curl jq openssl wrk \
         containerd runc containernetworking-plugins iptables conntrack podman buildah debootstrap gcc libc6-dev; do
    pkg_installed "$p" || missing+=("$p")
done
jm=$(java_major); case "$jm" in (""|*[!0-9]*) jm=0;; esac
[ "$jm" -ge 17 ] || missing+=(openjdk-17-jre-headless)
have mvn || missing+=(maven)
if ! have uv && ! python3 -m pip --version >/dev/null 2>&1; then missing+=(python3-pip); fi

if [ ${#missing[@]} -eq 0 ]; then
    step apt "all present (postgresql redis-server prometheus java mvn curl jq openssl containerd podman ...)"
else
    have apt-get || die "missing packages (${missing[*]}) and no apt-get: install them by hand"
    step apt "installing: ${missing[*]} ..."
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    step apt "installed ${missing[*]} in $(elapsed "$t0")"
fi
[ -x /usr/lib/postgresql/15/bin/initdb ] || die "PostgreSQL 15 server binaries not found in /usr/lib/postgresql/15/bin"

# ---------------------------------------------------------------- 2. uv
if have uv; then
    step uv "present: $(uv --version)"
else
    t0=$(now)
    # a venv/pyenv python takes a plain install; Debian's system python needs --user (PEP 668)
    python3 -m pip install -q uv 2>/dev/null \
        || python3 -m pip install -q --user --break-system-packages uv \
        || die "pip install uv failed"
    hash -r
    have uv || die "uv was installed but is not on PATH (add ~/.local/bin to PATH)"
    step uv "installed $(uv --version) in $(elapsed "$t0")"
fi

# ---------------------------------------------------------------- 3. Python dependencies
if [ "${SKIP_UV_SYNC:-0}" = "1" ]; then
    step python "skipped (SKIP_UV_SYNC=1)"
else
    t0=$(now)
    cd "$REPO_ROOT"
    if [ -f uv.lock ]; then
        sync_args=(--frozen --all-packages)
    else
        sync_args=(--all-packages)
    fi
    if ! out=$(uv sync -q "${sync_args[@]}" 2>&1); then
        printf '%s\n' "$out" >&2
        die "uv sync ${sync_args[*]} failed (see above); fix the workspace, or SKIP_UV_SYNC=1 for infra only"
    fi
    step python "uv sync ${sync_args[*]} ok in $(elapsed "$t0") (.venv: $("$REPO_ROOT/.venv/bin/python" --version 2>&1))"
fi

# ---------------------------------------------------------------- 4. Kafka broker jars
KAFKA_DIR="$CACHE_ROOT/kafka/$KAFKA_VERSION"
JARS="$KAFKA_DIR/jars"
MARKER="$JARS/.pinstack-complete"
POM="$REPO_ROOT/scripts/kafka/pom.xml"
pom_sum=$(sha256sum "$POM" | cut -c1-16)
if [ -f "$MARKER" ] && grep -qx "pom=$pom_sum" "$MARKER"; then
    step kafka "present: $KAFKA_VERSION, $(find "$JARS" -name '*.jar' | wc -l) jars, $(du -sh "$JARS" | cut -f1) in $JARS"
else
    have mvn || die "mvn not found"
    t0=$(now)
    step kafka "downloading Kafka $KAFKA_VERSION broker jars from Maven Central ..."
    mkdir -p "$KAFKA_DIR"
    tmp="$KAFKA_DIR/jars.tmp.$$"
    rm -rf "$tmp"
    # run on a copy of the pom so Maven never writes into the repo
    build="$KAFKA_DIR/build"
    mkdir -p "$build"
    cp "$POM" "$build/pom.xml"
    if ! mvn -B -q -f "$build/pom.xml" \
            -Dmaven.repo.local="$CACHE_ROOT/m2" \
            -Dkafka.version="$KAFKA_VERSION" \
            dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
            >"$KAFKA_DIR/mvn.log" 2>&1; then
        tail -n 30 "$KAFKA_DIR/mvn.log" >&2
        rm -rf "$tmp"
        die "Maven could not fetch Kafka $KAFKA_VERSION (log: $KAFKA_DIR/mvn.log)"
    fi
    ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "kafka_2.13 jar missing after copy-dependencies"
    printf 'version=%s\npom=%s\n' "$KAFKA_VERSION" "$pom_sum" >"$tmp/.pinstack-complete"
    rm -rf "$JARS"
    mv "$tmp" "$JARS"
    step kafka "fetched Kafka $KAFKA_VERSION: $(find "$JARS" -name '*.jar' | wc -l) jars, $(du -sh "$JARS" | cut -f1) in $(elapsed "$t0") -> $JARS"
fi

step done "bootstrap complete"

#!/usr/bin/env bash
# Build every service image with podman on a locally made Debian base (no registry here) and
# check that each one starts and answers /healthz as its non-root user.
#   scripts/image-check.sh [service ...]      (default: every service with a main.py)
# The base is a debootstrap rootfs (Debian bookworm, python3.11) imported once and cached.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/pinstack/rootfs"
BASE=localhost/pinstack-base:bookworm
MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || echo http://deb.debian.org/debian)
PODMAN=(podman --runtime runc)
RUN_FLAGS=(--network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null \
  || { echo "needs podman, runc and debootstrap: apt-get install -y podman runc debootstrap"; exit 2; }

if ! "${PODMAN[@]}" image exists "$BASE"; then
  if [ ! -x "$CACHE/bookworm-py/usr/bin/python3" ]; then
    mkdir -p "$CACHE"
    echo "[image] debootstrap bookworm into $CACHE (about a minute, once)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$CACHE/bookworm-py" "$MIRROR" >/dev/null
  fi
  echo "[image] importing the base as $BASE"
  tar -C "$CACHE/bookworm-py" -c . | "${PODMAN[@]}" import - "$BASE" >/dev/null
fi

services=("$@")
if [ ${#services[@]} -eq 0 ]; then
  for main in services/*/src/pinstack_*/main.py; do
    svc=${main#services/}; services+=("${svc%%/*}")
  done
fi

for svc in "${services[@]}"; do
  t0=$(date +%s)
  "${PODMAN[@]}" build -q "${RUN_FLAGS[@]}" \
    -v /etc/ssl/certs:/etc/ssl/certs:ro -v /etc/pip.conf:/etc/pip.conf:ro \
    --build-arg BASE="$BASE" --build-arg SERVICE="$svc" \
    -t "localhost/pinstack/$svc:dev" -f services/Dockerfile . >/dev/null
  size=$("${PODMAN[@]}" image inspect "localhost/pinstack/$svc:dev" --format '{{.Size}}')
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cid=$("${PODMAN[@]}" run -d "${RUN_FLAGS[@]}" -e PORT="$port" -e ENVIRONMENT=development "localhost/pinstack/$svc:dev")
  ok=no
  for _ in $(seq 1 60); do
    if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then ok=yes; break; fi
    sleep 0.5
  done
  user=$("${PODMAN[@]}" exec "$cid" id -u 2>/dev/null || echo "?")
  "${PODMAN[@]}" rm -f "$cid" >/dev/null
  printf '[image] %-14s built in %3ss, %4s MB, uid %s, /healthz %s\n' "$svc" "$(( $(date +%s) - t0 ))" "$(( size / 1000000 ))" "$user" "$ok"
  [ "$ok" = yes ] || exit 1
done

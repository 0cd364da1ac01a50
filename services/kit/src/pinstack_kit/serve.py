"""The one way to start a service's API: `python -m pinstack_kit.serve <service>`.

It runs `pinstack_<service>.main:create_app` on uvicorn with the settings every caller uses: the
image (services/Dockerfile), the local stack (scripts/stack.py), the tests' servers and the
bench's ceiling. Instead of a service name it also takes any `module:factory` (the bench's
ceiling, the SIGTERM tests' app). The service defaults to $SERVICE and the port to $PORT, as the
image sets them. A service's worker is started one way already: `python -m pinstack_<service>.worker`.

Shutdown policy: on SIGTERM the app drains first (pinstack_kit.app: SHUTDOWN_DRAIN_SECONDS, 5 in
production, 0 elsewhere), then uvicorn finishes the requests in flight for at most
GRACEFUL_SHUTDOWN_SECONDS before the lifespan closes the clients. In a pod that is preStop sleep 5
+ drain 5 + 10 = 20 of the 30 s terminationGracePeriod, which leaves the lifespan 10 s; whatever
stops a server by PID waits longer than GRACEFUL_SHUTDOWN_SECONDS before SIGKILL (stack.py: 15 s).
One process per container is the rule: a pod scales with replicas. `--processes N` (or
$API_PROCESSES) serves N processes on one port for a machine without an orchestrator: uvicorn's
supervisor forks them and the kernel spreads the connections; each has its own caches, pools and
/metrics, so a scrape sees one of them (the local stack uses it for `make bench`'s scale-out).

Every request has a budget of about 5 s (the gateway's UPSTREAM_TIMEOUT_SECONDS, the databases'
statement timeout), so 10 s cuts none that a caller still waits for.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

GRACEFUL_SHUTDOWN_SECONDS = 10
# uvicorn's default, spelled out: the calls between services drop idle connections after 2 s
# (http_client.KEEPALIVE_SECONDS) so that they never reuse one the server is closing.
KEEP_ALIVE_SECONDS = 5
DEFAULT_PORT = 8080
LOCALHOST = "127.0.0.1"


def app_factory(target: str) -> str:
    """The app factory of `target`: a service name, or already a `module:factory`."""
    return target if ":" in target else f"pinstack_{target}.main:create_app"


def options(
    target: str, *, host: str = LOCALHOST, port: int = DEFAULT_PORT, log_level: str | None = None, processes: int = 1
) -> dict[str, Any]:
    """uvicorn.run's keyword arguments for `target` (see app_factory)."""
    return {
        **({"workers": processes} if processes > 1 else {}),
        "app": app_factory(target),
        "factory": True,
        "host": host,
        "port": port,
        # the fast loop and parser, named so a missing one fails at start (the kit depends on
        # them, not on uvicorn[standard], whose file watcher and WebSocket library cost ~0.7 MB
        # of every process each; no route speaks WebSocket)
        "loop": "uvloop",
        "http": "httptools",
        "ws": "none",
        "access_log": False,  # RequestMiddleware logs failures and slow requests as JSON
        "proxy_headers": True,  # trusted only from FORWARDED_ALLOW_IPS (default 127.0.0.1)
        "server_header": False,  # no `server: uvicorn` naming the software
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
        "log_level": log_level,
    }


def command(
    target: str,
    *,
    host: str = LOCALHOST,
    port: int = DEFAULT_PORT,
    log_level: str | None = None,
    python: str = sys.executable,
) -> list[str]:
    """The command line that serves `target`, for callers that start it as a process."""
    args = [python, "-m", "pinstack_kit.serve", target, "--host", host, "--port", str(port)]
    return [*args, "--log-level", log_level] if log_level else args


def parse(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m pinstack_kit.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "target",
        nargs="?",
        default=environ.get("SERVICE") or None,
        help="service name (users, gateway, ...) or module:factory; default $SERVICE",
    )
    parser.add_argument("--host", default=LOCALHOST, help=f"address to listen on (default {LOCALHOST})")
    parser.add_argument(
        "--port", type=int, default=int(environ.get("PORT") or DEFAULT_PORT), help="default $PORT, else 8080"
    )
    parser.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug", "trace"])
    parser.add_argument(
        "--processes",
        type=int,
        default=int(environ.get("API_PROCESSES") or 1),
        help="processes serving the port (default $API_PROCESSES, else 1; a pod scales with replicas)",
    )
    args = parser.parse_args(argv)
    if not args.target:
        parser.error("name the service (or set SERVICE)")
    if args.processes < 1:
        parser.error("--processes must be 1 or more")
    return options(args.target, host=args.host, port=args.port, log_level=args.log_level, processes=args.processes)


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn  # here: the helpers above serve callers that only build a command line

    # uvicorn exits with 3 itself when the app fails to start
    uvicorn.run(**parse(argv))


if __name__ == "__main__":
    main()

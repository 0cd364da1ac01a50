"""`make bench`: load on 127.0.0.1 through the gateway, printing requests/s and p50/p99 per scenario.

Scenarios run one after another against the stack started by `make up`:

    python -m bench.run            # both groups below
    python -m bench.run endpoints  # one route at a time, same duration and connection count each,
                                   # plus the ceiling (a trivial FastAPI endpoint on the same machine):
                                   # req/s, p50/p99, share of the ceiling, CPU per request (every
                                   # process of the stack, and the gateway and the route's service
                                   # apart), the gateway's /metrics size and each process's RSS;
                                   # each step starts once the stack is quiet, GETs after a 2 s
                                   # unrecorded warm-up;
                                   # table + .bench/results.json
    python -m bench.run mixed      # the DeathStarBench-style social-network mix on a seeded ~1k-user
                                   # graph, stepped over connection counts, plus post -> feed latency
                                   # (bench/mixed.py); table + .stack/bench/mixed-results.json
    python -m bench.run mixed-seed # only seed (or check and reuse) the mixed scenario's graph
    python -m bench.run overload   # bursts of registrations and logins far past the password
                                   # hashing's capacity: every answer a success or an immediate
                                   # 503/429 with Retry-After, no account behind a refusal, other
                                   # routes' latency meanwhile (bench/overload.py); table + verdict
                                   # + .bench/overload.json; exit 1 when the promise broke
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from bench import procs
from pinstack_kit import serve

ROOT = Path(__file__).resolve().parents[1]
GATEWAY = os.environ.get("PINSTACK_GATEWAY_URL", "http://127.0.0.1:8080")
API = f"{GATEWAY}/api/v1"
PASSWORD = "bench-password-1"
AUTH_URL = os.environ.get("PINSTACK_AUTH_URL", "http://127.0.0.1:8102")
WARMUP_SECONDS = 2


@dataclass
class Result:
    scenario: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    share_of_ceiling: float | None = None
    cpu_ms_per_request: float | None = None  # every process of the stack (or the ceiling's own)
    cpu_ms_by_component: dict[str, float] | None = None  # per request, components that spent >= 0.01 ms


def lua_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def measured(step: Callable[[], Result], roots: dict[str, int] | None = None) -> Result:
    """`step` with the CPU the stack's processes (or `roots`) spent on it, per request."""
    before = procs.sample(roots)
    result = step()
    spent = procs.cpu_spent(before, procs.sample(roots))
    if result.requests:
        per_request = {name: seconds * 1000 / result.requests for name, seconds in spent.items()}
        result.cpu_ms_per_request = sum(per_request.values())
        result.cpu_ms_by_component = {name: round(ms, 3) for name, ms in per_request.items() if ms >= 0.01}
    return result


def wrk(scenario: str, url: str, script: str, seconds: int, connections: int) -> Result:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", handle.name, url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    os.unlink(handle.name)

    def latency(pct: str) -> float:
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Result(scenario, rps, latency("50"), latency("99"), requests, errors)


@dataclass
class BenchUser:
    id: int
    username: str
    token: str


def seed_users(count: int) -> list[BenchUser]:
    """Registers `count` users with the internal auth service (the gateway rate-limits /auth/* per
    client IP, and its login scenario needs that budget), each with an access token."""
    users = []
    with httpx.Client(timeout=30) as client:
        for _ in range(count):
            name = f"bench{uuid.uuid4().hex[:10]}"
            body = {"username": name, "email": f"{name}@bench.example", "password": PASSWORD, "full_name": "Bench"}
            response = client.post(f"{AUTH_URL}/register", json=body)
            response.raise_for_status()
            token = response.json()["data"]["access_token"]
            found = client.get(f"{API}/users/username/{name}").json()["data"]
            users.append(BenchUser(found["id"], name, token))
    return users


def seed_posts(users: list[BenchUser], per_user: int) -> list[int]:
    ids = []
    with httpx.Client(timeout=30) as client:
        for user in users:
            for n in range(per_user):
                body = {
                    "title": f"Post {n} by {user.username}",
                    "content": "Benchmark content " * 8,
                    "tags": ["bench", f"t{n % 5}"],
                    "media_items": [{"url": "https://picsum.photos/300/300", "type": "image", "position": 1}],
                }
                response = client.post(f"{API}/posts", json=body, headers={"Authorization": f"Bearer {user.token}"})
                response.raise_for_status()
                ids.append(response.json()["data"]["id"])
    return ids


def lua_list(values: list[str]) -> str:
    return "{" + ",".join(f'"{lua_escape(v)}"' for v in values) + "}"


def get_script(paths: list[str], tokens: list[str] | None = None) -> str:
    """Random GETs over `paths`, each with a random bearer token when tokens are given."""
    auth = 'local h = {["Authorization"] = "Bearer " .. tokens[math.random(#tokens)]}' if tokens else "local h = nil"
    return (
        f"local paths = {lua_list(paths)}\n"
        f"local tokens = {lua_list(tokens or [])}\n"
        "request = function()\n"
        f"  {auth}\n"
        '  return wrk.format("GET", paths[math.random(#paths)], h)\n'
        "end\n"
    )


def create_post_script(tokens: list[str]) -> str:
    body = '{"title":"bench post","content":"written under load","tags":["bench","load"]}'
    return (
        f"local tokens = {lua_list(tokens)}\n"
        "request = function()\n"
        '  local h = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. tokens[math.random(#tokens)]}\n'
        f'  return wrk.format("POST", "/api/v1/posts", h, \'{body}\')\n'
        "end\n"
    )


async def follow_unfollow(
    users: list[BenchUser], seconds: int, connections: int, following: frozenset[tuple[int, int]] = frozenset()
) -> Result:
    """Each connection owns distinct (follower, followee) pairs and alternates follow and unfollow
    on them, so no two in-flight requests touch the same pair (wrk cannot guarantee that); pairs
    in `following` (the feed scenario's follows) are left alone."""
    import aiohttp

    pairs = [(a, b) for a in users for b in users if a.id != b.id and (a.id, b.id) not in following]
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def connection(index: int, session: aiohttp.ClientSession) -> None:
        nonlocal errors
        mine = pairs[index::connections]
        step = 0
        while time.perf_counter() < deadline:
            follower, followee = mine[(step // 2) % len(mine)]
            path = "/relation/follow" if step % 2 == 0 else "/relation/unfollow"
            started = time.perf_counter()
            async with session.post(
                f"{API}{path}",
                json={"followee_id": followee.id},
                headers={"Authorization": f"Bearer {follower.token}"},
            ) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - started)
            step += 1

    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(connection(i, session) for i in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return Result(
        "POST /relation/follow + unfollow",
        len(latencies) / elapsed,
        latencies[len(latencies) // 2] * 1000,
        latencies[int(len(latencies) * 0.99)] * 1000,
        len(latencies),
        errors,
    )


def login_script(names: list[str]) -> str:
    quoted = ",".join(f'"{lua_escape(n)}"' for n in names)
    return (
        f"local names = {{{quoted}}}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        "request = function()\n"
        "  local n = names[math.random(#names)]\n"
        f'  return wrk.format("POST", "/api/v1/auth/login", nil, \'{{"login":"\' .. n .. \'","password":"{PASSWORD}"}}\')\n'
        "end\n"
    )


def start_ceiling() -> tuple[subprocess.Popen[bytes], str]:
    port = 18999
    proc = subprocess.Popen(serve.command("bench.ceiling:create_app", port=port, log_level="warning"), cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{url}/ping", timeout=0.5)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the ceiling app did not start")


def add_mixed_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("mixed scenario")
    env = os.environ.get
    group.add_argument("--mixed-users", type=int, default=962, help="users of the seeded graph (socfb-Reed98: 962)")
    group.add_argument("--mixed-follows", type=int, default=18_812, help="follows of the graph (Reed98: 18,812)")
    group.add_argument("--mixed-posts-per-user", type=int, default=3)
    group.add_argument("--mixed-graph-seed", type=int, default=98, help="random seed of the graph")
    group.add_argument(
        "--mixed-connections",
        default=env("BENCH_MIXED_CONNECTIONS", "1,2,4,8,16,32"),
        help="comma-separated connection counts to step through",
    )
    group.add_argument("--mixed-seconds", type=float, default=float(env("BENCH_MIXED_SECONDS", "10")), help="per step")
    group.add_argument("--mixed-warmup", type=float, default=3.0, help="unrecorded load before the steps, seconds")
    group.add_argument("--mixed-settle", type=float, default=2.0, help="pause after each step, seconds")
    group.add_argument("--mixed-target-p99", type=float, default=100.0, help="p99 target, milliseconds")
    group.add_argument(
        "--mixed-refine", type=int, default=2, help="extra steps bisecting the connections around the target"
    )
    group.add_argument("--feed-posts", type=int, default=200, help="posts timed into a follower's feed (0: skip)")
    group.add_argument("--feed-concurrency", type=int, default=4, help="probes in flight")
    group.add_argument("--feed-poll-ms", type=float, default=5.0, help="poll interval of the feed, milliseconds")
    group.add_argument("--feed-timeout", type=float, default=10.0, help="give up on a post after this, seconds")
    group.add_argument(
        "--feed-load-connections",
        type=int,
        default=4,
        help="also time post -> feed under a mixed wrk load with this many connections (0: skip)",
    )
    group.add_argument("--seed-concurrency", type=int, default=16, help="requests in flight while seeding")


def run_mixed(args: argparse.Namespace) -> None:
    from bench import mixed

    mixed.run(
        users=args.mixed_users,
        follows=args.mixed_follows,
        posts_per_user=args.mixed_posts_per_user,
        graph_seed=args.mixed_graph_seed,
        connections=[int(c) for c in args.mixed_connections.split(",") if c.strip()],
        seconds=args.mixed_seconds,
        settle=args.mixed_settle,
        target_ms=args.mixed_target_p99,
        feed_posts=args.feed_posts,
        feed_concurrency=args.feed_concurrency,
        feed_poll_ms=args.feed_poll_ms,
        feed_timeout=args.feed_timeout,
        feed_load_connections=args.feed_load_connections,
        seed_concurrency=args.seed_concurrency,
        refine=args.mixed_refine,
        warmup=args.mixed_warmup,
        seed_only=args.scenario == "mixed-seed",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "scenario",
        nargs="?",
        choices=["all", "endpoints", "mixed", "mixed-seed", "overload"],
        default="all",
        help="endpoints: one route at a time; mixed: the social-network mix (bench/mixed.py); "
        "mixed-seed: only seed (or check) its graph; overload: registrations and logins past "
        "capacity (bench/overload.py); all: endpoints, mixed and overload",
    )
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "10")))
    parser.add_argument("--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", "32")))
    parser.add_argument("--users", type=int, default=50)
    group = parser.add_argument_group("overload scenario")
    group.add_argument(
        "--overload-burst",
        type=int,
        default=int(os.environ.get("BENCH_OVERLOAD_BURST", "64")),
        help="requests sent at once per wave (the hashing takes ~6 at once on 2 cores)",
    )
    group.add_argument("--overload-waves", type=int, default=3, help="bursts per phase, a second apart")
    group.add_argument(
        "--overload-settle",
        type=float,
        default=6.0,
        help="wait before looking for accounts behind failures (> the gateway's timeout)",
    )
    add_mixed_arguments(parser)
    args = parser.parse_args()
    if args.scenario != "overload" and not shutil.which("wrk"):
        print("wrk is not installed: run `make bootstrap` (it installs Debian's wrk)", file=sys.stderr)
        return 2
    try:
        httpx.get(f"{GATEWAY}/readyz", timeout=2).raise_for_status()
    except httpx.HTTPError as exc:
        print(f"the gateway at {GATEWAY} is not ready ({exc}): run `make up` first", file=sys.stderr)
        return 2
    if args.scenario in ("all", "endpoints"):
        run_endpoints(args)
    if args.scenario in ("all", "mixed", "mixed-seed"):
        run_mixed(args)
    if args.scenario in ("all", "overload"):
        from bench import overload

        held = overload.run(
            GATEWAY,
            burst=args.overload_burst,
            waves=args.overload_waves,
            settle=args.overload_settle,
            out=ROOT / ".bench" / "overload.json",
        )
        if not held:
            return 1
    return 0


def follow_each_other(users: list[BenchUser], per_user: int) -> frozenset[tuple[int, int]]:
    """Each user follows the next `per_user` users, so each home feed holds more than a page;
    the (follower, followee) pairs."""
    pairs = set()
    with httpx.Client(timeout=30) as client:
        for index, user in enumerate(users):
            for step in range(1, per_user + 1):
                followee = users[(index + step) % len(users)]
                response = client.post(
                    f"{API}/relation/follow",
                    json={"followee_id": followee.id},
                    headers={"Authorization": f"Bearer {user.token}"},
                )
                response.raise_for_status()
                pairs.add((user.id, followee.id))
    return frozenset(pairs)


# The service behind each scenario (its CPU is reported next to the gateway's).
SERVICE_OF = {
    "GET /users/{id}": "users",
    "GET /users/username/{u}": "users",
    "POST /auth/login": "auth",
    "GET /posts/{id}": "posts",
    "GET /posts/list?limit=20": "posts",
    "GET /feed?limit=20": "feed",
    "POST /posts": "posts",
    "GET /notification/feed": "notifications",
    "POST /relation/follow + unfollow": "relations",
}


def gateway_metrics() -> dict[str, int]:
    text = httpx.get(f"{GATEWAY}/metrics", timeout=10).text
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return {
        "bytes": len(text.encode()),
        "samples": len(lines),
        "http_request_duration_seconds_bucket": sum(
            line.startswith("http_request_duration_seconds_bucket") for line in lines
        ),
    }


def rss_mb() -> dict[str, float]:
    return {name: round(size / 2**20, 1) for name, size in procs.sample().rss.items()}


def run_endpoints(args: argparse.Namespace) -> None:
    rss_before = rss_mb()  # idle on a fresh `make up`; the budget is for the stack at rest
    users = seed_users(args.users)
    posts = seed_posts(users, 4)
    following = follow_each_other(users, 5)
    tokens = [u.token for u in users]
    results = []
    ceiling, ceiling_url = start_ceiling()
    try:
        procs.wait_quiet()
        wrk("ceiling", f"{ceiling_url}/ping", "", WARMUP_SECONDS, args.connections)
        results.append(
            measured(
                lambda: wrk("ceiling: trivial FastAPI GET", f"{ceiling_url}/ping", "", args.seconds, args.connections),
                {"ceiling": ceiling.pid},
            )
        )
    finally:
        ceiling.terminate()
        ceiling.wait(10)
    warn_if_rate_limited()
    scenarios = [
        ("GET /users/{id}", get_script([f"/api/v1/users/{u.id}" for u in users])),
        ("GET /users/username/{u}", get_script([f"/api/v1/users/username/{u.username}" for u in users])),
        ("POST /auth/login", login_script([u.username for u in users])),
        ("GET /posts/{id}", get_script([f"/api/v1/posts/{p}" for p in posts])),
        ("GET /posts/list?limit=20", get_script([f"/api/v1/posts/list?limit=20&offset={o}" for o in (0, 20, 40)])),
        ("GET /feed?limit=20", get_script(["/api/v1/feed?limit=20"], tokens)),
        ("POST /posts", create_post_script(tokens)),
        ("GET /notification/feed", get_script(["/api/v1/notification/feed?page=1&limit=10"], tokens)),
    ]
    for name, script in scenarios:
        procs.wait_quiet()
        if name.startswith("GET"):  # unrecorded: pools opened, caches filled, as in steady use
            wrk(name, GATEWAY, script, WARMUP_SECONDS, args.connections)
        results.append(measured(functools.partial(wrk, name, GATEWAY, script, args.seconds, args.connections)))
    procs.wait_quiet()
    results.append(measured(lambda: asyncio.run(follow_unfollow(users, args.seconds, args.connections, following))))
    ceiling_rps = results[0].requests_per_second
    for r in results[1:]:
        r.share_of_ceiling = r.requests_per_second / ceiling_rps if ceiling_rps else None
    metrics = gateway_metrics()
    rss = rss_mb()

    print(
        f"\n{'scenario':34} {'req/s':>9} {'ceiling':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'errors':>7}"
        f" {'CPU ms/req':>10} {'gateway':>8} {'service':>8}"
    )
    for r in results:
        by = r.cpu_ms_by_component or {}
        service = SERVICE_OF.get(r.scenario, "ceiling")
        print(
            f"{r.scenario:34} {r.requests_per_second:9.1f} {_share(r.share_of_ceiling):>8} {r.p50_ms:8.2f}"
            f" {r.p99_ms:8.2f} {r.requests:9d} {r.errors:7d} {_ms(r.cpu_ms_per_request):>10}"
            f" {_ms(by.get('gateway')):>8} {_ms(by.get(service)):>8}"
        )
    print(
        f"\ngateway /metrics: {metrics['bytes']:,} bytes, {metrics['samples']:,} samples "
        f"({metrics['http_request_duration_seconds_bucket']:,} http_request_duration_seconds_bucket)"
    )
    for when, sizes in (("before the run", rss_before), ("after it", rss)):
        print(f"RSS MB {when}: " + ", ".join(f"{name} {mb}" for name, mb in sorted(sizes.items())))
        print(f"  the Python processes: {sum(mb for name, mb in sizes.items() if name not in INFRA):.0f}")
    out = ROOT / ".bench" / "results.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "seconds": args.seconds,
                "connections": args.connections,
                "results": [asdict(r) for r in results],
                "gateway_metrics": metrics,
                "rss_mb": rss,
                "rss_mb_before": rss_before,
            },
            indent=2,
        )
    )
    print(f"\nwritten to {out.relative_to(ROOT)}")


INFRA = frozenset({"postgres", "redis", "kafka", "prometheus"})


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def warn_if_rate_limited() -> None:
    """Login and the write scenarios measure the limiter, not the service, while limits are on."""
    limit = httpx.post(f"{API}/auth/login", json={}, timeout=10).headers.get("RateLimit-Limit")
    if limit and limit != "0":
        print(
            f"note: the gateway's rate limits are on (RateLimit-Limit: {limit}): 429s count as errors below.\n"
            "      For raw capacity restart it with limits off:\n"
            "      python3 scripts/stack.py stop gateway && "
            "RATE_LIMIT_AUTH_PER_MINUTE=0 RATE_LIMIT_WRITES_PER_MINUTE=0 make up"
        )


if __name__ == "__main__":
    sys.exit(main())

"""The mixed scenario: DeathStarBench-style social network load on the running stack.

1. Seed (or reuse) a ~1,000-user, ~19k-follow power-law graph with a few posts per user
   (bench/social.py), through the internal services.
2. Drive the public gateway with wrk and bench/mixed.lua: 60 % home-feed reads, 30 % user-timeline
   reads (`GET /posts/list?author_id=`), 10 % new posts, stepping the connection count, and report
   the highest rate whose p99 stays within the target.
3. Post → feed latency: new posts through the gateway, timed from the create response until the
   post id is in a follower's home timeline (polling the feed service), alone and optionally
   under a light mixed load.

Results are printed and written to .stack/bench/mixed-results.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.social import FEED_URL, GATEWAY, ROOT, STATE_DIR, GraphSpec, Seed, degree_summary, seed

SCRIPT = Path(__file__).with_name("mixed.lua")
RESULTS_FILE = STATE_DIR / "mixed-results.json"
WRITE_LIMIT_PER_MINUTE = 120  # the gateway's per-user write limit
KINDS = ("feed", "timeline", "post")  # the request kinds of bench/mixed.lua


@dataclass
class Step:
    connections: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    errors: int  # non-2xx answers plus socket errors
    sent: dict[str, int]
    non_2xx_by_kind: dict[str, int]
    statuses: dict[str, int]
    socket_errors: dict[str, int]
    writes_per_user_minute: float
    by_kind: dict[str, dict[str, float]]  # kind -> n, p50_ms, p90_ms, p99_ms, max_ms (measured in Lua)

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 1.0


@dataclass
class FeedLatency:
    label: str
    posts: int
    seen: int
    timeouts: int
    create_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    poll_interval_ms: float
    poll_errors: int
    create_p50_ms: float  # POST /api/v1/posts itself, for reference
    create_p99_ms: float
    background_connections: int = 0
    samples_ms: list[float] = field(default_factory=list, repr=False)


def write_users_file(seeded: Seed) -> str:
    """The tokens for wrk, one "<user id> <access token>" line per user (mode 0600: they are live)."""
    with tempfile.NamedTemporaryFile("w", prefix="pinstack-mixed-", suffix=".txt", delete=False) as handle:
        handle.writelines(f"{user.id} {user.access_token}\n" for user in seeded.users)
    return handle.name


def wrk_command(users_file: str, connections: int, seconds: float, weights: tuple[int, int, int]) -> list[str]:
    return [
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        str(SCRIPT),
        GATEWAY,
        "--",
        users_file,
        *map(str, weights),
    ]


def run_step(users_file: str, users: int, connections: int, seconds: float, weights: tuple[int, int, int]) -> Step:
    cmd = wrk_command(users_file, connections, seconds, weights)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("MIXED_RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout[-500:]}")
    data = json.loads(line.removeprefix("MIXED_RESULT "))
    elapsed = data["duration_us"] / 1e6
    lat = data["latency_us"]
    sockets = data["socket_errors"]
    non_2xx = sum(data["non_2xx_by_kind"].values())
    # Writes go round-robin over every user (from each thread's own offset), so the rate per
    # user is the average, within one write per thread.
    per_user_minute = data["sent"].get("post", 0) / users / elapsed * 60
    return Step(
        connections=connections,
        seconds=round(elapsed, 2),
        requests_per_second=round(data["requests"] / elapsed, 1),
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        max_ms=lat["max"] / 1000,
        requests=data["requests"],
        errors=non_2xx + sum(sockets.values()),
        sent=data["sent"],
        non_2xx_by_kind={k: v for k, v in data["non_2xx_by_kind"].items() if v},
        statuses=data["statuses"],
        socket_errors={k: v for k, v in sockets.items() if v},
        writes_per_user_minute=round(per_user_minute, 1),
        by_kind={
            kind: {"n": v["n"], **{f"{k}_ms": round(v[k] / 1000, 2) for k in ("p50", "p90", "p99", "max")}}
            for kind, v in data["latency_us_by_kind"].items()
        },
    )


def on_target(step: Step, target_ms: float) -> bool:
    return step.p99_ms <= target_ms and step.error_ratio <= 0.01


def refine_between(steps: list[Step], target_ms: float) -> int | None:
    """A connection count halfway between the largest on target and the next one measured above
    it that missed, when there is an untried count between them: the doubling steps are coarse."""
    passed = [s.connections for s in steps if on_target(s, target_ms)]
    if not passed:
        return None
    low = max(passed)
    missed = [s.connections for s in steps if s.connections > low and not on_target(s, target_ms)]
    if not missed:
        return None
    middle = (low + min(missed)) // 2
    return middle if middle not in {s.connections for s in steps} and middle > low else None


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * pct / 100))]


@dataclass(frozen=True)
class Probe:
    posts: int
    concurrency: int  # probes in flight
    poll_interval: float  # seconds
    timeout: float  # seconds per post


async def post_to_feed(
    seeded: Seed, probe: Probe, *, label: str, rng_seed: int, background_connections: int = 0
) -> FeedLatency:
    """Creates `count` posts through the gateway, each by a different author with followers, and
    times from the create response until the post id is in one follower's home timeline, read
    from the feed service with a tight bounded poll."""
    graph = seeded.graph
    rng = random.Random(rng_seed)
    authors = [i for i in range(graph.spec.users) if graph.followers.get(i)]
    rng.shuffle(authors)
    picked = [authors[n % len(authors)] for n in range(probe.posts)]
    jobs = [(author, rng.choice(graph.followers[author])) for author in picked]
    samples: list[float] = []  # create response -> in the follower's timeline
    creates: list[float] = []  # the create request itself, through the gateway
    timeouts = create_errors = poll_errors = 0
    body = {"title": "Latency probe", "content": "Timed from the create response to the follower's feed."}

    async def one(session: aiohttp.ClientSession, author: int, follower: int) -> None:
        nonlocal timeouts, create_errors, poll_errors
        headers = {"Authorization": f"Bearer {seeded.users[author].access_token}"}
        sent = time.perf_counter()
        try:
            async with session.post(f"{GATEWAY}/api/v1/posts", json=body, headers=headers) as response:
                payload = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError):
            status = 0
        if status != 201:
            create_errors += 1
            return
        created = time.perf_counter()
        creates.append((created - sent) * 1000)
        post_id = payload["data"]["id"]
        url = f"{FEED_URL}/users/{seeded.users[follower].id}/feed?limit=20"
        while time.perf_counter() - created < probe.timeout:
            try:
                async with session.get(url) as response:
                    page = await response.json(content_type=None)
                    found = response.status == 200 and any(i["post_id"] == post_id for i in page["data"]["items"])
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
                poll_errors += 1
                found = False
            if found:
                samples.append((time.perf_counter() - created) * 1000)
                return
            await asyncio.sleep(probe.poll_interval)
        timeouts += 1

    queue = list(jobs)

    async def worker(session: aiohttp.ClientSession) -> None:
        while queue:
            author, follower = queue.pop()
            await one(session, author, follower)

    connector = aiohttp.TCPConnector(limit=probe.concurrency * 2)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        await asyncio.gather(*(worker(session) for _ in range(probe.concurrency)))
    samples.sort()
    creates.sort()
    return FeedLatency(
        label=label,
        posts=probe.posts,
        seen=len(samples),
        timeouts=timeouts,
        create_errors=create_errors,
        p50_ms=round(percentile(samples, 50), 1),
        p90_ms=round(percentile(samples, 90), 1),
        p99_ms=round(percentile(samples, 99), 1),
        max_ms=round(samples[-1], 1) if samples else float("nan"),
        poll_interval_ms=probe.poll_interval * 1000,
        poll_errors=poll_errors,
        create_p50_ms=round(percentile(creates, 50), 1),
        create_p99_ms=round(percentile(creates, 99), 1),
        background_connections=background_connections,
        samples_ms=[round(s, 1) for s in samples],
    )


def feed_latency_under_load(
    seeded: Seed, users_file: str, connections: int, probe: Probe, *, label: str, rng_seed: int
) -> FeedLatency:
    """The same probe while wrk runs the mixed load with a few connections in the background."""
    budget = int(probe.timeout * probe.posts / probe.concurrency) + 30  # stopped as soon as the probe ends
    cmd = wrk_command(users_file, connections, budget, (60, 30, 10))
    background = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)  # let the load ramp up
        return asyncio.run(
            post_to_feed(seeded, probe, label=label, rng_seed=rng_seed, background_connections=connections)
        )
    finally:
        background.terminate()
        background.wait(10)


def print_report(
    seeded: Seed, steps: list[Step], best: Step | None, target_ms: float, latencies: list[FeedLatency]
) -> None:
    spec = seeded.graph.spec
    how = "reused" if seeded.reused else "created"
    timings = "".join(f", {k} {v:.1f} s" for k, v in seeded.steps.items())
    print(
        f"\nmixed: {spec.users} users, {len(seeded.graph.edges)} follows, {seeded.posts} seed posts "
        f"({how}; seed phase {seeded.seconds:.1f} s{timings})"
    )
    if seeded.reused and seeded.creation_seconds:
        total = sum(seeded.creation_seconds.values())
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in seeded.creation_seconds.items())
        print(f"creating this graph took {total:.1f} s ({parts})")
    degrees = degree_summary(seeded.graph)
    print(
        f"followers per user: mean {degrees['followers_mean']}, median {degrees['followers_p50']}, "
        f"p99 {degrees['followers_p99']}, max {degrees['followers_max']}"
    )
    print(
        f"\n{'mixed 60/30/10 connections':28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'requests':>9} {'errors':>7}  non-2xx by kind"
    )
    for s in steps:
        kinds = ", ".join(f"{k} {v}" for k, v in s.non_2xx_by_kind.items()) or "-"
        flag = "" if s.p99_ms <= target_ms else " *"
        print(
            f"{s.connections:28d} {s.requests_per_second:8.1f} {s.p50_ms:8.2f} {s.p99_ms:8.2f} {s.max_ms:8.1f} "
            f"{s.requests:9d} {s.errors:7d}  {kinds}{flag}"
        )
    if steps:
        print(f"\n{'by kind: p50 / p99 ms':28} " + " ".join(f"{k:>20}" for k in KINDS))
        for s in steps:
            cells = []
            for kind in KINDS:
                k = s.by_kind.get(kind, {})
                cells.append(f"{k.get('p50_ms', float('nan')):9.1f} / {k.get('p99_ms', float('nan')):8.1f}")
            print(f"{s.connections:28d} " + " ".join(f"{c:>20}" for c in cells))
        print("(feed: GET /feed?limit=20; timeline: GET /posts/list?author_id=&limit=20; post: POST /posts)")
    if best:
        print(
            f"sustained at p99 <= {target_ms:.0f} ms: {best.requests_per_second:.1f} req/s "
            f"({best.connections} connections, p99 {best.p99_ms:.1f} ms)"
        )
    else:
        print(f"sustained at p99 <= {target_ms:.0f} ms: none of the steps")
    print("(* = p99 over the target; a step counts as sustained with p99 on target and <= 1 % errors)")
    if latencies:
        print(
            f"\n{'post -> follower home feed':28} {'seen':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
            f"{'timeouts':>9} {'errors':>7}  create p50/p99 ms"
        )
        for f in latencies:
            print(
                f"{f.label:28} {f.seen:8d} {f.p50_ms:8.1f} {f.p99_ms:8.1f} {f.max_ms:8.1f} "
                f"{f.timeouts:9d} {f.create_errors:7d}  {f.create_p50_ms:.1f}/{f.create_p99_ms:.1f}"
            )
        print(
            f"(from the create response until the id is in a follower's timeline, polled every {latencies[0].poll_interval_ms:g} ms)"
        )


def run(
    *,
    users: int,
    follows: int,
    posts_per_user: int,
    graph_seed: int,
    connections: list[int],
    seconds: float,
    settle: float,
    target_ms: float,
    feed_posts: int,
    feed_concurrency: int,
    feed_poll_ms: float,
    feed_timeout: float,
    feed_load_connections: int,
    seed_concurrency: int,
    refine: int = 2,
    warmup: float = 3.0,
    seed_only: bool = False,
) -> dict[str, Any] | None:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: run `make bootstrap` (it installs Debian's wrk)")
    spec = GraphSpec(users=users, follows=follows, posts_per_user=posts_per_user, seed=graph_seed)
    print(f"mixed: seeding {users} users / {follows} follows / {posts_per_user} posts each (seed {graph_seed})")
    seeded = asyncio.run(seed(spec, seed_concurrency))
    if seed_only:
        timings = ", ".join(f"{k} {v:.1f} s" for k, v in seeded.steps.items()) or "nothing to do"
        print(
            f"seed {'reused' if seeded.reused else 'created'} in {seeded.seconds:.1f} s ({timings}); {spec.state_file}"
        )
        return None
    users_file = write_users_file(seeded)
    steps: list[Step] = []
    latencies: list[FeedLatency] = []
    try:

        def step_at(c: int, note: str = "") -> None:
            step = run_step(users_file, users, c, seconds, (60, 30, 10))
            steps.append(step)
            print(
                f"  {c:3d} connections: {step.requests_per_second:8.1f} req/s  p50 {step.p50_ms:7.2f} ms  "
                f"p99 {step.p99_ms:7.2f} ms  errors {step.errors}{note}"
            )
            if step.writes_per_user_minute > WRITE_LIMIT_PER_MINUTE / 2:
                print(f"  warning: ~{step.writes_per_user_minute} writes/min per user, near the gateway's limit")
            time.sleep(settle)  # let the asynchronous fan-out of this step's posts drain

        if warmup and connections:
            run_step(
                users_file, users, min(2, max(connections)), warmup, (60, 30, 10)
            )  # warm caches and pools, not recorded
            time.sleep(settle)
        for c in connections:
            step_at(c)
        for _ in range(refine):
            between = refine_between(steps, target_ms)
            if between is None:
                break
            step_at(between, "  (refining)")
        steps.sort(key=lambda s: s.connections)
        if feed_posts:
            time.sleep(settle)  # the fan-out of the last steps' posts drains before the idle probe
            probe = Probe(feed_posts, feed_concurrency, feed_poll_ms / 1000, feed_timeout)
            latencies.append(asyncio.run(post_to_feed(seeded, probe, label="idle stack", rng_seed=graph_seed + 101)))
            if feed_load_connections:
                time.sleep(settle * 2)
                latencies.append(
                    feed_latency_under_load(
                        seeded,
                        users_file,
                        feed_load_connections,
                        probe,
                        label=f"under load ({feed_load_connections} conn)",
                        rng_seed=graph_seed + 202,
                    )
                )
    finally:
        os.unlink(users_file)

    ok = [s for s in steps if on_target(s, target_ms)]
    best = max(ok, key=lambda s: s.requests_per_second) if ok else None
    print_report(seeded, steps, best, target_ms, latencies)
    result = {
        "graph": {**spec.__dict__, "edges": len(seeded.graph.edges), **degree_summary(seeded.graph)},
        "seed": {
            "reused": seeded.reused,
            "seconds": round(seeded.seconds, 2),
            "steps": seeded.steps,
            "creation_seconds": seeded.creation_seconds,
        },
        "mix": {"home_feed": 60, "user_timeline": 30, "create_post": 10},
        "target_p99_ms": target_ms,
        "seconds_per_step": seconds,
        "warmup_seconds": warmup,
        "settle_seconds": settle,
        "steps": [asdict(s) for s in steps],
        "sustained": asdict(best) if best else None,
        "post_to_feed": [asdict(f) for f in latencies],
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(result, indent=2))
    print(f"\nwritten to {RESULTS_FILE.relative_to(ROOT)}")
    return result

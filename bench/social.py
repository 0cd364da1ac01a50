"""The social graph of the mixed benchmark: a deterministic power-law-ish follow graph shaped like
DeathStarBench's socfb-Reed98 (962 users, 18.8k edges), seeded straight into the internal users,
auth, relations and posts services, the way a seeding job of a real deployment would (the public
gateway rate-limits registration and writes per user).

The seed is reusable: what it created is recorded in .stack/bench/mixed-seed-*.json, and every step
is idempotent (an existing username logs in, an existing follow answers 409, posts are topped up to
the count asked), so an interrupted seed resumes and a deleted state file is rebuilt from the
usernames. Tokens of a reused seed are renewed with the refresh tokens kept in the state file.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = ROOT / ".stack" / "bench"
PASSWORD = "bench-password-1"
STATE_VERSION = 1
# Access tokens live 15 minutes (auth's default): older ones are renewed before the load starts.
TOKEN_RENEW_AFTER = 5 * 60

USERS_URL = os.environ.get("PINSTACK_USERS_URL", "http://127.0.0.1:8101")
AUTH_URL = os.environ.get("PINSTACK_AUTH_URL", "http://127.0.0.1:8102")
POSTS_URL = os.environ.get("PINSTACK_POSTS_URL", "http://127.0.0.1:8103")
RELATIONS_URL = os.environ.get("PINSTACK_RELATIONS_URL", "http://127.0.0.1:8104")
FEED_URL = os.environ.get("PINSTACK_FEED_URL", "http://127.0.0.1:8106")
GATEWAY = os.environ.get("PINSTACK_GATEWAY_URL", "http://127.0.0.1:8080")

# Expected degree of the user of rank r is proportional to (r + OFFSET) ** -EXPONENT (Chung-Lu).
# With 962 users and 18.8k follows: ~20 followers on average (median 14), a hub with ~150 and
# in- plus out-degree from 8 to ~300 (median 27), close to Reed98's degrees (mean 39, max 313).
EXPONENT = 0.7
OFFSET = 12

T = TypeVar("T")


@dataclass(frozen=True)
class GraphSpec:
    users: int = 962
    follows: int = 18_812
    posts_per_user: int = 3
    seed: int = 98

    @property
    def state_file(self) -> Path:
        return STATE_DIR / f"mixed-seed-{self.seed}-{self.users}u-{self.follows}f-{self.posts_per_user}p.json"

    def username(self, index: int) -> str:
        return f"mix{self.seed}u{index:05d}"


@dataclass
class Graph:
    spec: GraphSpec
    edges: list[tuple[int, int]]  # (follower index, followee index)
    followers: dict[int, list[int]] = field(default_factory=dict)
    followees: dict[int, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for follower, followee in self.edges:
            self.followers.setdefault(followee, []).append(follower)
            self.followees.setdefault(follower, []).append(followee)


def build_graph(spec: GraphSpec) -> Graph:
    """Directed Chung-Lu graph with the same rank weights for followers and followees (Facebook
    friendships are mutual, so who follows many is followed by many), every user following at
    least one other so no home feed is empty. Deterministic for a given spec."""
    rng = random.Random(spec.seed)
    order = list(range(spec.users))
    rng.shuffle(order)  # hubs are spread over the index range
    cumulative = list(itertools.accumulate((rank + OFFSET) ** -EXPONENT for rank in range(spec.users)))
    edges: set[tuple[int, int]] = set()
    attempts = 0
    while len(edges) < spec.follows and attempts < 50 * spec.follows:
        attempts += 1
        follower, followee = rng.choices(order, cum_weights=cumulative, k=2)
        if follower != followee:
            edges.add((follower, followee))
    following = {f for f, _ in edges}
    for user in range(spec.users):
        while user not in following:
            (followee,) = rng.choices(order, cum_weights=cumulative, k=1)
            if followee != user:
                edges.add((user, followee))
                following.add(user)
    return Graph(spec, sorted(edges))


def degree_summary(graph: Graph) -> dict[str, float]:
    counts = sorted(len(graph.followers.get(u, ())) for u in range(graph.spec.users))
    return {
        "followers_min": counts[0],
        "followers_p50": counts[len(counts) // 2],
        "followers_p99": counts[int(len(counts) * 0.99)],
        "followers_max": counts[-1],
        "followers_mean": round(sum(counts) / len(counts), 1),
    }


@dataclass
class SeededUser:
    index: int
    id: int
    username: str
    access_token: str
    refresh_token: str


@dataclass
class Seed:
    graph: Graph
    users: list[SeededUser]  # by index
    posts: int
    seconds: float
    reused: bool
    steps: dict[str, float]  # what this run did, seconds per step
    creation_seconds: dict[str, float]  # what creating the graph took, over every run that added to it

    def user_id(self, index: int) -> int:
        return self.users[index].id


async def bounded(items: Iterable[T], work: Callable[[T], Awaitable[None]], concurrency: int) -> None:
    """Runs `work` over `items` with at most `concurrency` in flight; the first error is raised."""
    queue = list(items)
    position = 0

    async def worker() -> None:
        nonlocal position
        while position < len(queue):
            item = queue[position]
            position += 1
            await work(item)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def _load_state(spec: GraphSpec) -> dict[str, Any]:
    try:
        state = json.loads(spec.state_file.read_text())
    except (OSError, ValueError):
        return {}
    if state.get("version") != STATE_VERSION or state.get("spec") != spec.__dict__:
        return {}
    return state


def _save_state(spec: GraphSpec, state: dict[str, Any]) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = spec.state_file.with_suffix(".tmp")
    tmp.touch(mode=0o600)  # it holds live refresh tokens
    tmp.write_text(json.dumps(state))
    tmp.replace(spec.state_file)  # a crash never leaves a half-written file (refresh tokens rotate)


SHED_RETRIES = 30


async def _call(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request, retried on connection errors (a kept-alive connection the server just closed,
    a service busy with other workers' tests). Every seeding call tolerates a repeat: a second
    register answers 409 and logs in, a second follow 409, a repeated refresh falls back to login,
    and a repeated post only adds one more."""
    shed = 0
    attempt = 0
    while True:
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.TransportError:
            attempt += 1
            if attempt == 5:
                raise
            await asyncio.sleep(0.2 * 2 ** (attempt - 1))
            continue
        # Shed at once (password hashing full, issue 14): nothing was written, so it is retried
        # when the answer says, a bounded number of times.
        retry_after = response.headers.get("Retry-After")
        if response.status_code not in (429, 503) or retry_after is None or shed == SHED_RETRIES:
            return response
        shed += 1
        await asyncio.sleep(min(float(retry_after), 5.0))


def _fail(what: str, response: httpx.Response) -> RuntimeError:
    return RuntimeError(f"{what}: {response.status_code} {response.text[:200]}")


async def _still_there(client: httpx.AsyncClient, spec: GraphSpec, users: dict[str, Any]) -> bool:
    """The recorded users still exist with these ids (`make clean` wipes the stack, not this file)."""
    probes = sorted({0, spec.users // 2, spec.users - 1})
    for index in probes:
        user = users.get(str(index))
        if user is None:
            continue
        response = await _call(client, "GET", f"{USERS_URL}/users/{user['id']}")
        if response.status_code != 200 or response.json()["data"]["username"] != spec.username(index):
            return False
    return True


async def _seed_users(client: httpx.AsyncClient, spec: GraphSpec, state: dict[str, Any], concurrency: int) -> None:
    users: dict[str, Any] = state.setdefault("users", {})

    async def one(index: int) -> None:
        name = spec.username(index)
        body = {"username": name, "email": f"{name}@bench.example", "password": PASSWORD, "full_name": f"Bench {index}"}
        response = await _call(client, "POST", f"{AUTH_URL}/register", json=body)
        if response.status_code == 409:  # created by an earlier seed whose state file is gone
            response = await _call(client, "POST", f"{AUTH_URL}/login", json={"login": name, "password": PASSWORD})
        if response.status_code not in (200, 201):
            raise _fail(f"register {name}", response)
        pair = response.json()["data"]
        users[str(index)] = {"id": _subject(pair["access_token"]), **pair}

    issued = time.time()
    await bounded([i for i in range(spec.users) if str(i) not in users], one, concurrency)
    state["tokens_at"] = issued  # the oldest token of this batch


def _subject(token: str) -> int:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return int(claims.get("user_id") or claims["sub"])


async def _renew_tokens(client: httpx.AsyncClient, spec: GraphSpec, state: dict[str, Any], concurrency: int) -> int:
    """New token pairs by refresh (cheap), or by login when the refresh token is no longer valid
    (for example after the auth service restarted with a new development key). Returns how many
    needed a login."""
    users = state["users"]
    logins = 0

    async def one(index: int) -> None:
        nonlocal logins
        user = users[str(index)]
        response = await _call(client, "POST", f"{AUTH_URL}/refresh", json={"refresh_token": user["refresh_token"]})
        if response.status_code != 200:
            logins += 1
            response = await _call(
                client, "POST", f"{AUTH_URL}/login", json={"login": spec.username(index), "password": PASSWORD}
            )
            if response.status_code != 200:
                raise _fail(f"login {spec.username(index)}", response)
        user.update(response.json()["data"])

    await bounded(range(spec.users), one, concurrency)
    state["tokens_at"] = time.time()
    return logins


async def _token_works(client: httpx.AsyncClient, state: dict[str, Any]) -> bool:
    """A recent token can still be dead: the auth service signs with a new key after a restart
    in development. One authenticated read through the gateway tells."""
    token = state["users"]["0"]["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    response = await _call(client, "GET", f"{GATEWAY}/api/v1/feed", params={"limit": 1}, headers=headers)
    return response.status_code == 200


async def _seed_follows(client: httpx.AsyncClient, graph: Graph, state: dict[str, Any], concurrency: int) -> None:
    ids = {int(k): v["id"] for k, v in state["users"].items()}

    async def one(edge: tuple[int, int]) -> None:
        body = {"follower_id": ids[edge[0]], "followee_id": ids[edge[1]]}
        response = await _call(client, "POST", f"{RELATIONS_URL}/follows", json=body)
        if response.status_code not in (200, 201, 409):
            raise _fail(f"follow {edge}", response)

    await bounded(graph.edges, one, concurrency)


async def _follows_complete(client: httpx.AsyncClient, graph: Graph, state: dict[str, Any]) -> bool:
    """Spot check: a few users follow as many as the graph says."""
    rng = random.Random(graph.spec.seed + 7)
    for index in rng.sample(range(graph.spec.users), 5):
        user_id = state["users"][str(index)]["id"]
        response = await _call(client, "GET", f"{RELATIONS_URL}/users/{user_id}/followees", params={"limit": 1})
        if response.status_code != 200 or response.json()["data"]["total"] != len(graph.followees.get(index, [])):
            return False
    return True


async def _seed_posts(client: httpx.AsyncClient, spec: GraphSpec, state: dict[str, Any], concurrency: int) -> int:
    created = 0

    async def one(index: int) -> None:
        nonlocal created
        author_id = state["users"][str(index)]["id"]
        listed = await _call(client, "GET", f"{POSTS_URL}/posts", params={"author_id": author_id, "limit": 1})
        if listed.status_code != 200:
            raise _fail(f"list posts of {author_id}", listed)
        for n in range(listed.json()["data"]["total"], spec.posts_per_user):
            body = {
                "author_id": author_id,
                "title": f"Seed post {n} of {spec.username(index)}",
                "content": "A seeded post of the mixed benchmark, long enough to look like a real one.",
                "tags": ["bench", f"topic{(index + n) % 16}"],
                "media_items": [{"url": f"https://img.bench.example/{index}/{n}.jpg", "type": "image", "position": 1}],
            }
            response = await _call(client, "POST", f"{POSTS_URL}/posts", json=body)
            if response.status_code != 201:
                raise _fail(f"create post of {author_id}", response)
            created += 1

    await bounded(range(spec.users), one, concurrency)
    return created


async def _wait_for_feeds(client: httpx.AsyncClient, graph: Graph, state: dict[str, Any], timeout: float) -> float:
    """Waits (bounded) until sampled users see a post in their home feed: fan-out is asynchronous."""
    rng = random.Random(graph.spec.seed + 11)
    sample = rng.sample(range(graph.spec.users), min(20, graph.spec.users))
    started = time.perf_counter()
    deadline = started + timeout
    pending = set(sample)
    while pending and time.perf_counter() < deadline:
        for index in list(pending):
            user_id = state["users"][str(index)]["id"]
            response = await _call(client, "GET", f"{FEED_URL}/users/{user_id}/feed", params={"limit": 1})
            if response.status_code == 200 and response.json()["data"]["items"]:
                pending.discard(index)
        if pending:
            await asyncio.sleep(0.25)
    if pending:
        print(f"  warning: {len(pending)} of {len(sample)} sampled home feeds still empty after {timeout:.0f} s")
    return time.perf_counter() - started


async def seed(spec: GraphSpec, concurrency: int = 16, *, log: Callable[[str], None] = print) -> Seed:
    graph = build_graph(spec)
    started = time.perf_counter()
    steps: dict[str, float] = {}
    state = _load_state(spec)
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        if state and not await _still_there(client, spec, state.get("users", {})):
            log("  the recorded seed is not in the stack any more: seeding again")
            state = {}
        was_complete = bool(state.get("complete"))
        state.update(version=STATE_VERSION, spec=spec.__dict__)

        mark = time.perf_counter()
        if len(state.get("users", {})) < spec.users:
            await _seed_users(client, spec, state, concurrency)
            _save_state(spec, state)
            steps["users"] = time.perf_counter() - mark
            log(f"  users: {spec.users} ready in {steps['users']:.1f} s")
        elif time.time() - state.get("tokens_at", 0) > TOKEN_RENEW_AFTER or not await _token_works(client, state):
            logins = await _renew_tokens(client, spec, state, concurrency)
            _save_state(spec, state)
            steps["tokens"] = time.perf_counter() - mark
            log(f"  users: {spec.users} reused, tokens renewed in {steps['tokens']:.1f} s ({logins} by login)")
        else:
            log(f"  users: {spec.users} reused with their tokens of {time.time() - state['tokens_at']:.0f} s ago")

        mark = time.perf_counter()
        if not (state.get("follows_done") and await _follows_complete(client, graph, state)):
            await _seed_follows(client, graph, state, concurrency)
            state["follows_done"] = True
            _save_state(spec, state)
            steps["follows"] = time.perf_counter() - mark
            log(f"  follows: {len(graph.edges)} in {steps['follows']:.1f} s")

        mark = time.perf_counter()
        created = 0
        if not state.get("posts_done"):
            created = await _seed_posts(client, spec, state, concurrency)
            state["posts_done"] = True
            _save_state(spec, state)
            steps["posts"] = time.perf_counter() - mark
            log(f"  posts: {created} created in {steps['posts']:.1f} s")

        if created or "follows" in steps:
            steps["fanout_wait"] = await _wait_for_feeds(client, graph, state, timeout=120)
            log(f"  home feeds filled in {steps['fanout_wait']:.1f} s")
        if time.time() - state["tokens_at"] > TOKEN_RENEW_AFTER:
            mark = time.perf_counter()
            await _renew_tokens(client, spec, state, concurrency)
            steps["tokens"] = steps.get("tokens", 0) + time.perf_counter() - mark
            log(f"  tokens renewed after the long seed in {time.perf_counter() - mark:.1f} s")
        creation = state.setdefault("creation_seconds", {})
        for step in ("users", "follows", "posts", "fanout_wait"):
            if step in steps:
                creation[step] = round(creation.get(step, 0) + steps[step], 1)
        state["complete"] = True
        _save_state(spec, state)

    users = [
        SeededUser(i, u["id"], spec.username(i), u["access_token"], u["refresh_token"])
        for i, u in sorted(((int(k), v) for k, v in state["users"].items()), key=lambda kv: kv[0])
    ]
    elapsed = time.perf_counter() - started
    reused = was_complete and not any(step in steps for step in ("users", "follows", "posts"))
    return Seed(graph, users, spec.users * spec.posts_per_user, elapsed, reused, steps, state["creation_seconds"])

"""A bounded load of writes and reads through the public gateway, with a ledger of every request.

Every write carries a unique identifier (a post's title, a comment's text, a username, a follow
or like pair never attempted twice), so the verifier can later count what exists. Each request is
recorded with the phase it was sent in (the fault under way) and its outcome: the status and
envelope message, or the transport error when no answer came.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import httpx
import orjson

API = "/api/v1"
PASSWORD = "chaos-monkey-1"
WRITES = ("register", "post", "follow", "like", "comment")


class Answer(NamedTuple):
    status: int | None  # None: no HTTP answer
    message: str  # the envelope's message, or the transport error's name
    data: Any
    request_id: str = ""


@dataclass
class Attempt:
    op: str
    phase: str
    status: int | None  # None: no HTTP answer
    message: str  # the envelope's message, or the transport error's name
    key: tuple[Any, ...] = ()  # what the write created: ("uid",) / (follower, followee) / (user, post)
    data: dict[str, Any] = field(default_factory=dict)
    request_id: str = ""  # the gateway's X-Request-Id: its log lines and the services' carry it

    @classmethod
    def of(
        cls, answer: Answer, op: str, phase: str, key: tuple[Any, ...] = (), data: dict[str, Any] | None = None
    ) -> Attempt:
        return cls(op, phase, answer.status, answer.message, key, data or {}, answer.request_id)

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def outcome(self) -> str:
        if self.accepted:
            return "accepted"
        return f"{self.status} {self.message}" if self.status is not None else self.message


@dataclass
class User:
    id: int
    username: str
    token: str


def user_id_of(token: str) -> int:
    payload = token.split(".")[1]
    return int(orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["user_id"])


class Ledger:
    """Every attempt, and what the load may still do (pairs never tried, posts to react to)."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []
        self.users: list[User] = []
        self.posts: list[tuple[int, int]] = []  # (post id, author id) of accepted posts
        # Posts the activity service knows already: events travel asynchronously, so a like or
        # comment on a post not yet projected answers 404 `post not found` by design.
        self.reactable: list[tuple[int, int]] = []
        self.tried_follows: set[tuple[int, int]] = set()
        self.tried_likes: set[tuple[int, int]] = set()

    def add(self, attempt: Attempt) -> Attempt:
        self.attempts.append(attempt)
        return attempt

    def by_phase(self) -> dict[str, Counter[str]]:
        phases: dict[str, Counter[str]] = {}
        for a in self.attempts:
            phases.setdefault(a.phase, Counter())[a.outcome] += 1
        return phases


class Load:
    """Sends at most `rate` requests/s (writes and some reads) until stopped or `max_requests`."""

    def __init__(self, gateway: str, ledger: Ledger, *, rate: float, max_requests: int, seed: int) -> None:
        self.gateway = gateway
        self.ledger = ledger
        self.rate = rate
        self.max_requests = max_requests
        self.random = random.Random(seed)
        self.phase = "baseline"
        self.sent = 0
        self._stop = asyncio.Event()
        self._client = httpx.AsyncClient(base_url=gateway + API, timeout=httpx.Timeout(15.0, connect=2.0))

    async def aclose(self) -> None:
        await self._client.aclose()

    def stop(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------------ requests

    async def call(self, method: str, path: str, *, token: str | None = None, body: Any = None) -> Answer:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = await self._client.request(method, path, json=body, headers=headers)
        except httpx.TransportError as exc:
            return Answer(None, _transport_error(exc), None)
        rid = response.headers.get("x-request-id", "")
        try:
            envelope = response.json()
        except ValueError:
            return Answer(response.status_code, "(not JSON)", None, rid)
        if not isinstance(envelope, dict):
            return Answer(response.status_code, "(not an envelope)", None, rid)
        return Answer(response.status_code, str(envelope.get("message", "")), envelope.get("data"), rid)

    async def register(self, phase: str | None = None, *, pooled: bool = True) -> User | None:
        """A new account; `pooled`: the load may use it for its own writes (a canary's is not, so
        that the load never makes the follow the canary is about to make: that one got a 409)."""
        name = f"c{uuid.uuid4().hex[:14]}"
        body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
        answer = await self.call("POST", "/auth/register", body=body)
        attempt = self.ledger.add(Attempt.of(answer, "register", phase or self.phase, (name,)))
        if not attempt.accepted:
            return None
        token = answer.data["access_token"]
        user = User(user_id_of(token), name, token)
        attempt.data["id"] = user.id
        if pooled:
            self.ledger.users.append(user)
        return user

    async def post(self, author: User, phase: str | None = None) -> int | None:
        uid = f"p{uuid.uuid4().hex}"
        body = {"title": uid, "content": f"chaos post {uid}"}
        answer = await self.call("POST", "/posts", token=author.token, body=body)
        attempt = self.ledger.add(Attempt.of(answer, "post", phase or self.phase, (uid,), {"author": author.id}))
        if not attempt.accepted:
            return None
        post_id = attempt.data["id"] = int(answer.data["id"])
        self.ledger.posts.append((post_id, author.id))
        return post_id

    async def follow(self, follower: User, followee_id: int, phase: str | None = None) -> bool:
        self.ledger.tried_follows.add((follower.id, followee_id))
        answer = await self.call("POST", "/relation/follow", token=follower.token, body={"followee_id": followee_id})
        attempt = Attempt.of(answer, "follow", phase or self.phase, (follower.id, followee_id))
        return self.ledger.add(attempt).accepted

    async def like(self, user: User, post_id: int, author_id: int) -> None:
        self.ledger.tried_likes.add((user.id, post_id))
        answer = await self.call("PUT", f"/posts/{post_id}/like", token=user.token)
        self.ledger.add(Attempt.of(answer, "like", self.phase, (user.id, post_id), {"author": author_id}))

    async def comment(self, user: User, post_id: int, author_id: int) -> None:
        uid = f"k{uuid.uuid4().hex}"
        answer = await self.call("POST", f"/posts/{post_id}/comments", token=user.token, body={"content": uid})
        data = {"post": post_id, "author": author_id, "commenter": user.id}
        attempt = Attempt.of(answer, "comment", self.phase, (uid,), data)
        if self.ledger.add(attempt).accepted and isinstance(answer.data, dict) and "id" in answer.data:
            attempt.data["id"] = int(answer.data["id"])

    async def read(self, user: User) -> None:
        choice = self.random.random()
        if choice < 0.4:
            op, path = "read feed", "/feed?limit=20"
        elif choice < 0.7:
            op, path = "read notifications", "/notification/feed?limit=20"
        elif choice < 0.85 and self.ledger.posts:
            op, path = "read post", f"/posts/{self.random.choice(self.ledger.posts)[0]}"
        else:
            op, path = "read user", f"/users/{user.id}"
        self.ledger.add(Attempt.of(await self.call("GET", path, token=user.token), op, self.phase))

    # ------------------------------------------------------------------ the mix

    def _free_follow(self) -> tuple[User, User] | None:
        users = self.ledger.users
        for _ in range(20):
            a, b = self.random.sample(users, 2)
            if (a.id, b.id) not in self.ledger.tried_follows:
                return a, b
        return None

    async def one(self) -> None:
        users = self.ledger.users
        user = self.random.choice(users)
        roll = self.random.random()
        if roll < 0.25:
            await self.post(user)
        elif roll < 0.55:
            pair = self._free_follow()
            if pair is None:
                await self.register()
            else:
                await self.follow(pair[0], pair[1].id)
        elif roll < 0.65 and self.ledger.reactable:
            post_id, author = self.random.choice(self.ledger.reactable)
            if author != user.id and (user.id, post_id) not in self.ledger.tried_likes:
                await self.like(user, post_id, author)
            else:
                await self.read(user)
        elif roll < 0.75 and self.ledger.reactable:
            post_id, author = self.random.choice(self.ledger.reactable)
            await self.comment(user, post_id, author)
        elif roll < 0.78:
            await self.register()
        else:
            await self.read(user)

    async def run(self, concurrency: int = 4) -> None:
        """Paced by a shared clock: request n starts no earlier than n/rate s after the start."""
        start = time.monotonic()
        interval = 1.0 / self.rate

        async def worker() -> None:
            while not self._stop.is_set() and self.sent < self.max_requests:
                n = self.sent
                self.sent += 1
                delay = start + n * interval - time.monotonic()
                if delay > 0:
                    try:
                        await asyncio.wait_for(self._stop.wait(), timeout=delay)
                        return
                    except TimeoutError:
                        pass
                await self.one()

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def _transport_error(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection refused"
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout ({type(exc).__name__})"
    return f"transport error ({type(exc).__name__})"

"""Sessions end everywhere: a logout ends that session's access tokens, a password change and an
account deletion every access token of the user; every gateway replica enforces it within half a
second; without Redis, authenticated requests are refused (503), never let through on a guess."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import httpx
import pytest
from gateway_contract import (
    PASSWORD,
    Account,
    Stack,
    assert_error,
    assert_no_content,
    assert_status_only,
    assert_token_pair,
    data_of,
    second_gateway,
)
from redis.asyncio import Redis

from pinstack_gateway.config import Settings
from pinstack_gateway.sessions import Revocations
from pinstack_kit.errors import ServiceUnavailable, Unauthorized
from pinstack_testing import REDIS_URL, eventually, free_port, worker_id

Register = Callable[..., Account]
FEED = "/notification/feed"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(api: httpx.Client, account: Account, password: str = PASSWORD) -> dict[str, str]:
    return assert_token_pair(data_of(api.post("/auth/login", json={"login": account.username, "password": password})))


def assert_refused(response: httpx.Response) -> None:
    """What an ended session's token answers: the contract's 401 for a token it does not accept."""
    assert_error(response, 401, "unauthenticated")


@pytest.mark.contract
class TestLogout:
    def test_ends_that_sessions_access_token_and_no_other(self, api: httpx.Client, account: Account) -> None:
        other_session = login(api, account)
        data_of(api.get(FEED, headers=account.headers))
        assert_status_only(api.post("/auth/logout", json={"refresh_token": account.refresh}))
        assert_refused(api.get(FEED, headers=account.headers))
        assert_refused(api.put("/notification/read-all", headers=account.headers))
        data_of(api.get(FEED, headers=bearer(other_session["access_token"])))

    def test_ends_the_access_tokens_of_every_rotation_of_the_session(self, api: httpx.Client, account: Account) -> None:
        rotated = data_of(api.post("/auth/refresh", json={"refresh_token": account.refresh}))
        assert_status_only(api.post("/auth/logout", json={"refresh_token": rotated["refresh_token"]}))
        for access in (account.access, rotated["access_token"]):
            assert_refused(api.get(FEED, headers=bearer(access)))

    def test_a_refused_logout_ends_nothing(self, api: httpx.Client, account: Account) -> None:
        assert_error(api.post("/auth/logout", json={"refresh_token": account.access}), 401, "invalid refresh token")
        data_of(api.get(FEED, headers=account.headers))


@pytest.mark.contract
class TestPasswordChange:
    def test_ends_every_access_token_of_the_user_and_none_issued_after(
        self, api: httpx.Client, account: Account, other: Account
    ) -> None:
        second = login(api, account)
        body = {"old_password": PASSWORD, "new_password": "brand-new-pass"}
        assert data_of(api.post("/auth/update-password", json=body, headers=account.headers)) == {
            "message": "Password updated successfully"
        }
        for access in (account.access, second["access_token"]):
            assert_refused(api.get(FEED, headers=bearer(access)))
        fresh = login(api, account, "brand-new-pass")  # signed in right after: not caught by the mark
        data_of(api.get(FEED, headers=bearer(fresh["access_token"])))
        data_of(api.get(FEED, headers=other.headers))  # another user is untouched

    def test_a_wrong_old_password_ends_nothing(self, api: httpx.Client, account: Account) -> None:
        body = {"old_password": "not-my-password", "new_password": "brand-new-pass"}
        assert_error(api.post("/auth/update-password", json=body, headers=account.headers), 401, "invalid credentials")
        data_of(api.get(FEED, headers=account.headers))


@pytest.mark.contract
class TestAccountDeletion:
    def test_the_token_is_refused_and_writes_nothing(self, api: httpx.Client, register: Register) -> None:
        author, doomed = register(), register()
        post = data_of(api.post("/posts", json={"title": "still here"}, headers=author.headers), 201)["id"]
        assert_no_content(api.delete(f"/users/{doomed.id}", headers=doomed.headers))

        as_doomed = doomed.headers
        attempts = {
            "like": api.put(f"/posts/{post}/like", headers=as_doomed),
            "comment": api.post(f"/posts/{post}/comments", json={"content": "from beyond"}, headers=as_doomed),
            "view": api.post(f"/posts/{post}/view", headers=as_doomed),
            "notification": api.post(
                "/notification/send",
                json={"user_id": author.id, "type": "system", "payload": {"x": 1}},
                headers=as_doomed,
            ),
            "post": api.post("/posts", json={"title": "ghost"}, headers=as_doomed),
            "follow": api.post("/relation/follow", json={"followee_id": author.id}, headers=as_doomed),
            "read": api.get(FEED, headers=as_doomed),
            "delete again": api.delete(f"/users/{doomed.id}", headers=as_doomed),
        }
        for name, response in attempts.items():
            assert response.status_code == 401, (name, response.text)
            assert_refused(response)
        assert data_of(api.get(f"/posts/{post}/likes"))["likes"] == []
        assert data_of(api.get(f"/posts/{post}/comments"))["comments"] == []
        assert data_of(api.post(f"/posts/{post}/view", headers=author.headers)) == {"counted": True, "view_count": 1}
        assert data_of(api.get(FEED, headers=author.headers))["total"] == 0
        assert data_of(api.get(f"/relation/{author.id}/followers"))["followers"] == []

    def test_refresh_is_an_invalid_refresh_token(self, api: httpx.Client, account: Account) -> None:
        assert_no_content(api.delete(f"/users/{account.id}", headers=account.headers))
        assert_error(api.post("/auth/refresh", json={"refresh_token": account.refresh}), 401, "invalid refresh token")


@pytest.mark.contract
class TestEveryReplica:
    @pytest.mark.parametrize("ending", ["logout", "password change", "deletion"])
    def test_enforces_an_ending_through_another_replica_within_half_a_second(
        self, api: httpx.Client, replica: httpx.Client, account: Account, ending: str
    ) -> None:
        data_of(replica.get(FEED, headers=account.headers))  # the replica has read the token's marks
        if ending == "logout":
            assert_status_only(api.post("/auth/logout", json={"refresh_token": account.refresh}))
        elif ending == "password change":
            body = {"old_password": PASSWORD, "new_password": "brand-new-pass"}
            data_of(api.post("/auth/update-password", json=body, headers=account.headers))
        else:
            assert_no_content(api.delete(f"/users/{account.id}", headers=account.headers))
        ended = time.monotonic()
        late = []
        while time.monotonic() - ended < 1.5:
            sent = time.monotonic() - ended
            response = replica.get(FEED, headers=account.headers)
            if sent > Settings().revocation_cache_seconds:
                late.append(response)
            time.sleep(0.05)
        assert late
        for response in late:
            assert_refused(response)


class RedisGate:
    """A TCP relay in front of the test Redis that can be cut (its connections dropped, new ones
    refused) and mended: an outage of Redis for one gateway only."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def mend(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        if self._listener is not None:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            self._listener.close()
            self._listener = None
        with self._lock:
            for conn in self._open:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for conn in (source, sink):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture(scope="module")
def gate() -> Iterator[RedisGate]:
    relay = RedisGate(REDIS_URL)
    relay.mend()
    yield relay
    relay.cut()


@pytest.fixture(scope="module")
def gated(stack: Stack, tmp_path_factory: pytest.TempPathFactory, gate: RedisGate) -> Iterator[httpx.Client]:
    """A replica of the stack's gateway that reaches Redis through the gate."""
    with (
        second_gateway(stack, tmp_path_factory, REDIS_URL=gate.url) as url,
        httpx.Client(base_url=f"{url}/api/v1", timeout=15) as client,
    ):
        yield client


@pytest.mark.contract
class TestRedisOutage:
    async def test_authenticated_requests_are_refused_not_let_through(
        self, api: httpx.Client, gated: httpx.Client, gate: RedisGate, register: Register
    ) -> None:
        me = register()
        data_of(gated.get(FEED, headers=me.headers))
        gate.cut()
        try:
            await asyncio.sleep(Settings().revocation_cache_seconds)

            def refused() -> bool:
                response = gated.get(FEED, headers=me.headers)
                if response.status_code == 200:
                    return False
                assert_error(response, 503, "external service unavailable")
                return True

            await eventually(refused, timeout=10, interval=0.1)
            # what needs no session state still works: public reads and signing in
            assert data_of(gated.get(f"/users/{me.id}"))["id"] == me.id
            assert_token_pair(data_of(gated.post("/auth/login", json={"login": me.username, "password": PASSWORD})))
            metrics = httpx.get(gated.base_url.copy_with(path="/metrics")).text
            assert 'gateway_redis_unavailable_total{feature="sessions"}' in metrics
        finally:
            gate.mend()
        await eventually(lambda: gated.get(FEED, headers=me.headers).status_code == 200, timeout=10, interval=0.1)

    async def test_an_ending_redis_missed_is_enforced_at_once_and_written_when_it_is_back(
        self, api: httpx.Client, gated: httpx.Client, gate: RedisGate, register: Register
    ) -> None:
        me = register()
        gate.cut()
        try:
            # The logout succeeds (the auth service ended the session); the gateway could not
            # write its mark, and refuses the session's token itself meanwhile.
            assert_status_only(gated.post("/auth/logout", json={"refresh_token": me.refresh}))
            assert_refused(gated.get(FEED, headers=me.headers))
        finally:
            gate.mend()
        # Back: the mark reaches Redis without any further request, so every replica refuses it.
        await eventually(lambda: api.get(FEED, headers=me.headers).status_code == 401, timeout=10, interval=0.1)
        assert_refused(api.get(FEED, headers=me.headers))
        assert_refused(gated.get(FEED, headers=me.headers))


# -- in process, on the real Redis ---------------------------------------------------------------


def claims(user_id: int, *, iat: float | None = None, sid: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"user_id": user_id, "iat": time.time() if iat is None else iat}
    if sid is not None:
        found["sid"] = sid
    return found


@pytest.fixture
def settings() -> Settings:
    return Settings(redis_key_prefix=f"test:{worker_id()}:{uuid.uuid4().hex[:8]}:gateway:")


@pytest.fixture
async def redis_client() -> Any:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.mark.integration
class TestRevocations:
    async def test_a_password_change_voids_tokens_issued_before_it_to_the_millisecond(
        self, settings: Settings, redis_client: Redis
    ) -> None:
        revocations = Revocations(redis_client, settings)
        await revocations.end_tokens_of(7)
        mark = int(await redis_client.get(f"{settings.key_prefix}rev:u:7")) / 1000
        with pytest.raises(Unauthorized):
            await revocations.check(claims(7, iat=mark - 0.001))
        await revocations.check(claims(7, iat=mark))
        await revocations.check(claims(7, iat=mark + 0.001))
        await revocations.check(claims(8, iat=mark - 1))  # another user

    async def test_marks_never_go_down_and_live_as_long_as_an_access_token(
        self, settings: Settings, redis_client: Redis
    ) -> None:
        revocations = Revocations(redis_client, settings)
        await revocations.end_account(7)
        await revocations.end_tokens_of(7)  # a later, smaller mark does not bring the account back
        with pytest.raises(Unauthorized):
            await Revocations(redis_client, settings).check(claims(7, iat=time.time() + 60))
        lifetime = await redis_client.pttl(f"{settings.key_prefix}rev:u:7")
        assert (
            (settings.access_token_ttl_seconds - 1) * 1000 < lifetime <= (settings.access_token_ttl_seconds + 5) * 1000
        )

    async def test_a_session_ends_alone(self, settings: Settings, redis_client: Redis) -> None:
        revocations = Revocations(redis_client, settings)
        await revocations.end_session("s1")
        with pytest.raises(Unauthorized):
            await revocations.check(claims(7, sid="s1"))
        await revocations.check(claims(7, sid="s2"))
        await revocations.check(claims(7))

    async def test_one_lookup_per_token_at_most_every_cache_period(
        self, settings: Settings, redis_client: Redis
    ) -> None:
        revocations = Revocations(redis_client, settings)
        with mock.patch.object(redis_client, "mget", wraps=redis_client.mget) as lookups:
            for _ in range(50):
                await revocations.check(claims(7, sid="s1"))
            assert lookups.call_count == 1
            assert lookups.call_args.args[0] == [f"{settings.key_prefix}rev:u:7", f"{settings.key_prefix}rev:s:s1"]
            await asyncio.sleep(settings.revocation_cache_seconds)
            await revocations.check(claims(7, sid="s1"))
            assert lookups.call_count == 2

    async def test_without_redis_unknown_tokens_are_unavailable_and_known_ended_ones_refused(
        self, settings: Settings
    ) -> None:
        down = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
        try:
            revocations = Revocations(down, settings)
            with pytest.raises(ServiceUnavailable):
                await revocations.check(claims(7, sid="s1"))
            await revocations.end_session("s1")  # Redis did not take it: kept in process
            with pytest.raises(Unauthorized):
                await revocations.check(claims(7, sid="s1"))
        finally:
            await down.aclose()

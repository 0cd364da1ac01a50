"""Rate limits at the gateway (Redis): per client IP on /auth, failed logins per account and per
client (growing delays), per user on writes; `RateLimit-*` headers, 429 with `Retry-After`, and failing open when Redis is
unreachable (authenticated requests do not, see test_sessions.py). The shared stack's gateway
runs without limits; these tests start gateways of their own with small ones in front of the
same backends."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import count

import httpx
import pytest
from gateway_contract import PASSWORD, Account, Stack, assert_error, assert_token_pair, data_of, unique_name
from redis.asyncio import Redis
from starlette.requests import Request

from pinstack_gateway.config import Settings, trusted_networks
from pinstack_gateway.limits import LimitExceeded, RateLimiter
from pinstack_testing import free_port, spawn_service, worker_id

pytestmark = pytest.mark.contract

Register = Callable[..., Account]
AUTH_LIMIT, LOGIN_FAILURES, WRITES = 6, 3, 3
_addresses = count(1)


@contextmanager
def start_gateway(stack: Stack, tmp_path_factory: pytest.TempPathFactory, **overrides: str) -> Iterator[str]:
    env = {
        **stack.gateway_env,
        "REDIS_KEY_PREFIX": f"test:{worker_id()}:{uuid.uuid4().hex[:8]}:gateway:",
        **overrides,
    }
    with spawn_service("pinstack_gateway.main:create_app", env, log_dir=tmp_path_factory.mktemp("logs")) as url:
        yield url


@pytest.fixture(scope="module")
def limited(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """Small limits; 127.0.0.1 is a trusted proxy, so each test is its own client by X-Forwarded-For."""
    with (
        start_gateway(
            stack,
            tmp_path_factory,
            RATE_LIMIT_AUTH_PER_MINUTE=str(AUTH_LIMIT),
            RATE_LIMIT_LOGIN_FAILURES=str(LOGIN_FAILURES),
            RATE_LIMIT_LOGIN_FAILURES_PER_CLIENT=str(2 * LOGIN_FAILURES),
            RATE_LIMIT_WRITES_PER_MINUTE=str(WRITES),
            TRUSTED_PROXIES="127.0.0.1,::1",
        ) as url,
        httpx.Client(base_url=f"{url}/api/v1", timeout=15.0) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def login_limited(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """Only failed logins limited (no per-IP limit in the way); 127.0.0.1 is a trusted proxy, so
    each request is the client its X-Forwarded-For names."""
    with (
        start_gateway(
            stack,
            tmp_path_factory,
            RATE_LIMIT_AUTH_PER_MINUTE="0",
            RATE_LIMIT_LOGIN_FAILURES=str(LOGIN_FAILURES),
            RATE_LIMIT_LOGIN_FAILURES_PER_CLIENT=str(2 * LOGIN_FAILURES),
            TRUSTED_PROXIES="127.0.0.1,::1",
        ) as url,
        httpx.Client(base_url=f"{url}/api/v1", timeout=15.0) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def without_redis(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """The same small limits, but Redis is a closed port."""
    with (
        start_gateway(
            stack,
            tmp_path_factory,
            REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
            RATE_LIMIT_AUTH_PER_MINUTE="2",
            RATE_LIMIT_LOGIN_FAILURES="1",
            RATE_LIMIT_WRITES_PER_MINUTE="1",
        ) as url,
        httpx.Client(base_url=url, timeout=15.0) as client,
    ):
        yield client


def client_address() -> dict[str, str]:
    """A client of its own (TEST-NET-3), as the trusted proxy in front of the gateway reports it."""
    worker = worker_id()  # gw0, gw1, ... under xdist, else "main"
    n = next(_addresses) + 1000 * (int(worker[2:]) if worker.startswith("gw") else 0)
    return {"X-Forwarded-For": f"203.0.{113 + n // 250}.{n % 250 + 1}"}


def assert_quota(response: httpx.Response, limit: int, remaining: int) -> None:
    assert response.headers["RateLimit-Limit"] == str(limit), response.headers
    assert response.headers["RateLimit-Remaining"] == str(remaining), response.headers
    assert 0 <= int(response.headers["RateLimit-Reset"]) <= 60 * 15, response.headers


def assert_refused(response: httpx.Response) -> None:
    assert_error(response, 429, "too many requests")
    assert 1 <= int(response.headers["Retry-After"]) <= 15 * 60, response.headers
    assert response.headers["RateLimit-Remaining"] == "0"


class TestAuthPerClientIp:
    def test_headers_count_down_then_429_with_retry_after(self, limited: httpx.Client) -> None:
        me = client_address()
        body = {"refresh_token": "not-a-token"}
        for used in range(1, AUTH_LIMIT + 1):
            response = limited.post("/auth/logout", json=body, headers=me)
            assert response.status_code == 401, response.text  # the request itself went through
            assert_quota(response, AUTH_LIMIT, AUTH_LIMIT - used)
        refused = limited.post("/auth/logout", json=body, headers=me)
        assert_refused(refused)
        assert int(refused.headers["Retry-After"]) <= 60

    def test_each_client_ip_has_its_own_window(self, limited: httpx.Client) -> None:
        me, you = client_address(), client_address()
        for _ in range(AUTH_LIMIT + 1):
            limited.post("/auth/logout", json={"refresh_token": "x"}, headers=me)
        assert_refused(limited.post("/auth/logout", json={"refresh_token": "x"}, headers=me))
        response = limited.post("/auth/logout", json={"refresh_token": "x"}, headers=you)
        assert response.status_code == 401
        assert_quota(response, AUTH_LIMIT, AUTH_LIMIT - 1)

    def test_registering_counts_too(self, limited: httpx.Client) -> None:
        me = client_address()
        for _ in range(AUTH_LIMIT):
            limited.post("/auth/register", json={}, headers=me)
        assert_refused(limited.post("/auth/register", json={}, headers=me))

    def test_routes_outside_auth_are_not_limited_by_ip(self, limited: httpx.Client) -> None:
        me = client_address()
        for _ in range(AUTH_LIMIT + 2):
            response = limited.get("/posts/list", params={"limit": 1}, headers=me)
            assert response.status_code == 200
            assert "RateLimit-Limit" not in response.headers


class TestFailedLogins:
    """Failures count against the account, whatever string names it, and against the client;
    past the free ones each further attempt waits twice as long as the one before."""

    @staticmethod
    def attempt(client: httpx.Client, login: str, password: str = "wrong-pass", **headers: str) -> httpx.Response:
        return client.post(
            "/auth/login", json={"login": login, "password": password}, headers=headers or client_address()
        )

    def test_the_username_in_any_case_and_the_email_are_one_account(
        self, login_limited: httpx.Client, register: Register
    ) -> None:
        victim = register()
        for attempt, name in enumerate([victim.username, victim.email, victim.username.upper()]):
            wrong = self.attempt(login_limited, name)  # each from another client
            assert_error(wrong, 401, "invalid credentials")
            assert_quota(wrong, LOGIN_FAILURES, LOGIN_FAILURES - attempt - 1)
        refused = self.attempt(login_limited, victim.email.upper(), PASSWORD)  # even the right password
        assert_refused(refused)
        assert refused.headers["Retry-After"] == "1"

    def test_delays_grow_and_the_owner_gets_in_when_its_turn_comes(
        self, login_limited: httpx.Client, register: Register
    ) -> None:
        victim = register()
        for _ in range(LOGIN_FAILURES):
            assert_error(self.attempt(login_limited, victim.username), 401, "invalid credentials")
        waits = []
        for _ in range(3):
            refused = self.attempt(login_limited, victim.username, PASSWORD)
            assert_refused(refused)
            waits.append(int(refused.headers["Retry-After"]))
            time.sleep(waits[-1])
            assert_error(self.attempt(login_limited, victim.username), 401, "invalid credentials")
        assert waits == [1, 2, 4]
        time.sleep(8)  # instead of 15 minutes
        assert_token_pair(data_of(self.attempt(login_limited, victim.username, PASSWORD)))
        # signing in cleared the account's failures
        wrong = self.attempt(login_limited, victim.username)
        assert_error(wrong, 401, "invalid credentials")
        assert_quota(wrong, LOGIN_FAILURES, LOGIN_FAILURES - 1)

    def test_unknown_names_count_as_themselves(self, login_limited: httpx.Client) -> None:
        ghost = unique_name()
        for _ in range(LOGIN_FAILURES):
            assert_error(self.attempt(login_limited, ghost, "whatever"), 404, "user not found")
        assert_refused(self.attempt(login_limited, ghost, "whatever"))
        assert_error(self.attempt(login_limited, unique_name(), "whatever"), 404, "user not found")

    def test_a_client_guessing_at_many_accounts_waits_too(self, login_limited: httpx.Client) -> None:
        me, names = client_address(), [unique_name() for _ in range(2 * LOGIN_FAILURES + 1)]
        for name in names[:-1]:  # one failure per account: no account waits
            assert_error(self.attempt(login_limited, name, "whatever", **me), 404, "user not found")
        refused = self.attempt(login_limited, names[-1], "whatever", **me)
        assert_refused(refused)
        assert refused.headers["Retry-After"] == "1"
        # another client may try that name
        assert_error(self.attempt(login_limited, names[-1], "whatever"), 404, "user not found")

    def test_parallel_attempts_share_no_turn(self, login_limited: httpx.Client) -> None:
        ghost = unique_name()
        for _ in range(LOGIN_FAILURES):
            self.attempt(login_limited, ghost, "whatever")
        time.sleep(1)  # the first turn is free again
        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(lambda _: self.attempt(login_limited, ghost, "whatever").status_code, range(4)))
        assert sorted(answers) == [404, 429, 429, 429]

    def test_a_success_is_not_a_failure(self, login_limited: httpx.Client, register: Register) -> None:
        owner = register()
        for _ in range(LOGIN_FAILURES + 1):
            assert_token_pair(data_of(self.attempt(login_limited, owner.username, PASSWORD)))


@pytest.mark.integration
class TestLoginDelays:
    """In process, on the real Redis: what a long burst of failures makes the owner and the
    guessing client wait (the contract tests above cover the first doublings)."""

    @staticmethod
    def request(client: str) -> Request:
        return Request({"type": "http", "headers": [], "client": (client, 1234)})

    async def test_the_owner_waits_a_minute_at_most_the_guessing_client_fifteen(self, redis: Redis) -> None:
        settings = Settings(redis_key_prefix=f"test:{worker_id()}:{uuid.uuid4().hex[:8]}:gateway:")
        limiter = RateLimiter(redis, settings)
        guesser = self.request("198.51.100.7")
        records = limiter.login_records(guesser, "account:42")
        assert records is not None
        for _ in range(40):  # as many as fit in 15 minutes of growing delays, and more
            await limiter.login_failed(guesser, records)
        with pytest.raises(LimitExceeded) as guessing:
            await limiter.check_login(guesser, "account:42")
        assert 14 * 60 < guessing.value.quota.reset_seconds <= 15 * 60
        with pytest.raises(LimitExceeded) as owner:
            await limiter.check_login(self.request("203.0.113.5"), "account:42")
        assert 55 < owner.value.quota.reset_seconds <= 60


class TestWritesPerUser:
    def test_writes_are_counted_per_user(self, limited: httpx.Client, register: Register) -> None:
        me, you = register(), register()
        for used in range(1, WRITES + 1):
            response = limited.put("/notification/read-all", headers=me.headers)
            assert response.status_code == 200, response.text
            assert_quota(response, WRITES, WRITES - used)
        assert_refused(limited.put("/notification/read-all", headers=me.headers))
        assert limited.put("/notification/read-all", headers=you.headers).status_code == 200

    def test_reads_are_not_counted(self, limited: httpx.Client, register: Register) -> None:
        me = register()
        for _ in range(WRITES + 2):
            response = limited.get("/notification/unread-count", headers=me.headers)
            assert response.status_code == 200
            assert "RateLimit-Limit" not in response.headers


class TestRedisDown:
    def test_limits_fail_open_and_are_counted(self, without_redis: httpx.Client, register: Register) -> None:
        me = register()
        for _ in range(4):
            response = without_redis.post("/api/v1/auth/logout", json={"refresh_token": "x"})
            assert response.status_code == 401, response.text
            assert "RateLimit-Limit" not in response.headers
        for _ in range(3):
            wrong = without_redis.post("/api/v1/auth/login", json={"login": me.username, "password": "wrong-pass"})
            assert_error(wrong, 401, "invalid credentials")
        assert_token_pair(
            data_of(without_redis.post("/api/v1/auth/login", json={"login": me.username, "password": PASSWORD}))
        )
        metrics = without_redis.get("/metrics").text
        assert 'gateway_redis_unavailable_total{feature="auth"}' in metrics
        assert 'gateway_redis_unavailable_total{feature="login"}' in metrics

    def test_authenticated_requests_fail_closed(self, without_redis: httpx.Client, register: Register) -> None:
        """Whether a token's session ended lives in Redis (test_sessions.py): unknown, it is refused
        (and writes, with their limit and idempotency keys, never start)."""
        me = register()
        headers = {**me.headers, "Idempotency-Key": "k1"}
        refused = without_redis.post("/api/v1/posts", json={"title": "no redis"}, headers=headers)
        assert_error(refused, 503, "external service unavailable")
        assert_error(
            without_redis.get("/api/v1/notification/feed", headers=me.headers), 503, "external service unavailable"
        )


class TestClientIp:
    """Which address is the client: the socket peer, or X-Forwarded-For behind a trusted proxy."""

    @staticmethod
    def ip(peer: str, forwarded: str | None, trusted: str) -> str:
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
        request = Request({"type": "http", "headers": headers, "client": (peer, 1234)})
        limiter = RateLimiter.__new__(RateLimiter)
        limiter.trusted = trusted_networks(trusted)
        return limiter.client_ip(request)

    @pytest.mark.parametrize(
        ("peer", "forwarded", "trusted", "expected"),
        [
            ("198.51.100.7", "203.0.113.9", "", "198.51.100.7"),  # nobody trusted: the peer
            ("198.51.100.7", "203.0.113.9", "10.0.0.0/8", "198.51.100.7"),  # an untrusted peer may lie
            ("10.1.2.3", "203.0.113.9", "10.0.0.0/8", "203.0.113.9"),
            ("10.1.2.3", "1.1.1.1, 203.0.113.9, 10.9.9.9", "10.0.0.0/8", "203.0.113.9"),  # nearest untrusted hop
            ("10.1.2.3", None, "10.0.0.0/8", "10.1.2.3"),
            ("10.1.2.3", "garbage", "10.0.0.0/8", "garbage"),
        ],
    )
    def test_client_ip(self, peer: str, forwarded: str | None, trusted: str, expected: str) -> None:
        assert self.ip(peer, forwarded, trusted) == expected

    def test_settings_refuse_a_bad_network(self) -> None:
        with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
            Settings(trusted_proxies="10.0.0.0/8, not-a-network")

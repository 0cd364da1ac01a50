"""Routes 23-29 of contract §1.4 (feed, unread count, read, read-all, delete, send), and the
`follow_created` notification a follow produces through the relations outbox, Kafka and the
notifications consumer."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from gateway_contract import Account, assert_error, assert_fractional_timestamp, data_of

from pinstack_testing import eventually

pytestmark = pytest.mark.contract

Register = Callable[..., Account]

NOTIFICATION_KEYS = {"id", "user_id", "type", "is_read", "created_at", "payload"}
NOBODY = 9223372036854775807


def send(api: httpx.Client, sender: Account, recipient: int, kind: str = "system", **payload: Any) -> int:
    body: dict[str, Any] = {"user_id": recipient, "type": kind, **payload}
    data = data_of(api.post("/notification/send", json=body, headers=sender.headers))
    assert set(data) == {"notification_id", "message"} and data["message"] == "Notification sent successfully"
    assert type(data["notification_id"]) is int and data["notification_id"] >= 1
    return int(data["notification_id"])


def assert_notification(notification: Any, **expected: object) -> dict[str, Any]:
    assert isinstance(notification, dict) and NOTIFICATION_KEYS - {"payload"} <= set(notification) <= NOTIFICATION_KEYS
    assert type(notification["id"]) is int and type(notification["user_id"]) is int
    assert type(notification["is_read"]) is bool and isinstance(notification["type"], str)
    assert_fractional_timestamp(notification["created_at"])
    for key, value in expected.items():
        assert notification[key] == value, (key, notification)
    return notification


def feed(api: httpx.Client, account: Account, **params: Any) -> dict[str, Any]:
    data = data_of(api.get("/notification/feed", params=params, headers=account.headers))
    assert set(data) == {"notifications", "total", "page", "limit", "total_pages"}, data
    assert all(type(data[key]) is int for key in ("total", "page", "limit", "total_pages")), data
    for notification in data["notifications"]:
        assert_notification(notification, user_id=account.id)
    return data


def ids(data: dict[str, Any]) -> list[int]:
    return [n["id"] for n in data["notifications"]]


def unread(api: httpx.Client, account: Account) -> int:
    data = data_of(api.get("/notification/unread-count", headers=account.headers))
    assert set(data) == {"count"} and type(data["count"]) is int
    return int(data["count"])


def get(api: httpx.Client, account: Account, notification_id: int | str) -> httpx.Response:
    return api.get(f"/notification/{notification_id}", headers=account.headers)


def mark_read(api: httpx.Client, account: Account, notification_id: int | str) -> httpx.Response:
    return api.put(f"/notification/{notification_id}/read", headers=account.headers)


def remove(api: httpx.Client, account: Account, notification_id: int | str) -> httpx.Response:
    return api.delete(f"/notification/{notification_id}", headers=account.headers)


class TestSend:
    """Route 29: POST /notification/send (JWT)."""

    @pytest.mark.parametrize(
        "payload",
        [{"post_id": 7, "text": "liked <your> post & more"}, [1, "two", None], "text", 42, -1.5, True, {}],
        ids=repr,
    )
    def test_success_stores_any_json_payload(
        self, api: httpx.Client, account: Account, other: Account, payload: Any
    ) -> None:
        notification_id = send(api, account, other.id, "like", payload=payload)
        notification = data_of(get(api, other, notification_id))
        assert set(notification) == NOTIFICATION_KEYS
        assert_notification(
            notification, id=notification_id, user_id=other.id, type="like", is_read=False, payload=payload
        )

    @pytest.mark.parametrize("body", [{}, {"payload": None}], ids=["absent", "null"])
    def test_without_payload_it_is_omitted(
        self, api: httpx.Client, account: Account, other: Account, body: dict
    ) -> None:
        notification_id = send(api, account, other.id, **body)
        assert set(data_of(get(api, other, notification_id))) == NOTIFICATION_KEYS - {"payload"}

    def test_to_yourself(self, api: httpx.Client, account: Account) -> None:
        notification_id = send(api, account, account.id, "mention")
        assert ids(feed(api, account)) == [notification_id]

    def test_unknown_recipient(self, api: httpx.Client, account: Account) -> None:
        body = {"user_id": NOBODY, "type": "system", "payload": {}}
        assert_error(api.post("/notification/send", json=body, headers=account.headers), 404, "user not found")

    @pytest.mark.parametrize(
        "fields",
        [
            {"user_id": 0},
            {"user_id": -1},
            {"user_id": None},
            {"type": ""},
            {"type": None},
            {"type": "x" * 65},
            {"type": "a\x00b"},
            {"payload": {"text": "a\x00b"}},
            {"payload": {"a\x00b": 1}},
            {"payload": ["\x00"]},
            {"payload": {"n": 2**64}},
        ],
        ids=lambda f: f"{next(iter(f))}={str(next(iter(f.values())))[:16]!r}",
    )
    def test_validation_failed(self, api: httpx.Client, account: Account, fields: dict) -> None:
        body = {"user_id": account.id, "type": "system", **fields}
        assert_error(api.post("/notification/send", json=body, headers=account.headers), 400, "validation failed")

    @pytest.mark.parametrize("payload", [b"1e400", b"[" * 100 + b"]" * 100])
    def test_payload_that_cannot_be_stored_is_validation_failed(
        self, api: httpx.Client, account: Account, payload: bytes
    ) -> None:
        raw = b'{"user_id": %d, "type": "system", "payload": %s}' % (account.id, payload)
        assert_error(api.post("/notification/send", content=raw, headers=account.headers), 400, "validation failed")

    @pytest.mark.parametrize(
        "raw",
        [
            b"",
            b"[]",
            b'{"user_id": "1", "type": "system"}',
            b'{"user_id": 1.5, "type": "system"}',
            b'{"user_id": 9223372036854775808, "type": "system"}',
            b'{"user_id": 1, "type": 5}',
            b'{"user_id": 1, "type": ["system"]}',
        ],
    )
    def test_invalid_input(self, api: httpx.Client, account: Account, raw: bytes) -> None:
        assert_error(api.post("/notification/send", content=raw, headers=account.headers), 400, "invalid input")


@pytest.fixture
def inbox(api: httpx.Client, account: Account, other: Account) -> list[int]:
    """Three notifications for `account` from `other`, ids newest first."""
    return [send(api, other, account.id, kind, payload={"n": i}) for i, kind in enumerate(("a", "b", "c"))][::-1]


class TestFeed:
    """Route 23: GET /notification/feed (JWT)."""

    def test_newest_first_with_defaults(self, api: httpx.Client, account: Account, inbox: list[int]) -> None:
        data = feed(api, account)
        assert (ids(data), data["total"], data["page"], data["limit"], data["total_pages"]) == (inbox, 3, 1, 10, 1)
        assert [(n["type"], n["payload"], n["is_read"]) for n in data["notifications"]] == [
            ("c", {"n": 2}, False),
            ("b", {"n": 1}, False),
            ("a", {"n": 0}, False),
        ]

    def test_pages(self, api: httpx.Client, account: Account, inbox: list[int]) -> None:
        first = feed(api, account, limit=2)
        assert (ids(first), first["total"], first["limit"], first["total_pages"]) == (inbox[:2], 3, 2, 2)
        second = feed(api, account, limit=2, page=2)
        assert (ids(second), second["page"]) == (inbox[2:], 2)
        beyond = feed(api, account, limit=2, page=2147483647)
        assert (beyond["notifications"], beyond["total"], beyond["total_pages"]) == ([], 3, 2)
        assert ids(feed(api, account, limit=1, page=3)) == inbox[2:]
        assert feed(api, account, limit=100)["total_pages"] == 1

    def test_empty(self, api: httpx.Client, account: Account) -> None:
        expected = {"notifications": [], "total": 0, "page": 1, "limit": 10, "total_pages": 0}
        assert feed(api, account) == expected

    def test_only_the_callers(self, api: httpx.Client, account: Account, other: Account, inbox: list[int]) -> None:
        assert feed(api, other)["total"] == 0

    @pytest.mark.parametrize(
        "params",
        [
            {"page": "0"},
            {"page": "-1"},
            {"page": "abc"},
            {"page": "1.5"},
            {"page": "2147483648"},
            {"limit": "0"},
            {"limit": "101"},
            {"limit": "-1"},
            {"limit": "abc"},
            {"limit": "99999999999999999999"},
        ],
        ids=str,
    )
    def test_strict_paging_is_invalid_input(self, api: httpx.Client, account: Account, params: dict) -> None:
        assert_error(api.get("/notification/feed", params=params, headers=account.headers), 400, "invalid input")

    def test_authentication_comes_first(self, api: httpx.Client) -> None:
        assert_error(api.get("/notification/feed", params={"page": "abc"}), 401, "unauthenticated")
        headers = {"Authorization": "Bearer invalid_token"}
        assert_error(api.get("/notification/feed", params={"page": "abc"}, headers=headers), 401, "invalid token")


class TestUnreadCount:
    """Route 24: GET /notification/unread-count (JWT)."""

    def test_counts_the_callers_unread(self, api: httpx.Client, account: Account, other: Account) -> None:
        assert unread(api, account) == 0
        first = send(api, other, account.id)
        send(api, other, account.id)
        assert (unread(api, account), unread(api, other)) == (2, 0)
        data_of(mark_read(api, account, first))
        assert unread(api, account) == 1


class TestGetNotification:
    """Route 25: GET /notification/{notification_id} (JWT, owner only)."""

    def test_success(self, api: httpx.Client, account: Account, inbox: list[int]) -> None:
        notification = data_of(get(api, account, inbox[0]))
        assert notification == feed(api, account)["notifications"][0]
        assert_notification(notification, id=inbox[0], user_id=account.id, type="c", payload={"n": 2})

    def test_someone_elses_is_denied(self, api: httpx.Client, other: Account, inbox: list[int]) -> None:
        assert_error(get(api, other, inbox[0]), 403, "access to notification denied")

    def test_not_found(self, api: httpx.Client, account: Account) -> None:
        assert_error(get(api, account, NOBODY), 404, "notification not found")

    @pytest.mark.parametrize("raw", ["abc", "1.5", "9223372036854775808", "%201"])
    def test_not_an_int64_is_invalid_input(self, api: httpx.Client, account: Account, raw: str) -> None:
        assert_error(get(api, account, raw), 400, "invalid input")

    @pytest.mark.parametrize("raw", ["0", "-1"])
    def test_below_one_is_validation_failed(self, api: httpx.Client, account: Account, raw: str) -> None:
        assert_error(get(api, account, raw), 400, "validation failed")


class TestMarkRead:
    """Route 26: PUT /notification/{notification_id}/read (JWT, owner only)."""

    def test_first_marks_then_already(self, api: httpx.Client, account: Account, inbox: list[int]) -> None:
        assert data_of(mark_read(api, account, inbox[1])) == {"success": True, "message": "Notification marked as read"}
        assert data_of(mark_read(api, account, inbox[1])) == {
            "success": True,
            "message": "Notification already marked as read",
        }
        assert [n["is_read"] for n in feed(api, account)["notifications"]] == [False, True, False]

    def test_someone_elses_is_denied_and_stays_unread(
        self, api: httpx.Client, account: Account, other: Account, inbox: list[int]
    ) -> None:
        assert_error(mark_read(api, other, inbox[0]), 403, "access to notification denied")
        assert data_of(get(api, account, inbox[0]))["is_read"] is False

    def test_not_found(self, api: httpx.Client, account: Account) -> None:
        assert_error(mark_read(api, account, NOBODY), 404, "notification not found")

    @pytest.mark.parametrize(("raw", "message"), [("abc", "invalid input"), ("0", "validation failed")])
    def test_id_checks(self, api: httpx.Client, account: Account, raw: str, message: str) -> None:
        assert_error(mark_read(api, account, raw), 400, message)


class TestReadAll:
    """Route 27: PUT /notification/read-all (JWT)."""

    def test_marks_only_the_callers(
        self, api: httpx.Client, account: Account, other: Account, inbox: list[int]
    ) -> None:
        send(api, account, other.id)
        expected = {"success": True, "message": "All notifications marked as read"}
        assert data_of(api.put("/notification/read-all", headers=account.headers)) == expected
        assert [n["is_read"] for n in feed(api, account)["notifications"]] == [True, True, True]
        assert (unread(api, account), unread(api, other)) == (0, 1)
        assert data_of(api.put("/notification/read-all", headers=account.headers)) == expected  # nothing left


class TestDelete:
    """Route 28: DELETE /notification/{notification_id} (JWT, owner only)."""

    def test_success_then_not_found(self, api: httpx.Client, account: Account, inbox: list[int]) -> None:
        expected = {"success": True, "message": "Notification removed successfully"}
        assert data_of(remove(api, account, inbox[1])) == expected
        assert ids(feed(api, account)) == [inbox[0], inbox[2]]
        assert_error(get(api, account, inbox[1]), 404, "notification not found")
        assert_error(remove(api, account, inbox[1]), 404, "notification not found")

    def test_someone_elses_is_denied_and_kept(
        self, api: httpx.Client, account: Account, other: Account, inbox: list[int]
    ) -> None:
        assert_error(remove(api, other, inbox[0]), 403, "access to notification denied")
        assert data_of(get(api, account, inbox[0]))["id"] == inbox[0]

    @pytest.mark.parametrize(
        ("raw", "message"),
        [("abc", "invalid input"), ("99999999999999999999", "invalid input"), ("0", "validation failed")],
    )
    def test_id_checks(self, api: httpx.Client, account: Account, raw: str, message: str) -> None:
        assert_error(remove(api, account, raw), 400, message)


class TestStaticPaths:
    """`/feed`, `/unread-count`, `/read-all` and `/send` are routes of their own, never an id."""

    def test_not_captured_by_the_id(self, api: httpx.Client, account: Account) -> None:
        assert "notifications" in data_of(api.get("/notification/feed", headers=account.headers))
        assert "count" in data_of(api.get("/notification/unread-count", headers=account.headers))
        assert data_of(api.put("/notification/read-all", headers=account.headers))["success"] is True


class TestFollowCreated:
    """A follow becomes one `follow_created` notification for the followee, through the relations
    outbox and relay, Kafka and the notifications consumer (contract §1.4 #19: within ~1 s)."""

    BUDGET_SECONDS = 1.5

    async def test_arrives_promptly_and_exactly_once(
        self, api: httpx.Client, register: Register, events_ready: None, record_property: Callable[..., None]
    ) -> None:
        fan = register()
        latencies = []
        for _ in range(5):
            star = register()
            began = time.perf_counter()
            follow = api.post("/relation/follow", json={"followee_id": star.id}, headers=fan.headers)
            assert data_of(follow) == {"message": "Followed successfully"}
            data = await eventually(lambda: feed(api, star)["notifications"], timeout=10, interval=0.01)  # noqa: B023
            latencies.append(time.perf_counter() - began)
            [notification] = data
            assert_notification(notification, user_id=star.id, type="follow_created", is_read=False)
            payload = notification["payload"]
            assert set(payload) == {"followee_id", "follower_id", "timestamptz"}, payload
            assert (payload["followee_id"], payload["follower_id"]) == (star.id, fan.id)
            assert_fractional_timestamp(payload["timestamptz"])
            assert unread(api, star) == 1
        record_property("follow_to_notification_seconds", latencies)
        print(f"follow -> notification through the gateway: {', '.join(f'{s * 1000:.0f} ms' for s in latencies)}")
        assert max(latencies) < self.BUDGET_SECONDS, latencies

        # Exactly once: a later follow by the same follower travels the same partition after the
        # earlier ones, so once it is in, any duplicate of the earlier ones would be in as well.
        last = register()
        data_of(api.post("/relation/follow", json={"followee_id": last.id}, headers=fan.headers))
        await eventually(lambda: feed(api, last)["total"], timeout=10)
        assert feed(api, star)["total"] == 1

    async def test_the_follower_is_not_notified_and_unfollow_notifies_nobody(
        self, api: httpx.Client, account: Account, other: Account, register: Register, events_ready: None
    ) -> None:
        third = register()
        for path, followee in (("follow", other), ("unfollow", other), ("follow", third)):
            data_of(api.post(f"/relation/{path}", json={"followee_id": followee.id}, headers=account.headers))
        # The same follower, so the same partition: once the last follow is in, so is the rest.
        await eventually(lambda: feed(api, third)["total"], timeout=10)
        [notification] = feed(api, other)["notifications"]
        assert (notification["type"], notification["payload"]["follower_id"]) == ("follow_created", account.id)
        assert feed(api, account)["total"] == 0

"""Routes 14-18 of contract §1.4: listing, reading, creating, updating and deleting posts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from gateway_contract import Account, assert_error, assert_status_only, assert_timestamp, data_of

pytestmark = pytest.mark.contract

Register = Callable[..., Account]

POST_KEYS = {"id", "author", "title", "content", "created_at", "updated_at", "media", "tags"}
CREATED_KEYS = {
    "id",
    "title",
    "content",
    "created_at",
    "updated_at",
    "author_id",
    "author_username",
    "author_email",
    "author_full_name",
    "author_bio",
    "author_avatar_url",
    "media",
    "tags",
}
PROFILE = {"full_name": "Ada Lovelace", "bio": "Notes on the engine", "avatar_url": "https://x.io/ada.png"}
IMAGE = {"url": "https://x.io/1.png", "type": "image", "position": 1}


def create(api: httpx.Client, account: Account, **fields: Any) -> dict[str, Any]:
    body = {"title": "A title", **fields}
    return assert_created(data_of(api.post("/posts", json=body, headers=account.headers), 201), account)


def assert_created(post: Any, author: Account) -> dict[str, Any]:
    """The flattened create answer (route 16): `author_*` fields, empty parts omitted."""
    assert isinstance(post, dict) and {"id", "title", "created_at", "updated_at"} <= set(post) <= CREATED_KEYS, post
    assert type(post["id"]) is int and post["id"] >= 1
    assert (post["author_id"], post["author_username"], post["author_email"]) == (
        author.id,
        author.username,
        author.email,
    )
    assert assert_timestamp(post["updated_at"]) >= assert_timestamp(post["created_at"])
    assert all(post[key] not in ("", [], None) for key in ("content", "media", "tags") if key in post), post
    return post


def assert_post(post: Any, author: Account | None = None, **expected: object) -> dict[str, Any]:
    """The contract's post (routes 14, 15, 17): nested author, empty parts omitted."""
    assert isinstance(post, dict) and {"id", "author", "title", "created_at", "updated_at"} <= set(post) <= POST_KEYS
    assert {"id", "username"} <= set(post["author"]) <= {"id", "username", "full_name", "avatar_url"}, post
    assert all(post[key] not in ("", [], None) for key in ("content", "media", "tags") if key in post), post
    assert assert_timestamp(post["updated_at"]) >= assert_timestamp(post["created_at"])
    if author is not None:
        assert (post["author"]["id"], post["author"]["username"]) == (author.id, author.username)
    for key, value in expected.items():
        if value is None:
            assert key not in post, (key, post)
        else:
            assert post[key] == value, (key, post)
    return post


def listing(api: httpx.Client, **params: Any) -> dict[str, Any]:
    data = data_of(api.get("/posts/list", params=params))
    assert set(data) == {"posts", "total"} and isinstance(data["posts"], list) and type(data["total"]) is int
    for post in data["posts"]:
        assert_post(post)
    return data


def ids(data: dict[str, Any]) -> list[int]:
    return [post["id"] for post in data["posts"]]


@pytest.fixture(scope="module")
def prolific(register: Register, api: httpx.Client) -> tuple[Account, list[int]]:
    """An author with 21 posts; their ids newest first."""
    author = register()
    made = [create(api, author, title=f"post {i}")["id"] for i in range(21)]
    return author, made[::-1]


class TestListPosts:
    """Route 14: GET /posts/list."""

    def test_newest_first_with_the_total_of_all_matches(
        self, api: httpx.Client, prolific: tuple[Account, list[int]]
    ) -> None:
        author, expected = prolific
        data = listing(api, author_id=author.id, limit=5)
        assert ids(data) == expected[:5]
        assert data["total"] == 21
        for post in data["posts"]:
            assert_post(post, author)
            assert post == data_of(api.get(f"/posts/{post['id']}"))

    def test_offset_and_limit(self, api: httpx.Client, prolific: tuple[Account, list[int]]) -> None:
        author, expected = prolific
        assert ids(listing(api, author_id=author.id, offset=5, limit=5)) == expected[5:10]
        last = listing(api, author_id=author.id, offset=20, limit=5)
        assert (ids(last), last["total"]) == (expected[20:], 21)
        beyond = listing(api, author_id=author.id, offset=21)
        assert (beyond["posts"], beyond["total"]) == ([], 21)
        assert ids(listing(api, author_id=author.id, limit=100)) == expected

    @pytest.mark.parametrize("params", [{}, {"limit": "0"}, {"limit": ""}, {"offset": "0"}], ids=str)
    def test_limit_zero_or_absent_is_the_default_of_20(
        self, api: httpx.Client, prolific: tuple[Account, list[int]], params: dict[str, str]
    ) -> None:
        author, expected = prolific
        assert ids(listing(api, author_id=author.id, **params)) == expected[:20]

    def test_author_zero_or_absent_is_every_author(self, api: httpx.Client, account: Account, other: Account) -> None:
        first = create(api, account)["id"]
        second = create(api, other)["id"]
        for params in ({}, {"author_id": "0"}, {"author_id": ""}):
            assert ids(listing(api, limit=2, **params)) == [second, first]

    def test_an_author_without_posts_is_an_empty_list(self, api: httpx.Client, account: Account) -> None:
        assert listing(api, author_id=account.id) == {"posts": [], "total": 0}
        assert listing(api, author_id="9223372036854775807") == {"posts": [], "total": 0}

    def test_created_after_and_before_are_strict(self, api: httpx.Client, account: Account) -> None:
        post = create(api, account)
        at = assert_timestamp(post["created_at"])
        second = timedelta(seconds=1)

        def found(**params: str) -> bool:
            return ids(listing(api, author_id=account.id, **params)) == [post["id"]]

        stamp = "%Y-%m-%dT%H:%M:%SZ"
        assert found(created_after=(at - second).strftime(stamp), created_before=(at + second).strftime(stamp))
        assert not found(created_after=post["created_at"])
        assert not found(created_before=post["created_at"])
        assert found(created_after=(at - second).isoformat().replace("+00:00", ".5+00:00"))
        assert found(created_before=(at + second).astimezone().isoformat())  # any offset means the same moment

    @pytest.mark.parametrize("name", ["author_id", "offset", "limit"])
    @pytest.mark.parametrize("raw", ["abc", "1.5", "1e3", " 1", "0x10", "99999999999999999999"])
    def test_not_an_integer_is_invalid_input(self, api: httpx.Client, name: str, raw: str) -> None:
        assert_error(api.get("/posts/list", params={name: raw}), 400, "invalid input")

    @pytest.mark.parametrize("name", ["created_after", "created_before"])
    @pytest.mark.parametrize(
        "raw",
        [
            "yesterday",
            "2025-01-01",
            "2025-01-01T00:00:00",
            "2025-01-01 00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-02-30T00:00:00Z",
            "2025-01-01T24:00:00Z",
            "2025-01-01T00:00:00.Z",
            "1735689600",
        ],
    )
    def test_not_rfc3339_is_validation_failed(self, api: httpx.Client, name: str, raw: str) -> None:
        assert_error(api.get("/posts/list", params={name: raw}), 400, "validation failed")

    @pytest.mark.parametrize(
        "params",
        [
            {"author_id": "-1"},
            {"offset": "-1"},
            {"limit": "-1"},
            {"limit": "101"},
            {"author_id": "-9223372036854775808"},
        ],
        ids=str,
    )
    def test_out_of_range_is_validation_failed_not_500(self, api: httpx.Client, params: dict[str, str]) -> None:
        assert_error(api.get("/posts/list", params=params), 400, "validation failed")

    def test_order_of_checks(self, api: httpx.Client) -> None:
        """Each value is parsed in turn (author, times, offset, limit), then the ranges are checked."""
        bad_time = "2025-01-01"
        assert_error(api.get("/posts/list", params={"author_id": "x", "created_after": bad_time}), 400, "invalid input")
        assert_error(
            api.get("/posts/list", params={"created_before": bad_time, "offset": "x"}), 400, "validation failed"
        )
        assert_error(api.get("/posts/list", params={"author_id": "-1", "limit": "x"}), 400, "invalid input")
        assert_error(api.get("/posts/list", params={"limit": "101", "offset": "x"}), 400, "invalid input")


class TestGetPost:
    """Route 15: GET /posts/{id}."""

    def test_every_part(self, api: httpx.Client, register: Register) -> None:
        author = register(**PROFILE)
        media = [
            {"url": "https://x.io/v.mp4", "type": "video", "position": 3},
            {"url": "https://x.io/a.png", "type": "image", "position": 1},
        ]
        created = create(api, author, title="Full", content="Some content", tags=["art", "sea"], media_items=media)
        post = data_of(api.get(f"/posts/{created['id']}"))
        assert set(post) == POST_KEYS
        assert post["author"] == {
            "id": author.id,
            "username": author.username,
            "full_name": PROFILE["full_name"],
            "avatar_url": PROFILE["avatar_url"],
        }
        assert_post(post, title="Full", content="Some content", created_at=created["created_at"])
        assert post["tags"] == [{"id": 0, "name": "art"}, {"id": 0, "name": "sea"}]
        assert [{k: m[k] for k in ("url", "type", "position")} for m in post["media"]] == media[::-1]
        assert all(set(m) == {"id", "url", "type", "position"} and type(m["id"]) is int for m in post["media"])
        assert [m["id"] for m in post["media"]] == [m["id"] for m in created["media"]]

    def test_empty_parts_are_omitted(self, api: httpx.Client, account: Account) -> None:
        created = create(api, account, content="", tags=[], media_items=[])
        post = data_of(api.get(f"/posts/{created['id']}"))
        assert set(post) == {"id", "author", "title", "created_at", "updated_at"}
        assert post["author"] == {"id": account.id, "username": account.username}

    def test_go_integer_syntax(self, api: httpx.Client, account: Account) -> None:
        post_id = create(api, account)["id"]
        assert data_of(api.get(f"/posts/+{post_id}"))["id"] == post_id
        assert data_of(api.get(f"/posts/00{post_id}"))["id"] == post_id

    @pytest.mark.parametrize("raw", ["abc", "1.5", "1e3", "9223372036854775808", "%201"])
    def test_not_an_int64_is_invalid_input(self, api: httpx.Client, raw: str) -> None:
        assert_error(api.get(f"/posts/{raw}"), 400, "invalid input")

    @pytest.mark.parametrize("raw", ["0", "-1", "-9223372036854775808"])
    def test_below_one_is_post_validation_failed(self, api: httpx.Client, raw: str) -> None:
        assert_error(api.get(f"/posts/{raw}"), 400, "post validation failed")

    def test_not_found(self, api: httpx.Client) -> None:
        assert_error(api.get("/posts/9223372036854775807"), 404, "post not found")

    def test_list_is_not_captured_by_the_id(self, api: httpx.Client) -> None:
        assert set(data_of(api.get("/posts/list"))) == {"posts", "total"}


class TestCreatePost:
    """Route 16: POST /posts (JWT); the author is the caller."""

    def test_success_is_201_with_the_author_flattened(self, api: httpx.Client, register: Register) -> None:
        author = register(**PROFILE)
        post = create(api, author, title="Hello", content="World", tags=["t1"], media_items=[IMAGE])
        assert set(post) == CREATED_KEYS
        assert (post["author_full_name"], post["author_bio"], post["author_avatar_url"]) == (
            PROFILE["full_name"],
            PROFILE["bio"],
            PROFILE["avatar_url"],
        )
        assert (post["title"], post["content"], post["tags"]) == ("Hello", "World", [{"id": 0, "name": "t1"}])
        [media] = post["media"]
        assert set(media) == {"id", "url", "type", "position"} and {**media, "id": 0} == {**IMAGE, "id": 0}
        assert_post(data_of(api.get(f"/posts/{post['id']}")), author, title="Hello", content="World")

    def test_only_a_title(self, api: httpx.Client, account: Account) -> None:
        post = create(api, account, title="T")  # one character: the gateway's rule, not upstream backend's 3
        assert set(post) == {"id", "title", "created_at", "updated_at", "author_id", "author_username", "author_email"}

    def test_the_author_is_the_caller_not_the_body(self, api: httpx.Client, account: Account, other: Account) -> None:
        post = create(api, account, author_id=other.id, user_id=other.id)
        assert post["author_id"] == account.id

    def test_short_content_and_tags_are_accepted(self, api: httpx.Client, account: Account) -> None:
        # upstream's backend refused content < 10 and tags < 2 characters with a 500 (§7.7)
        post = create(api, account, title="ab", content="short", tags=["a", "b", "a"])
        assert (post["content"], [t["name"] for t in post["tags"]]) == ("short", ["a", "b"])

    def test_media_limits_and_order(self, api: httpx.Client, account: Account) -> None:
        nine = [{"url": f"https://x.io/{i}.png", "type": "image", "position": 9 - i} for i in range(9)]
        post = create(api, account, media_items=nine)
        assert [m["position"] for m in post["media"]] == list(range(1, 10))
        same = [IMAGE, {**IMAGE, "url": "https://x.io/2.png"}]  # duplicate positions are allowed
        assert len(create(api, account, media_items=same)["media"]) == 2
        longest = {**IMAGE, "url": "https://x.io/" + "a" * (512 - len("https://x.io/"))}
        assert create(api, account, media_items=[longest])["media"][0]["url"] == longest["url"]

    def test_lengths_count_code_points(self, api: httpx.Client, account: Account) -> None:
        assert create(api, account, title="😀" * 255)["title"] == "😀" * 255
        assert_error(api.post("/posts", json={"title": "😀" * 256}, headers=account.headers), 400, "validation failed")

    @pytest.mark.parametrize(
        "fields",
        [
            {"title": ""},
            {"title": None},
            {"title": "x" * 256},
            {"media_items": [IMAGE] * 10},
            {"media_items": [None]},
            {"media_items": [IMAGE, None]},
            {"media_items": [{}]},
            {"media_items": [{**IMAGE, "url": ""}]},
            {"media_items": [{**IMAGE, "url": "not-a-url"}]},
            {"media_items": [{**IMAGE, "url": "https://x.io/" + "a" * 500}]},
            {"media_items": [{**IMAGE, "type": "gif"}]},
            {"media_items": [{**IMAGE, "type": "IMAGE"}]},
            {"media_items": [{**IMAGE, "type": ""}]},
            {"media_items": [{**IMAGE, "position": 0}]},
            {"media_items": [{**IMAGE, "position": 10}]},
            {"media_items": [{"url": IMAGE["url"], "type": "image"}]},
            {"tags": [""]},
            {"tags": [None]},
            {"tags": ["x" * 51]},
            {"tags": [f"t{i}" for i in range(11)]},
            {"content": "a\x00b"},
            {"tags": ["a\x00b"]},
        ],
        ids=lambda f: f"{next(iter(f))}={str(next(iter(f.values())))[:24]!r}",
    )
    def test_validation_failed(self, api: httpx.Client, account: Account, fields: dict) -> None:
        body = {"title": "A title", **fields}
        assert_error(api.post("/posts", json=body, headers=account.headers), 400, "validation failed")

    @pytest.mark.parametrize(
        "raw",
        [
            b"",
            b"[]",
            b'{"title": 5}',
            b'{"title": "t", "content": 5}',
            b'{"title": "t", "tags": "a"}',
            b'{"title": "t", "tags": [1]}',
            b'{"title": "t", "media_items": {}}',
            b'{"title": "t", "media_items": [{"url": 5, "type": "image", "position": 1}]}',
            b'{"title": "t", "media_items": [{"url": "https://x.io", "type": 5, "position": 1}]}',
            b'{"title": "t", "media_items": [{"url": "https://x.io", "type": "image", "position": "1"}]}',
            b'{"title": "t", "media_items": [{"url": "https://x.io", "type": "image", "position": 1.5}]}',
            b'{"title": "t", "media_items": [5]}',
        ],
    )
    def test_invalid_input(self, api: httpx.Client, account: Account, raw: bytes) -> None:
        assert_error(api.post("/posts", content=raw, headers=account.headers), 400, "invalid input")

    def test_decoding_errors_come_before_rule_violations(self, api: httpx.Client, account: Account) -> None:
        body = {"title": "", "media_items": [{**IMAGE, "position": "1"}]}
        assert_error(api.post("/posts", json=body, headers=account.headers), 400, "invalid input")


class TestUpdatePost:
    """Route 17: PUT /posts/{id} (JWT); id, then body, then the service (403, 404)."""

    def test_success(self, api: httpx.Client, account: Account) -> None:
        created = create(api, account, title="Old", content="Old content", tags=["old"], media_items=[IMAGE])
        video = {"url": "https://x.io/new.mp4", "type": "video", "position": 2}
        body = {"title": "New", "content": "New content", "tags": ["n1", "n2"], "media_items": [video]}
        post = data_of(api.put(f"/posts/{created['id']}", json=body, headers=account.headers))
        assert_post(post, account, title="New", content="New content", created_at=created["created_at"])
        assert [t["name"] for t in post["tags"]] == ["n1", "n2"]
        assert [{k: m[k] for k in ("url", "type", "position")} for m in post["media"]] == [video]
        assert data_of(api.get(f"/posts/{created['id']}")) == post

    def test_empty_or_absent_fields_are_unchanged(self, api: httpx.Client, account: Account) -> None:
        created = create(api, account, title="Keep", content="Keep this", tags=["k"], media_items=[IMAGE])
        before = data_of(api.get(f"/posts/{created['id']}"))
        for body in ({}, {"title": "", "content": "", "tags": [], "media_items": []}, {"title": None}):
            post = data_of(api.put(f"/posts/{created['id']}", json=body, headers=account.headers))
            assert {k: v for k, v in post.items() if k != "updated_at"} == {
                k: v for k, v in before.items() if k != "updated_at"
            }

    def test_someone_elses_post_is_forbidden(self, api: httpx.Client, account: Account, other: Account) -> None:
        post_id = create(api, other, title="Mine")["id"]
        response = api.put(f"/posts/{post_id}", json={"title": "Stolen"}, headers=account.headers)
        assert_error(response, 403, "forbidden")
        assert data_of(api.get(f"/posts/{post_id}"))["title"] == "Mine"

    def test_not_found(self, api: httpx.Client, account: Account) -> None:
        response = api.put("/posts/9223372036854775807", json={"title": "x"}, headers=account.headers)
        assert_error(response, 404, "post not found")

    @pytest.mark.parametrize(
        "fields",
        [
            {"title": "x" * 256},
            {"media_items": [IMAGE] * 10},
            {"media_items": [None]},
            {"media_items": [{**IMAGE, "type": "gif"}]},
            {"media_items": [{**IMAGE, "position": 0}]},
            {"tags": ["x" * 51]},
        ],
        ids=lambda f: f"{next(iter(f))}={str(next(iter(f.values())))[:24]!r}",
    )
    def test_validation_failed(self, api: httpx.Client, account: Account, fields: dict) -> None:
        post_id = create(api, account)["id"]
        assert_error(api.put(f"/posts/{post_id}", json=fields, headers=account.headers), 400, "validation failed")

    def test_order_of_checks(self, api: httpx.Client, account: Account, other: Account) -> None:
        """Invalid id, then the body (decoding, rules), then id ≤ 0, then forbidden / not found."""
        mine, theirs = create(api, account)["id"], create(api, other)["id"]

        def put(path_id: object, body: bytes) -> httpx.Response:
            return api.put(f"/posts/{path_id}", content=body, headers=account.headers)

        too_long = b'{"title": "' + b"x" * 256 + b'"}'
        assert_error(put("abc", b"{"), 400, "invalid input")
        assert_error(put("abc", too_long), 400, "invalid input")  # the id before the body
        assert_error(put(0, b"{"), 400, "invalid input")
        assert_error(put(0, too_long), 400, "validation failed")  # the body before the id's range
        assert_error(put(0, b"{}"), 400, "post validation failed")
        assert_error(put(-1, b'{"title": "ok"}'), 400, "post validation failed")
        assert_error(put(theirs, too_long), 400, "validation failed")  # the body before ownership
        assert_error(put(theirs, b"{}"), 403, "forbidden")
        assert_error(put(9223372036854775807, b"{}"), 404, "post not found")
        assert data_of(api.put(f"/posts/{mine}", content=b"{}", headers=account.headers))["id"] == mine


class TestDeletePost:
    """Route 18: DELETE /posts/{id} (JWT)."""

    def test_success_has_no_data(self, api: httpx.Client, account: Account) -> None:
        post_id = create(api, account, tags=["gone"], media_items=[IMAGE])["id"]
        assert_status_only(api.delete(f"/posts/{post_id}", headers=account.headers))
        assert_error(api.get(f"/posts/{post_id}"), 404, "post not found")
        assert listing(api, author_id=account.id) == {"posts": [], "total": 0}
        assert_error(api.delete(f"/posts/{post_id}", headers=account.headers), 404, "post not found")

    def test_someone_elses_post_is_forbidden(self, api: httpx.Client, account: Account, other: Account) -> None:
        post_id = create(api, other)["id"]
        assert_error(api.delete(f"/posts/{post_id}", headers=account.headers), 403, "forbidden")
        assert data_of(api.get(f"/posts/{post_id}"))["id"] == post_id

    def test_not_found(self, api: httpx.Client, account: Account) -> None:
        assert_error(api.delete("/posts/9223372036854775807", headers=account.headers), 404, "post not found")

    @pytest.mark.parametrize("raw", ["abc", "1.5", "99999999999999999999"])
    def test_not_an_int64_is_invalid_input(self, api: httpx.Client, account: Account, raw: str) -> None:
        assert_error(api.delete(f"/posts/{raw}", headers=account.headers), 400, "invalid input")

    @pytest.mark.parametrize("raw", ["0", "-1"])
    def test_below_one_is_post_validation_failed_not_500(self, api: httpx.Client, account: Account, raw: str) -> None:
        assert_error(api.delete(f"/posts/{raw}", headers=account.headers), 400, "post validation failed")

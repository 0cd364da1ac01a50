"""Every field that holds a URL (avatar_url of register, POST /users and PUT /users/avatar; the
media url of POST and PUT /posts) takes only what every client may be handed and fetch: http or
https, no credentials, no loopback, link-local or private host. Anything else is the contract's
400 `validation failed`, and nothing is stored."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from gateway_contract import PASSWORD, Account, assert_error, assert_status_only, data_of, unique_name

pytestmark = pytest.mark.contract

Register = Callable[..., Account]

# One of each kind the rule refuses (the kit's unit tests hold the full list).
REFUSED = [
    "javascript:alert(1)",
    "mailto:a@b.co",
    "ftp://x.io/a.png",
    "https://user:secret@x.io/a.png",
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1:8101/users",
    "http://[::1]/a.png",
    "http://10.0.0.7/a.png",
    "http://192.168.0.1/a.png",
    "http://2130706433/a.png",
    "http://localhost/a.png",
    "http://metadata.google.internal/a.png",
]
ACCEPTED = ["https://picsum.photos/300/300", "HTTP://X.IO/A.PNG", "https://8.8.8.8/a.png"]


def media(url: str) -> dict[str, object]:
    return {"url": url, "type": "image", "position": 1}


@pytest.mark.parametrize("url", REFUSED)
class TestRefused:
    def test_register_avatar(self, api: httpx.Client, url: str) -> None:
        name = unique_name()
        body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD, "avatar_url": url}
        assert_error(api.post("/auth/register", json=body), 400, "validation failed")
        assert_error(api.get(f"/users/username/{name}"), 404, "user not found")

    def test_create_user_avatar(self, api: httpx.Client, account: Account, url: str) -> None:
        name = unique_name()
        body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD, "avatar_url": url}
        assert_error(api.post("/users", json=body, headers=account.headers), 400, "validation failed")
        assert_error(api.get(f"/users/username/{name}"), 404, "user not found")

    def test_set_avatar(self, api: httpx.Client, register: Register, url: str) -> None:
        account = register(avatar_url="https://x.io/before.png")
        response = api.put("/users/avatar", json={"avatar_url": url}, headers=account.headers)
        assert_error(response, 400, "validation failed")
        assert data_of(api.get(f"/users/{account.id}"))["avatar_url"] == "https://x.io/before.png"

    def test_create_post_media(self, api: httpx.Client, account: Account, url: str) -> None:
        body = {"title": "linked", "media_items": [media("https://x.io/ok.png"), {**media(url), "position": 2}]}
        assert_error(api.post("/posts", json=body, headers=account.headers), 400, "validation failed")
        assert data_of(api.get("/posts/list", params={"author_id": account.id}))["total"] == 0

    def test_update_post_media(self, api: httpx.Client, account: Account, url: str) -> None:
        body = {"title": "linked", "media_items": [media("https://x.io/ok.png")]}
        post = data_of(api.post("/posts", json=body, headers=account.headers), 201)["id"]
        update = api.put(f"/posts/{post}", json={"media_items": [media(url)]}, headers=account.headers)
        assert_error(update, 400, "validation failed")
        assert [m["url"] for m in data_of(api.get(f"/posts/{post}"))["media"]] == ["https://x.io/ok.png"]


@pytest.mark.parametrize("url", ACCEPTED)
def test_public_web_addresses_are_stored_as_sent(api: httpx.Client, account: Account, url: str) -> None:
    assert_status_only(api.put("/users/avatar", json={"avatar_url": url}, headers=account.headers))
    assert data_of(api.get(f"/users/{account.id}"))["avatar_url"] == url
    post = data_of(
        api.post("/posts", json={"title": "linked", "media_items": [media(url)]}, headers=account.headers), 201
    )
    assert [m["url"] for m in post["media"]] == [url]

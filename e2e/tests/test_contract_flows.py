"""The upstream API's flows (contract §1.4) as a client app walks them: auth, users, posts,
follows and notifications, with the contract's status codes and error strings."""

from __future__ import annotations

from pinstack_e2e.client import Api, assert_error, data_of, new_password, unique_name
from pinstack_e2e.tokens import parts

# -- auth (routes 1-5) -------------------------------------------------------------------------


def test_register_rejects_duplicates_and_bad_input(api: Api, new_account) -> None:
    taken = new_account("dup")
    body = {"username": taken.username, "email": f"{unique_name('x')}@example.com", "password": new_password()}
    assert_error(api.post("/auth/register", json=body), 409, "username already exists")
    body = {"username": unique_name("dup"), "email": taken.email, "password": new_password()}
    assert_error(api.post("/auth/register", json=body), 409, "email already exists")
    assert_error(api.post("/auth/register", content=b"{not json"), 400, "invalid input")
    assert_error(
        api.post("/auth/register", json={"username": 5, "email": "a@b.co", "password": "x"}), 400, "invalid input"
    )
    assert_error(
        api.post("/auth/register", json={"username": "ab", "email": "a@b.co", "password": "longenough1"}),
        400,
        "validation failed",
    )
    assert_error(
        api.post("/auth/register", json={"username": unique_name(), "email": "nope", "password": "longenough1"}),
        400,
        "validation failed",
    )


def test_login_by_username_or_email_and_its_errors(api: Api, new_account) -> None:
    user = new_account("login")
    for login in (user.username, user.email):
        pair = api.login(login, user.password)
        assert set(pair) == {"access_token", "refresh_token"}
        assert parts(pair["access_token"])[1]["user_id"] == user.id
    assert_error(
        api.post("/auth/login", json={"login": user.username, "password": new_password()}), 401, "invalid credentials"
    )
    assert_error(
        api.post("/auth/login", json={"login": unique_name("ghost"), "password": new_password()}), 404, "user not found"
    )
    assert_error(api.post("/auth/login", json={"login": user.username}), 400, "validation failed")


def test_refresh_rotates_the_pair_and_the_old_token_dies(api: Api, new_account) -> None:
    user = new_account("rotate")
    fresh = data_of(api.refresh(user.refresh), 200)
    assert fresh["refresh_token"] != user.refresh and fresh["access_token"] != user.access
    assert data_of(api.get("/notification/unread-count", token=fresh["access_token"]), 200) == {"count": 0}
    assert_error(api.refresh(user.refresh), 401, "invalid refresh token")
    assert_error(api.refresh("not-a-token"), 401, "invalid refresh token")
    assert_error(api.post("/auth/refresh", json={}), 400, "validation failed")


def test_logout_ends_the_session(api: Api, new_account) -> None:
    user = new_account("logout")
    response = api.post("/auth/logout", json={"refresh_token": user.refresh})
    assert response.status_code == 200 and response.json() == {"status": 200}
    assert_error(api.refresh(user.refresh), 401, "invalid refresh token")
    assert_error(api.post("/auth/logout", json={"refresh_token": user.refresh}), 401, "invalid refresh token")
    # and the access token of that session ends with it
    assert_error(api.get("/notification/unread-count", token=user.access), 401, "unauthenticated")


def test_password_change_swaps_the_password_and_ends_sessions(api: Api, new_account) -> None:
    user = new_account("passwd")
    other_session = api.login(user.username, user.password)["refresh_token"]
    wrong = {"old_password": new_password(), "new_password": new_password()}
    assert_error(api.post("/auth/update-password", token=user.access, json=wrong), 401, "invalid credentials")

    new = new_password()
    api.secrets.add(new)
    changed = api.post(
        "/auth/update-password", token=user.access, json={"old_password": user.password, "new_password": new}
    )
    assert data_of(changed, 200) == {"message": "Password updated successfully"}
    assert_error(
        api.post("/auth/login", json={"login": user.username, "password": user.password}), 401, "invalid credentials"
    )
    fresh = api.login(user.username, new)
    for refresh in (user.refresh, other_session):
        assert_error(api.refresh(refresh), 401, "invalid refresh token")
    assert_error(api.get("/notification/unread-count", token=user.access), 401, "unauthenticated")
    assert data_of(api.get("/notification/unread-count", token=fresh["access_token"]), 200) == {"count": 0}


# -- users (routes 6-13) -----------------------------------------------------------------------


def test_user_read_update_avatar_and_create(api: Api, new_account) -> None:
    user = new_account("prof")
    by_id = data_of(api.get(f"/users/{user.id}"), 200)
    assert by_id["username"] == user.username and by_id["email"] == user.email
    assert "password" not in by_id
    assert data_of(api.get(f"/users/username/{user.username}"), 200)["id"] == user.id
    assert data_of(api.get(f"/users/email/{user.email}"), 200)["id"] == user.id
    assert_error(api.get("/users/abc"), 400, "invalid input")
    assert_error(api.get("/users/0"), 400, "validation failed")
    assert_error(api.get("/users/999999999"), 404, "user not found")
    assert_error(api.get("/users/email/not-an-email"), 400, "validation failed")

    updated = data_of(api.put("/users", token=user.access, json={"id": user.id, "bio": "Writes end-to-end tests"}), 200)
    assert updated["bio"] == "Writes end-to-end tests" and updated["username"] == user.username
    assert data_of(api.get(f"/users/{user.id}"), 200)["bio"] == "Writes end-to-end tests"
    avatar = api.put("/users/avatar", token=user.access, json={"avatar_url": "https://picsum.photos/200"})
    assert avatar.status_code == 200 and avatar.json() == {"status": 200}
    assert data_of(api.get(f"/users/{user.id}"), 200)["avatar_url"] == "https://picsum.photos/200"
    assert_error(
        api.put("/users/avatar", token=user.access, json={"avatar_url": "not-a-url"}), 400, "validation failed"
    )

    name, password = unique_name("made"), new_password()
    api.secrets.add(password)
    made = data_of(
        api.post(
            "/users",
            token=user.access,
            json={"username": name, "email": f"{name}@example.com", "password": password, "full_name": "Made By Hand"},
        ),
        201,
    )
    assert made["username"] == name and "password" not in made
    api.login(name, password)  # stored hashed, like every other password: it signs in


def test_search_has_a_real_total_and_a_stable_order(api: Api, new_account) -> None:
    marker = unique_name("srch")
    users = [new_account("srch", bio="searchable", full_name=f"{marker} number {i}") for i in range(3)]
    first = data_of(api.get("/users/search", params={"query": marker, "page": 1, "limit": 2}), 200)
    second = data_of(api.get("/users/search", params={"query": marker, "page": 2, "limit": 2}), 200)
    assert first["total"] == second["total"] == 3
    found = [u["id"] for u in first["users"]] + [u["id"] for u in second["users"]]
    assert sorted(found) == sorted(u.id for u in users)
    again = data_of(api.get("/users/search", params={"query": marker, "page": 1, "limit": 2}), 200)
    assert [u["id"] for u in again["users"]] == [u["id"] for u in first["users"]]
    assert_error(api.get("/users/search"), 400, "invalid search query")


def test_search_wildcards_are_literal(api: Api, new_account) -> None:
    marker = unique_name("wild")
    new_account("wild", full_name=f"abcXdef {marker}")
    for pattern in (f"abc_def {marker}", f"abc%def {marker}"):
        assert data_of(api.get("/users/search", params={"query": pattern}), 200) == {"users": [], "total": 0}, pattern
    assert data_of(api.get("/users/search", params={"query": f"abcxdef {marker}"}), 200)["total"] == 1


# -- posts (routes 14-18) ------------------------------------------------------------------------


def test_post_crud(api: Api, new_account) -> None:
    author = new_account("poster")
    post = api.create_post(author, "Draft", tags=["one", "two"])
    post_id = post["id"]
    updated = data_of(
        api.put(f"/posts/{post_id}", token=author.access, json={"title": "Final", "tags": ["three"]}), 200
    )
    assert updated["title"] == "Final" and [t["name"] for t in updated["tags"]] == ["three"]
    assert updated["content"] == post["content"], "an absent content must stay unchanged"
    shown = data_of(api.get(f"/posts/{post_id}"), 200)
    assert shown["title"] == "Final" and shown["author"]["username"] == author.username

    assert_error(api.get("/posts/abc"), 400, "invalid input")
    assert_error(api.get("/posts/0"), 400, "post validation failed")
    assert_error(api.post("/posts", token=author.access, json={"content": "no title"}), 400, "validation failed")
    bad_media = {"title": "t", "media_items": [{"url": "https://x.y/a", "type": "gif", "position": 1}]}
    assert_error(api.post("/posts", token=author.access, json=bad_media), 400, "validation failed")

    deleted = api.delete(f"/posts/{post_id}", token=author.access)
    assert deleted.status_code == 200 and deleted.json() == {"status": 200}
    assert_error(api.get(f"/posts/{post_id}"), 404, "post not found")
    assert_error(api.delete(f"/posts/{post_id}", token=author.access), 404, "post not found")


def test_post_list_filters_and_paging(api: Api, new_account) -> None:
    author = new_account("lister")
    ids = [api.create_post(author, f"Post {i}")["id"] for i in range(3)]
    everything = data_of(api.get("/posts/list", params={"author_id": author.id}), 200)
    assert everything["total"] == 3
    assert [p["id"] for p in everything["posts"]] == sorted(ids, reverse=True), "newest first"
    page = data_of(api.get("/posts/list", params={"author_id": author.id, "offset": 1, "limit": 1}), 200)
    assert page["total"] == 3 and [p["id"] for p in page["posts"]] == [sorted(ids, reverse=True)[1]]
    assert all(p["author"]["id"] == author.id for p in everything["posts"])
    future = data_of(
        api.get("/posts/list", params={"author_id": author.id, "created_after": "2999-01-01T00:00:00Z"}), 200
    )
    assert future == {"posts": [], "total": 0}
    assert_error(api.get("/posts/list", params={"author_id": "x"}), 400, "invalid input")
    assert_error(api.get("/posts/list", params={"created_after": "yesterday"}), 400, "validation failed")


# -- relations (routes 19-22) --------------------------------------------------------------------


def test_follow_unfollow_and_the_lists(api: Api, new_account) -> None:
    star, fan1, fan2 = new_account("star"), new_account("fan"), new_account("fan")
    assert data_of(api.post("/relation/follow", token=fan1.access, json={"followee_id": star.id}), 200) == {
        "message": "Followed successfully"
    }
    api.follow(fan2, star)
    assert_error(
        api.post("/relation/follow", token=fan1.access, json={"followee_id": star.id}),
        409,
        "already following this user",
    )
    assert_error(
        api.post("/relation/follow", token=fan1.access, json={"followee_id": fan1.id}), 400, "cannot follow yourself"
    )
    assert_error(
        api.post("/relation/follow", token=fan1.access, json={"followee_id": 999999999}), 404, "user not found"
    )
    assert_error(api.post("/relation/follow", token=fan1.access, json={"followee_id": 0}), 400, "validation failed")

    followers = data_of(api.get(f"/relation/{star.id}/followers", params={"limit": 1, "page": 1}), 200)
    assert followers["total"] == 2 and followers["limit"] == 1 and followers["page"] == 1
    assert [u["id"] for u in followers["followers"]] == [fan2.id], "newest follower first"
    followees = data_of(api.get(f"/relation/{fan1.id}/followees"), 200)
    assert [(u["id"], u["username"]) for u in followees["followees"]] == [(star.id, star.username)]
    assert_error(api.get("/relation/abc/followers"), 400, "invalid input")
    assert_error(api.get("/relation/0/followees"), 400, "validation failed")

    assert data_of(api.post("/relation/unfollow", token=fan1.access, json={"followee_id": star.id}), 200) == {
        "message": "Unfollowed successfully"
    }
    assert_error(
        api.post("/relation/unfollow", token=fan1.access, json={"followee_id": star.id}),
        404,
        "follow relation not found",
    )
    assert_error(
        api.post("/relation/unfollow", token=fan1.access, json={"followee_id": fan1.id}),
        400,
        "cannot unfollow yourself",
    )
    assert [u["id"] for u in data_of(api.get(f"/relation/{star.id}/followers"), 200)["followers"]] == [fan2.id]


# -- notifications (routes 23-29) ------------------------------------------------------------------


def test_notifications_send_read_count_and_delete(api: Api, new_account) -> None:
    sender, reader = new_account("sender"), new_account("reader")
    sent = [
        data_of(
            api.post(
                "/notification/send",
                token=sender.access,
                json={"user_id": reader.id, "type": "system", "payload": {"n": i}},
            ),
            200,
        )
        for i in range(3)
    ]
    assert all(s["message"] == "Notification sent successfully" for s in sent)
    first, second, third = (s["notification_id"] for s in sent)
    assert_error(
        api.post(
            "/notification/send", token=sender.access, json={"user_id": 999999999, "type": "system", "payload": {}}
        ),
        404,
        "user not found",
    )

    page = data_of(api.get("/notification/feed", token=reader.access, params={"page": 1, "limit": 2}), 200)
    assert page["total"] == 3 and page["total_pages"] == 2 and page["page"] == 1 and page["limit"] == 2
    assert [n["id"] for n in page["notifications"]] == [third, second], "newest first"
    assert_error(api.get("/notification/feed", token=reader.access, params={"limit": 0}), 400, "invalid input")
    one = data_of(api.get(f"/notification/{first}", token=reader.access), 200)
    assert (
        one["user_id"] == reader.id
        and one["type"] == "system"
        and one["payload"] == {"n": 0}
        and one["is_read"] is False
    )
    assert data_of(api.get("/notification/unread-count", token=reader.access), 200) == {"count": 3}

    assert data_of(api.put(f"/notification/{first}/read", token=reader.access), 200) == {
        "success": True,
        "message": "Notification marked as read",
    }
    assert data_of(api.put(f"/notification/{first}/read", token=reader.access), 200) == {
        "success": True,
        "message": "Notification already marked as read",
    }
    assert data_of(api.get("/notification/unread-count", token=reader.access), 200) == {"count": 2}
    assert data_of(api.put("/notification/read-all", token=reader.access), 200) == {
        "success": True,
        "message": "All notifications marked as read",
    }
    assert data_of(api.get("/notification/unread-count", token=reader.access), 200) == {"count": 0}

    assert data_of(api.delete(f"/notification/{second}", token=reader.access), 200) == {
        "success": True,
        "message": "Notification removed successfully",
    }
    assert_error(api.delete(f"/notification/{second}", token=reader.access), 404, "notification not found")
    assert_error(api.get(f"/notification/{second}", token=reader.access), 404, "notification not found")
    assert_error(api.get("/notification/abc", token=reader.access), 400, "invalid input")
    assert_error(api.get("/notification/0", token=reader.access), 400, "validation failed")
    assert data_of(api.get("/notification/feed", token=reader.access), 200)["total"] == 2

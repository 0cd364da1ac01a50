"""A user's life on Pinstack, end to end through the public API: sign up, post, follow, the
home feed, likes, comments with replies and @mentions, the notifications they cause (each
exactly once), and the deletion of the account taking everything of it along."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pinstack_e2e.client import Account, Api, assert_error, data_of, unique_name
from pinstack_e2e.wait import eventually

MEDIA = [
    {"url": "https://picsum.photos/300/300", "type": "image", "position": 1},
    {"url": "https://example.com/clip.mp4", "type": "video", "position": 2},
]


def notification_types(api: Api, account: Account) -> Counter[str]:
    return Counter(n["type"] for n in api.notifications(account))


def await_notifications(api: Api, account: Account, expected: dict[str, int], what: str) -> list[dict[str, Any]]:
    """Wait until `account` has at least `expected` notifications of each type; return them all."""

    def enough(items: list[dict[str, Any]]) -> bool:
        counts = Counter(n["type"] for n in items)
        return all(counts[kind] >= n for kind, n in expected.items())

    return eventually(lambda: api.notifications(account), enough, what=what)


def feed_ids(api: Api, account: Account) -> list[int]:
    page = data_of(api.get("/feed", token=account.access, params={"limit": 100}), 200)
    return [item["id"] for item in page["items"]]


def test_post_follow_feed_like_comment_mention_notify(api: Api, new_account) -> None:
    alice, bob, carol = new_account("alice"), new_account("bob"), new_account("carol")

    created = api.create_post(
        alice, "Hello Pinstack", content="My very first post here.", tags=["intro", "hello"], media_items=MEDIA
    )
    post_id = created["id"]
    assert created["author_id"] == alice.id and created["author_username"] == alice.username
    assert sorted(t["name"] for t in created["tags"]) == ["hello", "intro"]
    assert [(m["type"], m["position"]) for m in created["media"]] == [("image", 1), ("video", 2)]
    public = data_of(api.get(f"/posts/{post_id}"), 200)
    assert public["author"]["id"] == alice.id and public["title"] == "Hello Pinstack"

    api.follow(bob, alice)
    followers = data_of(api.get(f"/relation/{alice.id}/followers"), 200)
    assert [u["id"] for u in followers["followers"]] == [bob.id]

    eventually(
        lambda: feed_ids(api, bob), lambda ids: post_id in ids, what=f"post {post_id} in the follower's home feed"
    )
    assert post_id not in feed_ids(api, carol), "a post reached the feed of someone who does not follow its author"
    assert post_id in feed_ids(api, alice), "an author's home feed must show their own post"

    # Like, take it back, like again: the same like, so alice hears of it once.
    assert data_of(api.put(f"/posts/{post_id}/like", token=bob.access), 200) == {"liked": True, "like_count": 1}
    assert data_of(api.put(f"/posts/{post_id}/like", token=bob.access), 200) == {"liked": True, "like_count": 1}
    assert data_of(api.delete(f"/posts/{post_id}/like", token=bob.access), 200) == {"liked": False, "like_count": 0}
    assert data_of(api.put(f"/posts/{post_id}/like", token=bob.access), 200) == {"liked": True, "like_count": 1}

    comment = data_of(
        api.post(f"/posts/{post_id}/comments", token=bob.access, json={"content": f"Welcome! cc @{carol.username}"}),
        201,
    )
    assert comment["post_id"] == post_id and comment["author_id"] == bob.id and comment["parent_id"] is None
    reply = data_of(
        api.post(
            f"/posts/{post_id}/comments", token=alice.access, json={"content": "Thank you!", "parent_id": comment["id"]}
        ),
        201,
    )
    assert reply["parent_id"] == comment["id"]

    top = data_of(api.get(f"/posts/{post_id}/comments"), 200)["comments"]
    assert [(c["id"], c["reply_count"]) for c in top] == [(comment["id"], 1)]
    replies = data_of(api.get(f"/posts/{post_id}/comments", params={"parent_id": comment["id"]}), 200)["comments"]
    assert [c["id"] for c in replies] == [reply["id"]]
    likes = data_of(api.get(f"/posts/{post_id}/likes"), 200)["likes"]
    assert [like["user_id"] for like in likes] == [bob.id]

    item = eventually(
        lambda: next(i for i in data_of(api.get("/feed", token=bob.access), 200)["items"] if i["id"] == post_id),
        lambda i: i["like_count"] == 1 and i["comment_count"] == 2,
        what="the feed item's like and comment counters",
    )
    assert item["liked"] is True

    # Activity events are keyed by post: once the last one (the reply) is announced, the
    # re-like before it has been processed too, so duplicates would be visible now.
    mine = await_notifications(
        api, alice, {"follow_created": 1, "like": 1, "comment": 1}, "alice's follow, like and comment notifications"
    )
    await_notifications(api, bob, {"comment_reply": 1}, "bob's reply notification")
    theirs = await_notifications(api, carol, {"mention": 1}, "carol's mention notification")

    assert Counter(n["type"] for n in mine) == {"follow_created": 1, "like": 1, "comment": 1}
    by_type = {n["type"]: n for n in mine}
    assert by_type["follow_created"]["payload"]["follower_id"] == bob.id
    assert by_type["follow_created"]["payload"]["followee_id"] == alice.id
    assert by_type["like"]["payload"] == {"post_id": post_id, "user_id": bob.id}
    assert by_type["comment"]["payload"]["comment_id"] == comment["id"]
    assert Counter(n["type"] for n in theirs) == {"mention": 1}
    assert theirs[0]["payload"]["comment_id"] == comment["id"] and theirs[0]["payload"]["author_id"] == bob.id
    assert notification_types(api, bob) == {"comment_reply": 1}, "bob was notified of his own actions"
    assert data_of(api.get("/notification/unread-count", token=alice.access), 200) == {"count": 3}


def _erased_account(api: Api, new_account) -> tuple[Account, Account, dict[str, int]]:
    """`doomed` posts, follows and is followed by `friend`, likes and comments on friend's post,
    is liked back (so has notifications), then deletes the account."""
    friend, doomed = new_account("friend"), new_account("doomed")
    friend_post = api.create_post(friend, "Friend's post")["id"]
    api.follow(doomed, friend)
    api.follow(friend, doomed)
    doomed_post = api.create_post(doomed, "Doomed's post", tags=["gone"], media_items=MEDIA[:1])["id"]
    data_of(api.put(f"/posts/{friend_post}/like", token=doomed.access), 200)
    comment = data_of(api.post(f"/posts/{friend_post}/comments", token=doomed.access, json={"content": "hi"}), 201)
    data_of(api.put(f"/posts/{doomed_post}/like", token=friend.access), 200)
    eventually(lambda: feed_ids(api, friend), lambda ids: doomed_post in ids, what="doomed's post in friend's feed")
    await_notifications(api, doomed, {"follow_created": 1, "like": 1}, "doomed's notifications")
    await_notifications(api, friend, {"follow_created": 1, "like": 1, "comment": 1}, "friend's notifications")

    assert data_of(api.delete(f"/users/{doomed.id}", token=doomed.access), 204) is None
    return friend, doomed, {"friend_post": friend_post, "doomed_post": doomed_post, "comment": comment["id"]}


def test_deleting_an_account_erases_its_profile_posts_follows_feed_and_sessions(api: Api, new_account) -> None:
    friend, doomed, ids = _erased_account(api, new_account)

    assert_error(api.get(f"/users/{doomed.id}"), 404, "user not found")
    assert_error(api.get(f"/users/username/{doomed.username}"), 404, "user not found")
    assert_error(api.get(f"/users/email/{doomed.email}"), 404, "user not found")
    hits = data_of(api.get("/users/search", params={"query": doomed.username}), 200)
    assert hits["users"] == [] and hits["total"] == 0

    eventually(
        lambda: api.get(f"/posts/{ids['doomed_post']}"),
        lambda r: r.status_code == 404,
        what="the deleted user's post to disappear",
    )
    assert data_of(api.get("/posts/list", params={"author_id": doomed.id}), 200) == {"posts": [], "total": 0}
    eventually(
        lambda: (
            data_of(api.get(f"/relation/{friend.id}/followers"), 200)["followers"],
            data_of(api.get(f"/relation/{friend.id}/followees"), 200)["followees"],
        ),
        lambda lists: lists == ([], []),
        what="the deleted user to leave friend's followers and followees",
    )
    assert_error(api.get(f"/relation/{doomed.id}/followers"), 404, "user not found")
    eventually(
        lambda: feed_ids(api, friend),
        lambda feed: ids["doomed_post"] not in feed,
        what="the deleted user's post to leave friend's home feed",
    )

    # Sessions end: the refresh token is refused, the password no longer signs in, and the
    # still-unexpired access token cannot write anything on behalf of a user that is gone.
    assert_error(api.refresh(doomed.refresh), 401, "invalid refresh token")
    assert_error(
        api.post("/auth/login", json={"login": doomed.username, "password": doomed.password}), 404, "user not found"
    )
    write = api.post("/posts", token=doomed.access, json={"title": "From beyond", "content": "should never be stored"})
    assert_error(write, 401, "unauthenticated")
    follow = api.post("/relation/follow", token=doomed.access, json={"followee_id": friend.id})
    assert_error(follow, 401, "unauthenticated")
    like = api.put(f"/posts/{ids['friend_post']}/like", token=doomed.access)
    assert_error(like, 401, "unauthenticated")


def test_deleting_an_account_erases_its_likes_and_comments_on_others_posts(api: Api, new_account) -> None:
    _friend, doomed, ids = _erased_account(api, new_account)
    post = ids["friend_post"]
    eventually(
        lambda: (
            [like["user_id"] for like in data_of(api.get(f"/posts/{post}/likes"), 200)["likes"]],
            [c["author_id"] for c in data_of(api.get(f"/posts/{post}/comments"), 200)["comments"]],
        ),
        lambda seen: doomed.id not in seen[0] and doomed.id not in seen[1],
        what="the deleted user's like and comment to disappear from friend's post",
        timeout=10.0,
    )


def test_deleting_an_account_erases_the_notifications_it_caused(api: Api, new_account) -> None:
    friend, doomed, _ = _erased_account(api, new_account)

    def actors(items: list[dict[str, Any]]) -> set[int]:
        found = set()
        for n in items:
            payload = n.get("payload") or {}
            for key in ("follower_id", "user_id", "author_id"):
                if isinstance(payload, dict) and key in payload and n["type"] != "system":
                    found.add(payload[key])
        return found - {friend.id}

    eventually(
        lambda: api.notifications(friend),
        lambda items: doomed.id not in actors(items),
        what="notifications caused by the deleted user to disappear",
        timeout=10.0,
    )


def test_a_new_post_can_be_liked_and_commented_at_once(api: Api, new_account) -> None:
    author, fan = new_account("fresh"), new_account("eager")
    for attempt in range(3):
        post_id = api.create_post(author, f"Fresh {attempt}", likeable=False)["id"]
        data_of(api.put(f"/posts/{post_id}/like", token=fan.access), 200)
        post_id = api.create_post(author, f"Fresh comment {attempt}", likeable=False)["id"]
        data_of(api.post(f"/posts/{post_id}/comments", token=fan.access, json={"content": "first!"}), 201)


def walk(api: Api, path: str, key: str, token: str | None = None, **params: Any) -> list[dict[str, Any]]:
    """Every item of a cursor-paginated list, page by page, checking each page's size."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(50):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = data_of(api.get(path, token=token, params=query), 200)
        assert len(page[key]) <= int(params["limit"])
        items += page[key]
        cursor = page.get("next_cursor")
        if not cursor:
            return items
    raise AssertionError(f"{path} never reached its last page")


def test_cursor_pages_of_the_feed_comments_and_likes(api: Api, new_account) -> None:
    author, reader = new_account("pager"), new_account("reader")
    fans = [new_account("liker") for _ in range(3)]
    api.follow(reader, author)
    posts = [api.create_post(author, f"Page {i}")["id"] for i in range(3)]
    eventually(
        lambda: feed_ids(api, reader), lambda ids: set(posts) <= set(ids), what="three posts in the reader's feed"
    )
    assert [p["id"] for p in walk(api, "/feed", "items", token=reader.access, limit=1)] == posts[::-1]

    comments = [
        data_of(api.post(f"/posts/{posts[0]}/comments", token=fan.access, json={"content": f"c{i}"}), 201)["id"]
        for i, fan in enumerate(fans)
    ]
    assert [c["id"] for c in walk(api, f"/posts/{posts[0]}/comments", "comments", limit=2)] == comments, "oldest first"
    for fan in fans:
        data_of(api.put(f"/posts/{posts[0]}/like", token=fan.access), 200)
    likers = [like["user_id"] for like in walk(api, f"/posts/{posts[0]}/likes", "likes", limit=2)]
    assert likers == [fan.id for fan in fans][::-1], "newest first"
    assert_error(api.get("/feed", token=reader.access, params={"cursor": "not-a-cursor"}), 400)


def test_unfollowing_takes_the_authors_posts_out_of_the_feed(api: Api, new_account) -> None:
    author, reader = new_account("unfol"), new_account("reader")
    api.follow(reader, author)
    post = api.create_post(author, "Soon gone from the feed", likeable=False)["id"]
    eventually(lambda: feed_ids(api, reader), lambda ids: post in ids, what="the post in the reader's feed")
    data_of(api.post("/relation/unfollow", token=reader.access, json={"followee_id": author.id}), 200)
    eventually(
        lambda: feed_ids(api, reader), lambda ids: post not in ids, what="the post to leave the feed after unfollow"
    )


def test_a_retried_write_with_an_idempotency_key_happens_once(api: Api, new_account) -> None:
    """A client that lost the answer to its POST sends it again with the same key."""
    author = new_account("retry")
    key = {"Idempotency-Key": f"e2e-{unique_name('k')}"}
    body = {"title": "Sent twice", "content": "The network ate the first answer."}
    first = api.post("/posts", token=author.access, json=body, headers=key)
    again = api.post("/posts", token=author.access, json=body, headers=key)
    assert data_of(again, 201) == data_of(first, 201)
    assert again.headers.get("idempotent-replayed") == "true"
    assert data_of(api.get("/posts/list", params={"author_id": author.id}), 200)["total"] == 1
    other = api.post("/posts", token=author.access, json={**body, "title": "Something else"}, headers=key)
    assert_error(other, 422, "idempotency key was already used for a different request")

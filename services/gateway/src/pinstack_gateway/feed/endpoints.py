"""The caller's home feed: post ids from the feed service, hydrated with the posts and their
counters in two parallel batch calls — three upstream calls whatever the page size.

A page is kept for its token for the response cache's TTL (1 s; response_cache.py): a client
that polls its feed, or opens it on several devices, costs the three calls once a second. It
belongs to the posts family, so a post's edit or deletion, a like or a comment through the
gateway is seen on the next read, by everyone, as on the public post routes.
"""

import asyncio
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from starlette.responses import Response

from pinstack_contracts.limits import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, PAGE_SIZE_MIN
from pinstack_gateway.deps import ActivityDep, CurrentUser, FeedDep, PostsDep
from pinstack_gateway.feed.schemas import FeedPage
from pinstack_gateway.fields import documented
from pinstack_gateway.params import page_size
from pinstack_kit.envelope import ok
from pinstack_kit.http_client import ServiceClient

router = APIRouter(prefix="/api/v1/feed", tags=["feed"])

NO_COUNTS = {"like_count": 0, "comment_count": 0, "view_count": 0, "liked_by_viewer": False}


async def hydrate(ids: list[int], viewer: int, posts: ServiceClient, activity: ServiceClient) -> list[dict[str, Any]]:
    """The posts of `ids` in that order with their counters; ids the posts service no longer has
    are dropped."""
    if not ids:
        return []
    joined = ",".join(map(str, ids))
    found, counted = await asyncio.gather(
        posts.call("GET", "/posts/batch", params={"ids": joined}),
        activity.call("GET", "/posts/stats", params={"ids": joined, "viewer_id": viewer}),
    )
    by_id = {post["id"]: post for post in found.json()["data"]["posts"]}
    stats = counted.json()["data"]
    items = []
    for post_id in ids:
        post = by_id.get(post_id)
        if post is None:
            continue
        counts = stats.get(str(post_id), NO_COUNTS)
        items.append(
            {
                **post,
                "like_count": counts["like_count"],
                "comment_count": counts["comment_count"],
                "view_count": counts["view_count"],
                "liked": counts["liked_by_viewer"],
            }
        )
    return items


@router.get(
    "", summary="The caller's home feed, newest first, with an opaque cursor", **documented(200, FeedPage, 400, 401)
)
async def home_feed(
    caller: CurrentUser,
    feed: FeedDep,
    posts: PostsDep,
    activity: ActivityDep,
    limit: Annotated[
        str | None, Query(description=f"{PAGE_SIZE_MIN}-{PAGE_SIZE_MAX}; absent: {PAGE_SIZE_DEFAULT}")
    ] = None,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> Response:
    size = page_size(limit)
    params: dict[str, Any] = {"limit": size, **({"cursor": cursor} if cursor else {})}
    page = (await feed.call("GET", f"/users/{caller}/feed", params=params)).json()["data"]
    ids = list(dict.fromkeys(int(item["post_id"]) for item in page["items"]))
    next_cursor = page.get("next_cursor")
    headers = {}
    if next_cursor:
        headers["Link"] = f'</api/v1/feed?{urlencode({"cursor": next_cursor, "limit": size})}>; rel="next"'
    items = await hydrate(ids, caller, posts, activity)
    return ok({"items": items, "next_cursor": next_cursor}, headers=headers)

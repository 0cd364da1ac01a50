"""After the faults: count what exists in each service's database and compare it with the ledger.

- lost: an accepted (2xx) write that is not stored exactly once, or whose event never reached a
  consumer that must apply it (a follow without its notification, a post missing from the feed or
  activity projections);
- duplicated: anything stored or applied more than once (two notifications for one follow, one
  like or one comment; a counter that differs from the rows it counts; a feed page listing a
  post twice).
A write that got no answer or an error may or may not have happened; whatever happened must
still have been applied exactly once downstream, and that is checked too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from pinstack_e2e.chaos_load import API, Ledger

# A feed read refused with 503 right after a fault is retried for this long before it counts.
FEED_RETRY_SECONDS = 15.0


@dataclass
class Findings:
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)


def _query(dsn: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        return conn.execute(sql, args).fetchall()


class Verifier:
    def __init__(self, database: Callable[[str], str], gateway: str, ledger: Ledger) -> None:
        self.db = database
        self.gateway = gateway
        self.ledger = ledger

    # ------------------------------------------------------------------ convergence

    def pending(self) -> int:
        """Events still on their way: follows without notification, posts not projected yet."""
        follows = _query(self.db("relations"), "SELECT follower_id, followee_id FROM follows")
        notified = {
            (int(f), int(u))
            for f, u in _query(
                self.db("notifications"),
                "SELECT payload->>'follower_id', user_id FROM notifications WHERE type = 'follow_created'",
            )
        }
        posts = {int(i) for (i,) in _query(self.db("posts"), "SELECT id FROM posts")}
        in_feed = {int(i) for (i,) in _query(self.db("feed"), "SELECT id FROM posts")}
        in_activity = {int(i) for (i,) in _query(self.db("activity"), "SELECT id FROM posts")}
        return (
            sum((int(a), int(b)) not in notified for a, b in follows) + len(posts - in_feed) + len(posts - in_activity)
        )

    async def settle(self, timeout: float = 120.0) -> float:
        """Waits until no event is pending (then a little longer for late redeliveries)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if await asyncio.to_thread(self.pending) == 0:
                break
            await asyncio.sleep(1.0)
        await asyncio.sleep(3.0)
        return time.monotonic() - start

    # ------------------------------------------------------------------ the checks

    async def run(self) -> Findings:
        found = Findings()
        await asyncio.to_thread(self._stored, found)
        await self._feeds(found)
        return found

    def _stored(self, found: Findings) -> None:
        attempts = self.ledger.attempts
        accepted = [a for a in attempts if a.accepted]

        # users: every accepted registration is one row of the users service
        names = [a.key[0] for a in accepted if a.op == "register"]
        rows = dict(_query(self.db("users"), "SELECT username, count(*) FROM users GROUP BY username"))
        self._exactly_once(found, "registration", names, rows)

        # posts: one row per accepted post; projected once into feed and activity
        uids = [a.key[0] for a in accepted if a.op == "post"]
        rows = dict(_query(self.db("posts"), "SELECT title, count(*) FROM posts GROUP BY title"))
        self._exactly_once(found, "post", uids, rows)
        post_ids = [a.data["id"] for a in accepted if a.op == "post"]
        for service in ("feed", "activity"):
            projected = {int(i) for (i,) in _query(self.db(service), "SELECT id FROM posts")}
            for post_id in post_ids:
                if post_id not in projected:
                    found.lost.append(f"post {post_id}: post_created never reached {service}")

        # follows: stored once; exactly one notification and one feed projection row per follow
        # that exists (accepted or not), and the feed's follower counters equal its rows
        follows = {
            (int(a), int(b)) for a, b in _query(self.db("relations"), "SELECT follower_id, followee_id FROM follows")
        }
        for a in accepted:
            if a.op == "follow" and a.key not in follows:
                found.lost.append(f"follow {a.key}: accepted but not stored")
        notified: dict[tuple[int, int], int] = {
            (int(f), int(u)): int(n)
            for f, u, n in _query(
                self.db("notifications"),
                "SELECT payload->>'follower_id', user_id, count(*) FROM notifications"
                " WHERE type = 'follow_created' GROUP BY 1, 2",
            )
        }
        for pair in follows:
            n = notified.get(pair, 0)
            if n == 0:
                found.lost.append(f"follow {pair}: no follow_created notification")
            elif n > 1:
                found.duplicated.append(f"follow {pair}: {n} notifications")
        for pair, n in notified.items():
            if pair not in follows:
                found.duplicated.append(f"follow {pair}: {n} notifications for a follow that does not exist")
        feed_follows = {
            (int(a), int(b)) for a, b in _query(self.db("feed"), "SELECT follower_id, followee_id FROM follows")
        }
        for pair in follows - feed_follows:
            found.lost.append(f"follow {pair}: follow_created never reached feed")
        for user_id, counter, rows_ in _query(
            self.db("feed"),
            "SELECT c.user_id, c.followers, (SELECT count(*) FROM follows f WHERE f.followee_id = c.user_id)"
            " FROM follower_counts c",
        ):
            if counter != rows_:
                found.duplicated.append(f"feed follower counter of user {user_id}: {counter} != {rows_} rows")

        # likes: stored once; one notification per like; like counters equal rows
        likes = {(int(u), int(p)) for u, p in _query(self.db("activity"), "SELECT user_id, post_id FROM likes")}
        for a in accepted:
            if a.op == "like" and a.key not in likes:
                found.lost.append(f"like {a.key}: accepted but not stored")
        like_notes = {
            (int(u), int(p)): int(n)
            for u, p, n in _query(
                self.db("notifications"),
                "SELECT payload->>'user_id', payload->>'post_id', count(*) FROM notifications WHERE type = 'like'"
                " GROUP BY 1, 2",
            )
        }
        for pair in likes:
            if like_notes.get(pair, 0) > 1:
                found.duplicated.append(f"like {pair}: {like_notes[pair]} notifications")
        tried_likes = {a.key: a for a in attempts if a.op == "like"}
        for pair in likes & tried_likes.keys():
            if like_notes.get(pair, 0) == 0:
                found.lost.append(f"like {pair}: no like notification")

        # comments: stored once (by their unique text); one notification each
        texts = [a.key[0] for a in accepted if a.op == "comment"]
        rows = dict(_query(self.db("activity"), "SELECT content, count(*) FROM comments GROUP BY content"))
        self._exactly_once(found, "comment", texts, rows)
        comment_notes = dict(
            _query(
                self.db("notifications"),
                "SELECT payload->>'comment_id', count(*) FROM notifications WHERE type = 'comment' GROUP BY 1",
            )
        )
        by_text = dict(_query(self.db("activity"), "SELECT content, id FROM comments"))
        for a in attempts:
            if a.op != "comment" or a.key[0] not in by_text:
                continue
            n = int(comment_notes.get(str(by_text[a.key[0]]), 0))
            expect_note = a.data["author"] != a.data["commenter"]
            if n > 1:
                found.duplicated.append(f"comment {a.key[0]}: {n} notifications")
            elif n == 0 and expect_note:
                found.lost.append(f"comment {a.key[0]}: no comment notification")

        # counters of the activity service equal the rows they count
        for post_id, like_count, comment_count, n_likes, n_comments in _query(
            self.db("activity"),
            "SELECT p.id, p.like_count, p.comment_count,"
            " (SELECT count(*) FROM likes l WHERE l.post_id = p.id),"
            " (SELECT count(*) FROM comments c WHERE c.post_id = p.id) FROM posts p",
        ):
            if like_count != n_likes:
                found.duplicated.append(f"post {post_id}: like_count {like_count} != {n_likes} likes")
            if comment_count != n_comments:
                found.duplicated.append(f"post {post_id}: comment_count {comment_count} != {n_comments} comments")

        found.checked.update(
            {
                "accepted writes": len(accepted),
                "follows stored": len(follows),
                "posts stored": len(post_ids),
                "likes stored": len(likes),
                "comments stored": len(by_text),
            }
        )

    @staticmethod
    def _exactly_once(found: Findings, what: str, keys: list[str], rows: dict[str, int]) -> None:
        for key in keys:
            n = int(rows.get(key, 0))
            if n == 0:
                found.lost.append(f"{what} {key}: accepted but not stored")
            elif n > 1:
                found.duplicated.append(f"{what} {key}: stored {n} times")

    async def _feeds(self, found: Findings) -> None:
        """Every user's home feed, read through the gateway, lists each post once."""
        async with httpx.AsyncClient(base_url=self.gateway + API, timeout=15) as client:
            pages = refused = 0
            for user in self.ledger.users:
                deadline = time.monotonic() + FEED_RETRY_SECONDS
                while True:
                    response = await client.get("/feed?limit=100", headers={"Authorization": f"Bearer {user.token}"})
                    # a 503 says "retry after": a client does, within bounds (and it is counted)
                    if response.status_code != 503 or time.monotonic() >= deadline:
                        break
                    refused += 1
                    await asyncio.sleep(min(float(response.headers.get("Retry-After", "1")), 2.0))
                if response.status_code != 200:
                    found.lost.append(f"feed of user {user.id}: {response.status_code} {response.text[:100]}")
                    continue
                ids = [item["id"] for item in response.json()["data"]["items"]]
                pages += 1
                if len(ids) != len(set(ids)):
                    found.duplicated.append(f"feed of user {user.id} lists a post twice: {ids}")
            found.checked["feeds read"] = pages
            if refused:
                found.checked["feed reads refused (503) first"] = refused

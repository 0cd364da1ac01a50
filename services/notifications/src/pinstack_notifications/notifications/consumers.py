"""Relation and activity events become notifications: a new follower is announced to the
followee; a like, a comment, a reply or a mention to the user it concerns. User events keep the
recipients projection current, and a deleted user's notifications go with them."""

from __future__ import annotations

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_contracts.events import CommentCreated, FollowCreated, LikeCreated, MentionCreated
from pinstack_kit.consumer import Handler, payload
from pinstack_kit.user_projection import apply_user_events
from pinstack_notifications.events import COMMENT, COMMENT_REPLY, LIKE, MENTION
from pinstack_notifications.notifications.service import NotificationService
from pinstack_notifications.users.service import UserDirectory


async def on_relation_event(session: AsyncSession, record: ConsumerRecord) -> None:
    # Dispatch on the header like upstream; other types (follow_deleted) announce nothing.
    follow = payload(record, FollowCreated)
    if follow is not None:
        await NotificationService(session).notify_follow(follow)


async def on_activity_event(session: AsyncSession, record: ConsumerRecord) -> None:
    """Kit envelopes keyed by post; the type is in the `event_type` header, unknown ones are ignored.
    Exactly once comes from the runner's dedupe by the (deterministic) `event_id` header."""
    service = NotificationService(session)
    match payload(record, LikeCreated, CommentCreated, MentionCreated):
        case LikeCreated() as like:
            liked = {"post_id": like.post_id, "user_id": like.user_id}
            await service.notify_activity(like.post_author_id, like.user_id, LIKE, liked)
        case CommentCreated() as comment:
            commented = {"post_id": comment.post_id, "comment_id": comment.comment_id, "author_id": comment.author_id}
            await service.notify_activity(comment.post_author_id, comment.author_id, COMMENT, commented)
            replied_to = comment.parent_author_id
            if replied_to is not None and replied_to != comment.post_author_id:
                await service.notify_activity(replied_to, comment.author_id, COMMENT_REPLY, commented)
        case MentionCreated() as mention:
            mentioned = {
                "post_id": mention.post_id,
                "comment_id": mention.comment_id,
                "author_id": mention.author_id,
                "source": mention.source,
            }
            await service.notify_activity(mention.mentioned_user_id, mention.author_id, MENTION, mentioned)


def user_event_handler() -> Handler:
    async def remove_notifications(session: AsyncSession, user_id: int) -> None:
        await NotificationService(session).remove_all_of(user_id)

    return apply_user_events(UserDirectory, cascade=remove_notifications)

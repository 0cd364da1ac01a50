"""How the activity service publishes `activity-events` (names and payloads:
`pinstack_contracts.events`).

Event ids are derived from what they announce (`like_created:{post}:{user}`...): a like undone
and done again, or any replay, carries the same id, so a consumer that deduplicates by event id
(the kit's runner does) notifies once, never twice.
"""

from pinstack_contracts.events import CommentCreated, Event, LikeCreated, MentionCreated

CONSUMER_GROUP = "activity"


def activity_event(activity: LikeCreated | CommentCreated | MentionCreated, event_id: str) -> Event:
    return Event.of(activity, activity.post_id, event_id)

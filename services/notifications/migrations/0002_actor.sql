-- Who caused a notification (the follower, the liker, the commenter; NULL for the admin "send"),
-- so deleting an account also removes what it caused in other users' feeds.
ALTER TABLE notifications ADD COLUMN actor_id bigint;
UPDATE notifications SET actor_id = CASE type
    WHEN 'follow_created' THEN (payload->>'follower_id')::bigint
    WHEN 'like' THEN (payload->>'user_id')::bigint
    WHEN 'comment' THEN (payload->>'author_id')::bigint
    WHEN 'comment_reply' THEN (payload->>'author_id')::bigint
    WHEN 'mention' THEN (payload->>'author_id')::bigint
END
WHERE type IN ('follow_created', 'like', 'comment', 'comment_reply', 'mention');
CREATE INDEX notifications_actor_idx ON notifications (actor_id) WHERE actor_id IS NOT NULL;

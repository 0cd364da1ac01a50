CREATE TABLE notifications (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint      NOT NULL,
    type       text        NOT NULL,
    is_read    boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    payload    jsonb
);
-- A user's feed, newest first; id breaks ties so pages never overlap.
CREATE INDEX notifications_feed_idx ON notifications (user_id, created_at DESC, id DESC);
-- Unread counts and read-all touch only the unread rows.
CREATE INDEX notifications_unread_idx ON notifications (user_id) WHERE NOT is_read;

-- Projection of the users service (user-events): who can receive notifications. A deleted user
-- stays as a tombstone (deleted_at set) so that nothing racing with the deletion brings them back.
CREATE TABLE users (
    id         bigint PRIMARY KEY,
    deleted_at timestamptz
);

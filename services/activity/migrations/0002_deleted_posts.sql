-- Tombstones of deleted posts. A like or comment on a post the projection has not seen yet asks
-- the posts service (PostDirectory.require); a `post_deleted` consumed while that answer is in
-- flight must win, or the post would come back. Both sides take the post's advisory lock, and an
-- insert checks here. Purged by the worker's housekeeping once no lookup can still be in flight.
CREATE TABLE deleted_posts (
    id          bigint      PRIMARY KEY,
    deleted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deleted_posts_deleted_at_idx ON deleted_posts (deleted_at);

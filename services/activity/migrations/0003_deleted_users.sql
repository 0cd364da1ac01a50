-- Tombstones of deleted accounts. A like, view or comment of the account that was already on its
-- way when the account was deleted must not land after `user_deleted` erased the account's
-- activity, or it would stay for good. A write takes the user's advisory lock shared and checks
-- here; the erasure takes it exclusively and leaves the tombstone. Purged by the worker's
-- housekeeping a day later, when no token of the account can be alive any more.
CREATE TABLE deleted_users (
    id          bigint      PRIMARY KEY,
    deleted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deleted_users_deleted_at_idx ON deleted_users (deleted_at);

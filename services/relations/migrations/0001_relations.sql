-- Who follows whom. A pair exists once: following twice answers 409, never a second row.
CREATE TABLE follows (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    follower_id bigint      NOT NULL,
    followee_id bigint      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT follows_pair_key UNIQUE (follower_id, followee_id),
    CONSTRAINT follows_not_self CHECK (follower_id <> followee_id)
);
-- Follower and followee lists, newest first; id breaks ties so pages never overlap.
CREATE INDEX follows_followee_idx ON follows (followee_id, created_at DESC, id DESC);
CREATE INDEX follows_follower_idx ON follows (follower_id, created_at DESC, id DESC);

-- Projection of the users service (user-events): names for the lists, existence for follows.
-- A deleted user stays as a tombstone (deleted_at set, profile cleared) so that a lookup racing
-- with the deletion can never bring the user back.
CREATE TABLE users (
    id         bigint PRIMARY KEY,
    username   text,
    avatar_url text,
    deleted_at timestamptz
);

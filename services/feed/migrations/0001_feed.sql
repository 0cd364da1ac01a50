-- The feed keeps its own source of truth, built from events: who follows whom (`relation-events`)
-- and which post each author wrote when (`post-events`). Redis timelines are a cache of what
-- these tables imply and are rebuilt from them when lost.
CREATE TABLE follows (
    follower_id  bigint      NOT NULL,
    followee_id  bigint      NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (follower_id, followee_id)
);
-- Fan-out walks an author's followers.
CREATE INDEX follows_followee_idx ON follows (followee_id, follower_id);

-- Maintained with `follows` in the same transaction, so "is this author a celebrity" is one
-- primary-key lookup instead of counting a million rows on every post and every read.
CREATE TABLE follower_counts (
    user_id    bigint PRIMARY KEY,
    followers  bigint NOT NULL DEFAULT 0
);

CREATE TABLE posts (
    id          bigint      PRIMARY KEY,
    author_id   bigint      NOT NULL,
    created_at  timestamptz NOT NULL
);
-- Rebuilds, back-fills and the celebrity merge read an author's newest posts: index scans.
CREATE INDEX posts_author_created_idx ON posts (author_id, created_at DESC, id DESC);

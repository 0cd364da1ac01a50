-- Posts: a projection of `post-events` (who wrote what), carrying the post's counters. Likes,
-- comments and views reference it, so an unknown or deleted post cannot collect any and a
-- `post_deleted` takes them all along (ON DELETE CASCADE).
-- The counters change in the same transaction as the row they count: a read is one primary-key
-- lookup whatever the popularity of the post.
CREATE TABLE posts (
    id             bigint PRIMARY KEY,
    author_id      bigint NOT NULL,
    like_count     bigint NOT NULL DEFAULT 0,
    comment_count  bigint NOT NULL DEFAULT 0,
    view_count     bigint NOT NULL DEFAULT 0
);

-- Users: a projection of `user-events`, to resolve @mentions. Usernames may briefly repeat
-- while renames are in flight (events of different users are not ordered): not unique.
CREATE TABLE users (
    id          bigint      PRIMARY KEY,
    username    text        NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX users_username_idx ON users (username);

-- The primary key makes a like idempotent: a repeated or concurrent like finds the row.
CREATE TABLE likes (
    post_id     bigint      NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    user_id     bigint      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (post_id, user_id)
);
-- "Who liked", newest first, is an index scan that stops at the page size.
CREATE INDEX likes_post_created_idx ON likes (post_id, created_at DESC, user_id DESC);

CREATE TABLE comments (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    post_id     bigint      NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    author_id   bigint      NOT NULL,
    parent_id   bigint      REFERENCES comments (id) ON DELETE CASCADE,
    content     text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- A post's top-level comments and a comment's replies, oldest first, by keyset on the id.
CREATE INDEX comments_post_top_idx ON comments (post_id, id) WHERE parent_id IS NULL;
CREATE INDEX comments_parent_idx ON comments (parent_id, id);

-- One view per user, post and window: the key deduplicates repeats and concurrent requests.
CREATE TABLE views (
    post_id       bigint      NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    user_id       bigint      NOT NULL,
    window_start  timestamptz NOT NULL,
    PRIMARY KEY (post_id, user_id, window_start)
);

-- Authors: a projection of the users service's public profiles, fed by `user-events` (and by a
-- one-off fetch when a post is created before the event arrived). Never written by this
-- service's API. `updated_at` is the users service's, so an older event cannot undo a newer one.
CREATE TABLE authors (
    id          bigint      PRIMARY KEY,
    username    text        NOT NULL,
    email       text        NOT NULL,
    full_name   text,
    bio         text,
    avatar_url  text,
    updated_at  timestamptz NOT NULL
);

-- No foreign key to authors: the projection is a copy of another service's data, posts stand on
-- their own (reads fall back to a placeholder author).
CREATE TABLE posts (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    author_id   bigint      NOT NULL,
    title       text        NOT NULL,
    content     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- Both list orders (an author's posts, everyone's posts) are index scans that stop at LIMIT.
CREATE INDEX posts_author_created_idx ON posts (author_id, created_at DESC, id DESC);
CREATE INDEX posts_created_idx ON posts (created_at DESC, id DESC);

CREATE TABLE post_media (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    post_id     bigint      NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    url         text        NOT NULL,
    type        text        NOT NULL CHECK (type IN ('image', 'video')),
    position    smallint    NOT NULL CHECK (position BETWEEN 1 AND 9),
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- Not unique: clients send duplicate positions and upstream accepts them (contract route 16).
CREATE INDEX post_media_post_position_idx ON post_media (post_id, position);

CREATE TABLE tags (
    id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name  text   NOT NULL UNIQUE
);
-- The list filter matches tag names case-insensitively.
CREATE INDEX tags_name_lower_idx ON tags (lower(name));

-- `position` keeps the tags in the order the author gave them.
CREATE TABLE posts_tags (
    post_id   bigint   NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    tag_id    bigint   NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    position  smallint NOT NULL,
    PRIMARY KEY (post_id, tag_id)
);
CREATE INDEX posts_tags_tag_idx ON posts_tags (tag_id, post_id);

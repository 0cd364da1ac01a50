-- A lock and the check it guards, in one round trip. A projection write takes its post's or
-- user's advisory lock and then reads a tombstone (0002, 0003). As one SQL statement that read
-- would use a snapshot taken before the lock was granted, and miss a tombstone committed while
-- it waited; a PL/pgSQL function runs each statement on a fresh snapshot (READ COMMITTED), so
-- the read after the lock sees it.

-- The lock of `activity.<kind>:<id>` until the transaction ends (its key is made here only).
CREATE FUNCTION activity_lock(kind text, id bigint, shared boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    key bigint := hashtextextended('activity.' || kind || ':' || id, 0);
BEGIN
    IF shared THEN
        PERFORM pg_advisory_xact_lock_shared(key);
    ELSE
        PERFORM pg_advisory_xact_lock(key);
    END IF;
END $$;

-- The post joins the projection unless it was deleted; true when it is new.
CREATE FUNCTION activity_add_post(post_id bigint, author_id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM activity_lock('post', post_id, false);
    INSERT INTO posts (id, author_id)
    SELECT post_id, author_id WHERE NOT EXISTS (SELECT FROM deleted_posts d WHERE d.id = post_id)
    ON CONFLICT DO NOTHING;
    RETURN FOUND;
END $$;

-- A tombstone, and the post goes with its likes, comments and views (ON DELETE CASCADE).
CREATE FUNCTION activity_delete_post(post_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM activity_lock('post', post_id, false);
    INSERT INTO deleted_posts (id) VALUES (post_id) ON CONFLICT DO NOTHING;
    DELETE FROM posts p WHERE p.id = post_id;
END $$;

-- Whether the user may still write: holds their lock shared until commit, so an erasure of the
-- account waits for this write and removes it too, or went first and left its tombstone.
CREATE FUNCTION activity_user_alive(user_id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM activity_lock('user', user_id, true);
    RETURN NOT EXISTS (SELECT FROM deleted_users d WHERE d.id = user_id);
END $$;

-- Takes the user's lock exclusively (their writes in flight finish first) and leaves the
-- tombstone; the caller erases the account's activity in the same transaction.
CREATE FUNCTION activity_tombstone_user(user_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM activity_lock('user', user_id, false);
    INSERT INTO deleted_users (id) VALUES (user_id) ON CONFLICT DO NOTHING;
END $$;

-- One row per issued refresh token. Tokens of one login share a family: rotation marks the
-- presented row `rotated_at` and inserts its successor; presenting a rotated token again is
-- reuse (a stolen token), which revokes the whole family.
CREATE TABLE refresh_tokens (
    jti            uuid        PRIMARY KEY,
    family_id      uuid        NOT NULL,
    user_id        bigint      NOT NULL,
    issued_at      timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    rotated_at     timestamptz,
    revoked_at     timestamptz,
    revoked_reason text
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id) WHERE revoked_at IS NULL;
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);

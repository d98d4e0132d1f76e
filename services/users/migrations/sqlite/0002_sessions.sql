-- Sessions: a refresh-token family starts at each sign-in; every refresh retires the
-- token presented and adds the next one to the same family. Only a token's SHA-256
-- is stored. Times are Unix seconds, compared in SQL the same way on both backends.
CREATE TABLE refresh_families (
    id          TEXT PRIMARY KEY NOT NULL,
    user_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    -- Set once: at sign-out, on reuse of a retired token, or when the account's
    -- password or role changes. Every token of a revoked family is refused.
    revoked_at  INTEGER
);
CREATE INDEX refresh_families_user_idx ON refresh_families (user_id);

CREATE TABLE refresh_tokens (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    family_id   TEXT    NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    -- Set when the token is exchanged for the next one; presenting it again is reuse.
    retired_at  INTEGER
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

-- Consecutive failed sign-ins per normalised email, whether or not an account has
-- it; a success deletes the row.
CREATE TABLE sign_in_failures (
    email            TEXT PRIMARY KEY NOT NULL,
    failures         INTEGER NOT NULL,
    last_failure_at  INTEGER NOT NULL
);

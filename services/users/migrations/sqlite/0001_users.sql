-- Accounts. Ids are UUIDv7 as lower-case hyphenated text, which sorts in creation
-- order, so the listing pages by keyset on the primary key.
CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    email         TEXT NOT NULL COLLATE NOCASE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    create_time   TEXT NOT NULL,
    update_time   TEXT NOT NULL
);

-- Emails are unique whatever their case.
CREATE UNIQUE INDEX users_email_nocase_key ON users (email COLLATE NOCASE);

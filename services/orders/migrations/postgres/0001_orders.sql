-- Orders. Ids are UUIDv7, so ordering by id is ordering by creation time and listings
-- page by keyset on the primary key.
CREATE TABLE orders (
    id                  UUID        PRIMARY KEY,
    user_id             UUID        NOT NULL,
    -- The client's idempotency key; NULL when the client sent none.
    request_id          TEXT,
    -- SHA-256 of the items, to tell a retry from a different order reusing a key.
    request_fingerprint TEXT        NOT NULL,
    total_cents         BIGINT      NOT NULL CHECK (total_cents >= 0),
    status              TEXT        NOT NULL CHECK (status IN ('pending', 'cancelled')),
    create_time         TIMESTAMPTZ NOT NULL,
    update_time         TIMESTAMPTZ NOT NULL,
    -- One order per caller and key, even when retries race (NULL keys never collide).
    CONSTRAINT orders_idempotency_key UNIQUE (user_id, request_id)
);

-- A user's listing, newest first, optionally by status.
CREATE INDEX orders_user_id_id ON orders (user_id, id DESC);

CREATE TABLE order_items (
    order_id         UUID    NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    position         INTEGER NOT NULL,
    sku              TEXT    NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity >= 1),
    unit_price_cents BIGINT  NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, position)
);

-- Events waiting to be published (a transactional outbox): each row is written in the
-- transaction of the change it describes, and the relay publishes the pending rows in
-- `seq` order, then sets `sent_time`. Sent rows are pruned after a while.
CREATE TABLE outbox (
    seq         BIGSERIAL   PRIMARY KEY,
    -- Unique per event; the message's Nats-Msg-Id.
    event_id    UUID        NOT NULL UNIQUE,
    subject     TEXT        NOT NULL,
    -- The protobuf message's full name.
    event_type  TEXT        NOT NULL,
    payload     BYTEA       NOT NULL,
    -- The W3C trace context of the request that wrote the event.
    traceparent TEXT,
    tracestate  TEXT,
    create_time TIMESTAMPTZ NOT NULL,
    sent_time   TIMESTAMPTZ
);

-- The relay's claim: the oldest pending rows.
CREATE INDEX outbox_pending ON outbox (seq) WHERE sent_time IS NULL;

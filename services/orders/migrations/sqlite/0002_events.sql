-- Events waiting to be published (a transactional outbox): each row is written in the
-- transaction of the change it describes, and the relay publishes the pending rows in
-- `seq` order, then sets `sent_time`. Sent rows are pruned after a while.
CREATE TABLE outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Unique per event; the message's Nats-Msg-Id.
    event_id    TEXT    NOT NULL UNIQUE,
    subject     TEXT    NOT NULL,
    -- The protobuf message's full name.
    event_type  TEXT    NOT NULL,
    payload     BLOB    NOT NULL,
    -- The W3C trace context of the request that wrote the event.
    traceparent TEXT,
    tracestate  TEXT,
    create_time TEXT    NOT NULL,
    sent_time   TEXT
);

-- The relay's claim: the oldest pending rows.
CREATE INDEX outbox_pending ON outbox (seq) WHERE sent_time IS NULL;

-- Events this service applied, by consumer: the record is written in the transaction
-- of the effect, so a redelivered event is recognised and applied once.
CREATE TABLE processed_events (
    consumer       TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    processed_time TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

-- Events a consumer gave up on (undecodable, or failing every attempt), kept for an
-- operator; the stream sequence finds the message on the broker while it is retained.
CREATE TABLE parked_events (
    consumer        TEXT    NOT NULL,
    stream_sequence INTEGER NOT NULL,
    subject         TEXT    NOT NULL,
    event_id        TEXT,
    payload         BLOB    NOT NULL,
    reason          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    parked_time     TEXT    NOT NULL,
    PRIMARY KEY (consumer, stream_sequence)
);

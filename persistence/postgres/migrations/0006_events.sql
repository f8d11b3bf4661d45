-- 0006_events: the events of products, kept for a retention window so that a
-- subscriber on any node resumes after a disconnect (Last-Event-ID), and the
-- latest webhook attempts. An event's seq is its product's version after the
-- change; (product_id, seq) is unique, so a grain that emits an event again
-- after a retry leaves the first. Each insert notifies vitrine_events with
-- 'schema:product_id' at commit; every node with a subscriber of that
-- product reads what it has not seen yet.
CREATE TABLE events (
    product_id uuid        NOT NULL,
    seq        bigint      NOT NULL,
    type       text        NOT NULL,
    image_id   uuid,
    at         timestamptz NOT NULL,
    -- json, not jsonb: the document as the grain rendered it.
    data       json        NOT NULL,
    PRIMARY KEY (product_id, seq)
);

-- The retention sweep deletes by age.
CREATE INDEX events_at ON events (at);

CREATE TABLE webhook_attempts (
    n           bigserial   NOT NULL PRIMARY KEY,
    id          text        NOT NULL,
    endpoint    text        NOT NULL,
    event_type  text        NOT NULL,
    product_id  uuid        NOT NULL,
    seq         bigint      NOT NULL,
    attempt     integer     NOT NULL,
    outcome     text        NOT NULL,
    http_status integer     NOT NULL DEFAULT 0,
    error       text        NOT NULL DEFAULT '',
    at          timestamptz NOT NULL,
    duration_ms bigint      NOT NULL
);

CREATE INDEX webhook_attempts_at ON webhook_attempts (at);

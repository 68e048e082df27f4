-- Outbound webhooks: subscriptions, the outbox of events, one delivery per event and
-- subscription, and every attempt to send it. Times are Unix milliseconds.

CREATE TABLE webhook_subscriptions (
    id                   TEXT PRIMARY KEY,
    org_id               TEXT NOT NULL REFERENCES orgs(id),
    url                  TEXT NOT NULL,
    -- JSON array of event types; ["*"] is every type, [] pauses delivery.
    events               TEXT NOT NULL,
    description          TEXT,
    enabled              BOOLEAN NOT NULL,
    secret               TEXT NOT NULL,
    -- The secret before the last rotation, still signed with until it expires.
    previous_secret      TEXT,
    previous_expires_at  BIGINT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    deleted_at           BIGINT
);
CREATE INDEX webhook_subscriptions_org ON webhook_subscriptions(org_id, id);

-- The outbox: written in the transaction of the change it reports. `body` is the message
-- exactly as it is sent (and signed) on every attempt.
CREATE TABLE outbound_events (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    type        TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE outbound_deliveries (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL,
    event_id         TEXT NOT NULL REFERENCES outbound_events(id),
    subscription_id  TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    -- pending | succeeded | failed
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    -- Index into outbound.retry_schedule of the wait after the next failure.
    retry_step       BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    -- A dispatcher owns a claimed delivery until this instant.
    leased_by        TEXT,
    lease_until      BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX outbound_deliveries_due ON outbound_deliveries(status, next_attempt_at);
CREATE INDEX outbound_deliveries_org ON outbound_deliveries(org_id, id);

CREATE TABLE outbound_attempts (
    delivery_id       TEXT NOT NULL REFERENCES outbound_deliveries(id),
    attempt           BIGINT NOT NULL,
    attempted_at      BIGINT NOT NULL,
    http_status       BIGINT,
    latency_ms        BIGINT NOT NULL,
    error             TEXT,
    response_excerpt  TEXT,
    PRIMARY KEY (delivery_id, attempt)
);

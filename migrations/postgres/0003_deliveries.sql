-- Every request to a receive URL of a known connection: what arrived and what it came to.
-- Provider-controlled strings (event, reason, headers) are stored but never indexed; the
-- body is kept as bytes, only for verified deliveries.
CREATE TABLE deliveries (
    id                   TEXT PRIMARY KEY,
    org_id               TEXT NOT NULL,
    connection_id        TEXT NOT NULL,
    provider             TEXT NOT NULL,
    event                TEXT,
    status               TEXT NOT NULL,
    reason               TEXT,
    http_status          BIGINT NOT NULL,
    received_at          BIGINT NOT NULL,
    trigger_id           TEXT,
    trigger_instance_id  TEXT,
    run_ids              TEXT NOT NULL,
    replay_of            TEXT,
    -- A JSON object of the request's headers, secret-bearing values redacted.
    headers              TEXT NOT NULL,
    body_bytes           BIGINT NOT NULL,
    body                 BYTEA
);
-- The log, newest first, per org.
CREATE INDEX deliveries_org ON deliveries(org_id, id);
-- Connection health: latest and 24 h counts per status, read from the index alone.
CREATE INDEX deliveries_health ON deliveries(connection_id, status, received_at);
-- Retention deletes the oldest rows in small batches.
CREATE INDEX deliveries_received ON deliveries(received_at);
-- Retention deletes expired idempotency keys in small batches.
CREATE INDEX fire_keys_created ON fire_keys(created_at);
-- When each secret last verified a delivery (kept to the minute), so an operator knows when
-- an old secret stops being used and may be removed.
ALTER TABLE connection_secrets ADD COLUMN last_verified_at BIGINT;

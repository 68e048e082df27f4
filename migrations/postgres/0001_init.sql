-- Times are Unix milliseconds; JSON documents are stored as text.

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs(id),
    name        TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    hint        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE triggers (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs(id),
    title               TEXT NOT NULL,
    description         TEXT,
    provider            TEXT NOT NULL,
    connection_id       TEXT,
    provider_event_key  TEXT,
    status              TEXT NOT NULL,
    payload_schema      TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX triggers_org ON triggers(org_id, id);

CREATE TABLE automations (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs(id),
    trigger_id   TEXT NOT NULL REFERENCES triggers(id),
    name         TEXT NOT NULL,
    description  TEXT,
    nodes        TEXT NOT NULL,
    edges        TEXT NOT NULL,
    version      BIGINT NOT NULL,
    published    BOOLEAN NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX automations_org ON automations(org_id, id);
CREATE INDEX automations_trigger ON automations(trigger_id, published);

CREATE TABLE contacts (
    org_id         TEXT NOT NULL REFERENCES orgs(id),
    email          TEXT NOT NULL,
    first_name     TEXT,
    last_name      TEXT,
    subscribed     BOOLEAN,
    custom_fields  TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (org_id, email)
);

-- Provider ids (clerk_user_id, stripe_customer_id, ...) that resolve events without an email.
CREATE TABLE contact_identities (
    org_id  TEXT NOT NULL,
    field   TEXT NOT NULL,
    value   TEXT NOT NULL,
    email   TEXT NOT NULL,
    PRIMARY KEY (org_id, field, value)
);

CREATE TABLE contact_fields (
    org_id      TEXT NOT NULL,
    key         TEXT NOT NULL,
    type        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, key)
);

CREATE TABLE trigger_instances (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL,
    trigger_id       TEXT NOT NULL,
    source           TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    reason           TEXT,
    idempotency_key  TEXT,
    contact_email    TEXT,
    payload          TEXT NOT NULL,
    warnings         TEXT NOT NULL,
    run_ids          TEXT NOT NULL,
    automations      TEXT NOT NULL,
    received_at      BIGINT NOT NULL
);
CREATE INDEX trigger_instances_org ON trigger_instances(org_id, id);

CREATE TABLE runs (
    id                   TEXT PRIMARY KEY,
    org_id               TEXT NOT NULL,
    automation_id        TEXT NOT NULL,
    automation_version   BIGINT NOT NULL,
    trigger_id           TEXT NOT NULL,
    trigger_instance_id  TEXT NOT NULL REFERENCES trigger_instances(id) DEFERRABLE INITIALLY DEFERRED,
    status               TEXT NOT NULL,
    contact_email        TEXT NOT NULL,
    payload              TEXT NOT NULL,
    created_at           BIGINT NOT NULL
);
CREATE INDEX runs_org ON runs(org_id, id);

-- One row per consumed idempotency key (scope 'api') or provider event id (scope = the
-- connection id). The primary key is what makes a fire happen exactly once.
CREATE TABLE fire_keys (
    org_id               TEXT NOT NULL,
    scope                TEXT NOT NULL,
    key                  TEXT NOT NULL,
    request_hash         TEXT NOT NULL,
    trigger_instance_id  TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    PRIMARY KEY (org_id, scope, key)
);

CREATE TABLE connections (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs(id),
    provider    TEXT NOT NULL,
    name        TEXT NOT NULL,
    enabled     BOOLEAN NOT NULL,
    options     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    deleted_at  BIGINT
);
CREATE INDEX connections_org ON connections(org_id, id);

CREATE TABLE connection_secrets (
    id             TEXT PRIMARY KEY,
    connection_id  TEXT NOT NULL REFERENCES connections(id),
    secret         TEXT NOT NULL,
    hint           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    removed_at     BIGINT
);
CREATE INDEX connection_secrets_connection ON connection_secrets(connection_id);

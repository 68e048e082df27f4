-- Keys chosen by others are indexed as themselves when short (at most 128 bytes and not
-- starting with '#'), else as '#' and their hex SHA-256. Provider ids are mostly
-- time-ordered, so a new key lands beside the last one in the index instead of on a
-- random page, as a digest would. Both tables become WITHOUT ROWID tables keyed by that
-- index key, dropping the primary keys on the raw values and the rowid trees they no
-- longer need. Store::migrate gives every row its digest (migration 0005) before this runs.

CREATE TABLE fire_keys_indexed (
    org_id               TEXT NOT NULL,
    scope                TEXT NOT NULL,
    key_index            TEXT NOT NULL,
    key                  TEXT NOT NULL,
    request_hash         TEXT NOT NULL,
    trigger_instance_id  TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    PRIMARY KEY (org_id, scope, key_index)
) WITHOUT ROWID;
INSERT INTO fire_keys_indexed
SELECT org_id, scope,
       CASE WHEN length(CAST(key AS BLOB)) <= 128 AND substr(key, 1, 1) <> '#'
            THEN key ELSE '#' || key_digest END,
       key, request_hash, trigger_instance_id, created_at
FROM fire_keys;
DROP TABLE fire_keys;
ALTER TABLE fire_keys_indexed RENAME TO fire_keys;
-- Retention deletes expired keys in small batches.
CREATE INDEX fire_keys_created ON fire_keys(created_at);

CREATE TABLE contact_identities_indexed (
    org_id       TEXT NOT NULL,
    field        TEXT NOT NULL,
    value_index  TEXT NOT NULL,
    value        TEXT NOT NULL,
    email        TEXT NOT NULL,
    PRIMARY KEY (org_id, field, value_index)
) WITHOUT ROWID;
INSERT INTO contact_identities_indexed
SELECT org_id, field,
       CASE WHEN length(CAST(value AS BLOB)) <= 128 AND substr(value, 1, 1) <> '#'
            THEN value ELSE '#' || value_digest END,
       value, email
FROM contact_identities;
DROP TABLE contact_identities;
ALTER TABLE contact_identities_indexed RENAME TO contact_identities;

-- The unique keys of fire_keys and contact_identities become the hex SHA-256 of the value,
-- as on PostgreSQL (where long values exceed the index row limit). SQLite has no SHA-256
-- function: rows written before this migration get their digest from the server at
-- start-up (Store::migrate), found through the partial indexes below.

ALTER TABLE fire_keys ADD COLUMN key_digest TEXT;
CREATE UNIQUE INDEX fire_keys_digest ON fire_keys (org_id, scope, key_digest);
CREATE INDEX fire_keys_undigested ON fire_keys (key) WHERE key_digest IS NULL;

ALTER TABLE contact_identities ADD COLUMN value_digest TEXT;
CREATE UNIQUE INDEX contact_identities_digest ON contact_identities (org_id, field, value_digest);
CREATE INDEX contact_identities_undigested ON contact_identities (value) WHERE value_digest IS NULL;

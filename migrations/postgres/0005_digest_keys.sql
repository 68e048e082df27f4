-- Provider event ids, idempotency keys and provider ids are chosen by others and may be
-- longer than a B-tree index row allows (about 2.7 KB). The unique keys become the hex
-- SHA-256 of the value; the value itself stays beside it, unindexed.

ALTER TABLE fire_keys ADD COLUMN key_digest TEXT;
UPDATE fire_keys SET key_digest = encode(sha256(convert_to(key, 'UTF8')), 'hex');
ALTER TABLE fire_keys ALTER COLUMN key_digest SET NOT NULL;
ALTER TABLE fire_keys DROP CONSTRAINT fire_keys_pkey;
ALTER TABLE fire_keys ADD PRIMARY KEY (org_id, scope, key_digest);

ALTER TABLE contact_identities ADD COLUMN value_digest TEXT;
UPDATE contact_identities SET value_digest = encode(sha256(convert_to(value, 'UTF8')), 'hex');
ALTER TABLE contact_identities ALTER COLUMN value_digest SET NOT NULL;
ALTER TABLE contact_identities DROP CONSTRAINT contact_identities_pkey;
ALTER TABLE contact_identities ADD PRIMARY KEY (org_id, field, value_digest);

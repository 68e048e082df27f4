-- Keys chosen by others are indexed as themselves when short (at most 128 bytes and not
-- starting with '#'), else as '#' and their hex SHA-256 (which migration 0005 stored).
-- Provider ids are mostly time-ordered, so a new key lands beside the last one in the
-- index instead of on a random page, as a digest would.

ALTER TABLE fire_keys RENAME COLUMN key_digest TO key_index;
UPDATE fire_keys SET key_index =
    CASE WHEN octet_length(key) <= 128 AND left(key, 1) <> '#' THEN key ELSE '#' || key_index END;

ALTER TABLE contact_identities RENAME COLUMN value_digest TO value_index;
UPDATE contact_identities SET value_index =
    CASE WHEN octet_length(value) <= 128 AND left(value, 1) <> '#' THEN value
         ELSE '#' || value_index END;

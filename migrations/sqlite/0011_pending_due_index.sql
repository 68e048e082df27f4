-- Only pending deliveries are ever looked up by when they are due. Indexing those alone
-- keeps the index as small as the queue instead of as large as the log: a finished
-- delivery leaves it rather than moving to another key, and the claims read hot pages.
-- Retention finds finished deliveries by their ULID ids instead.
DROP INDEX outbound_deliveries_due;
CREATE INDEX outbound_deliveries_due ON outbound_deliveries(next_attempt_at)
    WHERE status = 'pending';

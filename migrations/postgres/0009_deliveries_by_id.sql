-- Delivery ids are ULIDs minted on arrival, so they sort by arrival time: retention
-- deletes the oldest rows through the primary key, and the log row's insert keeps one
-- index fewer.
DROP INDEX deliveries_received;

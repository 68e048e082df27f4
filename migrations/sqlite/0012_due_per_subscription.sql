-- Claims take each subscription's due deliveries up to what the claiming process may
-- hold of it, so they look deliveries up per subscription: the subscriptions with pending
-- deliveries by a skip scan, then each one's earliest due. The due index by time alone
-- stays for the checks that anything at all is due.
CREATE INDEX outbound_deliveries_subscription_due
    ON outbound_deliveries(subscription_id, next_attempt_at) WHERE status = 'pending';

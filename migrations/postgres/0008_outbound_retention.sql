-- Retention deletes an outbound event once none of its deliveries remain.
CREATE INDEX outbound_deliveries_event ON outbound_deliveries(event_id);

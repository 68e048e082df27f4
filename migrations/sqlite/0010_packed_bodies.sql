-- How a delivery's stored body is encoded: NULL as received, 'deflate' a raw DEFLATE
-- stream (RFC 1951) of it. body_bytes stays the size as received.
ALTER TABLE deliveries ADD COLUMN body_encoding TEXT;

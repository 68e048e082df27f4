-- How a delivery's stored body is encoded: NULL as received, 'lz4' an LZ4 block after
-- its length as received (4 bytes, little-endian). body_bytes stays the size as received.
ALTER TABLE deliveries ADD COLUMN body_encoding TEXT;

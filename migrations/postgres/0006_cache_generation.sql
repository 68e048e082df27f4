-- One counter that every write which must reach other processes' caches at once bumps in
-- its own transaction: a revoked API key, a connection edited (a secret removed, the
-- connection disabled) or deleted. Each serving process reads it every 500 ms and, when
-- it moved, empties its caches of API keys and connections.
CREATE TABLE cache_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO cache_generation (id, generation) VALUES (1, 0);

-- Version 2: deployment-wide facts every node must agree on (e.g. the public
-- half of the VAPID key), so a node started with the wrong key refuses to start.

CREATE TABLE relay_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
